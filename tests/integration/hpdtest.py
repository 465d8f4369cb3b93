"""hpdtest — helpers for hpd's integration tests.

Each test gets a fresh temporary directory, creates real nodes with
`hpd new`, runs real `hpd run` processes and talks to them with the real
`hpctl`. Nothing is mocked. Every helper that waits has a deadline and
raises AssertionError with what it saw when the deadline passes.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

BUILD = os.environ.get("HPD_BUILD", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
BUILD = os.path.abspath(BUILD)
HPD = os.path.join(BUILD, "hpd")
HPCTL = os.path.join(BUILD, "hpctl")
WORKERS = ["consensus", "peer", "state", "gateway", "runner"]
LINKS = {
    "consensus": {"peer", "state", "gateway", "runner"},
    "peer": {"consensus", "state"},
    "state": {"consensus", "peer"},
    "gateway": {"consensus", "runner"},
    "runner": {"consensus", "gateway"},
}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run(*args, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 30)
    return subprocess.run(list(args), **kw)


def wait_for(what, fn, timeout=10.0, interval=0.05):
    """Poll fn() until it returns a truthy value; return it."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except (OSError, ValueError, KeyError, AssertionError) as e:
            last = e
        time.sleep(interval)
    raise AssertionError("timed out after %.1fs waiting for %s (last: %r)" % (timeout, what, last))


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except FileNotFoundError:
        return False


class Node:
    """One hpd node directory and, while started, its supervisor process."""

    def __init__(self, root, name="n1", env=None):
        self.dir = os.path.join(root, name)
        self.proc = None
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.logpath = os.path.join(root, name + ".out")
        r = run(HPD, "new", self.dir)
        assert r.returncode == 0, "hpd new failed: %s" % r.stderr
        self.edit_cfg(lambda c: (c["mesh"].__setitem__("port", free_port()),
                                 c["user"].__setitem__("port", free_port())))

    @property
    def cfg_path(self):
        return os.path.join(self.dir, "cfg", "hp.cfg")

    def cfg(self):
        with open(self.cfg_path) as f:
            return json.load(f)

    def edit_cfg(self, fn):
        c = self.cfg()
        fn(c)
        with open(self.cfg_path, "w") as f:
            json.dump(c, f, indent=4)

    def start(self, extra_env=None):
        env = dict(self.env)
        env.update(extra_env or {})
        self.out = open(self.logpath, "ab")
        self.proc = subprocess.Popen([HPD, "run", self.dir], stdout=self.out,
                                     stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        return self.proc

    def log(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode(errors="replace")

    def ctl(self, *args, check=True):
        r = run(HPCTL, "-d", self.dir, *args)
        if check:
            assert r.returncode == 0, "hpctl %s: rc %d: %s%s" % (" ".join(args), r.returncode, r.stdout, r.stderr)
        return r

    def status(self):
        r = run(HPCTL, "-d", self.dir, "--json", "status")
        if r.returncode != 0:
            raise AssertionError("hpctl status rc %d: %s" % (r.returncode, r.stderr))
        return json.loads(r.stdout)["data"]

    def worker(self, name):
        for w in self.status()["workers"]:
            if w["name"] == name:
                return w
        raise KeyError(name)

    def wait_ready(self, timeout=10.0):
        return wait_for("5 ready workers",
                        lambda: (lambda s: s if s["workers_ready"] == 5 else None)(self.status()),
                        timeout)

    def wait_channels(self, timeout=10.0):
        """Until every worker reports a live channel to each of its siblings."""
        def ok():
            s = self.status()
            for w in s["workers"]:
                if set(w["channels"]) != LINKS[w["name"]]:
                    return None
            return s
        return wait_for("all sibling channels up", ok, timeout)

    def worker_pids(self):
        return {w["name"]: w["pid"] for w in self.status()["workers"]}

    def stop(self, timeout=10):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        rc = self.proc.returncode
        self.proc = None
        self.out.close()
        return rc

    def kill_all(self):
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
            self.proc = None
            self.out.close()


class Case:
    """Temporary root for one test; kills every node it made on exit."""

    def __enter__(self):
        self.root = tempfile.mkdtemp(prefix="hpdt.")
        self.nodes = []
        return self

    def node(self, name="n1", env=None):
        n = Node(self.root, name, env)
        self.nodes.append(n)
        return n

    def __exit__(self, *exc):
        for n in self.nodes:
            n.kill_all()
        if exc[0] is None or os.environ.get("HPD_KEEP") is None:
            shutil.rmtree(self.root, ignore_errors=True)
        else:
            print("  kept %s" % self.root)
        return False


def main(tests):
    """Run the given test functions; print one line each and a total."""
    only = sys.argv[1:]
    passed = failed = 0
    for t in tests:
        if only and t.__name__ not in only:
            continue
        t0 = time.monotonic()
        try:
            t()
        except Exception as e:  # noqa: BLE001 — every failure is reported
            failed += 1
            print("FAIL %s (%.1fs): %s: %s" % (t.__name__, time.monotonic() - t0, type(e).__name__, e), flush=True)
            continue
        passed += 1
        print("ok   %s (%.1fs)" % (t.__name__, time.monotonic() - t0), flush=True)
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)
