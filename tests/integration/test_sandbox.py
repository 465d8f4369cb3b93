#!/usr/bin/env python3
"""The contract sandbox (supervisor/contract.c), probed from inside: a
real node runs tests/tools/sandbox_probe as its contract, which tries what
it must not be able to do and records the results in sandbox.json in its
state. test_runner.py already covers hp.cfg, the peer port, unshare and
the uid; this covers the rest: the user port, key files, other processes
(/proc, kill, ptrace), writes outside the state and rlimits.

Needs root (statefs, namespaces, the contract's own uid)."""
import json
import os
import shutil

from hpdtest import BUILD, HPD, Case, Cluster, main, run, wait_for

PROBE = os.path.join(BUILD, "tests", "tools", "sandbox_probe")
ESCAPES = ["/escape", "/etc/escape", "/tmp/hpd-sandbox-escape",
           "/var/tmp/hpd-sandbox-escape", "/dev/shm/hpd-sandbox-escape"]
DENIED = ("EACCES", "EPERM", "ENOENT", "EROFS")


def probe_node(c):
    os.chmod(c.root, 0o755)
    cl = Cluster(c, 1, roundtime=1000)
    nd = cl.nodes[0]
    b = os.path.join(c.root, "bundle-probe")
    os.makedirs(b)
    shutil.copy(PROBE, b)
    env = {"HPD_TEST_USER_PORT": str(nd.cfg()["user"]["port"]),
           "HPD_TEST_KEY": os.path.join(nd.dir, "cfg", "tls.key"),
           "HPD_TEST_NODE_DIR": nd.dir,
           "HPD_TEST_HOST_PID": str(os.getpid())}
    over = {"contract": {"bin_path": os.path.join(nd.dir, "mnt", "state", "sandbox_probe"),
                         "environment": env, "log": {"enable": True},
                         "round_limits": {"proc_ofd_count": 64}}}
    with open(os.path.join(b, "hp.cfg.override"), "w") as f:
        json.dump(over, f)
    r = run(HPD, "deploy", nd.dir, b)
    assert r.returncode == 0, r.stderr
    cl.start()
    return cl, nd


def test_sandbox_refuses():
    assert os.access(PROBE, os.X_OK), "build first: %s" % PROBE
    for p in ESCAPES:
        if os.path.exists(p):
            os.unlink(p)
    with Case() as c:
        cl, nd = probe_node(c)
        path = os.path.join(nd.dir, "mnt", "state", "sandbox.json")
        p = wait_for("sandbox.json", lambda: json.load(open(path)), 30, 0.2)
        print("  probe: %s" % json.dumps(p))
        wait_for("the run is over", lambda: cl.show(0, "runner")["last_result"] == "exit 0", 10, 0.2)
        # The user port listens on the host, not in the contract's network.
        assert p["connect_user"] in ("ENETUNREACH", "ECONNREFUSED"), p
        assert p["read_key"] == "ENOENT", p
        assert p["read_shadow"] in ("EACCES", "ENOENT"), p
        # Its own pid namespace: only its init (1), itself and what it
        # forked; no worker, no supervisor, no host pid.
        assert p["pid"] == 2 and p["ppid"] == 1, p
        pids = {pid: comm for pid, comm in p["procs"]}
        assert set(pids) <= {1, 2, 3} and pids[1] == "contract-init", pids
        assert not any(comm.startswith(("hpd", "consensus", "peer", "state", "gateway", "runner"))
                       for comm in pids.values()), pids
        assert p["kill_host"] == "ESRCH", p
        for k in ("ptrace_host", "ptrace_init", "ptrace_child", "traceme"):
            assert p[k] in ("EPERM", "ESRCH"), (k, p)
        assert p["ptrace_child"] == "EPERM" and p["traceme"] == "EPERM", p
        # Nothing it wrote outside its state reached the host.
        for k in ("write_node_dir", "write_node_log", "write_root", "write_etc"):
            assert p[k] in DENIED, (k, p)
        for k in ("write_tmp", "write_var_tmp", "write_dev_shm"):
            # Either refused or written into the run's own scratch tmpfs.
            assert p[k] in DENIED + ("wrote",), (k, p)
        for e in ESCAPES + [os.path.join(nd.dir, "escape"), os.path.join(nd.dir, "log", "escape")]:
            assert not os.path.exists(e), e
        # RLIMIT_NOFILE is round_limits.proc_ofd_count, soft and hard.
        assert p["nofile_cur"] == 64 and p["nofile_max"] == 64, p
        assert p["nofile_raise"] == "EPERM", p


if __name__ == "__main__":
    main([test_sandbox_refuses])
