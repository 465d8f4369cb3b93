#!/usr/bin/env python3
"""bench/inputs.py — user inputs committed per second on a 3-node loopback
cluster and input-to-output latency, driven by tests/tools/loadgen over the
real user protocol (TLS WebSocket, JSON, pre-signed contract_input messages
from many users spread over the three nodes' user ports). Two contracts:
  c   examples/c-echo: echoes each input and costs the node next to
      nothing, so the figure is hpd's own;
  js  tests/interop/client/echo-contract.js on hotpocket-nodejs-contract
      0.7.4: what a Node.js contract (a read and a write through libuv's
      thread pool per input) adds on the same machine.

Printed beside the ed25519 verify rate of this machine measured in the
same run (loadgen --verify-rate, libsodium): every input is verified by the
gateway of the node it entered and by the consensus worker of each other
node, so verifies bound the rate. The ratios are inputs/s over that verify
rate and over the 5,000 inputs/s target. "no output" counts accepted
inputs whose echo never came (warm-up included); "rejected" the reasons
the nodes gave (round_inputs_overflow when the offered load is above what
the cluster commits). --counters prints each node's consensus, gateway and
peer counters after the run; --keep-logs DIR keeps each node's log.

Never part of pass/fail. Needs root and tests/interop's npm modules.
Usage: bench/inputs.py [--seconds S] [--roundtimes 1000,500] [--contracts c,js]
                       [--conns N] [--window W] [--rate R] [--size B]
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from hpdtest import BUILD, Case, wait_for  # noqa: E402
from test_gateway import cluster, uport  # noqa: E402
import test_c_contract  # noqa: E402

LOADGEN = os.path.join(BUILD, "tests", "tools", "loadgen")
TARGET = 5000.0


def loadgen(*args, timeout):
    r = subprocess.run([LOADGEN, *[str(a) for a in args]], capture_output=True,
                       text=True, timeout=timeout)
    for line in r.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:]), r.stdout, r.stderr
    raise AssertionError("loadgen rc %d, no result: %s %s" % (r.returncode, r.stdout[-2000:],
                                                            r.stderr[-2000:]))


def verify_per_s():
    return loadgen("--verify-rate", "--duration", 2, timeout=30)[0]["verify_per_s"]


def counters(cl, i):
    """The consensus and gateway counters that explain a run."""
    out = {}
    for w in ("consensus", "gateway", "peer"):
        try:
            out[w] = cl.show(i, w)
        except AssertionError as e:
            out[w] = {"error": str(e)}
    return out


def run_cluster(a, roundtime, kind):
    # Pre-signed inputs carry one max_ledger_seq_no for the whole run, so
    # the node must accept a window that outlasts it.
    offset = int((a.seconds + 20) * 1000 / roundtime) + 20
    n_inputs = a.inputs or int((a.seconds + 4) * (a.rate or 12000))
    with Case() as c:
        # js: tests/interop/client/echo-contract.js on hotpocket-nodejs-contract;
        # c: examples/c-echo, which costs the node next to nothing.
        bundle = test_c_contract.bundle(c.root) if kind == "c" else None
        cl = cluster(c, 3, roundtime=roundtime, echo=True, bundle=bundle,
                     contract={"max_input_ledger_offset": offset})
        for nd in cl.nodes:
            # hpd new already leaves round_limits.user_input_bytes and the
            # user port's per-minute limits and idle timeout at 0 (off).
            lim = nd.cfg()
            assert lim["contract"]["round_limits"]["user_input_bytes"] == 0, lim["contract"]
            assert lim["user"]["max_bytes_per_min"] == 0 and lim["user"]["idle_timeout"] == 0, lim["user"]
        for i in range(3):
            wait_for("gateway %d listening" % i, lambda i=i: cl.show(i, "gateway")["listening"], 15, 0.2)
        cl.wait_ledgers(3, timeout=60)
        ports = ",".join(str(uport(cl, i)) for i in range(3))
        args = ["--ports", ports, "--conns", a.conns, "--window", a.window,
                "--duration", a.seconds, "--warmup", 2, "--drain", 10,
                "--inputs", n_inputs, "--size", a.size, "--ledger-offset", offset - 5]
        if a.rate:
            args += ["--rate", a.rate]
        res, out, err = loadgen(*args, timeout=a.seconds + 300)
        if a.verbose:
            sys.stdout.write(out)
            sys.stderr.write(err)
        stats = [counters(cl, i) for i in range(3)]
        if a.keep_logs:
            os.makedirs(a.keep_logs, exist_ok=True)
            for i, nd in enumerate(cl.nodes):
                with open(os.path.join(a.keep_logs, "%s-%d-node%d.out" % (kind, roundtime, i)), "w") as f:
                    f.write(nd.log())
        cl.check_no_fork()
        cl.stop()
        return res, stats


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--roundtimes", default="1000,500")
    ap.add_argument("--conns", type=int, default=60)
    ap.add_argument("--window", type=int, default=3000, help="inputs in flight per user, at most")
    ap.add_argument("--rate", type=float, default=6000, help="open loop, inputs/s in all (0: closed loop)")
    ap.add_argument("--inputs", type=int, default=0, help="inputs to pre-sign (0: from seconds and rate)")
    ap.add_argument("--size", type=int, default=16)
    ap.add_argument("--counters", action="store_true", help="print each node's show consensus/gateway")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--contracts", default="c,js",
                    help="c: examples/c-echo; js: the echo contract on hotpocket-nodejs-contract")
    ap.add_argument("--keep-logs", metavar="DIR", help="copy each node's log here")
    a = ap.parse_args()
    ver = verify_per_s()
    print("ceiling: ed25519 verify %.0f/s on one core (libsodium); an input costs 3 verifies"
          " across the cluster (entry gateway, 2 relayed)" % ver)
    print("load: %d users over 3 nodes, %s, %d-byte inputs, %.0f s measured"
          % (a.conns, ("%.0f inputs/s open loop" % a.rate) if a.rate else
             ("closed loop, window %d per user" % a.window), a.size, a.seconds))
    print("%-10s %10s %8s %8s %8s %9s %9s %10s  %s" % ("roundtime", "inputs/s", "p50 ms", "p99 ms",
                                                    "/ledger", "vs verify", "vs target",
                                                    "no output", "rejected"))
    for kind, rt in [(k, int(x)) for k in a.contracts.split(",") for x in a.roundtimes.split(",")]:
        res, stats = run_cluster(a, rt, kind)
        per_ledger = res["inputs_per_s"] * a.seconds / res["ledgers"] if res["ledgers"] else 0
        print("%-10s %10.1f %8.0f %8.0f %8.0f %8.3fx %8.3fx %10d  %s"
              % ("%s %d ms" % (kind, rt), res["inputs_per_s"], res["p50_ms"], res["p99_ms"], per_ledger,
                 res["inputs_per_s"] / ver, res["inputs_per_s"] / TARGET,
                 res["no_output_all"], json.dumps(res["reasons"]) if res["reasons"] else "-"))
        if a.counters:
            for i, s in enumerate(stats):
                print("  node %d consensus %s" % (i, json.dumps(s["consensus"], sort_keys=True)))
                print("  node %d gateway   %s" % (i, json.dumps(s["gateway"], sort_keys=True)))
                print("  node %d peer      %s" % (i, json.dumps(s["peer"], sort_keys=True)))
    print("ratios: 'vs verify' is inputs/s over one core's ed25519 verify rate; 'vs target' over"
          " 5,000 inputs/s; p50/p99 are send to the contract_output carrying the echo;"
          " /ledger is inputs committed per ledger")


if __name__ == "__main__":
    main()
