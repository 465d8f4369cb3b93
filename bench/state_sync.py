#!/usr/bin/env python3
"""bench/state_sync.py — state sync throughput and catch-up cost, printed
as ratios to rsync over loopback measured in the same run on the same data.

1. Full sync: a 3-node loopback cluster (threshold 60) whose nodes 0 and 1
   hold a state of one large file and many 16 KiB files; node 2 starts
   empty and syncs it. Baseline: `rsync -a` of the same tree from an rsync
   daemon on 127.0.0.1 into an empty directory. The two take turns
   --repeat times (node 2's store and rsync's copy are wiped before each
   turn) and the medians are compared: on a VM whose free memory goes
   back to the host, either one's time moves by a factor of two or three
   with what the machine did just before, so single runs are noise. One
   more rsync run before the cluster starts is printed beside them.
2. Catch-up: node 2 is stopped, 64 MiB of the large file is overwritten on
   nodes 0 and 1 (1,024 random 64 KiB blocks), node 2 restarts and syncs.
   Bytes transferred (from `hpctl show sync`) over bytes changed, beside
   rsync's bytes received (--stats) for the same change to its copy.

hpd's sync runs over TLS and writes into LMDB with fsync at each commit;
the rsync daemon protocol is plain TCP into the native filesystem.
Never part of pass/fail.
Usage: bench/state_sync.py [--mib 512] [--small 2000] [--repeat 3]
"""
import argparse
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
from hpdtest import wait_for  # noqa: E402
from test_state_sync import (StateCase, copy_in, same_change, same_files, show,  # noqa: E402
                             start, start_cluster, wait_ledger_hash, wait_synced)

MIB = 1 << 20


def make_tree(root, mib, small):
    src = os.path.join(root, "src")
    os.makedirs(os.path.join(src, "small"))
    with open(os.path.join(src, "large.bin"), "wb") as f:
        for _ in range(mib):
            f.write(os.urandom(MIB))
    for i in range(small):
        with open(os.path.join(src, "small", "s%05d" % i), "wb") as f:
            f.write(os.urandom(16384))
    return src


def change_64mib(path, seed):
    """Overwrite 1,024 distinct random 64 KiB blocks of path."""
    size = os.path.getsize(path)
    blocks = random.Random(seed).sample(range(size // 65536), 1024)
    with open(path, "r+b") as f:
        for b in blocks:
            f.seek(b * 65536)
            f.write(os.urandom(65536))
    return blocks


def apply_blocks(path, blocks, data):
    with open(path, "r+b") as f:
        for b, d in zip(blocks, data):
            f.seek(b * 65536)
            f.write(d)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class RsyncDaemon:
    def __init__(self, root, path):
        self.port = free_port()
        conf = os.path.join(root, "rsyncd.conf")
        with open(conf, "w") as f:
            f.write("use chroot = no\n[src]\npath = %s\nread only = yes\n" % path)
        self.proc = subprocess.Popen(["rsync", "--daemon", "--no-detach", "--port", str(self.port),
                                      "--address", "127.0.0.1", "--config", conf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for("rsync daemon", lambda: socket.create_connection(("127.0.0.1", self.port)).close() or True)

    def pull(self, dst):
        t0 = time.monotonic()
        r = subprocess.run(["rsync", "-a", "--stats", "rsync://127.0.0.1:%d/src/" % self.port, dst + "/"],
                           capture_output=True, text=True, check=True)
        took = time.monotonic() - t0
        m = re.search(r"Total bytes received: ([\d,]+)", r.stdout)
        return took, int(m.group(1).replace(",", ""))

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=512, help="size of the large file")
    ap.add_argument("--small", type=int, default=2000, help="number of 16 KiB files")
    ap.add_argument("--repeat", type=int, default=3, help="full syncs of each, taking turns")
    a = ap.parse_args()
    total = a.mib * MIB + a.small * 16384
    with StateCase() as c:
        src = make_tree(c.root, a.mib, a.small)

        # Full syncs, taking turns: rsync into an empty directory, hpd
        # into an empty node 2.
        rd = RsyncDaemon(c.root, src)
        dst = os.path.join(c.root, "rsync-dst")
        os.makedirs(dst)
        subprocess.run(["sync"])
        rs_alone_s, _ = rd.pull(dst)
        cl = start_cluster(c, 3, threshold=60, roundtime=1000)
        n0, n1, n2 = cl.nodes
        n2.stop()
        h = same_change([n0, n1], copy_in(src), quiet=True)
        wait_ledger_hash(n0, h, 60)
        rs_runs, hp_runs, hp_walls = [], [], []
        for i in range(a.repeat):
            shutil.rmtree(dst, ignore_errors=True)
            os.makedirs(dst)
            subprocess.run(["sync"])
            took, rs_full_b = rd.pull(dst)
            rs_runs.append(took)
            if i > 0:
                n2.stop()
                for name in os.listdir(os.path.join(n2.dir, "state")):
                    os.unlink(os.path.join(n2.dir, "state", name))
            subprocess.run(["sync"])
            t0 = time.monotonic()
            start(n2)
            s, y = wait_synced(n2, h, 1800)
            hp_walls.append(time.monotonic() - t0)
            hp_runs.append(y["last_sync_ms"] / 1000.0)
            hp_full_b = y["bytes_fetched"]
            same_files(n0, n2)
        rs_full_s = statistics.median(rs_runs)
        hp_full_s = statistics.median(hp_runs)
        hp_full_wall = statistics.median(hp_walls)

        # The 64 MiB change: rsync's copy, then hpd's node 2 catches up.
        large = os.path.join(src, "large.bin")
        blocks = change_64mib(large, 1)
        with open(large, "rb") as f:
            new = f.read()
        changed = [new[b * 65536:(b + 1) * 65536] for b in blocks]
        del new
        rs_inc_s, rs_inc_b = rd.pull(dst)
        rd.stop()

        # hpd: catch up after the same 64 MiB change.
        n2.stop()
        h2 = same_change([n0, n1], lambda d: apply_blocks(os.path.join(d, "large.bin"), blocks, changed), quiet=True)
        wait_ledger_hash(n0, h2, 60)
        start(n2)
        s, y2 = wait_synced(n2, h2, 600)
        hp_inc_b = y2["bytes_fetched"]
        hp_inc_s = y2["last_sync_ms"] / 1000.0
        same_files(n0, n2)

    ch = 1024 * 65536
    print("state sync, %d MiB file + %d x 16 KiB (%.0f MiB), 3-node loopback cluster" % (a.mib, a.small, total / MIB))
    print("  full sync, %d turns each:  hpd %s s  rsync %s s" % (
        a.repeat, " ".join("%.2f" % x for x in hp_runs), " ".join("%.2f" % x for x in rs_runs)))
    print("  full sync (medians):  hpd %.2f s (%.0f MB/s; %.2f s from start)  rsync %.2f s (%.0f MB/s)"
          "  ratio hpd/rsync throughput %.2f  (target >= 1.0)"
          % (hp_full_s, total / hp_full_s / 1e6, hp_full_wall, rs_full_s, total / rs_full_s / 1e6,
             rs_full_s / hp_full_s))
    print("  rsync once more before the cluster started (the machine's memory otherwise idle): %.2f s;"
          " hpd's median against it %.2f" % (rs_alone_s, rs_alone_s / hp_full_s))
    print("  bytes over the wire, full: hpd %d (payload), rsync %d; data %d" % (hp_full_b, rs_full_b, total))
    print("  catch-up after 64 MiB changed: hpd fetched %d bytes in %.2f s (%.3f x changed);"
          " rsync received %d bytes in %.2f s (%.3f x changed)"
          % (hp_inc_b, hp_inc_s, hp_inc_b / ch, rs_inc_b, rs_inc_s, rs_inc_b / ch))
    print("  ratio hpd/rsync bytes for the catch-up %.3f; time %.2f" % (hp_inc_b / rs_inc_b, hp_inc_s / rs_inc_s))


if __name__ == "__main__":
    main()
