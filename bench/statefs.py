#!/usr/bin/env python3
"""bench/statefs.py — statefs (the FUSE mount a running node serves at
NODE/mnt/state) against the native filesystem: a directory on the same
/tmp filesystem that holds the node's store, measured in the same run.

1. Sequential write: one file of --size-mib MiB in 1 MiB write(2)s of
   distinct random bytes (no chunk dedups), then fsync on native and
   `hpctl state commit` on statefs (the session was opened untimed).
2. Sequential read of that file, 1 MiB read(2)s through a freshly opened
   descriptor, after sync + `echo 3 > /proc/sys/vm/drop_caches` (cold;
   the line says so when caches could not be dropped). The node is
   restarted (untimed) before each statefs read: the state worker keeps
   its LMDB file mapped and drop_caches leaves mapped pages in place.
   statefs reads the committed state through the read-only view. Median
   of 3, as is test 3.
3. --reads 4 KiB os.pread()s at random 4 KiB-aligned offsets of that file
   (same offsets on both), fresh descriptor, warm: both files are read
   through once more, untimed, first, so this is the per-request cost,
   not the disk's.
4. Small-file create: --files files of 4 KiB distinct random bytes in
   nested directories (dNN/eNN/fNNNNN, mkdir included), then syncfs on
   native and `hpctl state commit` on statefs.

Ratio = statefs throughput / native throughput; the targets are printed
beside the ratios; each note gives FUSE requests per operation (`fuse_requests`
of `hpctl show state`). Never part of pass/fail.
Usage: bench/statefs.py [--size-mib 256] [--files 5000] [--reads 20000]
"""
import argparse
import ctypes
import json
import os
import random
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
from hpdtest import HPCTL, run  # noqa: E402
from test_statefs import HOOKS, StateCase, mnt, show_state, start  # noqa: E402

MIB = 1 << 20
KIB4 = 4096
REPEAT = 3                      # read tests: median of this many runs
TARGETS = {"seq write": 0.5, "seq read": 0.8, "4k rand read": 0.5, "small create": 0.5}
_libc = ctypes.CDLL(None, use_errno=True)


def syncfs(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _libc.syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


def drop_caches():
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def ctl(n, *args):
    r = run(HPCTL, "-d", n.dir, "--json", *args, timeout=300)
    out = json.loads(r.stdout) if r.stdout.strip() else {}
    assert r.returncode == 0, "hpctl %s: rc %d: %r %s" % (" ".join(args), r.returncode, out, r.stderr)
    return out.get("data")


def restart(n):
    n.stop()
    subprocess.run(["umount", "-l", mnt(n)], capture_output=True)
    start(n, HOOKS)


def resident(d):
    """Bytes of the files in d that are in the page cache (fincore)."""
    files = [os.path.join(d, f) for f in os.listdir(d)]
    r = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES"] + files,
                       capture_output=True, text=True)
    return sum(int(x) for x in r.stdout.split()) if r.returncode == 0 else float("nan")


def reqs(n):
    """FUSE requests the state worker has served (`hpctl show state`)."""
    return show_state(n)["fuse_requests"]


# ---- the four tests; each returns elapsed seconds ----

def seq_write(path, data, before_close=None, after_close=None):
    t0 = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    mv = memoryview(data)
    for off in range(0, len(data), MIB):
        n = os.write(fd, mv[off:off + MIB])
        assert n == min(MIB, len(data) - off), "short write %d at %d" % (n, off)
    if before_close:
        before_close(fd)
    os.close(fd)
    if after_close:
        after_close()
    return time.perf_counter() - t0


def seq_read(path, size):
    t0 = time.perf_counter()
    fd = os.open(path, os.O_RDONLY)
    got = 0
    while True:
        b = os.read(fd, MIB)
        if not b:
            break
        got += len(b)
    os.close(fd)
    dt = time.perf_counter() - t0
    assert got == size, "read %d bytes of %d" % (got, size)
    return dt


def rand_read(path, offsets, data):
    fd = os.open(path, os.O_RDONLY)
    t0 = time.perf_counter()
    for off in offsets:
        b = os.pread(fd, KIB4, off)
        assert len(b) == KIB4
    dt = time.perf_counter() - t0
    # Spot check outside the timing: the bytes are the ones written.
    for off in offsets[:64]:
        assert os.pread(fd, KIB4, off) == data[off:off + KIB4], "wrong bytes at %d" % off
    os.close(fd)
    return dt


def small_names(files):
    """dNN/eNN/fNNNNN: 10 files a leaf directory, 10 leaves a top directory."""
    return [("d%02d" % (i // 100), "e%02d" % (i // 10 % 10), "f%05d" % i) for i in range(files)]


def small_create(root, names, blob, finish):
    t0 = time.perf_counter()
    made = set()
    mv = memoryview(blob)
    for i, (d, e, name) in enumerate(names):
        dd = os.path.join(root, d)
        if d not in made:
            os.mkdir(dd)
            made.add(d)
        de = os.path.join(dd, e)
        if (d, e) not in made:
            os.mkdir(de)
            made.add((d, e))
        fd = os.open(os.path.join(de, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, mv[i * KIB4:(i + 1) * KIB4])
        os.close(fd)
    finish()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--files", type=int, default=5000)
    ap.add_argument("--reads", type=int, default=20000)
    a = ap.parse_args()
    size = a.size_mib * MIB
    data = os.urandom(size)
    blob = os.urandom(a.files * KIB4)
    rng = random.Random(1)
    offsets = [rng.randrange(size // KIB4) * KIB4 for _ in range(a.reads)]
    names = small_names(a.files)
    rows = []
    cold = True
    load0 = os.getloadavg()[0]

    with StateCase() as c:
        n = c.node()
        start(n, HOOKS)
        native = os.path.join(c.root, "native")
        os.makedirs(os.path.join(native, "small"))
        sfs = mnt(n, "state")
        nbig, sbig = os.path.join(native, "big.bin"), os.path.join(sfs, "big.bin")
        print("native: %s   statefs: %s   (%d MiB, %d files, %d reads)"
              % (native, sfs, a.size_mib, a.files, a.reads), flush=True)

        # 1. sequential write (+ fsync / + commit)
        tn = seq_write(nbig, data, before_close=os.fsync)
        ctl(n, "state", "begin")
        commit = {}

        def do_commit():
            t0 = time.perf_counter()
            ctl(n, "state", "commit")
            commit["s"] = time.perf_counter() - t0
        q = reqs(n)
        ts = seq_write(sbig, data, after_close=do_commit)
        rows.append(("seq write", "MiB/s", a.size_mib / tn, a.size_mib / ts,
                     "commit %.2fs of %.2fs; %.1f FUSE req/MiB" % (
                         commit["s"], ts, (reqs(n) - q) / a.size_mib)))

        # 2. sequential read, cold; median of REPEAT
        # The state worker keeps its LMDB file mapped, and drop_caches
        # leaves mapped pages alone: the node is restarted (untimed) before
        # each statefs read so that its store is really cold.
        tns, tss, res = [], [], []
        for _ in range(REPEAT):
            cold &= drop_caches()
            tns.append(seq_read(nbig, size))
            restart(n)
            cold &= drop_caches()
            res.append(resident(os.path.join(n.dir, "state")))
            q = reqs(n)
            tss.append(seq_read(sbig, size))
            q = reqs(n) - q
        tn, ts = statistics.median(tns), statistics.median(tss)
        rows.append(("seq read", "MiB/s", a.size_mib / tn, a.size_mib / ts,
                     "%s, median of %d; store %.0f MiB cached before; %.1f FUSE req/MiB" % (
                         "cold" if cold else "WARM: drop_caches failed", REPEAT,
                         max(res) / MIB, q / a.size_mib)))

        # 3. 4 KiB random reads, warm: both files read through once more,
        # untimed, since the second drop_caches evicted the native copy.
        seq_read(nbig, size)
        seq_read(sbig, size)
        tns, tss = [], []
        for _ in range(REPEAT):
            tns.append(rand_read(nbig, offsets, data))
            q = reqs(n)
            tss.append(rand_read(sbig, offsets, data))
            q = reqs(n) - q
        tn, ts = statistics.median(tns), statistics.median(tss)
        rows.append(("4k rand read", "reads/s", a.reads / tn, a.reads / ts,
                     "warm, median of %d; %.1f FUSE req/read" % (REPEAT, q / a.reads)))

        # 4. small-file create (+ syncfs / + commit)
        tn = small_create(os.path.join(native, "small"), names, blob,
                          lambda: syncfs(native))
        ctl(n, "state", "begin")
        os.mkdir(os.path.join(sfs, "small"))
        ccommit = {}

        def do_commit2():
            t0 = time.perf_counter()
            ctl(n, "state", "commit")
            ccommit["s"] = time.perf_counter() - t0
        q = reqs(n)
        ts = small_create(os.path.join(sfs, "small"), names, blob, do_commit2)
        rows.append(("small create", "files/s", a.files / tn, a.files / ts,
                     "commit %.2fs of %.2fs; %.1f FUSE req/file" % (
                         ccommit["s"], ts, (reqs(n) - q) / a.files)))
        st = show_state(n)
        # Spot check: a few small files read back from the committed state.
        for i in range(0, a.files, max(1, a.files // 16)):
            d, e, name = names[i]
            with open(os.path.join(sfs, "small", d, e, name), "rb") as f:
                assert f.read() == blob[i * KIB4:(i + 1) * KIB4], name
        n.stop()
        subprocess.run(["umount", "-l", mnt(n)], capture_output=True)

    print("load average %.2f at start, %.2f at end, %d CPUs (other work on the machine skews"
          " FUSE round trips most)" % (load0, os.getloadavg()[0], os.cpu_count()))
    print("%-13s %-8s %12s %12s %7s %7s  %s" % ("test", "unit", "native", "statefs",
                                               "ratio", "target", "note"))
    met = 0
    for name, unit, nat, sf, note in rows:
        r = sf / nat
        tgt = TARGETS[name]
        met += r >= tgt
        print("%-13s %-8s %12.1f %12.1f %7.2f %7s  %s%s" % (
            name, unit, nat, sf, r, ">=%.1f" % tgt, note, "" if r >= tgt else "  (below target)"))
    print("ratios: statefs/native throughput, same /tmp filesystem, same run; %d of %d at target;"
          " statefs %d inodes, %d chunks, %.0f MiB stored" % (
              met, len(rows), st["inodes"], st["chunks"], st["bytes"] / MIB))


if __name__ == "__main__":
    main()
