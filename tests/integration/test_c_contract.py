#!/usr/bin/env python3
"""The C example contract (examples/c-echo) and what hpd does around a run.

- The contract protocol, without a node: c-echo run by hand with an args
  JSON on stdin, inputs in a memfd at 4 KiB-aligned offsets and one
  socketpair per user; its outputs are read back as 4-byte big-endian
  framed messages.
- On a 3-node cluster (deployed with its own hp.cfg.override): it runs
  after every ledger and its state file grows the same way on every node.
- post_exec.sh: run after a normal exit with "<seq> <hash>", kept on exit
  3..125, an error on other exits, deleted on exit 0.
- Contract log rotation at contract.log.max_mbytes_per_file.

The cluster cases need root (statefs, namespaces)."""
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile

from hpdtest import BUILD, HPD, Case, Cluster, main, run, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(HERE, "..", "..", "examples", "c-echo")
ECHO = os.path.join(BUILD, "examples", "c-echo", "c-echo")
HASH = "ab" * 32


# ---- the protocol, without a node ----

def frames(sock):
    """Every framed message the contract wrote to one user socket."""
    data = b""
    sock.settimeout(2)
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    out = []
    while data:
        assert len(data) >= 4, data
        n = struct.unpack(">I", data[:4])[0]
        assert len(data) >= 4 + n, (n, data)
        out.append(data[4:4 + n])
        data = data[4 + n:]
    return out


def run_echo(workdir, users, readonly=False, seq=7):
    """Run c-echo once in workdir/state. users: {key: [input bytes...]}.
    Returns ({key: [frames]}, exit status, stdout)."""
    state = os.path.join(workdir, "state")
    os.makedirs(state, exist_ok=True)
    mfd = os.memfd_create("inputs")
    os.write(mfd, b"unrelated data at offset zero")
    ours, fds, uargs = {}, [], {}
    for key, inputs in users.items():
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        ours[key] = a
        fds.append(b.detach())
        entry = [fds[-1]]
        for blob in inputs:
            off = (os.lseek(mfd, 0, os.SEEK_END) + 4095) // 4096 * 4096
            os.pwrite(mfd, blob, off)
            entry.append([off, len(blob)])
        uargs[key] = entry
    ctl = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    npl = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    args = {"hp_version": "0.6.4", "contract_id": "c0ffee00-0000-4000-8000-000000000000",
            "public_key": "ed" + "11" * 32, "private_key": "ed" + "22" * 64,
            "timestamp": 0 if readonly else 1700000000000, "readonly": readonly}
    if not readonly:
        args.update({"lcl_seq_no": seq, "lcl_hash": HASH, "npl_fd": npl[1].fileno()})
    args.update({"control_fd": ctl[1].fileno(), "user_in_fd": mfd, "users": uargs,
                 "unl": {} if readonly else {"ed" + "11" * 32: {"active_on": 0}}})
    p = subprocess.run([ECHO], input=json.dumps(args).encode(), cwd=state,
                       pass_fds=fds + [mfd, ctl[1].fileno(), npl[1].fileno()],
                       capture_output=True, timeout=10, env={})
    for fd in fds + [mfd]:
        os.close(fd)
    for s in ctl + npl:
        s.close()
    got = {k: frames(s) for k, s in ours.items()}
    for s in ours.values():
        s.close()
    return got, p.returncode, p.stdout.decode() + p.stderr.decode()


def runs_file(workdir):
    with open(os.path.join(workdir, "state", "echo-runs.txt")) as f:
        return f.read().splitlines()


def test_protocol_echo_framed_outputs():
    assert os.access(ECHO, os.X_OK), "build first: %s" % ECHO
    d = tempfile.mkdtemp(prefix="hpdt.echo.")
    try:
        with open(os.path.join(d, "patch.cfg"), "w") as f:
            json.dump({"version": "2.5", "unl": []}, f)
        big = bytes(range(256)) * 300          # 76800 bytes, not UTF-8
        users = {"ed" + "aa" * 32: [b"hello", b"", big],
                 "ed" + "bb" * 32: [],
                 "ed" + "cc" * 32: [b"{\"x\":1}"]}
        got, rc, out = run_echo(d, users, seq=7)
        assert rc == 0, out
        assert got["ed" + "aa" * 32] == [b"Echo: hello", b"Echo: ", b"Echo: " + big], \
            [len(x) for x in got["ed" + "aa" * 32]]
        assert got["ed" + "bb" * 32] == []
        assert got["ed" + "cc" * 32] == [b"Echo: {\"x\":1}"]
        assert runs_file(d) == ["7 %s users=3 inputs=4 patch_version=2.5" % HASH], runs_file(d)
        # No users: just the line; the file grows.
        got, rc, out = run_echo(d, {}, seq=8)
        assert rc == 0 and got == {}, out
        assert runs_file(d)[1] == "8 %s users=0 inputs=0 patch_version=2.5" % HASH
        # A read-only run echoes and leaves the state alone.
        got, rc, out = run_echo(d, {"ed" + "dd" * 32: [b"q"]}, readonly=True)
        assert rc == 0 and got == {"ed" + "dd" * 32: [b"Echo: q"]}, (got, out)
        assert "read-only run" in out, out
        assert len(runs_file(d)) == 2
        # Without ../patch.cfg the version is "-".
        os.unlink(os.path.join(d, "patch.cfg"))
        run_echo(d, {}, seq=9)
        assert runs_file(d)[2].endswith("patch_version=-"), runs_file(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_protocol_bad_args_exit_1():
    p = subprocess.run([ECHO], input=b"not json", capture_output=True, timeout=10)
    assert p.returncode == 1 and b"args JSON" in p.stderr, p


# ---- on a node ----

def bundle(root, extra=None, cfg=None):
    """c-echo, the example's hp.cfg.override (merged with cfg), and extra
    files {name: (text, mode)}."""
    b = os.path.join(root, "bundle-c-echo")
    os.makedirs(b)
    shutil.copy(ECHO, b)
    with open(os.path.join(EXAMPLE, "hp.cfg.override")) as f:
        over = json.load(f)
    for k, v in (cfg or {}).items():
        if isinstance(v, dict):
            over["contract"].setdefault(k, {}).update(v)
        else:
            over["contract"][k] = v
    with open(os.path.join(b, "hp.cfg.override"), "w") as f:
        json.dump(over, f)
    for name, (text, mode) in (extra or {}).items():
        path = os.path.join(b, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
    return b


def cluster(c, n, extra=None, cfg=None):
    os.chmod(c.root, 0o755)
    cl = Cluster(c, n, roundtime=1000)
    b = bundle(c.root, extra, cfg)
    for nd in cl.nodes:
        r = run(HPD, "deploy", nd.dir, b)
        assert r.returncode == 0, r.stderr
    cl.start()
    return cl


def state_lines(nd, name):
    with open(os.path.join(nd.dir, "mnt", "state", name)) as f:
        return f.read().splitlines()


def test_c_echo_runs_every_ledger_same_state_on_three_nodes():
    with Case() as c:
        cl = cluster(c, 3)
        cl.wait_ledgers(6, timeout=40)
        wait_for("every runner ran >= 4 times",
                 lambda: all(cl.show(i, "runner")["runs"] >= 4 for i in range(3)), 20, 0.2)
        for i in range(3):
            r = cl.show(i, "runner")
            assert r["last_result"] == "exit 0", r
            assert r["failed"] == 0 and r["timeouts"] == 0, r
        lines = state_lines(cl.nodes[0], "echo-runs.txt")
        assert len(lines) >= 4, lines
        seqs = [int(l.split()[0]) for l in lines]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs
        assert all(l.split()[2:4] == ["users=0", "inputs=0"] for l in lines), lines
        # Each line names its ledger: the seq and hash of a closed ledger.
        led = cl.ledgers(0)
        for l in lines:
            seq, h = int(l.split()[0]), l.split()[1]
            if seq in led:
                assert h.startswith(led[seq]), (l, led[seq])
        s0 = cl.last_seq(0)
        wait_for("ledger > %d" % (s0 + 2), lambda: all(cl.last_seq(i) > s0 + 2 for i in range(3)), 20, 0.2)
        hashes = []
        for seq in range(s0 - 2, s0 + 1):
            per = {cl.show(i, "ledger", str(seq))["state_hash"] for i in range(3)}
            assert len(per) == 1, (seq, per)
            hashes.append(per.pop())
        assert len(set(hashes)) == len(hashes), hashes
        cl.check_no_fork()
        first = lines[:4]
        for nd in cl.nodes[1:]:
            assert state_lines(nd, "echo-runs.txt")[:4] == first
        with open(os.path.join(cl.nodes[0].dir, "log", "contract", "stdout.log")) as f:
            assert "c-echo: consensus run, 0 users, 0 inputs echoed" in f.read()


# Kept (exit 3) at its first run, an error (exit 1, kept) at its second,
# deleted (exit 0) at its third.
POST_EXEC = """#!/bin/sh
echo "$0 $1" >> post.txt
n=$(wc -l < post.txt)
echo "post_exec run $n"
[ "$n" = 1 ] && exit 3
[ "$n" = 2 ] && { echo "post_exec failing" >&2; exit 1; }
exit 0
"""


def test_post_exec_kept_error_deleted():
    with Case() as c:
        cl = cluster(c, 1, {"post_exec.sh": (POST_EXEC, 0o755)})
        nd = cl.nodes[0]
        wait_for("post_exec.sh deleted",
                 lambda: not os.path.exists(os.path.join(nd.dir, "mnt", "state", "post_exec.sh"))
                 and cl.show(0, "runner")["phase"] == "idle", 40, 0.2)
        s = cl.last_seq(0)
        wait_for("two more ledgers", lambda: cl.last_seq(0) >= s + 2, 20, 0.2)
        post = state_lines(nd, "post.txt")
        assert len(post) == 3, post          # not run once deleted
        runs = {l.split()[0]: l.split()[1] for l in state_lines(nd, "echo-runs.txt")}
        for l in post:
            name, seq, h = l.split()
            assert name == "post_exec.sh", l
            # The argument is the run's ledger: what the contract saw.
            assert runs.get(seq) == h, (l, runs)
        log = nd.log()
        assert "post_exec.sh exited 3 and is kept" in log, log[-3000:]
        assert "post_exec.sh failed: exit 1" in log, log[-3000:]
        assert "post_exec.sh exited 0 and was deleted" in log, log[-3000:]
        cdir = os.path.join(nd.dir, "log", "contract")
        with open(os.path.join(cdir, "stdout.log")) as f:
            out = f.read()
        assert "post_exec run 1" in out and "post_exec run 3" in out, out[-2000:]
        with open(os.path.join(cdir, "stderr.log")) as f:
            err = f.read()
        assert "post_exec failing" in err and "post_exec.sh exited 1" in err, err[-2000:]
        assert cl.show(0, "runner")["last_result"] == "exit 0"


def test_post_exec_only_after_a_normal_exit():
    # The first run is killed by a signal, the next ones exit 9.
    crash = """#!/bin/sh
n=$(cat runs.txt 2>/dev/null | wc -l)
echo run >> runs.txt
[ "$n" = 0 ] && kill -KILL $$
exit 9
"""
    post = "#!/bin/sh\necho \"$1\" >> post.txt\nexit 3\n"
    with Case() as c:
        cl = cluster(c, 1, {"crash.sh": (crash, 0o755), "post_exec.sh": (post, 0o755)},
                     {"bin_path": "/bin/sh", "bin_args": "crash.sh"})
        nd = cl.nodes[0]
        wait_for("3 runs", lambda: cl.show(0, "runner")["runs"] >= 3
                 and cl.show(0, "runner")["phase"] == "idle", 30, 0.2)
        import re
        results = re.findall(r"contract run for ledger (\d+): (exit \d+|killed by signal \d+)",
                             nd.log())
        assert len(results) >= 3, results
        done = {seq for seq, _ in results}
        ran = {l.split()[0] for l in state_lines(nd, "post.txt")} & done
        killed = results[0][0]
        assert killed not in ran, (results, ran)
        assert ran == {seq for seq, r in results[1:]}, (results, ran)


def test_contract_log_rotates():
    # 1 MiB per file, 3 files: a contract that writes 700 KiB per run.
    big = "#!/bin/sh\nhead -c 716800 /dev/zero | tr '\\\\0' x\necho\n"
    with Case() as c:
        cl = cluster(c, 1, {"big.sh": (big, 0o755)},
                     {"bin_path": "/bin/sh", "bin_args": "big.sh",
                      "log": {"enable": True, "max_mbytes_per_file": 1, "max_file_count": 3}})
        cdir = os.path.join(cl.nodes[0].dir, "log", "contract")
        wait_for("6 runs", lambda: cl.show(0, "runner")["runs"] >= 6, 40, 0.2)
        names = sorted(os.listdir(cdir))
        assert "stdout.log.1" in names and "stdout.log.2" in names, names
        assert "stdout.log.3" not in names, names
        for n in names:
            if n.startswith("stdout.log"):
                # Rotated before a run once past 1 MiB: at most 2 runs each.
                assert os.path.getsize(os.path.join(cdir, n)) < 2 * 716800 + 4096, n
        with open(os.path.join(cdir, "stdout.log.1")) as f:
            assert f.read().count("---- hpd: contract run for ledger") == 2


if __name__ == "__main__":
    main([
        test_protocol_echo_framed_outputs,
        test_protocol_bad_args_exit_1,
        test_c_echo_runs_every_ledger_same_state_on_three_nodes,
        test_post_exec_kept_error_deleted,
        test_post_exec_only_after_a_normal_exit,
        test_contract_log_rotates,
    ])
