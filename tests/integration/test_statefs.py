#!/usr/bin/env python3
"""Integration tests of statefs, run for real: `hpd run` mounts NODE/mnt
over FUSE, and real programs (sqlite3, git, tar) work in a state session
opened by hand (`hpctl state begin|commit|abort`, test hooks on). Also:
the same operations give the same state hash on three nodes, writes fail
with EROFS outside a session, abort discards, writes through a write-only
open reach readers that cache the file, the state survives a worker
restart and a kill -9 of the whole node, an fsx-style random comparison
against a native directory, and the message when /dev/fuse is unusable.

FSX_SEED=N replays the random test; FSX_OPS=N sets its length."""
import errno
import json
import os
import random
import subprocess
import time

from hpdtest import HPCTL, HPD, Case, main, run, wait_for
from fsx import Fsx

HOOKS = {"HPD_TEST_HOOKS": "1"}


# ---- helpers (this file's own; hpdtest.py stays generic) ----

class StateCase(Case):
    """A Case that also detaches the FUSE mounts its nodes leave behind
    when they are killed (a killed supervisor cannot unmount)."""

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


def show_state(n):
    rc, out = ctl_json(n, "show", "state")
    assert rc == 0, "show state: rc %d: %r" % (rc, out)
    return out["data"]


def session(n, cmd):
    rc, out = ctl_json(n, "state", cmd)
    assert rc == 0, "state %s: rc %d: %r" % (cmd, rc, out)
    return out.get("data")


def wait_mounted(n, timeout=10):
    return wait_for("statefs mounted on %s" % n.dir,
                    lambda: (lambda s: s if s["mount"] == "mounted" else None)(show_state(n)),
                    timeout)


def start(n, env=HOOKS):
    n.start(env)
    n.wait_ready()
    return wait_mounted(n)


def sh(cmd, cwd, env=None, timeout=60):
    e = dict(os.environ)
    e.update(env or {})
    r = subprocess.run(cmd, cwd=cwd, shell=True, capture_output=True, text=True,
                       env=e, timeout=timeout)
    assert r.returncode == 0, "%s (in %s): rc %d\n%s%s" % (cmd, cwd, r.returncode, r.stdout, r.stderr)
    return r.stdout


GIT_ENV = {"GIT_AUTHOR_NAME": "hpd", "GIT_AUTHOR_EMAIL": "hpd@example.org",
           "GIT_COMMITTER_NAME": "hpd", "GIT_COMMITTER_EMAIL": "hpd@example.org",
           "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
           "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
           "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent"}


def make_tarball(root):
    """A tarball of a generated tree: nested dirs, empty, small and
    multi-chunk files, a symlink. Owned by root so that tar x as root
    restores ownership to whoever looks (statefs has no owners)."""
    src = os.path.join(root, "tree")
    rng = random.Random(7)
    for d in range(4):
        for s in range(3):
            p = os.path.join(src, "d%d" % d, "s%d" % s)
            os.makedirs(p)
            for f in range(4):
                size = rng.choice([0, 1, 100, 4096, 65536, 65537, 200000])
                with open(os.path.join(p, "f%d.bin" % f), "wb") as fh:
                    fh.write(bytes(rng.getrandbits(8) for _ in range(min(size, 256))) * (size // 256 + 1))
                    fh.truncate(size)
    os.symlink("d0/s0/f0.bin", os.path.join(src, "link"))
    os.chmod(os.path.join(src, "d1"), 0o700)
    tarball = os.path.join(root, "tree.tar")
    sh("tar --owner=0 --group=0 --sort=name -cf %s tree" % tarball, root)
    return tarball


def workload(n, tarball):
    """The same real programs on one node's state, in a session."""
    state = mnt(n, "state")
    sh("sqlite3 db.sqlite 'create table t(k integer primary key, v text);"
       " insert into t(v) values (\"a\"), (\"b\"), (\"c\");"
       " update t set v = \"B\" where k = 2; delete from t where k = 3;'", state)
    sh("sqlite3 db.sqlite 'insert into t(v) select \"x\" || k"
       " from t; create index iv on t(v);'", state)
    assert sh("sqlite3 db.sqlite 'select v from t order by k'", state).split() == ["a", "B", "x1", "x2"]
    sh("tar xf %s" % tarball, state)
    os.makedirs(os.path.join(state, "repo"))
    repo = os.path.join(state, "repo")
    with open(os.path.join(repo, "README"), "w") as f:
        f.write("statefs\n")
    sh("git init -q -b main . && git add -A && git commit -q -m first", repo, GIT_ENV)
    with open(os.path.join(repo, "README"), "a") as f:
        f.write("second line\n")
    sh("git commit -q -am second && git fsck --strict --no-dangling", repo, GIT_ENV)
    assert sh("git log --format=%s", repo, GIT_ENV).split() == ["second", "first"]
    # The index caches stat data (times, device, inode numbers) that
    # differ from node to node; git rebuilds it from the commit.
    os.unlink(os.path.join(repo, ".git", "index"))


# ---- tests ----

def test_real_programs_same_hash_on_three_nodes():
    with StateCase() as c:
        tarball = make_tarball(c.root)
        nodes = [c.node("n%d" % i) for i in range(3)]
        before = None
        for n in nodes:
            before = start(n)["state_hash"]
        hashes = []
        for n in nodes:
            session(n, "begin")
            workload(n, tarball)
            hashes.append(session(n, "commit"))
        # One state hash; the patch hashes differ, as each node's patch.cfg
        # holds its own contract section (a UNL of its own key).
        assert len({h["state_hash"] for h in hashes}) == 1, hashes
        assert hashes[0]["state_hash"] != before
        n = nodes[0]
        s = show_state(n)
        assert s["session"] == "none" and s["state_hash"] == hashes[0]["state_hash"], s
        assert s["inodes"] > 50 and s["chunks"] > 0 and s["bytes"] > 0, s
        # The committed state reads back through the read-only view.
        sh("diff -r %s %s" % (os.path.join(c.root, "tree"), mnt(n, "state", "tree")), c.root)
        assert os.readlink(mnt(n, "state", "tree", "link")) == "d0/s0/f0.bin"
        assert sh("sqlite3 -readonly db.sqlite 'select count(*) from t'", mnt(n, "state")).strip() == "4"
        assert sh("git log --format=%s", mnt(n, "state", "repo"),
                  dict(GIT_ENV, GIT_OPTIONAL_LOCKS="0")).split() == ["second", "first"]
        # Consensus votes the committed hash: the next ledgers carry it.
        want = hashes[0]["state_hash"]
        wait_for("show consensus with the new state hash",
                 lambda: ctl_json(n, "show", "consensus")[1]["data"]["state_hash"] == want)
        wait_for("a ledger with the new state hash",
                 lambda: ctl_json(n, "show", "ledger")[1]["data"]["state_hash"] == want, 15)


def test_erofs_outside_a_session_and_abort_discards():
    with StateCase() as c:
        n = c.node()
        h0 = start(n)["state_hash"]
        for fn in (lambda: open(mnt(n, "state", "x"), "w"),
                   lambda: os.mkdir(mnt(n, "state", "d")),
                   lambda: os.chmod(mnt(n, "state"), 0o700),
                   lambda: os.truncate(mnt(n, "patch.cfg"), 0)):
            try:
                fn()
            except OSError as e:
                assert e.errno == errno.EROFS, e
            else:
                raise AssertionError("a write outside a session succeeded")
        assert sorted(os.listdir(mnt(n))) == ["patch.cfg", "state"]
        session(n, "begin")
        assert show_state(n)["session"] == "open"
        with open(mnt(n, "state", "x"), "w") as f:
            f.write("uncommitted")
        os.mkdir(mnt(n, "state", "d"))
        rc, out = ctl_json(n, "state", "begin")
        assert rc == 1 and "already open" in out["message"], out
        assert session(n, "abort")["state_hash"] == h0
        assert os.listdir(mnt(n, "state")) == []
        s = show_state(n)
        assert s["session"] == "none" and s["state_hash"] == h0, s
        rc, out = ctl_json(n, "state", "commit")
        assert rc == 1 and "no state session" in out["message"], out


def test_abort_invalidates_what_the_kernel_cached():
    # The kernel keeps page caches across opens and attributes for a
    # while; an abort changes the content behind its back, so what it
    # cached must go: same-size rewrites (page cache) and size changes.
    with StateCase() as c:
        n = c.node()
        start(n)
        f, g = mnt(n, "state", "f"), mnt(n, "state", "g")
        session(n, "begin")
        with open(f, "w") as fh:
            fh.write("committed-1")
        with open(g, "w") as fh:
            fh.write("short")
        session(n, "commit")
        for _ in range(2):      # cached, and read from the cache
            with open(f) as fh:
                assert fh.read() == "committed-1"
            with open(g) as fh:
                assert fh.read() == "short"
            assert os.stat(g).st_size == 5
        session(n, "begin")
        with open(f, "r+") as fh:
            fh.write("uncommitted")
        with open(g, "a") as fh:
            fh.write(" and longer")
        with open(f) as fh:
            assert fh.read() == "uncommitted"
        assert os.stat(g).st_size == 16
        session(n, "abort")
        assert os.stat(g).st_size == 5
        with open(f) as fh:
            assert fh.read() == "committed-1"
        with open(g) as fh:
            assert fh.read() == "short"


def test_write_only_opens_keep_readers_current():
    # An open for writing only bypasses the page cache (direct_io, FUSE
    # 7.44+): its writes must still reach descriptors that read the file
    # through the cache, an mmap of it, and opens made afterwards.
    import mmap
    with StateCase() as c:
        n = c.node()
        start(n)
        p = mnt(n, "state", "f")
        session(n, "begin")
        with open(p, "wb") as fh:
            fh.write(b"A" * 10000)
        r = os.open(p, os.O_RDONLY)
        rw = os.open(p, os.O_RDWR)
        try:
            assert os.pread(r, 5, 0) == b"AAAAA"        # now cached
            m = mmap.mmap(rw, 10000)
            assert m[:5] == b"AAAAA"
            w = os.open(p, os.O_WRONLY)
            os.pwrite(w, b"BBBBB", 0)
            assert os.pread(r, 5, 0) == b"BBBBB"
            assert m[:5] == b"BBBBB"
            os.pwrite(w, b"CCCCC", 8190)                # across a page
            assert os.pread(r, 10, 8188) == b"AACCCCCAAA"
            assert m[8188:8198] == b"AACCCCCAAA"
            os.close(w)
            w = os.open(p, os.O_WRONLY | os.O_APPEND)
            os.write(w, b"DDD")
            os.close(w)
            assert os.fstat(r).st_size == 10003
            assert os.pread(r, 6, 9997) == b"AAADDD"
            m.close()
        finally:
            os.close(r)
            os.close(rw)
        with open(p, "rb") as fh:
            assert fh.read() == b"BBBBB" + b"A" * 8185 + b"CCCCC" + b"A" * 1805 + b"DDD"
        session(n, "commit")
        with open(p, "rb") as fh:
            data = fh.read()
        assert data[:5] == b"BBBBB" and data[8190:8195] == b"CCCCC" and data[-3:] == b"DDD"


def test_abort_invalidates_cached_names():
    # The kernel may keep names, and the absence of names, it looked up;
    # an abort brings back the last commit's names behind its back.
    with StateCase() as c:
        n = c.node()
        start(n)
        kept, moved = mnt(n, "state", "kept"), mnt(n, "state", "moved")
        session(n, "begin")
        os.mkdir(kept)
        open(os.path.join(kept, "f"), "w").close()
        session(n, "commit")
        for _ in range(2):      # looked up, and from the cache
            assert os.path.isdir(kept) and not os.path.exists(moved)
        session(n, "begin")
        os.rename(kept, moved)
        for _ in range(2):
            assert not os.path.exists(kept) and os.path.isdir(moved)
            assert os.path.exists(os.path.join(moved, "f"))
        open(mnt(n, "state", "new"), "w").close()
        assert os.path.exists(mnt(n, "state", "new"))
        session(n, "abort")
        assert os.path.isdir(kept) and os.path.exists(os.path.join(kept, "f"))
        assert not os.path.exists(moved)
        assert not os.path.exists(os.path.join(moved, "f"))
        assert not os.path.exists(mnt(n, "state", "new"))
        assert sorted(os.listdir(mnt(n, "state"))) == ["kept"]


def test_sync_invalidates_what_the_kernel_cached():
    # Node 2 reads (and caches) the state, then syncs to a change made on
    # the other two while its mount stays up: it must read the new state.
    import test_state_sync as ts
    with ts.StateCase() as c:
        cl = ts.start_cluster(c, 3)
        n0, n1, n2 = cl.nodes
        h1 = ts.same_change(cl.nodes, ts.tree_v1)
        for n in cl.nodes:
            ts.wait_ledger_hash(n, h1)
        for _ in range(2):
            v1 = ts.snapshot(mnt(n2, "state"))
            assert not os.path.exists(mnt(n2, "state", "new"))
        def v2(d):
            ts.tree_v2(d)
            with open(os.path.join(d, "a.txt"), "r+") as f:
                f.write("HELLO")    # same size: only the page cache differs
        h2 = ts.same_change([n0, n1], v2, quiet=True)
        assert h2 != h1
        ts.wait_synced(n2, h2, 60)
        assert ts.same_files(n0, n2) != v1
        with open(mnt(n2, "state", "a.txt")) as f:
            assert f.read() == "HELLO world\n"
        # Names: one looked up before the sync is gone, one that was
        # absent (and looked up as such) is there.
        assert not os.path.exists(mnt(n2, "state", "gone", "sub", "y"))
        assert os.path.isdir(mnt(n2, "state", "new", "empty-dir"))


def test_unsupported_operations_fail_clearly():
    with StateCase() as c:
        n = c.node()
        start(n)
        session(n, "begin")
        st = mnt(n, "state")
        with open(os.path.join(st, "f"), "w") as f:
            f.write("x")
        cases = [
            ("link", lambda: os.link(os.path.join(st, "f"), os.path.join(st, "g")), errno.EPERM),
            ("mkfifo", lambda: os.mkfifo(os.path.join(st, "fifo")), errno.EPERM),
            ("setxattr", lambda: os.setxattr(os.path.join(st, "f"), "user.a", b"1"), errno.EOPNOTSUPP),
            ("chown", lambda: os.chown(os.path.join(st, "f"), 1234, 1234), errno.EPERM),
        ]
        for name, fn, want in cases:
            try:
                fn()
            except OSError as e:
                assert e.errno == want, (name, e)
            else:
                raise AssertionError("%s succeeded" % name)
        fd = os.open(os.path.join(st, "f"), os.O_RDWR)
        try:
            os.posix_fallocate(fd, 0, 100000)
            assert os.fstat(fd).st_size == 100000
        finally:
            os.close(fd)
        os.chown(os.path.join(st, "f"), 0, 0)   # chown to whoever looks: a no-op
        session(n, "abort")


def test_sessions_need_test_hooks():
    with StateCase() as c:
        n = c.node()
        start(n, env={})
        rc, out = ctl_json(n, "state", "begin")
        assert rc == 1, out
        assert "opened by the contract runner; test hooks are off" in out["message"], out


def test_state_survives_restart_and_kill_9():
    with StateCase() as c:
        n = c.node()
        start(n)
        session(n, "begin")
        with open(mnt(n, "state", "kept"), "wb") as f:
            f.write(os.urandom(300000))
        want = open(mnt(n, "state", "kept"), "rb").read()
        h1 = session(n, "commit")["state_hash"]

        pid = n.worker("state")["pid"]
        n.ctl("restart", "state")
        wait_for("a new state worker", lambda: n.worker("state")["pid"] not in (0, pid) and
                 n.worker("state")["state"] == "ready")
        s = wait_mounted(n)
        assert s["state_hash"] == h1, s
        assert open(mnt(n, "state", "kept"), "rb").read() == want

        # kill -9 of the whole node in the middle of a session.
        session(n, "begin")
        with open(mnt(n, "state", "lost"), "w") as f:
            f.write("never committed")
        with open(mnt(n, "state", "kept"), "r+b") as f:
            f.write(b"overwritten")
        n.kill_all()
        n.start(HOOKS)
        n.wait_ready()
        s = wait_mounted(n)
        assert s["state_hash"] == h1 and s["session"] == "none", s
        assert sorted(os.listdir(mnt(n, "state"))) == ["kept"]
        assert open(mnt(n, "state", "kept"), "rb").read() == want
        assert "hpd-state %s fuse.hpd-state" % mnt(n) in open("/proc/mounts").read()
        assert n.stop() == 0
        assert mnt(n) not in open("/proc/mounts").read(), "mount left after SIGTERM"


def fill_until_error(paths_and_data):
    """Write each (path, bytes) in turn; the errno of the first failure."""
    for i, (path, data) in enumerate(paths_and_data):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        except OSError as e:
            return e.errno, i
        try:
            os.write(fd, data)
        except OSError as e:
            return e.errno, i
        finally:
            try:
                os.close(fd)
            except OSError:
                pass
    return None, i


def test_full_disk_fails_writes_with_enospc():
    """The store on a 24 MiB filesystem. A program that fills it, with
    one large file or with many small ones (whose bytes LMDB keeps in its
    B-tree pages, written through the map), gets ENOSPC: the state worker
    does not die of SIGBUS on its map. The session can only be aborted,
    and the committed state is intact, also after a restart."""
    with StateCase() as c:
        n = c.node()
        store = os.path.join(n.dir, "state")
        os.makedirs(store, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", store], check=True)
        try:
            start(n)
            session(n, "begin")
            with open(mnt(n, "state", "kept"), "wb") as f:
                f.write(b"kept" * 1000)
            h1 = session(n, "commit")["state_hash"]
            pid = n.worker("state")["pid"]
            big = mnt(n, "state", "big")
            small = mnt(n, "state", "small")
            for what, items in (
                    ("one large file", ((big, os.urandom(1 << 20)) for _ in range(64))),
                    ("small files", ((os.path.join(small, "f%06d" % i), os.urandom(1000))
                                     for i in range(200000)))):
                session(n, "begin")
                if what == "small files":
                    os.mkdir(small)
                fd = os.open(big, os.O_WRONLY | os.O_CREAT, 0o644) if what == "one large file" else None
                if fd is not None:
                    os.close(fd)
                    items = ((big, d) for _, d in items)
                    fd = os.open(big, os.O_WRONLY | os.O_APPEND)
                    err, i = None, 0
                    try:
                        for i, (_, d) in enumerate(items):
                            os.write(fd, d)
                    except OSError as e:
                        err = e.errno
                    finally:
                        try:
                            os.close(fd)
                        except OSError:
                            pass
                else:
                    err, i = fill_until_error(items)
                print("  %s: %s after %d writes" % (what, errno.errorcode.get(err, err), i), flush=True)
                assert err == errno.ENOSPC, "%s filled 24 MiB without ENOSPC: %r" % (what, err)
                assert n.worker("state")["pid"] == pid, "the state worker died on a full disk (%s)" % what
                rc, out = ctl_json(n, "state", "commit")
                assert rc != 0, "a session that failed a write committed: %r" % out
                s = wait_mounted(n)
                assert s["state_hash"] == h1 and s["session"] == "none", s
                assert sorted(os.listdir(mnt(n, "state"))) == ["kept"]
            n.stop()
            subprocess.run(["umount", "-l", mnt(n)], capture_output=True)
            start(n)
            assert show_state(n)["state_hash"] == h1
            assert open(mnt(n, "state", "kept"), "rb").read() == b"kept" * 1000
            n.stop()
        finally:
            subprocess.run(["umount", "-l", mnt(n)], capture_output=True)
            subprocess.run(["umount", "-l", store], capture_output=True)


def test_fsx_random_operations():
    seed = int(os.environ.get("FSX_SEED", random.randrange(1 << 31)))
    nops = int(os.environ.get("FSX_OPS", "3000"))
    print("  fsx seed %d, %d operations (replay: FSX_SEED=%d)" % (seed, nops, seed), flush=True)
    with StateCase() as c:
        n = c.node()
        start(n)
        session(n, "begin")
        under = mnt(n, "state", "fsx")
        native = os.path.join(c.root, "native")
        os.mkdir(under)
        os.mkdir(native)
        fsx = Fsx(seed, under, native)
        fsx.run(nops)
        h = session(n, "commit")["state_hash"]
        fsx.compare(full=True)          # the read-only view after commit
        n.ctl("restart", "state")
        time.sleep(0.5)
        wait_mounted(n)
        assert show_state(n)["state_hash"] == h
        fsx.compare(full=True)          # and after a new worker


def test_no_fuse_device_fails_start_clearly():
    with StateCase() as c:
        n = c.node()
        r = subprocess.run(["unshare", "-m", "sh", "-c",
                            "mount --bind /dev/null /dev/fuse; exec %s run %s" % (HPD, n.dir)],
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 1, (r.returncode, r.stderr)
        assert "/dev/fuse is not usable" in r.stderr, r.stderr
        assert "--device /dev/fuse" in r.stderr, r.stderr


if __name__ == "__main__":
    main([
        test_real_programs_same_hash_on_three_nodes,
        test_erofs_outside_a_session_and_abort_discards,
        test_abort_invalidates_what_the_kernel_cached,
        test_abort_invalidates_cached_names,
        test_write_only_opens_keep_readers_current,
        test_sync_invalidates_what_the_kernel_cached,
        test_unsupported_operations_fail_clearly,
        test_sessions_need_test_hooks,
        test_state_survives_restart_and_kill_9,
        test_full_disk_fails_writes_with_enospc,
        test_fsx_random_operations,
        test_no_fuse_device_fails_start_clearly,
    ])
