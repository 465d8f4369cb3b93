#!/usr/bin/env python3
"""Five hosts in network namespaces joined by a bridge, with 20 ms ± 5 ms
delay and 1 % loss on every link; one host is partitioned away and healed.
No two nodes may ever hold different ledgers at one sequence number, and
consensus must resume after the heal.

The loss is nftables dropping 1 % of each host's packets (numgen random).
The delay would be tc netem's, but this kernel has no netem qdisc, so each
host dials its peers through delayrelay.py, which delays every chunk in
both directions by N(20 ms, 5 ms) in order."""
import os
import subprocess
import time

from hpdtest import HPD, Case, Cluster, main, wait_for

N = 5
TAG = "h%d" % (os.getpid() % 10000)


def sh(*cmd):
    r = subprocess.run(list(cmd), capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError("%s: %s" % (" ".join(cmd), r.stderr.strip()))
    return r.stdout


def ns(i):
    return "%s-n%d" % (TAG, i)


HUB = TAG + "-hub"


def setup_net():
    sh("ip", "netns", "add", HUB)
    sh("ip", "-n", HUB, "link", "add", "br0", "type", "bridge")
    sh("ip", "-n", HUB, "link", "set", "br0", "up")
    sh("ip", "-n", HUB, "link", "set", "lo", "up")
    for i in range(N):
        sh("ip", "netns", "add", ns(i))
        sh("ip", "-n", ns(i), "link", "set", "lo", "up")
        sh("ip", "link", "add", "%s-v%d" % (TAG, i), "netns", ns(i), "type", "veth",
           "peer", "name", "%s-b%d" % (TAG, i), "netns", HUB)
        sh("ip", "-n", ns(i), "addr", "add", "10.231.0.%d/24" % (i + 1), "dev", "%s-v%d" % (TAG, i))
        sh("ip", "-n", ns(i), "link", "set", "%s-v%d" % (TAG, i), "up")
        sh("ip", "-n", HUB, "link", "set", "%s-b%d" % (TAG, i), "master", "br0")
        sh("ip", "-n", HUB, "link", "set", "%s-b%d" % (TAG, i), "up")
        nft = ["ip", "netns", "exec", ns(i), "nft"]
        sh(*nft, "add", "table", "inet", "loss")
        sh(*nft, "add chain inet loss out { type filter hook output priority 0 ; policy accept ; }")
        sh(*nft, "add", "rule", "inet", "loss", "out", "oifname", "%s-v%d" % (TAG, i),
           "numgen", "random", "mod", "100", "==", "0", "drop")


def teardown_net():
    for i in range(N):
        subprocess.run(["ip", "netns", "del", ns(i)], capture_output=True)
    subprocess.run(["ip", "netns", "del", HUB], capture_output=True)


def partition(i, up):
    sh("ip", "-n", HUB, "link", "set", "%s-b%d" % (TAG, i), "up" if up else "down")


def test_five_hosts_delay_loss_partition_and_heal():
    try:
        setup_net()
        with Case() as c:
            cl = Cluster(c, N, roundtime=1000, ip=["10.231.0.%d" % (i + 1) for i in range(N)])
            # Every host listens on 22860 at its own address and reaches
            # host j through its local relay on port 30000+j.
            relays = []
            relay = os.path.join(os.path.dirname(os.path.abspath(__file__)), "delayrelay.py")
            for i, nd in enumerate(cl.nodes):
                nd.edit_cfg(lambda cfg: cfg["mesh"].__setitem__("port", 22860))
                peers = ["127.0.0.1:%d" % (30000 + j) for j in range(N) if j != i]
                nd.edit_cfg(lambda cfg, p=peers: (cfg["mesh"].__setitem__("known_peers", p),
                                                  cfg["mesh"]["peer_discovery"].__setitem__("enabled", False)))
                specs = ["127.0.0.1:%d=10.231.0.%d:22860" % (30000 + j, j + 1) for j in range(N) if j != i]
                relays.append(subprocess.Popen(["ip", "netns", "exec", ns(i), "python3", relay, "20", "5"] + specs))
            for i, nd in enumerate(cl.nodes):
                nd.out = open(nd.logpath, "ab")
                nd.proc = subprocess.Popen(["ip", "netns", "exec", ns(i), HPD, "run", nd.dir],
                                           stdout=nd.out, stderr=subprocess.STDOUT, start_new_session=True)
            for nd in cl.nodes:
                nd.wait_ready()
            cl.wait_ledgers(5, timeout=60)
            partition(4, False)
            time.sleep(2.0)
            p0 = cl.last_seq(4)
            base = cl.last_seq(0)
            cl.wait_ledgers(base + 5, nodes=[0, 1, 2, 3], timeout=40)
            assert cl.last_seq(4) <= p0 + 1, "a partitioned node closed ledgers alone"
            cl.check_no_fork()
            partition(4, True)
            top = cl.last_seq(0)
            wait_for("partitioned node caught up", lambda: cl.last_seq(4) >= top, 60, 0.5)
            cl.wait_ledgers(top + 5, timeout=60)
            cl.check_no_fork()
            cl.stop()
            for r in relays:
                r.kill()
                r.wait()
    finally:
        teardown_net()


if __name__ == "__main__":
    main([test_five_hosts_delay_loss_partition_and_heal])
