#!/usr/bin/env python3
"""Clusters of real hpd nodes on loopback closing ledgers: agreement,
pace, crashes, lost quorum, worker restarts, and peers that misbehave."""
import os
import signal
import socket
import ssl
import subprocess
import time

from hpdtest import HPD, Case, Cluster, main, run, wait_for


def created(text):
    """Sequence numbers this node closed itself (not synced)."""
    import re
    return set(int(m) for m in re.findall(r"\*\*\*\*Ledger created\*\*\*\* \(lcl:(\d+)-", text))


def consecutive_agreed(cl, count, nodes=None):
    seen = cl.check_no_fork(nodes)
    idx = range(len(cl.nodes)) if nodes is None else nodes
    for i in idx:
        l = cl.ledgers(i)
        top = max(l)
        missing = [s for s in range(top - count + 1, top + 1) if s not in l]
        assert not missing, "node %d lacks ledgers %s" % (i, missing[:10])
    return seen


def full_hash_agreement(cl, seq, nodes=None):
    idx = range(len(cl.nodes)) if nodes is None else nodes
    hashes = {cl.show(i, "ledger", str(seq))["hash"] for i in idx}
    assert len(hashes) == 1, "ledger %d differs: %s" % (seq, hashes)


def test_three_nodes_200_ledgers_at_100ms():
    with Case() as c:
        cl = Cluster(c, 3, roundtime=100)
        cl.start()
        cl.wait_ledgers(205, timeout=90)
        consecutive_agreed(cl, 200)
        for seq in (1, 100, 200):
            full_hash_agreement(cl, seq)
        # Past 256 closes the latency figures sort more than 1 KiB.
        cl.wait_ledgers(260, timeout=30)
        st = cl.show(0, "consensus")
        assert st["vote_status"] == "synced" and st["unl_live"] == 3, st
        assert 0 < st["close_latency_p50_ms"] <= st["close_latency_p99_ms"] < 100, st
        assert all(w["restarts"] == 0 for w in cl.nodes[0].status()["workers"])
        cl.stop()


def test_five_nodes_200_ledgers_at_100ms():
    with Case() as c:
        cl = Cluster(c, 5, roundtime=100)
        cl.start()
        cl.wait_ledgers(205, timeout=120)
        consecutive_agreed(cl, 200)
        full_hash_agreement(cl, 150)
        cl.stop()


def test_known_peers_by_host_name():
    with Case() as c:
        cl = Cluster(c, 3, roundtime=200, ip="localhost")
        cl.start()
        cl.wait_ledgers(5, timeout=30)
        assert "mesh.known_peers: localhost:" in cl.nodes[0].log()
        cl.check_no_fork()
        cl.stop()


def test_default_roundtime_closes_a_ledger_every_round():
    with Case() as c:
        cl = Cluster(c, 3)
        cl.start()
        cl.wait_ledgers(2, timeout=15)
        first = cl.last_seq(0)
        time.sleep(6.0)
        last = cl.last_seq(0)
        assert last - first >= 5, "only %d ledgers in 6 rounds" % (last - first)
        times = [cl.show(0, "ledger", str(s))["time"] for s in range(first, last + 1)]
        steps = {b - a for a, b in zip(times, times[1:])}
        assert steps == {1000}, "ledger times are not one round apart: %s" % sorted(steps)
        cl.check_no_fork()
        cl.stop()


def test_one_of_five_killed_rest_go_on_and_it_catches_up():
    with Case() as c:
        cl = Cluster(c, 5, roundtime=200)
        cl.start()
        cl.wait_ledgers(10, timeout=30)
        victim = cl.nodes[4]
        os.killpg(victim.proc.pid, signal.SIGKILL)
        victim.proc.wait()
        victim.proc = None
        victim.out.close()
        base = cl.last_seq(0)
        cl.wait_ledgers(base + 15, nodes=[0, 1, 2, 3], timeout=30)
        behind = cl.last_seq(0)
        victim.start()
        victim.wait_ready()
        # It syncs what it missed, then is back in consensus (closing
        # ledgers itself) within 3 rounds.
        wait_for("victim synced", lambda: cl.show(4, "consensus")["lcl_seq"] >= behind, 20, 0.02)
        t_synced = time.monotonic()
        assert "synced" in victim.log()
        wait_for("victim closes ledgers itself",
                 lambda: any(s > behind for s in created(victim.log())), 5, 0.02)
        assert time.monotonic() - t_synced <= 3 * 0.2 + 0.3, time.monotonic() - t_synced
        cl.check_no_fork()
        full_hash_agreement(cl, behind)
        cl.stop()


def test_two_of_five_stopped_no_close_no_fork_then_resume():
    with Case() as c:
        cl = Cluster(c, 5, roundtime=200)
        cl.start()
        cl.wait_ledgers(5, timeout=30)
        for nd in cl.nodes[3:]:
            nd.stop()
        time.sleep(1.0)
        frozen = [cl.last_seq(i) for i in range(3)]
        time.sleep(3.0)
        assert [cl.last_seq(i) for i in range(3)] == frozen, "ledgers closed without a quorum"
        assert max(frozen) - min(frozen) <= 1
        st = cl.show(0, "consensus")
        assert st["unl_live"] == 3 and st["quorum"] == 4, st
        for nd in cl.nodes[3:]:
            nd.start()
        cl.wait_ledgers(max(frozen) + 5, timeout=30)
        cl.check_no_fork()
        cl.stop()


def test_peer_worker_restart_costs_at_most_two_ledgers():
    with Case() as c:
        cl = Cluster(c, 3, roundtime=500)
        cl.start()
        cl.wait_ledgers(4, timeout=30)
        n = cl.nodes[1]
        t0 = time.time()
        n.ctl("restart", "peer")
        wait_for("peer ready", lambda: n.worker("peer")["state"] == "ready", 5)
        time.sleep(4.0)
        elapsed = time.time() - t0
        created = cl.ledgers(0)
        recent = [s for s in created if s > max(created) - int(elapsed / 0.5)]
        rounds = int(elapsed / 0.5)
        missing = rounds - len(recent)
        assert missing <= 2, "%d ledgers lost in %d rounds" % (missing, rounds)
        cl.check_no_fork()
        cl.stop()


def test_consensus_worker_restart_back_within_3_rounds():
    with Case() as c:
        cl = Cluster(c, 3, roundtime=500)
        cl.start()
        cl.wait_ledgers(4, timeout=30)
        n = cl.nodes[2]
        before = cl.last_seq(2)
        n.ctl("restart", "consensus")
        wait_for("consensus ready", lambda: n.worker("consensus")["state"] == "ready", 5)
        t0 = time.monotonic()
        created_before = created(n.log())
        # Back in consensus (closing ledgers itself) within 3 rounds.
        wait_for("node 2 closing again", lambda: created(n.log()) - created_before, 3 * 0.5 + 1.0, 0.05)
        assert cl.last_seq(2) > before
        cl.check_no_fork()
        cl.stop()


def test_non_unl_proposals_are_dropped_and_counted():
    with Case() as c:
        cl = Cluster(c, 3, roundtime=300, mode="public")
        # An intruder with the same contract that believes it is in the UNL.
        intruder = c.node("intruder")
        cid = cl.nodes[0].cfg()["contract"]["id"]
        ikey = intruder.cfg()["node"]["public_key"]
        intruder.edit_cfg(lambda cfg: (cfg["contract"].__setitem__("id", cid),
                                       cfg["contract"].__setitem__("unl", cl.keys + [ikey]),
                                       cfg["contract"]["consensus"].__setitem__("roundtime", 300),
                                       cfg["mesh"].__setitem__("known_peers", ["127.0.0.1:%d" % p for p in cl.ports])))
        cl.start()
        intruder.start()
        intruder.wait_ready()
        cl.wait_ledgers(5, timeout=30)
        wait_for("intruder proposals dropped", lambda: cl.show(0, "consensus")["proposals_dropped"] > 0, 10)
        wait_for("counted in show peers", lambda: cl.show(0, "peers")["counters"]["dropped_not_unl"] > 0, 10)
        base = cl.last_seq(0)
        cl.wait_ledgers(base + 5, timeout=20)
        cl.check_no_fork()
        cl.stop()
        intruder.stop()


def test_garbage_and_bad_handshakes_are_dropped_and_counted():
    with Case() as c:
        cl = Cluster(c, 3, roundtime=300)
        cl.start()
        cl.wait_ledgers(3, timeout=30)
        port = cl.ports[0]
        # Plain garbage instead of TLS.
        for _ in range(5):
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            s.sendall(os.urandom(512))
            try:
                s.recv(100)
            except OSError:
                pass
            s.close()
        # Real TLS with a throwaway certificate, then garbage frames and an
        # oversized length.
        keydir = c.root
        run("openssl", "req", "-x509", "-newkey", "ed25519", "-nodes", "-subj", "/CN=x",
            "-keyout", os.path.join(keydir, "k.pem"), "-out", os.path.join(keydir, "c.pem"), "-days", "1")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.load_cert_chain(os.path.join(keydir, "c.pem"), os.path.join(keydir, "k.pem"))
        for payload in (os.urandom(300), b"\x7f\xff\xff\xff\x01" + b"x" * 100, b"\x00\x00\x00\x05\x63hello"):
            raw = socket.create_connection(("127.0.0.1", port), timeout=2)
            try:
                tls = ctx.wrap_socket(raw)
                tls.sendall(payload)
                time.sleep(0.2)
                tls.close()
            except (ssl.SSLError, OSError):
                raw.close()
        peers = cl.show(0, "peers")
        counters = peers["counters"]
        bad = sum(v for k, v in counters.items() if k.startswith(("dropped", "bad", "tls", "refused")))
        assert bad >= 3, "misbehaviour not counted: %s" % counters
        base = cl.last_seq(0)
        cl.wait_ledgers(base + 5, timeout=20)
        assert cl.nodes[0].worker("peer")["restarts"] == 0
        cl.check_no_fork()
        cl.stop()


if __name__ == "__main__":
    main([
        test_three_nodes_200_ledgers_at_100ms,
        test_five_nodes_200_ledgers_at_100ms,
        test_default_roundtime_closes_a_ledger_every_round,
        test_known_peers_by_host_name,
        test_one_of_five_killed_rest_go_on_and_it_catches_up,
        test_two_of_five_stopped_no_close_no_fork_then_resume,
        test_peer_worker_restart_costs_at_most_two_ledgers,
        test_consensus_worker_restart_back_within_3_rounds,
        test_non_unl_proposals_are_dropped_and_counted,
        test_garbage_and_bad_handshakes_are_dropped_and_counted,
    ])
