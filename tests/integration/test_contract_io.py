#!/usr/bin/env python3
"""What contracts exchange besides files: NPL messages between the nodes'
contract instances, and configuration changes through ../patch.cfg
(ctx.getConfig / ctx.updateConfig), with the real hotpocket-nodejs-contract
0.7.4 on 3-node clusters.

Needs root and `npm ci` in tests/interop (scripts/setup)."""
import json
import os
import subprocess

from hpdtest import Case, main, wait_for
from test_runner import INTEROP, NODE, cluster, state_file

CLIENT = os.path.join(INTEROP, "client", "hpclient.js")


def client(scenario, **opts):
    r = subprocess.run([NODE, CLIENT, scenario, json.dumps(opts)], capture_output=True,
                       text=True, timeout=120)
    for line in reversed(r.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise AssertionError("hpclient %s: %s %s" % (scenario, r.stdout[-1500:], r.stderr[-1500:]))


def test_npl_messages_reach_every_instance():
    with Case() as c:
        cl = cluster(c, 3, "npl")
        cl.wait_ledgers(6, timeout=60)
        keys = sorted(nd.cfg()["node"]["public_key"][2:10] for nd in cl.nodes)

        def complete(nd):
            try:
                lines = state_file(nd, "npl.txt").splitlines()
            except FileNotFoundError:
                return []
            return [l for l in lines if l.split(" ")[1:] == [",".join(keys)]]

        # Every node's contract hears all three instances (itself included)
        # in the same ledger's run, for several ledgers.
        wait_for("complete NPL rounds on every node",
                 lambda: all(len(complete(nd)) >= 3 for nd in cl.nodes), 60, 0.5)
        for nd in cl.nodes:
            seqs = [int(l.split()[0]) for l in complete(nd)]
            assert len(set(seqs)) == len(seqs), seqs
        # The runs ended by themselves (process.exit), not at exec_timeout.
        for i in range(3):
            assert cl.show(i, "runner")["timeouts"] == 0
        cl.check_no_fork()


def test_update_config_changes_roundtime_on_every_node():
    with Case() as c:
        cl = cluster(c, 3, "patcher")
        wait_for("patch applied on every node",
                 lambda: all("Contract config updated from patch file." in nd.log()
                             for nd in cl.nodes), 90, 0.5)
        for nd in cl.nodes:
            assert nd.cfg()["contract"]["consensus"]["roundtime"] == 600
        # Consensus restarted with the new roundtime: consecutive ledgers
        # are 600 ms apart, and every node still agrees.
        s = max(cl.last_seq(i) for i in range(3))
        wait_for("ledgers after the change", lambda: all(cl.last_seq(i) >= s + 6
                                                         for i in range(3)), 60, 0.3)
        times = [cl.show(0, "ledger", str(q))["time"] for q in range(s + 3, s + 6)]
        assert all(b - a == 600 for a, b in zip(times, times[1:])), times
        cl.check_no_fork()
        # The contract reads its new configuration back.
        wait_for("config.txt shows 600", lambda: any(
            l.split()[1] == "600" for l in state_file(cl.nodes[0], "config.txt").splitlines()),
            30, 0.3)
        # patch.cfg is the library's rewrite, the same file on every node.
        texts = {open(os.path.join(nd.dir, "mnt", "patch.cfg")).read() for nd in cl.nodes}
        assert len(texts) == 1, texts
        assert json.loads(texts.pop())["consensus"]["roundtime"] == 600
        # Applied once per node.
        for nd in cl.nodes:
            assert nd.log().count("Contract config updated from patch file.") == 1


def test_output_flood_stops_at_user_output_bytes():
    with Case() as c:
        cl = cluster(c, 3, "flood", {"round_limits": {"user_output_bytes": 4096}})
        cl.wait_ledgers(2, timeout=60)
        url = "wss://localhost:%d" % cl.nodes[0].cfg()["user"]["port"]
        # 2 MB: more than the socket buffers hold, so writes block, the
        # node reads, and past the limit it closes its end.
        r = client("outputs", servers=[url], input="2000 1000", waitMs=6000)
        assert r["connected"] and r["status"]["status"] == "accepted", r
        # 4 outputs of 1000 bytes fit in 4096; the 5th closed the socket.
        outs = r["outputs"]
        assert len(outs) == 4, len(outs)
        assert [o[:4] for o in outs] == ["%04d" % i for i in range(4)]
        for nd in cl.nodes:
            assert "passed its limit (4096 bytes); its socket is closed" in nd.log()
            line = wait_for("flood.txt", lambda nd=nd: state_file(nd, "flood.txt"), 20, 0.3)
            assert line.split()[1] == "sent=2000", line
        # Rounds go on, and the nodes agree.
        s = cl.last_seq(0)
        wait_for("ledgers after the flood", lambda: cl.last_seq(0) >= s + 3, 30, 0.3)
        cl.check_no_fork()


def test_peer_changeset_from_the_contract():
    with Case() as c:
        os.chmod(c.root, 0o755)
        from hpdtest import Cluster
        from test_runner import bundle, deploy
        cl = Cluster(c, 3, roundtime=1000)
        drop = "127.0.0.1:%d" % cl.ports[2]
        for nd in cl.nodes:
            nd.edit_cfg(lambda cfg: cfg["mesh"]["peer_discovery"].__setitem__("enabled", False))
        deploy(cl, bundle(c.root, "peers", {"environment": {"PEER_TO_DROP": drop}}))
        cl.start()

        def known(i):
            return {k["address"] for k in cl.show(i, "peers")["known"]}
        for i in range(3):
            wait_for("node %d knows 127.0.0.1:9" % i, lambda i=i: "127.0.0.1:9" in known(i), 60, 0.5)
            assert "peer_changeset from the contract" in cl.nodes[i].log()
        # Node 2's own address was not in its list; the others forgot it.
        assert drop not in known(0) and drop not in known(1), (known(0), known(1))


if __name__ == "__main__":
    main([
        test_peer_changeset_from_the_contract,
        test_output_flood_stops_at_user_output_bytes,
        test_npl_messages_reach_every_instance,
        test_update_config_changes_roundtime_on_every_node,
    ])
