#!/usr/bin/env python3
"""Integration tests of the supervisor and its five workers, run for real:
`hpd new`, `hpd run`, `hpctl`, kill -9, SIGTERM, sd_notify, seccomp."""
import os
import signal
import socket
import subprocess
import time

from hpdtest import (HPCTL, HPD, BUILD, LINKS, WORKERS, Case, main, pid_alive,
                     run, wait_for)


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def test_five_workers_ready_within_2s():
    with Case() as c:
        n = c.node()
        t0 = time.monotonic()
        n.start()
        s = wait_for("5 ready", lambda: (lambda s: s if s["workers_ready"] == 5 else None)(n.status()), 2.0, 0.02)
        assert time.monotonic() - t0 < 2.0
        assert [w["name"] for w in s["workers"]] == WORKERS
        assert s["privsep"] == "full", s["privsep"]
        uids = [w["uid"] for w in s["workers"]]
        assert len(set(uids)) == 5 and 0 not in uids, uids
        for w in s["workers"]:
            assert w["state"] == "ready" and w["pid"] > 0 and w["restarts"] == 0, w
            st = proc_status(w["pid"])
            assert st["Uid"].split() == [str(w["uid"])] * 4, (w["name"], st["Uid"])
            assert st["NoNewPrivs"] == "1", (w["name"], st["NoNewPrivs"])
            assert st["Seccomp"] == "2", (w["name"], st["Seccomp"])
            assert int(st["CapEff"], 16) == 0 and int(st["CapPrm"], 16) == 0, (w["name"], st["CapEff"])
            assert int(st["CapBnd"], 16) == 0, (w["name"], st["CapBnd"])
        n.wait_channels(3.0)
        # The human form says the same.
        r = n.ctl("status")
        assert "5 of 5 workers ready" in r.stdout, r.stdout
        for w in WORKERS:
            assert w in r.stdout
        assert n.stop() == 0


def test_listening_sockets_passed_to_workers():
    with Case() as c:
        n = c.node()
        cfg = n.cfg()
        n.start()
        n.wait_ready()
        pids = n.worker_pids()
        # The supervisor bound mesh.port and user.port; the peer and
        # gateway workers hold them (they never bind themselves).
        def holds(pid, port):
            inodes = set()
            for fd in os.listdir("/proc/%d/fd" % pid):
                try:
                    link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
                except OSError:
                    continue
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
            for tbl in ("/proc/net/tcp6", "/proc/net/tcp"):
                with open(tbl) as f:
                    for line in f.readlines()[1:]:
                        p = line.split()
                        if int(p[1].split(":")[1], 16) == port and p[3] == "0A" and p[9] in inodes:
                            return True
            return False
        wait_for("peer holds mesh.port", lambda: holds(pids["peer"], cfg["mesh"]["port"]), 3)
        wait_for("gateway holds user.port", lambda: holds(pids["gateway"], cfg["user"]["port"]), 3)
        assert not holds(pids["consensus"], cfg["mesh"]["port"])
        assert "listening socket for mesh (port %d) received" % cfg["mesh"]["port"] in n.log()
        n.stop()


def test_port_in_use_is_a_clear_error():
    with Case() as c:
        n = c.node()
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", n.cfg()["user"]["port"]))
        s.listen()
        r = run(HPD, "run", n.dir, timeout=10)
        s.close()
        assert r.returncode == 1, r
        assert "user.port" in r.stderr and "choose another user.port" in r.stderr, r.stderr


def test_sd_notify_ready_and_stopping():
    with Case() as c:
        n = c.node()
        path = os.path.join(c.root, "notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.settimeout(5)
        n.start({"NOTIFY_SOCKET": path})
        msg = sock.recv(4096).decode()
        assert "READY=1" in msg, msg
        assert n.status()["workers_ready"] == 5
        n.proc.send_signal(signal.SIGTERM)
        msg = sock.recv(4096).decode()
        assert "STOPPING=1" in msg, msg
        n.proc.wait(5)
        sock.close()


def test_kill9_each_worker_is_restarted_and_reported():
    with Case() as c:
        n = c.node()
        n.start()
        n.wait_ready()
        n.wait_channels()
        for name in WORKERS:
            before = n.worker(name)
            os.kill(before["pid"], signal.SIGKILL)
            after = wait_for("%s restarted" % name,
                             lambda: (lambda w: w if w["state"] == "ready" and w["pid"] != before["pid"] else None)(n.worker(name)),
                             6.0)
            assert after["restarts"] == before["restarts"] + 1, after
            assert after["last_exit"] == "signal 9 (SIGKILL)", after
            # Fresh sibling channels were handed to the restarted worker and
            # to each of its siblings.
            n.wait_channels(5.0)
        log = n.log()
        for name in WORKERS:
            assert "%s (pid" % name in log and "died: signal 9 (SIGKILL)" in log
            assert "restarting %s" % name in log
        assert n.status()["workers_ready"] == 5
        assert n.stop() == 0


def test_repeated_deaths_end_failed_until_restart():
    with Case() as c:
        n = c.node()
        n.start()
        n.wait_ready()
        # Backoff 1+2+4+8+16 s: the sixth death within 300 s means failed.
        for i in range(6):
            w = wait_for("runner ready", lambda: (lambda w: w if w["state"] == "ready" else None)(n.worker("runner")), 40)
            os.kill(w["pid"], signal.SIGKILL)
            wait_for("runner death seen", lambda: n.worker("runner")["state"] in ("backoff", "failed"), 5)
            if i < 5:
                assert n.worker("runner")["state"] == "backoff"
        w = n.worker("runner")
        assert w["state"] == "failed", w
        time.sleep(2.5)
        assert n.worker("runner")["state"] == "failed", "a failed worker must stay down"
        assert "runner died 6 times in 300 s" in n.log()
        r = n.ctl("status")
        assert "failed" in r.stdout
        n.ctl("restart", "runner")
        w = wait_for("runner ready again", lambda: (lambda w: w if w["state"] == "ready" else None)(n.worker("runner")), 5)
        assert w["pid"] > 0
        n.wait_channels(5)
        assert "control: uid 0" in n.log() and "asked to restart runner" in n.log()
        n.stop()


def test_forbidden_syscall_kills_with_sigsys():
    with Case() as c:
        n = c.node()
        n.start({"HPD_TEST_HOOKS": "1"})
        n.wait_ready()
        for name in ("consensus", "gateway"):
            pid = n.worker(name)["pid"]
            n.ctl("debug", "sigsys", name)
            w = wait_for("%s failed" % name, lambda: (lambda w: w if w["state"] == "failed" else None)(n.worker(name)), 5)
            assert "SIGSYS" in w["last_exit"] and w["last_exit_sigsys"] is True, w
            assert not pid_alive(pid)
            assert "SECURITY: %s (pid %d) was killed by the sandbox" % (name, pid) in n.log()
        # Not restarted on its own; hpctl restart brings it back.
        time.sleep(1.5)
        assert n.worker("consensus")["state"] == "failed"
        n.ctl("restart", "consensus")
        wait_for("consensus ready", lambda: n.worker("consensus")["state"] == "ready", 5)
        n.stop()


def test_sigsys_hook_refused_without_test_hooks():
    with Case() as c:
        n = c.node()
        n.start()
        n.wait_ready()
        r = n.ctl("debug", "sigsys", "peer", check=False)
        assert r.returncode == 1 and "test hooks are off" in r.stderr, r
        assert n.worker("peer")["state"] == "ready"
        n.stop()


def test_killing_supervisor_takes_workers_down():
    with Case() as c:
        n = c.node()
        n.start()
        n.wait_ready()
        pids = list(n.worker_pids().values())
        os.kill(n.proc.pid, signal.SIGKILL)
        n.proc.wait()
        wait_for("every worker gone", lambda: not any(pid_alive(p) for p in pids), 3.0)


def test_sigterm_stops_everything_within_5s():
    with Case() as c:
        n = c.node()
        n.start()
        n.wait_ready()
        pids = list(n.worker_pids().values())
        t0 = time.monotonic()
        n.proc.send_signal(signal.SIGTERM)
        rc = n.proc.wait(5)
        took = time.monotonic() - t0
        assert rc == 0, rc
        assert took < 5.0, took
        assert not any(pid_alive(p) for p in pids)
        assert not os.path.exists(os.path.join(n.dir, "ctl.sock"))
        log = n.log()
        for name in WORKERS:
            assert "%s stopped (exit code 0)" % name in log, log
        n.proc = None
        n.out.close()


def test_second_instance_refused():
    with Case() as c:
        n = c.node()
        n.start()
        n.wait_ready()
        r = run(HPD, "run", n.dir, timeout=10)
        assert r.returncode == 1
        assert "already running on" in r.stderr and str(n.proc.pid) in r.stderr, r.stderr
        assert n.status()["workers_ready"] == 5
        n.stop()


def test_stop_start_and_log_level():
    with Case() as c:
        n = c.node()
        n.start()
        n.wait_ready()
        n.ctl("stop", "gateway")
        wait_for("gateway stopped", lambda: n.worker("gateway")["state"] == "stopped", 5)
        time.sleep(1.5)
        assert n.worker("gateway")["state"] == "stopped"
        wait_for("runner lost gateway", lambda: "gateway" not in n.worker("runner")["channels"], 5)
        r = n.ctl("start", "consensus", check=False)
        assert r.returncode == 1 and "already ready" in r.stderr, r
        n.ctl("start", "gateway")
        wait_for("gateway ready", lambda: n.worker("gateway")["state"] == "ready", 5)
        n.wait_channels(5)
        n.ctl("log", "level", "peer", "dbg")
        r = n.ctl("log", "level", "peer", "loud", check=False)
        assert r.returncode == 100 and "dbg, inf, wrn, err" in r.stderr
        wait_for("peer logs at dbg", lambda: "[inf][peer] log level now dbg" in n.log(), 3)
        n.stop()


def test_hpctl_exit_codes():
    with Case() as c:
        n = c.node()
        r = run(HPCTL, "-d", n.dir, "status")
        assert r.returncode == 111 and "is the node running" in r.stderr, r
        r = run(HPCTL)
        assert r.returncode == 100 and "usage" in r.stderr
        r = run(HPCTL, "--help")
        assert r.returncode == 0 and "restart WORKER" in r.stdout
        n.start()
        n.wait_ready()
        r = n.ctl("frobnicate", check=False)
        assert r.returncode == 100 and "unknown command" in r.stderr, r
        r = n.ctl("restart", "nosuch", check=False)
        assert r.returncode == 100 and "unknown worker" in r.stderr, r
        r = run(HPCTL, "-d", n.dir, "--json", "restart", "nosuch")
        assert r.returncode == 100 and '"code": 100' in r.stdout, r
        n.stop()


def test_control_socket_refuses_outsiders():
    with Case() as c:
        n = c.node()
        os.chmod(c.root, 0o755)
        os.chmod(n.dir, 0o755)
        n.start()
        n.wait_ready()
        st = os.stat(os.path.join(n.dir, "ctl.sock"))
        assert st.st_mode & 0o777 == 0o660, oct(st.st_mode)
        r = run("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", HPCTL, "-d", n.dir, "status")
        assert r.returncode == 111 and "Permission denied" in r.stderr, r
        # A member of the hpd group may use it.
        r = run("setpriv", "--reuid=nobody", "--regid=hpd", "--clear-groups", HPCTL, "-d", n.dir, "restart", "peer")
        assert r.returncode == 0, r
        uid = int(run("id", "-u", "nobody").stdout)
        wait_for("audit line", lambda: "control: uid %d" % uid in n.log() and "asked to restart peer" in n.log(), 3)
        n.stop()


def test_hung_worker_is_killed_and_restarted():
    with Case() as c:
        n = c.node()
        n.start()
        n.wait_ready()
        before = n.worker("state")
        # A stopped process keeps its sockets open but answers nothing.
        os.kill(before["pid"], signal.SIGSTOP)
        after = wait_for("state restarted", lambda: (lambda w: w if w["state"] == "ready" and w["pid"] != before["pid"] else None)(n.worker("state")), 20)
        assert "state missed 5 heartbeats; killing it" in n.log()
        assert after["last_exit"] == "signal 9 (SIGKILL)", after
        n.wait_channels(5)
        n.stop()


def test_development_mode_without_root():
    import shutil
    import pwd
    with Case() as c:
        # A copy of the programs that any user can run, and a node that
        # belongs to an unprivileged user.
        bindir = os.path.join(c.root, "bin")
        os.mkdir(bindir)
        for p in ["hpd", "hpctl"] + ["hpd-" + w for w in WORKERS]:
            shutil.copy(os.path.join(BUILD, p), bindir)
        os.chmod(c.root, 0o755)
        n = c.node()
        nobody = pwd.getpwnam("nobody")
        for dirpath, dirs, files in os.walk(n.dir):
            for f in dirs + files:
                os.chown(os.path.join(dirpath, f), nobody.pw_uid, nobody.pw_gid)
        os.chown(n.dir, nobody.pw_uid, nobody.pw_gid)
        out = open(n.logpath, "ab")
        proc = subprocess.Popen(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                                 os.path.join(bindir, "hpd"), "run", n.dir],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            def ready():
                r = run("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                        os.path.join(bindir, "hpctl"), "-d", n.dir, "--json", "status")
                if r.returncode != 0:
                    return None
                import json
                d = json.loads(r.stdout)["data"]
                return d if d["workers_ready"] == 5 else None
            s = wait_for("5 ready in development mode", ready, 5)
            assert s["privsep"] == "development", s
            for w in s["workers"]:
                assert w["uid"] == nobody.pw_uid, w
                st = proc_status(w["pid"])
                assert st["Seccomp"] == "2" and st["NoNewPrivs"] == "1", st
            assert "development mode" in n.log()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(5) == 0
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            out.close()


def test_worker_refuses_to_run_by_hand():
    r = run(os.path.join(BUILD, "hpd-consensus"))
    assert r.returncode == 100 and "started by `hpd run DIR`" in r.stderr, r


if __name__ == "__main__":
    main([
        test_five_workers_ready_within_2s,
        test_listening_sockets_passed_to_workers,
        test_port_in_use_is_a_clear_error,
        test_sd_notify_ready_and_stopping,
        test_kill9_each_worker_is_restarted_and_reported,
        test_forbidden_syscall_kills_with_sigsys,
        test_sigsys_hook_refused_without_test_hooks,
        test_killing_supervisor_takes_workers_down,
        test_sigterm_stops_everything_within_5s,
        test_second_instance_refused,
        test_stop_start_and_log_level,
        test_hpctl_exit_codes,
        test_control_socket_refuses_outsiders,
        test_worker_refuses_to_run_by_hand,
        test_hung_worker_is_killed_and_restarted,
        test_development_mode_without_root,
        test_repeated_deaths_end_failed_until_restart,
    ])
