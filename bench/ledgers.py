#!/usr/bin/env python3
"""bench/ledgers.py — ledgers per second on a 3-node loopback cluster at
small roundtimes, and stage-0-to-durable-ledger latency, printed beside
floors measured in the same run: loopback round trip, ed25519 verify rate
(openssl speed) and fdatasync latency on the disk the ledgers live on.

Never part of pass/fail. Usage: bench/ledgers.py [--seconds S] [--roundtimes 20,10,5]
"""
import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
from hpdtest import Case, Cluster  # noqa: E402


def loopback_rtt_us(n=3000):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()

    def echo():
        c, _ = srv.accept()
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            b = c.recv(64)
            if not b:
                break
            c.sendall(b)
    t = threading.Thread(target=echo, daemon=True)
    t.start()
    s = socket.create_connection(srv.getsockname())
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    samples = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        s.sendall(b"x" * 32)
        s.recv(64)
        samples.append((time.perf_counter_ns() - t0) / 1000)
    s.close()
    return statistics.median(samples)


def ed25519_verify_per_s():
    r = subprocess.run(["openssl", "speed", "-seconds", "2", "ed25519"],
                       capture_output=True, text=True)
    m = re.search(r"Ed25519\)\s+([\d.]+)s\s+([\d.]+)s\s+([\d.]+)\s+([\d.]+)", r.stdout)
    return float(m.group(4)) if m else float("nan")


def fdatasync_ms(directory, n=200):
    path = os.path.join(directory, "fsync.probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    samples = []
    for i in range(n):
        os.pwrite(fd, b"x" * 4096, (i % 16) * 4096)
        t0 = time.perf_counter()
        os.fdatasync(fd)
        samples.append((time.perf_counter() - t0) * 1000)
    os.close(fd)
    os.unlink(path)
    return statistics.median(samples)


def run_cluster(roundtime, seconds):
    with Case() as c:
        cl = Cluster(c, 3, roundtime=roundtime)
        cl.start()
        cl.wait_ledgers(3, timeout=30)
        a = cl.show(0, "consensus")["lcl_seq"]
        t0 = time.monotonic()
        time.sleep(seconds)
        st = cl.show(0, "consensus")
        dt = time.monotonic() - t0
        cl.check_no_fork()
        cl.stop()
        return (st["lcl_seq"] - a) / dt, st["close_latency_p50_ms"], st["close_latency_p99_ms"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--roundtimes", default="100,20,10,5")
    a = ap.parse_args()
    rtt = loopback_rtt_us()
    ver = ed25519_verify_per_s()
    fs = fdatasync_ms(tempfile.gettempdir())
    print("floors: loopback round trip %.0f us, ed25519 verify %.0f/s, fdatasync %.2f ms" % (rtt, ver, fs))
    print("%-10s %10s %10s %10s %12s %14s" % ("roundtime", "ledgers/s", "p50 ms", "p99 ms",
                                             "vs target", "vs HotPocket"))
    for rt in [int(x) for x in a.roundtimes.split(",")]:
        rate, p50, p99 = run_cluster(rt, a.seconds)
        print("%-10s %10.1f %10d %10d %11.2fx %13.0fx" % ("%d ms" % rt, rate, p50, p99, rate / 100.0, rate / 1.0))
    print("ratios: 'vs target' is ledgers/s over the 100/s target; 'vs HotPocket' over its default 1/s;"
          " p50/p99 are round start to durable ledger; floor per ledger ~ %.2f ms fdatasync + 5 message"
          " exchanges of %.0f us" % (fs, rtt))


if __name__ == "__main__":
    main()
