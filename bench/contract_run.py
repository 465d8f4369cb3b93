#!/usr/bin/env python3
"""bench/contract_run.py — what one contract run costs per round with a
no-op C contract (tests/tools/noop_contract) on a 1-node cluster, beside a
bare posix_spawn + waitpid of the same binary measured in the same run.

Two numbers per run, from the node's log:
- run: the supervisor's spawn-to-exit time (the runner's "contract run for
  ledger N: exit 0 in M ms"): sandbox setup (namespaces, mounts, uid,
  seccomp), exec and exit;
- cycle: from "state session opened" to "state committed" (log
  timestamps): the run plus the fd handover and the statefs commit.

Needs root and a build (HPD_BUILD, default build/). Never part of
pass/fail. Usage: bench/contract_run.py [--seconds S] [--roundtime MS]
"""
import argparse
import datetime
import json
import os
import re
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
from hpdtest import BUILD, HPD, Case, Cluster, run  # noqa: E402

NOOP = os.path.join(BUILD, "tests", "tools", "noop_contract")
RUN_RE = re.compile(r"contract run for ledger (\d+): exit 0 in (\d+) ms")
TS_RE = re.compile(r"^(\d{8} \d\d:\d\d:\d\d\.\d{3}) \[\w+\]\[state\] state (session opened|committed)")


def bare_spawn_ms(n):
    """Mean ms of posix_spawn + waitpid of the no-op binary."""
    t0 = time.perf_counter()
    for _ in range(n):
        pid = os.posix_spawn(NOOP, [NOOP], {})
        os.waitpid(pid, 0)
    return (time.perf_counter() - t0) * 1000 / n


def cycles_ms(log):
    out, opened = [], None
    for line in log.splitlines():
        m = TS_RE.match(line)
        if not m:
            continue
        t = datetime.datetime.strptime(m.group(1), "%Y%m%d %H:%M:%S.%f")
        if m.group(2) == "session opened":
            opened = t
        elif opened is not None:
            out.append((t - opened).total_seconds() * 1000)
            opened = None
    return out


def stats(xs):
    xs = sorted(xs)
    return "n=%d mean %.2f median %.2f p90 %.2f ms" % (
        len(xs), statistics.mean(xs), statistics.median(xs), xs[int(len(xs) * 0.9)])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--roundtime", type=int, default=200)
    ap.add_argument("--spawns", type=int, default=300)
    a = ap.parse_args()
    if not os.access(NOOP, os.X_OK):
        sys.exit("build first: %s" % NOOP)
    with Case() as c:
        os.chmod(c.root, 0o755)
        cl = Cluster(c, 1, roundtime=a.roundtime)
        nd = cl.nodes[0]
        b = os.path.join(c.root, "bundle")
        os.makedirs(b)
        with open(NOOP, "rb") as src, open(os.path.join(b, "noop_contract"), "wb") as dst:
            dst.write(src.read())
        os.chmod(os.path.join(b, "noop_contract"), 0o755)
        with open(os.path.join(b, "hp.cfg.override"), "w") as f:
            json.dump({"contract": {"bin_path": os.path.join(nd.dir, "mnt", "state", "noop_contract")}}, f)
        r = run(HPD, "deploy", nd.dir, b)
        assert r.returncode == 0, r.stderr
        cl.start()
        time.sleep(a.seconds)
        bare = bare_spawn_ms(a.spawns)
        log = nd.log()
        cl.stop()
    runs = [int(m.group(2)) for m in RUN_RE.finditer(log)][2:]
    cyc = cycles_ms(log)[2:]
    if not runs:
        sys.exit("no contract runs in the log")
    print("roundtime %d ms, %.0f s" % (a.roundtime, a.seconds))
    print("bare posix_spawn+waitpid : %.3f ms (mean of %d)" % (bare, a.spawns))
    print("contract run (sandboxed) : %s" % stats(runs))
    if cyc:
        print("run cycle (session..commit): %s" % stats(cyc))
    print("ratio run/bare           : %.1fx" % (statistics.mean(runs) / bare))
    if cyc:
        print("ratio cycle/bare         : %.1fx" % (statistics.mean(cyc) / bare))


if __name__ == "__main__":
    main()
