#!/usr/bin/env python3
"""Integration tests of state sync (docs/state-sync.md), run for real: a
cluster of `hpd run` nodes with test hooks on, the same files written into
each node's state through its FUSE mount in a session opened by hand
(`hpctl state begin|commit`), so that the cluster agrees on a non-empty
state. A node whose state differs — it missed changes while stopped, its
store was wiped, its sync was killed half-way, a peer sends it corrupt
chunks — must sync from its peers and end with the cluster's state hash
and the same files.

test_sync_1gib (one 1 GiB file and 10,000 files of 16 KiB, synced by an
empty node from three others) is skipped when HPD_SHORT=1."""
import hashlib
import json
import os
import random
import shutil
import stat
import subprocess
import time

from hpdtest import HPCTL, Case, Cluster, main, run, wait_for

HOOKS = {"HPD_TEST_HOOKS": "1"}


class StateCase(Case):
    """Also detaches the FUSE mounts that killed nodes leave behind."""

    def __exit__(self, *exc):
        for n in self.nodes:
            n.kill_all()
            subprocess.run(["umount", "-l", os.path.join(n.dir, "mnt")],
                           capture_output=True)
        return super().__exit__(*exc)


def mnt(n, *rel):
    return os.path.join(n.dir, "mnt", *rel)


def ctl_json(n, *args):
    r = run(HPCTL, "-d", n.dir, "--json", *args)
    out = json.loads(r.stdout) if r.stdout.strip() else {}
    return r.returncode, out


def show(n, what):
    """hpctl show WHAT's data; for sync, its state part (the state
    worker's progress)."""
    rc, out = ctl_json(n, "show", what)
    assert rc == 0, "show %s: rc %d: %r" % (what, rc, out)
    return out["data"]["state"] if what == "sync" else out["data"]


def session(n, cmd):
    rc, out = ctl_json(n, "state", cmd)
    assert rc == 0, "state %s on %s: rc %d: %r" % (cmd, n.dir, rc, out)
    return out.get("data")


def start(n):
    n.start(HOOKS)
    n.wait_ready(20)
    return wait_for("statefs mounted on %s" % n.dir,
                    lambda: (lambda s: s if s["mount"] == "mounted" else None)(show(n, "state")), 20)


def start_cluster(c, n, threshold=60, roundtime=500):
    cl = Cluster(c, n, roundtime=roundtime, threshold=threshold)
    for nd in cl.nodes:
        nd.start(HOOKS)
    for nd in cl.nodes:
        nd.wait_ready(20)
        wait_for("statefs mounted", lambda nd=nd: show(nd, "state")["mount"] == "mounted", 20)
    return cl


def same_change(nodes, fn, quiet=False):
    """Run fn(state_dir) on every node inside one session each; all
    sessions are open before any is written, so that no node starts a
    sync half-way. Returns the committed state hash (equal everywhere).

    Commits of hundreds of megabytes take seconds, one node after the
    other: a ledger closed in between would carry the old hash, and the
    nodes already committed would rightly sync back to it. With quiet,
    consensus is stopped on these nodes for the change, so no ledger
    closes until every node holds it."""
    if quiet:
        for n in nodes:
            n.ctl("stop", "consensus")
    for n in nodes:
        session(n, "begin")
    for n in nodes:
        fn(mnt(n, "state"))
    hashes = [commit(n) for n in nodes]
    assert len(set(hashes)) == 1, hashes
    if quiet:
        for n in nodes:
            n.ctl("start", "consensus")
    return hashes[0]


def commit(n):
    """hpctl gives up after 5 s; a commit of a gigabyte takes longer, so
    then wait for the session to close."""
    rc, out = ctl_json(n, "state", "commit")
    if rc == 0:
        return out["data"]["state_hash"]
    s = wait_for("the commit on %s" % n.dir,
                 lambda: (lambda s: s if s["session"] == "none" else None)(show(n, "state")), 300, 0.5)
    return s["state_hash"]


def wait_ledger_hash(n, want, timeout=30):
    return wait_for("a ledger with state %s on %s" % (want[:8], n.dir),
                    lambda: show(n, "ledger")["state_hash"] == want, timeout, 0.2)


def wait_synced(n, want, timeout=60):
    def ok():
        s = show(n, "state")
        y = show(n, "sync")
        return (s, y) if s["state_hash"] == want and y["stage"] == "idle" else None
    return wait_for("state %s synced on %s" % (want[:8], n.dir), ok, timeout, 0.2)


def snapshot(root):
    """relpath → (kind, mode bits, sha256 of content or link target)."""
    out = {}
    for d, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(d, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", 0, os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode), "")
            else:
                h = hashlib.sha256()
                with open(p, "rb") as f:
                    for b in iter(lambda: f.read(1 << 20), b""):
                        h.update(b)
                out[rel] = ("file", stat.S_IMODE(st.st_mode), h.hexdigest())
    return out


def same_files(a, b):
    sa, sb = snapshot(mnt(a, "state")), snapshot(mnt(b, "state"))
    if sa != sb:
        diff = sorted(k for k in set(sa) | set(sb) if sa.get(k) != sb.get(k))
        raise AssertionError("files differ at %s: %r vs %r" % (
            diff[:5], [sa.get(k) for k in diff[:3]], [sb.get(k) for k in diff[:3]]))
    return sa


def rbytes(seed, n):
    return random.Random(seed).randbytes(n)


def tree_v1(d):
    os.makedirs(os.path.join(d, "docs", "deep", "er"))
    os.makedirs(os.path.join(d, "gone", "sub"))
    with open(os.path.join(d, "a.txt"), "w") as f:
        f.write("hello world\n")
    with open(os.path.join(d, "big.bin"), "wb") as f:
        f.write(rbytes(1, 3 * 1024 * 1024 + 123))
    with open(os.path.join(d, "docs", "deep", "er", "x"), "wb") as f:
        f.write(rbytes(2, 70000))
    with open(os.path.join(d, "gone", "sub", "y"), "wb") as f:
        f.write(b"y" * 100)
    open(os.path.join(d, "empty"), "w").close()
    os.symlink("a.txt", os.path.join(d, "link"))


def tree_v2(d):
    """Changes of every kind on top of tree_v1."""
    with open(os.path.join(d, "big.bin"), "r+b") as f:
        f.seek(1024 * 1024)
        f.write(b"changed in the middle")
        f.truncate(2 * 1024 * 1024 + 5)
    shutil.rmtree(os.path.join(d, "gone"))
    os.unlink(os.path.join(d, "link"))
    os.symlink("docs/deep/er/x", os.path.join(d, "link"))
    os.chmod(os.path.join(d, "a.txt"), 0o600)
    os.chmod(os.path.join(d, "docs"), 0o700)
    os.makedirs(os.path.join(d, "new", "empty-dir"))
    with open(os.path.join(d, "new", "sparse"), "wb") as f:
        f.seek(5 * 65536 + 17)
        f.write(b"end")
    with open(os.path.join(d, "new", "copy.bin"), "wb") as f:
        f.write(rbytes(2, 70000))        # the same bytes as docs/deep/er/x
    for i in range(50):
        with open(os.path.join(d, "new", "f%02d" % i), "wb") as f:
            f.write(rbytes(100 + i, 1000 + 37 * i))
    os.rename(os.path.join(d, "empty"), os.path.join(d, "gone-file"))
    os.makedirs(os.path.join(d, "a.dir"))    # a.txt's neighbour in name order


# ---- tests ----

def test_restarted_node_catches_up():
    with StateCase() as c:
        cl = start_cluster(c, 3)
        n0, n1, n2 = cl.nodes
        h1 = same_change(cl.nodes, tree_v1)
        for n in cl.nodes:
            wait_ledger_hash(n, h1)
        n2.stop()
        h2 = same_change([n0, n1], tree_v2)
        assert h2 != h1
        wait_ledger_hash(n0, h2)
        start(n2)
        s, y = wait_synced(n2, h2, 60)
        snap = same_files(n0, n2)
        assert snap["link"] == ("link", 0, "docs/deep/er/x"), snap["link"]
        assert snap["docs"][1] == 0o700 and snap["a.txt"][1] == 0o600
        assert y["chunks_verified"] == y["chunks_fetched"] > 0, y
        assert y["pieces_rejected"] == 0 and y["syncs_done"] >= 1, y
        # Only what changed came over: the 2 MiB big.bin shares all but
        # one chunk with the local copy; new/copy.bin is docs/deep/er/x.
        assert y["bytes_fetched"] < 400 * 1024, y
        assert "state sync: achieved target" in n2.log()
        # The cluster goes on with node 2 voting the same hash.
        wait_for("node 2 votes the cluster's hash",
                 lambda: show(n2, "consensus")["state_hash"] == h2, 15)
        cl.check_no_fork()


def test_wiped_node_resyncs_everything():
    with StateCase() as c:
        cl = start_cluster(c, 3)
        n0, n1, n2 = cl.nodes
        h1 = same_change(cl.nodes, tree_v1)
        h2 = same_change(cl.nodes, tree_v2)
        for n in cl.nodes:
            wait_ledger_hash(n, h2)
        n2.stop()
        for name in os.listdir(os.path.join(n2.dir, "state")):
            os.unlink(os.path.join(n2.dir, "state", name))
        s = start(n2)
        assert s["state_hash"] != h2
        s, y = wait_synced(n2, h2, 60)
        same_files(n0, n2)
        assert y["chunks_verified"] == y["chunks_fetched"] > 0, y
        assert len(y["peers"]) >= 1, y
        assert h1 != h2


def big_tree(root, mib=160, small=200):
    """A native tree to copy into each node: one large file and many
    small ones."""
    src = os.path.join(root, "src")
    os.makedirs(os.path.join(src, "small"))
    with open(os.path.join(src, "large.bin"), "wb") as f:
        rng = random.Random(9)
        for _ in range(mib):
            f.write(rng.randbytes(1 << 20))
    for i in range(small):
        with open(os.path.join(src, "small", "s%05d" % i), "wb") as f:
            f.write(random.Random(i).randbytes(16384))
    return src


def copy_in(src):
    return lambda d: subprocess.run(["cp", "-a", src + "/.", d], check=True)


def test_killed_sync_resumes():
    with StateCase() as c:
        src = big_tree(c.root, mib=192)
        cl = start_cluster(c, 3)
        n0, n1, n2 = cl.nodes
        n2.stop()
        h = same_change([n0, n1], copy_in(src), quiet=True)
        wait_ledger_hash(n0, h, 60)
        start(n2)
        # Kill -9 once a checkpoint is committed and the sync goes on.
        wait_for("a sync checkpoint on node 2",
                 lambda: (lambda y: y["commits"] >= 1 and y["stage"] != "idle")(show(n2, "sync")),
                 60, 0.05)
        first = show(n2, "sync")["bytes_fetched"]
        n2.kill_all()
        subprocess.run(["umount", "-l", mnt(n2)], capture_output=True)
        start(n2)
        s, y = wait_synced(n2, h, 120)
        same_files(n0, n2)
        total = os.path.getsize(os.path.join(src, "large.bin")) + 200 * 16384
        # What the first run committed was not fetched again.
        assert y["bytes_fetched"] < total, (y["bytes_fetched"], total, first)
        assert y["chunks_verified"] == y["chunks_fetched"], y
        print("  killed after %d bytes; resumed with %d of %d bytes" % (first, y["bytes_fetched"], total))


def test_corrupt_peer_is_rejected():
    with StateCase() as c:
        cl = start_cluster(c, 3)
        n0, n1, n2 = cl.nodes
        n2.stop()
        h = same_change([n0, n1], tree_v1)
        wait_ledger_hash(n0, h)
        n0.ctl("state", "sync-corrupt", "on")
        start(n2)
        s, y = wait_synced(n2, h, 60)
        same_files(n1, n2)
        assert y["pieces_rejected"] > 0, y
        k0 = cl.keys[0][2:18] if cl.keys[0].startswith("ed") else cl.keys[0][:16]
        bad = {p["key"]: p for p in y["peers"]}
        assert k0 in bad and bad[k0]["bad_pieces"] > 0, (k0, y["peers"])
        assert y["chunks_verified"] == y["chunks_fetched"], y
        assert "do not match their hash" in n2.log()


def test_sync_1gib():
    if os.environ.get("HPD_SHORT") == "1":
        print("  skipped: HPD_SHORT=1")
        return
    with StateCase() as c:
        src = os.path.join(c.root, "src")
        os.makedirs(os.path.join(src, "small"))
        with open(os.path.join(src, "large.bin"), "wb") as f:
            for i in range(1024):
                f.write(os.urandom(1 << 20))
        for i in range(10000):
            with open(os.path.join(src, "small", "s%05d" % i), "wb") as f:
                f.write(os.urandom(16384))
        total = 1024 * 1024 * 1024 + 10000 * 16384
        cl = start_cluster(c, 4, threshold=60, roundtime=1000)
        n3 = cl.nodes[3]
        n3.stop()
        h = same_change(cl.nodes[:3], copy_in(src), quiet=True)
        wait_ledger_hash(cl.nodes[0], h, 60)
        t0 = time.monotonic()
        start(n3)
        s, y = wait_synced(n3, h, 900)
        took = time.monotonic() - t0
        # Random content: every chunk is distinct, and every one is fetched
        # and verified (16,384 of the large file, one per small file).
        assert y["chunks_verified"] == y["chunks_fetched"] == 16384 + 10000, y
        assert y["bytes_fetched"] == total, (y["bytes_fetched"], total)
        assert show(cl.nodes[0], "state")["state_hash"] == s["state_hash"]
        same_files(cl.nodes[0], n3)
        print("  1 GiB + 10,000 x 16 KiB synced in %.1f s (%.0f MB/s; sync itself %d ms), %d chunks verified, peers %s"
              % (took, total / took / 1e6, y["last_sync_ms"], y["chunks_verified"],
                 [(p["key"], p["bytes"]) for p in y["peers"]]))


if __name__ == "__main__":
    main([test_restarted_node_catches_up, test_wiped_node_resyncs_everything,
          test_killed_sync_resumes, test_corrupt_peer_is_rejected, test_sync_1gib])
