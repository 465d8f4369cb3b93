"""fsx — seeded random file-system operations applied to two directory
trees at once, checking after every step that they stay equal.

One tree is the file system under test (statefs on NODE/mnt/state/...),
the other a native directory. Each operation (write, truncate, rename,
unlink, mkdir, rmdir, read, chmod) is applied to both; when one fails the
other must fail with the same errno. After every step the listings must
match (names, types, sizes, mode bits) and so must the bytes of every file
the step touched; every FULL_EVERY steps and at the end all bytes are
compared. A failure names the seed and the step, and the run replays
exactly:

    python3 tests/integration/fsx.py --seed N [--ops N] DIR_UNDER_TEST DIR_NATIVE
"""
import argparse
import os
import random
import stat
import sys

CHUNK = 64 * 1024          # statefs chunk size: offsets around it matter
MAX_SIZE = 5 * CHUNK // 2  # keep files small enough to compare often
MAX_FILES = 16
MAX_DIRS = 6
FULL_EVERY = 25


class Mismatch(AssertionError):
    pass


class Fsx:
    def __init__(self, seed, under_test, native, log=None):
        self.seed = seed
        self.rng = random.Random(seed)
        self.roots = (under_test, native)
        self.step = 0
        self.log = log or (lambda s: None)
        self.history = []

    # ---- picking names ----

    def _walk(self):
        """Relative paths of files and dirs in the native tree."""
        files, dirs = [], [""]
        for top, ds, fs in os.walk(self.roots[1]):
            rel = os.path.relpath(top, self.roots[1])
            rel = "" if rel == "." else rel
            for d in sorted(ds):
                dirs.append(os.path.join(rel, d))
            for f in sorted(fs):
                files.append(os.path.join(rel, f))
            ds.sort()
        return files, dirs

    def _new_name(self, dirs):
        d = self.rng.choice(dirs)
        return os.path.join(d, "%s%d" % (self.rng.choice("fgd"), self.rng.randrange(40)))

    def _offset(self):
        r = self.rng.random()
        if r < 0.3:  # right around a chunk boundary
            b = CHUNK * self.rng.randrange(1, MAX_SIZE // CHUNK + 1)
            return max(0, b + self.rng.randrange(-100, 100))
        return self.rng.randrange(0, MAX_SIZE)

    # ---- applying ----

    def _both(self, fn):
        """Run fn(root) on both trees; results or errnos must agree."""
        out = []
        for root in self.roots:
            try:
                out.append(("ok", fn(root)))
            except OSError as e:
                out.append(("err", e.errno))
        if out[0] != out[1]:
            raise Mismatch("step %d (seed %d): %s: under test %r, native %r"
                           % (self.step, self.seed, self.history[-1], out[0], out[1]))
        return out[1]

    def one(self):
        files, dirs = self._walk()
        rng = self.rng
        ops = ["write"] * 5 + ["truncate"] * 2 + ["read"] * 2 + ["rename", "unlink", "mkdir", "rmdir", "chmod"]
        op = rng.choice(ops)
        touched = []
        if op in ("write", "truncate", "read", "chmod", "unlink") and (not files or (op == "write" and len(files) < MAX_FILES and rng.random() < 0.3)):
            op = "write"
            path = self._new_name(dirs)
        elif op in ("write", "truncate", "read", "chmod", "unlink"):
            path = rng.choice(files)
        if op == "write":
            off = self._offset()
            n = rng.choice([1, 17, 4096, CHUNK, rng.randrange(1, 3 * CHUNK // 2)])
            data = bytes(rng.getrandbits(8) for _ in range(min(n, 64))) * (n // 64 + 1)
            data = data[:n]
            self.history.append("write %s off %d len %d" % (path, off, n))

            def fn(root):
                fd = os.open(os.path.join(root, path), os.O_WRONLY | os.O_CREAT, 0o644)
                try:
                    return os.pwrite(fd, data, off)
                finally:
                    os.close(fd)
            self._both(fn)
            touched.append(path)
        elif op == "truncate":
            size = self._offset()
            self.history.append("truncate %s %d" % (path, size))
            self._both(lambda root: os.truncate(os.path.join(root, path), size))
            touched.append(path)
        elif op == "read":
            off = self._offset()
            n = rng.randrange(1, 2 * CHUNK)
            self.history.append("read %s off %d len %d" % (path, off, n))

            def fn(root):
                with open(os.path.join(root, path), "rb") as f:
                    f.seek(off)
                    return f.read(n)
            self._both(fn)
        elif op == "chmod":
            mode = rng.choice([0o600, 0o644, 0o640, 0o755, 0o700, 0o444, 0o4755, 0o2755, 0o1644])
            self.history.append("chmod %s %o" % (path, mode))
            self._both(lambda root: os.chmod(os.path.join(root, path), mode))
            touched.append(path)
        elif op == "unlink":
            if rng.random() < 0.2 and len(dirs) > 1:
                path = rng.choice(dirs[1:])  # unlink of a directory: EISDIR
            self.history.append("unlink %s" % path)
            self._both(lambda root: os.unlink(os.path.join(root, path)))
        elif op == "mkdir":
            path = self._new_name(dirs) if len(dirs) <= MAX_DIRS or rng.random() < 0.2 else rng.choice(dirs[1:] or [""])
            self.history.append("mkdir %s" % path)
            self._both(lambda root: os.mkdir(os.path.join(root, path), 0o755))
        elif op == "rmdir":
            path = rng.choice(dirs[1:] or ["nothere"])
            self.history.append("rmdir %s" % path)
            self._both(lambda root: os.rmdir(os.path.join(root, path)))
        elif op == "rename":
            src = rng.choice(files + dirs[1:] or ["nothere"])
            r = rng.random()
            if r < 0.3 and files:
                dst = rng.choice(files)          # onto an existing file
            elif r < 0.4 and len(dirs) > 1:
                dst = rng.choice(dirs[1:])       # onto an existing dir
            else:
                dst = self._new_name(dirs)       # to a new name
            self.history.append("rename %s %s" % (src, dst))
            self._both(lambda root: os.rename(os.path.join(root, src), os.path.join(root, dst)))
            touched.append(dst)
        self.compare(touched, full=self.step % FULL_EVERY == 0)

    # ---- comparing ----

    def _listing(self, root):
        out = {}
        for top, ds, fs in os.walk(root):
            for name in ds + fs:
                p = os.path.join(top, name)
                st = os.lstat(p)
                rel = os.path.relpath(p, root)
                kind = "d" if stat.S_ISDIR(st.st_mode) else "f" if stat.S_ISREG(st.st_mode) else "?"
                out[rel] = (kind, st.st_size if kind == "f" else 0, stat.S_IMODE(st.st_mode))
        return out

    def _bytes(self, root, rel):
        with open(os.path.join(root, rel), "rb") as f:
            return f.read()

    def compare(self, touched=(), full=False):
        a, b = (self._listing(r) for r in self.roots)
        if a != b:
            diff = sorted(set(a.items()) ^ set(b.items()))
            raise Mismatch("step %d (seed %d) after %s: listings differ: %s"
                           % (self.step, self.seed, self.history[-1] if self.history else "start", diff[:8]))
        names = [k for k, v in b.items() if v[0] == "f"] if full else \
            [t for t in touched if b.get(t, ("",))[0] == "f"]
        for rel in names:
            x, y = self._bytes(self.roots[0], rel), self._bytes(self.roots[1], rel)
            if x != y:
                first = next(i for i in range(min(len(x), len(y)) + 1)
                             if i >= min(len(x), len(y)) or x[i] != y[i])
                raise Mismatch("step %d (seed %d) after %s: %s differs from byte %d"
                               % (self.step, self.seed, self.history[-1], rel, first))

    def run(self, nops):
        for self.step in range(1, nops + 1):
            self.one()
        self.compare(full=True)
        return self.step


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--ops", type=int, default=3000)
    ap.add_argument("under_test")
    ap.add_argument("native")
    a = ap.parse_args()
    try:
        Fsx(a.seed, a.under_test, a.native).run(a.ops)
    except Mismatch as e:
        print("FAIL", e)
        sys.exit(1)
    print("ok: %d operations, seed %d" % (a.ops, a.seed))


if __name__ == "__main__":
    main()
