#!/usr/bin/env python3
"""Integration tests of the hpd command line: new, check-config, rekey,
version, and their errors."""
import json
import os
import stat

from hpdtest import HPD, Case, main, run


def test_new_creates_a_complete_node():
    with Case() as c:
        d = os.path.join(c.root, "node")
        r = run(HPD, "new", d)
        assert r.returncode == 0, r.stderr
        for sub in ("cfg", "ledger", "state", "mnt", "log"):
            assert os.path.isdir(os.path.join(d, sub)), sub
        cfg = json.load(open(os.path.join(d, "cfg", "hp.cfg")))
        pk = cfg["node"]["public_key"]
        assert pk.startswith("ed") and len(pk) == 66
        assert len(cfg["node"]["private_key"]) == 130
        assert cfg["contract"]["unl"] == [pk]
        assert cfg["mesh"]["port"] == 22860 and cfg["user"]["port"] == 8080
        assert cfg["contract"]["consensus"]["roundtime"] == 1000
        assert pk in r.stdout and cfg["contract"]["id"] in r.stdout
        assert stat.S_IMODE(os.stat(os.path.join(d, "cfg", "hp.cfg")).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.join(d, "cfg", "tls.key")).st_mode) == 0o600
        crt = run("openssl", "x509", "-in", os.path.join(d, "cfg", "tls.crt"), "-noout", "-subject", "-checkend", "86400")
        assert crt.returncode == 0 and cfg["contract"]["id"] in crt.stdout, crt
        # Two nodes get different keys and contract ids.
        r2 = run(HPD, "new", os.path.join(c.root, "other"))
        cfg2 = json.load(open(os.path.join(c.root, "other", "cfg", "hp.cfg")))
        assert cfg2["node"]["public_key"] != pk and cfg2["contract"]["id"] != cfg["contract"]["id"]


def test_new_refuses_to_overwrite():
    with Case() as c:
        d = os.path.join(c.root, "node")
        assert run(HPD, "new", d).returncode == 0
        before = open(os.path.join(d, "cfg", "hp.cfg")).read()
        r = run(HPD, "new", d)
        assert r.returncode == 1 and "refusing to overwrite" in r.stderr, r
        assert open(os.path.join(d, "cfg", "hp.cfg")).read() == before


def test_check_config_names_field_rule_and_value():
    with Case() as c:
        n = c.node()
        r = run(HPD, "check-config", n.dir)
        assert r.returncode == 0 and "ok" in r.stdout
        n.edit_cfg(lambda cfg: cfg["contract"]["consensus"].__setitem__("roundtime", 0))
        r = run(HPD, "check-config", n.dir)
        assert r.returncode == 1
        assert "contract.consensus.roundtime" in r.stderr and "3600000" in r.stderr and "got 0" in r.stderr, r.stderr
        assert n.cfg_path in r.stderr
        # hpd run refuses the same file with the same words.
        r = run(HPD, "run", n.dir, timeout=10)
        assert r.returncode == 1 and "contract.consensus.roundtime" in r.stderr


def test_check_config_reports_every_error_and_warns_unknown():
    with Case() as c:
        n = c.node()
        def bad(cfg):
            cfg["mesh"]["port"] = 70000
            cfg["user"]["concurrent_read_requests"] = 99
            cfg["log"]["log_level"] = "loud"
            cfg["mesh"]["bogus"] = 1
        n.edit_cfg(bad)
        r = run(HPD, "check-config", n.dir)
        assert r.returncode == 1
        for field in ("mesh.port", "user.concurrent_read_requests", "log.log_level"):
            assert field in r.stderr, (field, r.stderr)
        assert "warning" in r.stderr and "mesh.bogus" in r.stderr


def test_check_config_syntax_error_and_missing_file():
    with Case() as c:
        n = c.node()
        open(n.cfg_path, "w").write('{"node": {,}')
        r = run(HPD, "check-config", n.dir)
        assert r.returncode == 1 and "line 1" in r.stderr, r.stderr
        r = run(HPD, "check-config", os.path.join(c.root, "nothing"))
        assert r.returncode == 1 and "hpd new" in r.stderr, r.stderr


def test_rekey_replaces_own_key_in_unl():
    with Case() as c:
        n = c.node()
        other = "ed" + "11" * 32
        old = n.cfg()["node"]["public_key"]
        n.edit_cfg(lambda cfg: cfg["contract"].__setitem__("unl", [old, other]))
        r = run(HPD, "rekey", n.dir)
        assert r.returncode == 0, r.stderr
        cfg = n.cfg()
        new = cfg["node"]["public_key"]
        assert new != old and new in r.stdout
        assert sorted(cfg["contract"]["unl"]) == sorted([new, other]), cfg["contract"]["unl"]
        assert run(HPD, "check-config", n.dir).returncode == 0
        n.start()
        n.wait_ready()
        r = run(HPD, "rekey", n.dir)
        assert r.returncode == 1 and "is running" in r.stderr
        n.stop()


def make_bundle(root):
    b = os.path.join(root, "bundle")
    os.makedirs(os.path.join(b, "lib", "deep"))
    with open(os.path.join(b, "index.js"), "w") as f:
        f.write("console.log('hello')\n")
    with open(os.path.join(b, "lib", "deep", "data.bin"), "wb") as f:
        f.write(bytes(range(256)) * 1000)
    os.chmod(os.path.join(b, "index.js"), 0o755)
    os.symlink("lib/deep/data.bin", os.path.join(b, "data"))
    with open(os.path.join(b, "hp.cfg.override"), "w") as f:
        f.write('{"contract": {"bin_path": "/usr/bin/node", "bin_args": "index.js red",'
                ' "consensus": {"roundtime": 500}}}')
    return b


def test_deploy_gives_equal_state_and_merges_override():
    import re
    with Case() as c:
        b = make_bundle(c.root)
        hashes = []
        for name in ("a", "b"):
            d = os.path.join(c.root, name)
            assert run(HPD, "new", d).returncode == 0
            r = run(HPD, "deploy", d, b)
            assert r.returncode == 0, r.stderr
            m = re.search(r"2 files, 2 directories, 256021 bytes; state hash ([0-9a-f]{64})", r.stdout)
            assert m, r.stdout
            hashes.append(m.group(1))
            cfg = json.load(open(os.path.join(d, "cfg", "hp.cfg")))
            assert cfg["contract"]["bin_path"] == "/usr/bin/node"
            assert cfg["contract"]["bin_args"] == "index.js red"
            assert cfg["contract"]["consensus"]["roundtime"] == 500
            assert cfg["contract"]["consensus"]["threshold"] == 80  # untouched
            assert run(HPD, "check-config", d).returncode == 0
        assert hashes[0] == hashes[1]
        # Deploying again replaces the state: same hash, not a union.
        r = run(HPD, "deploy", os.path.join(c.root, "a"), b)
        assert hashes[0] in r.stdout


def test_deploy_refuses_bad_override_and_running_node():
    with Case() as c:
        b = make_bundle(c.root)
        n = c.node()
        before = open(n.cfg_path).read()
        with open(os.path.join(b, "hp.cfg.override"), "w") as f:
            f.write('{"contract": {"consensus": {"roundtime": 0}}}')
        r = run(HPD, "deploy", n.dir, b)
        assert r.returncode == 1 and "contract.consensus.roundtime" in r.stderr, r.stderr
        assert "nothing was changed" in r.stderr
        assert open(n.cfg_path).read() == before
        with open(os.path.join(b, "hp.cfg.override"), "w") as f:
            f.write("[1, 2")
        r = run(HPD, "deploy", n.dir, b)
        assert r.returncode == 1 and "hp.cfg.override" in r.stderr
        r = run(HPD, "deploy", n.dir, os.path.join(c.root, "missing"))
        assert r.returncode == 1 and "not a directory" in r.stderr
        os.unlink(os.path.join(b, "hp.cfg.override"))
        n.start()
        n.wait_ready()
        r = run(HPD, "deploy", n.dir, b)
        assert r.returncode == 1 and "is running" in r.stderr
        n.stop()


def test_version_and_usage():
    r = run(HPD, "version")
    assert r.returncode == 0 and r.stdout.startswith("hpd ") and "build" in r.stdout
    r = run(HPD)
    assert r.returncode == 100 and "usage" in r.stderr
    r = run(HPD, "--help")
    assert r.returncode == 0 and "check-config DIR" in r.stdout
    r = run(HPD, "launch", "x")
    assert r.returncode == 100 and "unknown command" in r.stderr


if __name__ == "__main__":
    main([
        test_new_creates_a_complete_node,
        test_new_refuses_to_overwrite,
        test_check_config_names_field_rule_and_value,
        test_check_config_reports_every_error_and_warns_unknown,
        test_check_config_syntax_error_and_missing_file,
        test_rekey_replaces_own_key_in_unl,
        test_deploy_gives_equal_state_and_merges_override,
        test_deploy_refuses_bad_override_and_running_node,
        test_version_and_usage,
    ])
