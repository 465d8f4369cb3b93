#!/usr/bin/env python3
"""A misbehaving UNL peer against a live cluster: each bad message is
dropped and counted in `hpctl show peers`, no worker restarts, and the
cluster keeps closing ledgers without a fork.

The cluster is three nodes whose UNL has four keys (threshold 60: three
live nodes are a quorum). The fourth key belongs to a node directory made
with `hpd new` that is never started; tests/tools/peerprobe takes its
identity and speaks to node 0's mesh port. (A proposal from a key outside
the UNL is covered by test_cluster.py.)
"""
import os
import re
import time

from hpdtest import BUILD, Case, Cluster, main, run, wait_for

PEERPROBE = os.path.join(BUILD, "tests", "tools", "peerprobe")
ROUNDTIME = 300
# Counters of `show peers` that mean something was dropped or punished.
DROPS = ("dropped_malformed", "dropped_not_unl", "dropped_bad_sig", "dropped_stale",
         "dropped_replay", "dropped_dup", "dropped_bad", "violations", "bans")


class Abuse:
    """The cluster, the prober's node directory, and node 0's baseline."""

    def __init__(self, case, max_bad_sigs=0):
        self.cl = Cluster(case, 3, roundtime=ROUNDTIME, threshold=60)
        self.prober = case.node("prober")
        self.cid = self.cl.nodes[0].cfg()["contract"]["id"]
        self.pkey = self.prober.cfg()["node"]["public_key"]
        unl = self.cl.keys + [self.pkey]

        def edit(c):
            c["contract"]["id"] = self.cid
            c["contract"]["unl"] = unl
            c["contract"]["consensus"]["roundtime"] = ROUNDTIME
            c["contract"]["consensus"]["threshold"] = 60
            c["mesh"]["max_bad_msgsigs_per_min"] = max_bad_sigs
        for nd in self.cl.nodes + [self.prober]:
            nd.edit_cfg(edit)
        self.cl.start()
        self.cl.wait_ledgers(3, timeout=30)
        st = self.cl.show(0, "consensus")
        assert len(st["unl"]) == 4 and st["quorum"] == 3, st
        self.pids = self.cl.nodes[0].worker_pids()

    def counters(self):
        return self.cl.show(0, "peers")["counters"]

    def prober_session(self):
        return [s for s in self.cl.show(0, "peers")["sessions"] if s["pubkey"] == self.pkey]

    def prober_round(self):
        """When the round node 0 last took a proposal of the prober's
        started (wall-clock ms, estimated from its age), or 0."""
        now = time.time() * 1000
        for m in self.cl.show(0, "consensus")["unl"]:
            if m["key"] == self.pkey:
                age = m["last_proposal_round_age_ms"]
                return now - age if age else 0
        raise AssertionError("the prober's key is not in node 0's UNL")

    def wait_taken(self, last):
        """Until node 0's round holds a proposal of the prober's for a
        later round than `last` (proposals_in counts the whole cluster's
        traffic; this is the one sign that the round took ours)."""
        wait_for("node 0's round took the prober's proposal",
                 lambda: self.prober_round() > last + ROUNDTIME / 2, 5)

    def probe(self, case, *extra):
        """Run one case; returns (peers counters before, peerprobe's line)."""
        # A second verified session from one key loses to the older one:
        # the previous probe's session must be gone first.
        wait_for("no session from the prober", lambda: not self.prober_session(), 5)
        before = self.counters()
        r = run(PEERPROBE, "--cfg", self.prober.cfg_path,
                "--connect", "127.0.0.1:%d" % self.cl.ports[0],
                "--contract", self.cid, "--case", case,
                "--roundtime", str(ROUNDTIME), *extra)
        assert r.returncode == 0, "peerprobe %s: rc %d: %s%s" % (case, r.returncode, r.stdout, r.stderr)
        assert re.match(r"peerprobe: %s: sent " % case, r.stdout), r.stdout
        return before, r.stdout

    def wait_counter(self, before, name, by=1):
        want = before[name] + by
        now = wait_for("show peers %s >= %d" % (name, want),
                       lambda: (lambda c: c if c[name] >= want else None)(self.counters()), 5)
        assert now[name] == want, "%s moved by %d, not %d: %s" % (name, now[name] - before[name], by, now)
        return now

    def unchanged(self, before, after, names):
        moved = {k: (before[k], after[k]) for k in names if after[k] != before[k]}
        assert not moved, "counters moved: %s" % moved

    def healthy(self):
        """Node 0's workers never restarted; ledgers still close, no fork."""
        st = self.cl.nodes[0].status()
        restarted = {w["name"]: w["restarts"] for w in st["workers"] if w["restarts"] != 0}
        assert not restarted, "workers restarted: %s" % restarted
        assert self.cl.nodes[0].worker_pids() == self.pids, "worker pids changed"
        base = max(self.cl.last_seq(i) for i in range(3))
        self.cl.wait_ledgers(base + 5, timeout=20)
        self.cl.check_no_fork()

    def stop(self):
        self.cl.stop()


def open_after(line):
    assert "session still open" in line, "the node closed the session: %s" % line


def closed_after(line):
    assert "session closed by the peer" in line, "the node kept the session open: %s" % line


def check_valid(a):
    last = a.prober_round()
    dropped = a.cl.show(0, "consensus")["proposals_dropped"]
    before, line = a.probe("valid")
    open_after(line)
    a.wait_taken(last)
    assert a.cl.show(0, "consensus")["proposals_dropped"] == dropped
    a.unchanged(before, a.counters(), DROPS)


def check_badsig(a):
    before, line = a.probe("badsig")
    open_after(line)
    after = a.wait_counter(before, "dropped_bad_sig")
    a.unchanged(before, after, set(DROPS) - {"dropped_bad_sig"})


def check_stale(a):
    before, line = a.probe("stale")
    open_after(line)
    after = a.wait_counter(before, "dropped_stale")
    a.unchanged(before, after, set(DROPS) - {"dropped_stale"})


def check_replay(a):
    # Same bytes twice: the peer worker's dedup drops the second copy
    # before consensus sees it.
    last = a.prober_round()
    before, line = a.probe("replay")
    open_after(line)
    a.wait_taken(last)
    after = a.wait_counter(before, "dropped_dup")
    a.unchanged(before, after, set(DROPS) - {"dropped_dup"})


def check_reencoded(a):
    # Same proposal, other bytes: past the byte dedup, consensus's own
    # replay check drops it.
    last = a.prober_round()
    before, line = a.probe("reencoded")
    open_after(line)
    a.wait_taken(last)
    after = a.wait_counter(before, "dropped_replay")
    a.unchanged(before, after, set(DROPS) - {"dropped_replay"})


def check_framing_violation(a, case):
    # Over the PROPOSAL limit on the header (oversized), or random bytes
    # read as a header announcing >= 16 MiB (garbage): the session is
    # closed, the frame counted in dropped_bad and a violation against
    # the host.
    before, line = a.probe(case)
    closed_after(line)
    after = a.wait_counter(before, "dropped_bad")
    assert after["violations"] == before["violations"] + 1, after
    a.unchanged(before, after, set(DROPS) - {"dropped_bad", "violations"})


def check_tlsgarbage(a):
    # Random bytes under TLS break the record layer: the session is closed
    # as a violation and counted as a TLS error.
    before, line = a.probe("tlsgarbage")
    closed_after(line)
    a.wait_counter(before, "tls_errors")
    a.wait_counter(before, "violations")


def one_case(check, *args):
    with Case() as c:
        a = Abuse(c)
        check(a, *args)
        a.healthy()
        a.stop()


def test_valid_proposal_is_accepted():
    one_case(check_valid)


def test_bad_signature_is_dropped_and_counted():
    one_case(check_badsig)


def test_stale_proposal_is_dropped_and_counted():
    one_case(check_stale)


def test_replayed_bytes_are_dropped_as_duplicates():
    one_case(check_replay)


def test_reencoded_replay_is_dropped_by_consensus():
    one_case(check_reencoded)


def test_oversized_frame_is_a_violation():
    one_case(check_framing_violation, "oversized")


def test_garbage_after_hello_is_a_violation():
    one_case(check_framing_violation, "garbage")


def test_garbage_under_tls_closes_the_session():
    one_case(check_tlsgarbage)


def test_relays_are_not_blamed_for_what_they_forward():
    # Node 0 forwards the prober's proposals (the prober says it is weakly
    # connected); nodes 1 and 2 drop them as badly signed. Only the
    # signer's own session may be charged under max_bad_msgsigs_per_min:
    # node 0 must stay connected to 1 and 2 with no violation against it.
    with Case() as c:
        a = Abuse(c, max_bad_sigs=2)
        viol = [a.cl.show(i, "peers")["counters"]["violations"] for i in (1, 2)]
        for _ in range(3):
            before, line = a.probe("badsig", "--need-forwarding")
            a.wait_counter(before, "dropped_bad_sig")
        for i in (1, 2):
            wait_for("node %d saw the relayed proposals" % i,
                     lambda i=i: a.cl.show(i, "peers")["counters"]["dropped_bad_sig"] >= 3, 5)
        time.sleep(1.0)
        for i in (1, 2):
            peers = a.cl.show(i, "peers")
            assert peers["counters"]["violations"] == viol[i - 1], peers["counters"]
            keys = {s["pubkey"] for s in peers["sessions"] if s["verified"]}
            assert a.cl.keys[0] in keys, "node %d dropped honest node 0" % i
        a.healthy()
        a.stop()


def test_every_case_in_a_row_on_one_cluster():
    with Case() as c:
        a = Abuse(c)
        for check, args in ((check_valid, ()), (check_badsig, ()), (check_stale, ()),
                            (check_replay, ()), (check_reencoded, ()),
                            (check_framing_violation, ("oversized",)),
                            (check_framing_violation, ("garbage",)),
                            (check_tlsgarbage, ()), (check_valid, ())):
            check(a, *args)
        a.healthy()
        a.stop()


if __name__ == "__main__":
    main([
        test_valid_proposal_is_accepted,
        test_bad_signature_is_dropped_and_counted,
        test_stale_proposal_is_dropped_and_counted,
        test_replayed_bytes_are_dropped_as_duplicates,
        test_reencoded_replay_is_dropped_by_consensus,
        test_oversized_frame_is_a_violation,
        test_garbage_after_hello_is_a_violation,
        test_garbage_under_tls_closes_the_session,
        test_every_case_in_a_row_on_one_cluster,
        test_relays_are_not_blamed_for_what_they_forward,
    ])
