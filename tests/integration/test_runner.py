#!/usr/bin/env python3
"""Contract runs: after each closed ledger the runner runs the real
Node.js contract (hotpocket-nodejs-contract 0.7.4 from tests/interop) in its
sandbox over the state, and the state it writes becomes the next state hash.

Needs root (statefs, per-run uid, namespaces) and `npm ci` in tests/interop
(scripts/setup does it)."""
import json
import os
import shutil

from hpdtest import HPD, Case, Cluster, main, run, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
INTEROP = os.path.join(HERE, "..", "interop")
LIB = os.path.join(INTEROP, "node_modules", "hotpocket-nodejs-contract")
NODE = "/usr/bin/node"


def bundle(root, contract, cfg=None):
    """A deployable bundle: the contract's index.js, the library copied into
    node_modules, and an hp.cfg.override that runs it with node."""
    assert os.path.isdir(LIB), "run scripts/setup (npm ci in tests/interop) first"
    b = os.path.join(root, "bundle-" + contract)
    os.makedirs(os.path.join(b, "node_modules"))
    shutil.copy(os.path.join(INTEROP, "contracts", contract, "index.js"), b)
    shutil.copytree(LIB, os.path.join(b, "node_modules", "hotpocket-nodejs-contract"))
    over = {"contract": {"bin_path": NODE, "bin_args": "index.js", "log": {"enable": True}}}
    for k, v in (cfg or {}).items():
        over["contract"][k] = v
    with open(os.path.join(b, "hp.cfg.override"), "w") as f:
        json.dump(over, f)
    return b


def deploy(cl, b):
    for nd in cl.nodes:
        r = run(HPD, "deploy", nd.dir, b)
        assert r.returncode == 0, r.stderr


def cluster(c, n, contract, cfg=None):
    # The contract's uid must be able to reach NODE/mnt/state: the case
    # root is created 0700.
    os.chmod(c.root, 0o755)
    cl = Cluster(c, n, roundtime=1000)
    deploy(cl, bundle(c.root, contract, cfg))
    cl.start()
    return cl


def state_file(nd, name):
    with open(os.path.join(nd.dir, "mnt", "state", name)) as f:
        return f.read()


def test_counter_runs_every_ledger_same_state_on_three_nodes():
    with Case() as c:
        cl = cluster(c, 3, "counter")
        cl.wait_ledgers(8, timeout=40)
        s0 = cl.last_seq(0)
        wait_for("runner on every node ran >= 5 times",
                 lambda: all(cl.show(i, "runner")["runs"] >= 5 for i in range(3)), 20, 0.2)
        for i in range(3):
            r = cl.show(i, "runner")
            assert r["last_result"] == "exit 0", r
            assert r["timeouts"] == 0 and r["failed"] == 0, r
            assert "contract run for ledger" in cl.nodes[i].log()
        # runs.txt grows: one line per ledger, with that ledger's sequence.
        lines = state_file(cl.nodes[0], "runs.txt").splitlines()
        assert len(lines) >= 5, lines
        seqs = [int(l.split()[0]) for l in lines]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs
        assert "readonly=false unl=3 users=0" in lines[-1], lines[-1]
        # Each run read back the line the run before it wrote.
        assert lines[0].endswith("prev=none"), lines[0]
        for a, b in zip(lines, lines[1:]):
            assert b.endswith("prev=%s" % a.split()[0]), (a, b)
        wait_for("ledger > %d" % (s0 + 3), lambda: cl.last_seq(0) > s0 + 3, 20, 0.2)
        # The state hash changes with every ledger, and the nodes agree on it.
        hashes = []
        for seq in range(s0 - 3, s0 + 1):
            per = {cl.show(i, "ledger", str(seq))["state_hash"] for i in range(3)}
            assert len(per) == 1, (seq, per)
            hashes.append(per.pop())
        assert len(set(hashes)) == len(hashes), hashes
        cl.check_no_fork()
        # The same file content on every node.
        wait_for("equal runs.txt", lambda: len({state_file(nd, "runs.txt").splitlines()[min(len(lines), 5) - 1]
                                                for nd in cl.nodes}) == 1, 10, 0.2)
        for nd in cl.nodes:
            with open(os.path.join(nd.dir, "log", "contract", "stdout.log")) as f:
                assert "contract run for ledger" in f.read()


def test_node_whose_state_left_syncs_back_and_keeps_running():
    """One node's run for ledger 4 writes a file the others do not: at the
    next ledger its state differs and it syncs; the run for that ledger
    waits for the sync (the state worker refuses a session meanwhile) and
    then goes, so the node is level again and runs every ledger after. A
    run skipped there would leave it one run behind at every ledger, and
    syncing, for good."""
    import re
    with Case() as c:
        cl = cluster(c, 3, "diverge")
        cl.wait_ledgers(12, timeout=60)
        keys = sorted(cl.keys)
        odd = [i for i in range(3) if cl.keys[i] == keys[0]][0]
        logs = [cl.nodes[i].log() for i in range(3)]
        assert "state sync: this node's state differs" in logs[odd], logs[odd][-3000:]
        for i in range(3):
            assert "skipped" not in logs[i], (i, [l for l in logs[i].splitlines() if "skipped" in l])
        # From ledger 6 on, the odd node's runs end in the same state as
        # the others' (logged as "contract run for ledger N: ... (state:X)").
        runs = [dict(re.findall(r"contract run for ledger (\d+): exit 0 in \d+ ms \(state:(\w+)\)", l))
                for l in logs]
        late = sorted(int(k) for k in runs[odd] if int(k) >= 6)
        assert len(late) >= 4, runs[odd]
        other = (odd + 1) % 3
        for k in late:
            if str(k) in runs[other]:
                assert runs[odd][str(k)] == runs[other][str(k)], (k, runs[odd][str(k)], runs[other][str(k)])
        assert not os.path.exists(os.path.join(cl.nodes[odd].dir, "mnt", "state", "stray.txt"))
        cl.check_no_fork()


def test_runner_restarted_mid_run_leaves_no_session_open():
    """The runner restarted (hpctl restart runner) while its run's state
    session is open, again and again: the state worker aborts that session
    every time, so every later run opens its own (a session left open
    refuses every run after it)."""
    import time
    with Case() as c:
        cl = cluster(c, 1, "slowcounter")
        cl.wait_ledgers(3, timeout=30)
        nd = cl.nodes[0]
        for k in range(12):
            time.sleep(0.15 + 0.07 * (k % 5))
            r = run(os.path.join(os.path.dirname(HPD), "hpctl"), "-d", nd.dir, "restart", "runner")
            assert r.returncode == 0, r.stderr
        s = cl.last_seq(0)
        wait_for("3 more runs after the restarts",
                 lambda: cl.show(0, "runner")["runs"] >= 3 and cl.last_seq(0) >= s + 3, 30, 0.3)
        log = nd.log()
        assert "a state session is already open" not in log, \
            [l for l in log.splitlines() if "already open" in l][:3]
        runs = [int(x) for x in state_file(nd, "runs.txt").split()]
        assert runs[-1] >= s + 1, (runs[-5:], s)


def test_hanging_contract_is_killed_at_exec_timeout():
    with Case() as c:
        cl = cluster(c, 1, "hang", {"round_limits": {"exec_timeout": 500}})
        cl.wait_ledgers(4, timeout=30)
        wait_for("2 timeouts", lambda: cl.show(0, "runner")["timeouts"] >= 2, 20, 0.2)
        s = cl.last_seq(0)
        wait_for("rounds go on", lambda: cl.last_seq(0) >= s + 2, 20, 0.2)
        r = cl.show(0, "runner")
        assert r["last_result"] == "killed at exec_timeout", r
        log = cl.nodes[0].log()
        assert "exec_timeout (500 ms) reached; killing it" in log
        assert "killed at exec_timeout" in log
        # What it wrote before the kill was committed.
        assert len(state_file(cl.nodes[0], "started.txt").splitlines()) >= 2


def test_slow_run_slows_rounds_and_is_never_skipped():
    with Case() as c:
        # The contract hangs until exec_timeout (1800 ms) on every run, with
        # roundtime 1000: consensus waits for each run before it proposes
        # again, so ledgers come every ~2 s and every one gets its run.
        cl = cluster(c, 1, "hang", {"round_limits": {"exec_timeout": 1800}})
        wait_for("3 timeouts", lambda: cl.show(0, "runner")["timeouts"] >= 3, 40, 0.2)
        r = cl.show(0, "runner")
        assert r["skipped"] == 0, r
        seqs = sorted(cl.ledgers(0))
        times = [cl.show(0, "ledger", str(q))["time"] for q in seqs[-3:]]
        assert all(b - a >= 1800 for a, b in zip(times, times[1:])), times
        assert "skipped" not in cl.nodes[0].log()


def test_crashing_contract_is_logged_and_rounds_go_on():
    with Case() as c:
        cl = cluster(c, 1, "crash")
        cl.wait_ledgers(4, timeout=30)
        wait_for("2 crashes", lambda: cl.show(0, "runner")["runs"] >= 2, 20, 0.2)
        s = cl.last_seq(0)
        wait_for("rounds go on", lambda: cl.last_seq(0) >= s + 2, 20, 0.2)
        r = cl.show(0, "runner")
        assert r["last_result"] == "exit 1", r
        assert ": exit 1 in " in cl.nodes[0].log()
        assert len(state_file(cl.nodes[0], "crashes.txt").splitlines()) >= 2


def test_contract_cannot_read_cfg_or_use_the_network():
    with Case() as c:
        os.chmod(c.root, 0o755)
        cl = Cluster(c, 1, roundtime=1000)
        nd = cl.nodes[0]
        port = nd.cfg()["mesh"]["port"]
        env = {"HPD_TEST_CFG": nd.cfg_path, "HPD_TEST_PORT": str(port)}
        deploy(cl, bundle(c.root, "probe", {"environment": env}))
        cl.start()
        # The peer port is reachable from the host...
        import socket
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.close()
        # ...and not from the contract, which cannot see cfg/ either.
        p = wait_for("probe.json", lambda: json.loads(state_file(nd, "probe.json")), 30, 0.2)
        assert p["cfg_abs"] in ("ENOENT", "EACCES"), p
        assert p["cfg_rel"] in ("ENOENT", "EACCES"), p
        assert p["connect"] in ("ENETUNREACH", "ECONNREFUSED", "EACCES", "EPERM"), p
        assert p["connect"] != "connected", p
        assert p["uid"] != 0, p
        assert p["child"] == 0 and p["unshare"] not in (0, None), p
        print("  probe: %s" % json.dumps(p))


if __name__ == "__main__":
    main([
        test_counter_runs_every_ledger_same_state_on_three_nodes,
        test_node_whose_state_left_syncs_back_and_keeps_running,
        test_runner_restarted_mid_run_leaves_no_session_open,
        test_hanging_contract_is_killed_at_exec_timeout,
        test_slow_run_slows_rounds_and_is_never_skipped,
        test_crashing_contract_is_logged_and_rounds_go_on,
        test_contract_cannot_read_cfg_or_use_the_network,
    ])
