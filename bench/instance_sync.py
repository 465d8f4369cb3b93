#!/usr/bin/env python3
"""bench/instance_sync.py — how long a blank node takes to become a clone:
from `hpd run` of a node that knows only the contract id, one peer and one
UNL key, to the first ledger it closes itself as an observer, with
100 MiB of contract state (half one file, half 16 KiB files). Beside it,
in the same run, `rsync -a` of the same data from an rsync daemon on
127.0.0.1 into an empty directory: the floor for moving those bytes.

A clone does more than copy: it syncs ledgers, syncs and applies the
cluster's patch.cfg, restarts its consensus and runner with it, syncs the
state over TLS into its LMDB store (every chunk hashed and verified), and
waits for the next round to close. Never part of pass/fail.
Usage: bench/instance_sync.py [--mib 100] [--runs 2]
"""
import argparse
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
from hpdtest import Case, wait_for  # noqa: E402
from state_sync import RsyncDaemon  # noqa: E402  (bench/state_sync.py)
from test_instance_sync import blank_node, colors_cluster  # noqa: E402

LEDGER = re.compile(r"^(\d{8} \d\d:\d\d:\d\d\.\d{3}) .*\*\*\*\*Ledger created\*\*\*\*", re.M)


def stamp(text):
    t = time.strptime(text[:17], "%Y%m%d %H:%M:%S")
    return time.mktime(t) + int(text[18:21]) / 1000.0


def one_run(mib):
    with Case() as c:
        cl = colors_cluster(c, extra_mib=mib)
        cl.wait_ledgers(3, timeout=120)
        # The floor: the same bundle over rsync into an empty directory.
        src = os.path.join(c.root, "bundle-colors")
        rs = RsyncDaemon(c.root, src)
        try:
            rs_s, rs_b = rs.pull(os.path.join(c.root, "rsync-dst"))
        finally:
            rs.stop()
        n4 = blank_node(c, cl, "n4", "127.0.0.1:%d" % cl.ports[0], cl.keys[0])
        t0 = time.time()
        n4.start()
        # The first ledger it closes itself comes after it took the
        # cluster's config (its consensus restarts then) and synced.
        def first_closed():
            log = n4.log()
            i = log.find("Contract config updated from patch file.")
            m = LEDGER.search(log, i) if i >= 0 else None
            return m and stamp(m.group(1))
        t1 = wait_for("node 4's first ledger as a clone", first_closed, 600, 0.2)
        clone_s = t1 - t0
        sync = cl.show(0, "ledger")["seq"]
        return clone_s, rs_s, rs_b, sync


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=100)
    ap.add_argument("--runs", type=int, default=2)
    a = ap.parse_args()
    print("instance sync: blank node to its first ledger closed as a clone, %d MiB of state"
          % a.mib)
    for r in range(a.runs):
        clone_s, rs_s, rs_b, seq = one_run(a.mib)
        print("  run %d: clone %.2f s (cluster at ledger %d)   rsync of the same data %.2f s"
              " (%d bytes)   ratio clone/rsync %.2f" % (r + 1, clone_s, seq, rs_s, rs_b,
                                                      clone_s / rs_s))


if __name__ == "__main__":
    main()
