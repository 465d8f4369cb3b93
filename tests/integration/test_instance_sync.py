#!/usr/bin/env python3
"""Instance sync (HotPocket's instance-sync tutorial, without containers):
a blank node that knows only the contract id, one peer and one UNL key
finds the mesh, syncs config, state and ledgers, runs the contract as an
observer, and is admitted to the UNL when the contract adds its key
through ctx.updateConfig on a user's request.

Needs root, `npm ci` in tests/interop (scripts/setup)."""
import json
import os
import shutil
import subprocess
import time

from hpdtest import HPD, Case, Cluster, main, run, wait_for
from test_runner import LIB, NODE, INTEROP

CLIENT = os.path.join(INTEROP, "client", "hpclient.js")
ARGS = "These are my cli args [ 'red', 'green', 'blue' ]"


def colors_bundle(root, extra_mib=0):
    b = os.path.join(root, "bundle-colors")
    os.makedirs(os.path.join(b, "node_modules"))
    shutil.copy(os.path.join(INTEROP, "contracts", "colors", "index.js"), b)
    shutil.copytree(LIB, os.path.join(b, "node_modules", "hotpocket-nodejs-contract"))
    if extra_mib:
        # State to sync besides the code: one big file and many small ones.
        with open(os.path.join(b, "blob.bin"), "wb") as f:
            for i in range(extra_mib // 2):
                f.write(os.urandom(1 << 20))
        os.makedirs(os.path.join(b, "small"))
        for i in range((extra_mib - extra_mib // 2) * 64):
            with open(os.path.join(b, "small", "f%05d" % i), "wb") as f:
                f.write(os.urandom(16384))
    with open(os.path.join(b, "hp.cfg.override"), "w") as f:
        json.dump({"contract": {"bin_path": NODE, "bin_args": "index.js red green blue",
                                "log": {"enable": True}}}, f)
    return b


def colors_cluster(c, extra_mib=0):
    os.chmod(c.root, 0o755)
    cl = Cluster(c, 3, roundtime=1000, mode="public")
    b = colors_bundle(c.root, extra_mib)
    for nd in cl.nodes:
        r = run(HPD, "deploy", nd.dir, b)
        assert r.returncode == 0, r.stderr
    cl.start()
    return cl


def stdout(nd):
    try:
        with open(os.path.join(nd.dir, "log", "contract", "stdout.log")) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def blank_node(c, cl, name, peer, unl_key):
    """A new node that knows only the contract id, one peer and one UNL key."""
    nd = c.node(name)
    cid = cl.nodes[0].cfg()["contract"]["id"]

    def edit(cfg):
        cfg["contract"]["id"] = cid
        cfg["contract"]["unl"] = [unl_key]
        cfg["mesh"]["known_peers"] = [peer]
        # Node-local, not part of what it learns: keep the contract's
        # output to read it.
        cfg["contract"]["log"] = {"enable": True}
    nd.edit_cfg(edit)
    return nd


def submit(url, text):
    r = subprocess.run([NODE, CLIENT, "submit", json.dumps({"servers": [url], "input": text,
                                                             "waitMs": 8000})],
                       capture_output=True, text=True, timeout=90)
    for line in reversed(r.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise AssertionError("hpclient submit: %s %s" % (r.stdout[-1500:], r.stderr[-1500:]))


def ledger_seqs(nd):
    from hpdtest import ledger_lines
    return ledger_lines(nd.log())


def clone_and_admit(c, cl, n4):
    """Node 4 becomes a clone, is admitted to the UNL and its votes count."""
    n4.start()
    n4.wait_ready(20)
    # Config first: its hp.cfg takes the cluster's UNL and contract command.
    wait_for("node 4 took the cluster's config",
             lambda: "Contract config updated from patch file." in n4.log(), 90, 0.5)
    cfg = n4.cfg()
    assert sorted(cfg["contract"]["unl"]) == sorted(cl.keys), cfg["contract"]["unl"]
    assert cfg["contract"]["bin_args"] == "index.js red green blue"
    # Then state (the contract code is in it) and ledgers; then it runs the
    # contract itself, as an observer.
    key4 = cfg["node"]["public_key"]
    wait_for("node 4's contract runs as a clone, not in the UNL",
             lambda: ARGS in stdout(n4) and
             "I'm NOT in the UNL. My public key: " + key4 in stdout(n4), 120, 0.5)
    log4 = n4.log()
    assert "synced" in log4 and "state sync" in log4.lower(), log4[-3000:]
    st = wait_for("hpctl show sync on node 4", lambda: json.loads(run(
        os.path.join(os.path.dirname(HPD), "hpctl"), "-d", n4.dir, "--json", "show",
        "sync").stdout).get("data"), 30, 0.5)
    assert st["config"]["status"].startswith("synced"), st
    assert st["ledger"]["status"] == "synced" and st["ledger"]["lcl"] > 0, st
    assert st["state"]["syncs_done"] >= 1 and st["state"]["bytes_fetched"] > 0, st
    # Its ledgers match the cluster's.
    wait_for("node 4 closes ledgers itself",
             lambda: "****Ledger created****" in n4.log().split("Contract config updated")[-1],
             60, 0.5)
    assert n4.ctl("show", "consensus").stdout.count("observer") >= 1
    # The user asks the cluster to admit node 4.
    res = submit("wss://localhost:%d" % cl.nodes[1].cfg()["user"]["port"], key4)
    assert res["connected"] and res["status"]["status"] == "accepted", res
    # The client heard of the new UNL (unl_change notification).
    assert any(key4 in u and len(u) == 4 for u in res["unl"]), res["unl"]
    for nd in cl.nodes:
        wait_for("UNL of 4 on %s" % nd.dir, lambda nd=nd: len(nd.cfg()["contract"]["unl"]) == 4,
                 60, 0.5)
    wait_for("node 4 sees itself in the UNL",
             lambda: stdout(n4).rstrip().endswith("I'm in the UNL."), 60, 0.5)
    assert len(n4.cfg()["contract"]["unl"]) == 4
    # With 4 members at threshold 80 a ledger needs all four votes: ledgers
    # keep closing with node 4 ...
    s = max(ledger_seqs(cl.nodes[0]))
    wait_for("ledgers with node 4 voting",
             lambda: max(ledger_seqs(cl.nodes[0])) >= s + 4 and
             max(ledger_seqs(n4)) >= s + 4, 60, 0.3)
    led = json.loads(run(os.path.join(os.path.dirname(HPD), "hpctl"), "-d", cl.nodes[0].dir,
                         "--json", "show", "ledger").stdout)["data"]
    assert led["signatures"] == 4 and key4 in led["signers"], led
    # ... and stop, without a fork, while node 4 is stopped.
    n4.stop()
    time.sleep(3)
    s = max(ledger_seqs(cl.nodes[0]))
    time.sleep(5)
    assert max(ledger_seqs(cl.nodes[0])) <= s + 1, "ledgers closed without node 4"
    allnodes = cl.nodes + [n4]
    seen = {}
    for i, nd in enumerate(allnodes):
        for seq, h in ledger_seqs(nd).items():
            assert seen.setdefault(seq, h) == h, "fork at %d" % seq
    # Back again: consensus goes on.
    n4.start()
    wait_for("ledgers after node 4 returns",
             lambda: max(ledger_seqs(cl.nodes[0])) >= s + 3, 90, 0.5)


def test_blank_node_becomes_clone_and_joins_the_unl():
    with Case() as c:
        cl = colors_cluster(c)
        cl.wait_ledgers(3, timeout=60)
        wait_for("cluster contract output",
                 lambda: all(ARGS in stdout(nd) and "I'm in the UNL." in stdout(nd)
                             for nd in cl.nodes), 60, 0.5)
        n4 = blank_node(c, cl, "n4", "127.0.0.1:%d" % cl.ports[0], cl.keys[2])
        clone_and_admit(c, cl, n4)
        cl.check_no_fork()


def test_blank_node_via_a_non_unl_peer_with_100_mib_of_state():
    with Case() as c:
        cl = colors_cluster(c, extra_mib=100)
        cl.wait_ledgers(3, timeout=60)
        # An observer that is not in the UNL: node 4 knows only it.
        obs = blank_node(c, cl, "obs", "127.0.0.1:%d" % cl.ports[0], cl.keys[0])
        obs.start()
        wait_for("the observer clones the cluster",
                 lambda: "I'm NOT in the UNL." in stdout(obs), 180, 0.5)
        n4 = blank_node(c, cl, "n4", "127.0.0.1:%d" % obs.cfg()["mesh"]["port"], cl.keys[1])
        clone_and_admit(c, cl, n4)


def test_unl_members_that_never_come_online_are_reported():
    with Case() as c:
        nd = c.node("n0")
        # Two UNL keys whose nodes are never started: a ledger needs 3 of 3.
        ghosts = [c.node("g%d" % i).cfg()["node"]["public_key"] for i in range(2)]
        nd.edit_cfg(lambda cfg: cfg["contract"].__setitem__(
            "unl", [cfg["node"]["public_key"]] + ghosts))
        nd.start()
        nd.wait_ready()
        wait_for("the log warns", lambda: "only 1 of the 3 UNL members are live and a"
                 " ledger needs 3 votes" in nd.log(), 30, 0.5)
        st = wait_for("hpctl status warns", lambda: [w for w in nd.status()["warnings"]
                                                      if "only 1 of 3 UNL members are live"
                                                      in w], 20, 0.5)
        assert "no ledger can close" in st[0], st
        r = nd.ctl("status")
        assert "warning: only 1 of 3 UNL members are live" in r.stdout, r.stdout
        assert "****Ledger created****" not in nd.log()


if __name__ == "__main__":
    main([
        test_unl_members_that_never_come_online_are_reported,
        test_blank_node_becomes_clone_and_joins_the_unl,
        test_blank_node_via_a_non_unl_peer_with_100_mib_of_state,
    ])
