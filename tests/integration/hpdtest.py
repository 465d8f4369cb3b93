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
    "state": {"consensus", "peer", "runner"},
    "gateway": {"consensus", "runner"},
    "runner": {"consensus", "gateway", "state"},
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
        # A killed supervisor cannot unmount its state file system.
        subprocess.run(["umount", "-l", os.path.join(self.dir, "mnt")],
                       capture_output=True)


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


LEDGER_RE = None


def ledger_lines(text):
    """seq → 8-hex hash prefix for every ledger a node closed or synced."""
    import re
    global LEDGER_RE
    if LEDGER_RE is None:
        LEDGER_RE = re.compile(r"(?:\*\*\*\*Ledger created\*\*\*\* \(lcl:|ledger )(\d+)-([0-9a-f]{8})")
    out = {}
    for m in LEDGER_RE.finditer(text):
        out[int(m.group(1))] = m.group(2)
    return out


class Cluster:
    """N nodes of one contract, each other's keys in the UNL and each other
    in mesh.known_peers, on loopback."""

    def __init__(self, case, n, roundtime=1000, threshold=80, mode="private",
                 names=None, ip="127.0.0.1"):
        self.case = case
        self.nodes = [case.node(names[i] if names else "n%d" % i) for i in range(n)]
        cid = self.nodes[0].cfg()["contract"]["id"]
        self.keys = [nd.cfg()["node"]["public_key"] for nd in self.nodes]
        self.ports = [nd.cfg()["mesh"]["port"] for nd in self.nodes]
        self.ips = ip if isinstance(ip, list) else [ip] * n
        for i, nd in enumerate(self.nodes):
            peers = ["%s:%d" % (self.ips[j], self.ports[j]) for j in range(n) if j != i]

            def edit(c, peers=peers):
                c["contract"]["id"] = cid
                c["contract"]["unl"] = list(self.keys)
                c["contract"]["consensus"]["roundtime"] = roundtime
                c["contract"]["consensus"]["threshold"] = threshold
                c["contract"]["consensus"]["mode"] = mode
                c["mesh"]["known_peers"] = peers
            nd.edit_cfg(edit)

    def start(self, env=None):
        for nd in self.nodes:
            nd.start(env)
        for nd in self.nodes:
            nd.wait_ready()

    def ledgers(self, i):
        return ledger_lines(self.nodes[i].log())

    def last_seq(self, i):
        l = self.ledgers(i)
        return max(l) if l else 0

    def wait_ledgers(self, count, nodes=None, timeout=60):
        idx = range(len(self.nodes)) if nodes is None else nodes
        return wait_for("%d ledgers on nodes %s" % (count, list(idx)),
                        lambda: all(self.last_seq(i) >= count for i in idx), timeout, 0.2)

    def check_no_fork(self, nodes=None):
        """No two nodes hold different ledgers at one sequence number."""
        idx = range(len(self.nodes)) if nodes is None else nodes
        seen = {}
        for i in idx:
            for seq, h in self.ledgers(i).items():
                if seq in seen and seen[seq][1] != h:
                    raise AssertionError("fork at ledger %d: node %d has %s, node %d has %s"
                                         % (seq, seen[seq][0], seen[seq][1], i, h))
                seen.setdefault(seq, (i, h))
        return seen

    def show(self, i, *what):
        r = run(HPCTL, "-d", self.nodes[i].dir, "--json", "show", *what)
        if r.returncode != 0:
            raise AssertionError("hpctl show %s: %s" % (" ".join(what), r.stderr))
        return json.loads(r.stdout)["data"]

    def stop(self):
        for nd in self.nodes:
            nd.stop()
