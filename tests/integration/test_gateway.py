#!/usr/bin/env python3
"""The gateway: hpd's user port, driven by the real hotpocket-js-client
0.5.7 (tests/interop/client/hpclient.js) and by a minimal WebSocket client
written here over Python's ssl, for what the library cannot be made to do
(stall, send garbage, oversized or unmasked frames, thousands of sockets).

Needs root (real nodes) and `npm ci` in tests/interop (scripts/setup)."""
import base64
import hashlib
import json
import os
import shutil
import socket
import ssl
import struct
import subprocess
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization

from hpdtest import BUILD, HPD, Case, Cluster, main, run, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
INTEROP = os.path.join(HERE, "..", "interop")
CLIENT = os.path.join(INTEROP, "client", "hpclient.js")
ECHO = os.path.join(INTEROP, "client", "echo-contract.js")
SLOWREAD = os.path.join(INTEROP, "client", "slowread-contract.js")
SLOWECHO = os.path.join(INTEROP, "client", "slowecho-contract.js")
LIB = os.path.join(INTEROP, "node_modules", "hotpocket-nodejs-contract")
NODE = "/usr/bin/node"
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


# ---- a minimal WebSocket client over TLS ----

class Closed(Exception):
    pass


class WS:
    def __init__(self, port, upgrade=True, timeout=10.0):
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.s = ctx.wrap_socket(raw)
        self.buf = b""
        if upgrade:
            self.upgrade()

    def upgrade(self, path="/any/path"):
        key = base64.b64encode(os.urandom(16))
        self.s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                       b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                       b"Sec-WebSocket-Key: " + key + b"\r\n"
                       b"Sec-WebSocket-Version: 13\r\n"
                       b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n")
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        assert lines[0].startswith("HTTP/1.1 101"), lines
        hdr = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in lines[1:]}
        want = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
        assert hdr["sec-websocket-accept"] == want, hdr
        assert "sec-websocket-extensions" not in hdr, hdr
        assert "sec-websocket-protocol" not in hdr, hdr

    def _more(self):
        d = self.s.recv(65536)
        if not d:
            raise Closed("connection closed")
        self.buf += d

    def _take(self, n):
        while len(self.buf) < n:
            self._more()
        d, self.buf = self.buf[:n], self.buf[n:]
        return d

    def send_frame(self, op, payload, fin=True, mask=True, length=None):
        n = len(payload) if length is None else length
        b = bytes([(0x80 if fin else 0) | op])
        m = 0x80 if mask else 0
        if n < 126:
            b += bytes([m | n])
        elif n < 65536:
            b += bytes([m | 126]) + struct.pack(">H", n)
        else:
            b += bytes([m | 127]) + struct.pack(">Q", n)
        if mask:
            k = os.urandom(4)
            b += k + bytes(c ^ k[i % 4] for i, c in enumerate(payload))
        else:
            b += payload
        self.s.sendall(b)

    def send(self, data, op=2):
        self.send_frame(op, data if isinstance(data, bytes) else data.encode())

    def recv_frame(self):
        h = self._take(2)
        fin, op, n = h[0] & 0x80, h[0] & 0x0F, h[1] & 0x7F
        assert not h[1] & 0x80, "server frames are never masked"
        if n == 126:
            n = struct.unpack(">H", self._take(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", self._take(8))[0]
        return bool(fin), op, self._take(n)

    def recv(self):
        """The next data message (server sends unfragmented binary only)."""
        while True:
            fin, op, p = self.recv_frame()
            if op == 8:
                raise Closed("close %d %r" % (struct.unpack(">H", p[:2])[0] if len(p) >= 2 else 0, p[2:]))
            if op in (9, 10):
                continue
            assert fin and op == 2, "server message must be one binary frame, got op %d fin %s" % (op, fin)
            return p

    def recv_json(self):
        return json.loads(self.recv())

    def close_code(self, timeout=10.0):
        """Read until a close frame; return its code (None: socket ended)."""
        self.s.settimeout(timeout)
        try:
            while True:
                fin, op, p = self.recv_frame()
                if op == 8:
                    return struct.unpack(">H", p[:2])[0] if len(p) >= 2 else 0
        except (Closed, ssl.SSLError, OSError):
            return None

    def handshake(self, proto="json", key=None):
        key = key or Ed25519PrivateKey.generate()
        pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        ch = self.recv_json()
        assert ch["type"] == "user_challenge", ch
        sig = key.sign(ch["challenge"].encode())
        self.send(json.dumps({"type": "user_challenge_response", "sig": sig.hex(),
                              "pubkey": "ed" + pub.hex(),
                              "server_challenge": os.urandom(16).hex(), "protocol": proto}))
        r = self.recv_json()
        assert r["type"] == "server_challenge_response", r
        return ch, r

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def bson_doc(fields):
    """A BSON document of string and binary fields."""
    body = b""
    for k, v in fields.items():
        if isinstance(v, bytes):
            body += b"\x05" + k.encode() + b"\0" + struct.pack("<i", len(v)) + b"\x00" + v
        else:
            s = v.encode() + b"\0"
            body += b"\x02" + k.encode() + b"\0" + struct.pack("<i", len(s)) + s
    return struct.pack("<i", len(body) + 5) + body + b"\0"


# ---- clusters and the JS client ----

def echo_bundle(root, script=ECHO):
    assert os.path.isdir(LIB), "run scripts/setup (npm ci in tests/interop) first"
    b = os.path.join(root, "bundle-echo")
    os.makedirs(os.path.join(b, "node_modules"))
    shutil.copy(script, os.path.join(b, "index.js"))
    shutil.copytree(LIB, os.path.join(b, "node_modules", "hotpocket-nodejs-contract"))
    with open(os.path.join(b, "hp.cfg.override"), "w") as f:
        json.dump({"contract": {"bin_path": NODE, "bin_args": "index.js"}}, f)
    return b


def cluster(c, n=1, roundtime=500, user=None, contract=None, echo=False, script=ECHO, bundle=None):
    """n nodes; echo: the JS echo contract (or script) deployed, or bundle:
    that contract bundle deployed instead."""
    echo = echo or bundle is not None
    if echo:
        os.chmod(c.root, 0o755)
    cl = Cluster(c, n, roundtime=roundtime)
    for nd in cl.nodes:
        def edit(cfg):
            cfg["user"].update(user or {})
            cfg["contract"].update(contract or {})
        nd.edit_cfg(edit)
    if echo:
        b = bundle or echo_bundle(c.root, script)
        for nd in cl.nodes:
            r = run(HPD, "deploy", nd.dir, b)
            assert r.returncode == 0, r.stderr
    cl.start()
    return cl


def uport(cl, i=0):
    return cl.nodes[i].cfg()["user"]["port"]


def url(cl, i=0):
    return "wss://localhost:%d" % uport(cl, i)


def js(scenario, timeout=60, **opts):
    r = subprocess.run([NODE, CLIENT, scenario, json.dumps(opts)], capture_output=True,
                       text=True, timeout=timeout)
    for line in reversed(r.stdout.splitlines()):
        if line.startswith("RESULT "):
            res = json.loads(line[7:])
            assert "error" not in res, res["error"]
            return res
    raise AssertionError("hpclient %s: rc %d, no result: %s %s" % (scenario, r.returncode, r.stdout[-2000:], r.stderr[-2000:]))


def wait_users(cl):
    """The gateway is up and consensus has told it the cluster status."""
    for i in range(len(cl.nodes)):
        wait_for("gateway %d listening" % i, lambda: cl.show(i, "gateway")["listening"], 15, 0.2)
    cl.wait_ledgers(2, timeout=30)


def gateway_rss_kb(nd):
    pid = nd.worker("gateway")["pid"]
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


# ---- transport ----

def test_upgrade_challenge_and_frames():
    with Case() as c:
        cl = cluster(c)
        wait_users(cl)
        ws = WS(uport(cl))
        ch = ws.recv_json()
        assert ch["type"] == "user_challenge" and ch["hp_version"].startswith("0.6."), ch
        assert ch["contract_id"] == cl.nodes[0].cfg()["contract"]["id"], ch
        assert len(ch["challenge"]) == 32 and int(ch["challenge"], 16) >= 0, ch
        # ping → pong with the same payload
        ws.send_frame(9, b"hello")
        fin, op, p = ws.recv_frame()
        assert (op, p) == (10, b"hello"), (op, p)
        # close → close 1000
        ws.send_frame(8, struct.pack(">H", 1000))
        assert ws.close_code() == 1000
        # TLS below 1.2 is refused.
        raw = socket.create_connection(("127.0.0.1", uport(cl)), timeout=5)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        s = ctx.wrap_socket(raw)
        assert s.version() == "TLSv1.2", s.version()
        s.close()


def test_bad_frames_close_1002():
    with Case() as c:
        cl = cluster(c, user={"max_bytes_per_msg": 65536})
        wait_users(cl)
        ws = WS(uport(cl))
        ws.recv_json()
        # A frame announcing more than user.max_bytes_per_msg: closed at
        # its first payload bytes, long before the rest arrives.
        ws.send_frame(2, b"x" * 16, length=65537)
        assert ws.close_code() == 1002
        ws = WS(uport(cl))
        ws.recv_json()
        ws.send_frame(2, b"x" * 10, mask=False)
        assert ws.close_code() == 1002, "unmasked client frames are a protocol error"
        # A bad upgrade request gets 400.
        t = WS(uport(cl), upgrade=False)
        t.s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        t._more()
        assert t.buf.startswith(b"HTTP/1.1 400"), t.buf


def test_handshake_timeout_and_bad_signature():
    with Case() as c:
        cl = cluster(c)
        wait_users(cl)
        ws = WS(uport(cl))
        ws.recv_json()
        t0 = time.monotonic()
        ws.close_code(timeout=15)
        took = time.monotonic() - t0
        assert 4.0 <= took <= 7.5, "a silent unverified client is closed after ~5 s, took %.1f" % took
        # A response signed with another key: closed, no reply.
        ws = WS(uport(cl))
        ch = ws.recv_json()
        k, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
        pub = k.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        ws.send(json.dumps({"type": "user_challenge_response",
                            "sig": other.sign(ch["challenge"].encode()).hex(),
                            "pubkey": "ed" + pub.hex(), "server_challenge": "00" * 16,
                            "protocol": "json"}))
        t0 = time.monotonic()
        assert ws.close_code(timeout=10) in (None, 1000, 1002, 1008)
        assert time.monotonic() - t0 < 3, "a bad handshake signature closes at once"


def test_raw_client_after_handshake():
    """Malformed JSON and BSON, unknown types, bad signatures, duplicate keys."""
    with Case() as c:
        cl = cluster(c)
        wait_users(cl)
        key = Ed25519PrivateKey.generate()
        ws = WS(uport(cl))
        ch, r = ws.handshake("json", key)
        assert r["pubkey"] == cl.keys[0], r
        assert r["unl"] == [cl.keys[0]], r
        ws.send("{not json")
        m = ws.recv_json()
        assert (m["type"], m["status"], m["reason"]) == ("contract_input_status", "rejected", "bad_msg_format"), m
        ws.send(json.dumps({"type": "no_such_type"}))
        m = ws.recv_json()
        assert m["reason"] == "invalid_msg_type", m
        ws.send(json.dumps({"type": "stat"}))
        m = ws.recv_json()
        assert m["type"] == "stat_response" and m["current_unl"] == [cl.keys[0]], m
        # An input whose signature does not cover the container.
        cont = json.dumps({"input": "x", "nonce": 1, "max_ledger_seq_no": 10 ** 6})
        sig = key.sign(b"something else")
        ws.send(json.dumps({"type": "contract_input", "input_container": cont, "sig": sig.hex()}))
        m = ws.recv_json()
        assert m["reason"] == "bad_sig", m
        assert m["input_hash"] == blake3_hex(sig), m
        # The same key again from a second connection: refused before any reply.
        ws2 = WS(uport(cl))
        ch2 = ws2.recv_json()
        pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        ws2.send(json.dumps({"type": "user_challenge_response", "sig": key.sign(ch2["challenge"].encode()).hex(),
                             "pubkey": "ed" + pub.hex(), "server_challenge": "11" * 16, "protocol": "json"}))
        try:
            m = ws2.recv_json()
            raise AssertionError("duplicate user got a reply: %r" % m)
        except (Closed, ssl.SSLError, OSError):
            pass
        # BSON: garbage, then a stat that decodes.
        wb = WS(uport(cl))
        wb.handshake("bson")
        wb.send(b"\x05\x00\x00\x00\x01garbage")
        m = wb.recv()
        assert b"bad_msg_format" in m, m
        wb.send(bson_doc({"type": "lcl"}))
        m = wb.recv()
        assert b"lcl_response" in m, m
        show = cl.show(0, "gateway")
        assert show["verified_users"] == 2, show
        assert show["inputs_rejected"]["bad_sig"] == 1, show


def blake3_hex(data):
    r = subprocess.run([NODE, "-e", "const b=require(process.argv[1]);"
                        "process.stdout.write(b.hash(Buffer.from(process.argv[2],'hex')).toString('hex'))",
                        os.path.join(INTEROP, "node_modules", "blake3"), data.hex()],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_many_connections_do_not_leak():
    with Case() as c:
        cl = cluster(c)
        wait_users(cl)
        nd = cl.nodes[0]
        pid = nd.worker("gateway")["pid"]
        before_seq = cl.last_seq(0)
        rss0 = None
        for batch in range(10):
            socks = [WS(uport(cl)) for _ in range(100)]
            for s in socks:
                s.recv_json()
            for s in socks:
                s.close()
            if batch == 1:
                time.sleep(0.5)
                rss0 = gateway_rss_kb(nd)
        wait_for("connections drained", lambda: cl.show(0, "gateway")["connections"] == 0, 15, 0.2)
        rss1 = gateway_rss_kb(nd)
        assert rss1 <= rss0 + 8 * 1024, "gateway RSS grew from %d to %d kB" % (rss0, rss1)
        assert nd.worker("gateway")["pid"] == pid, "gateway restarted"
        show = cl.show(0, "gateway")
        assert show["accepted"] >= 1000, show
        wait_for("ledgers keep closing", lambda: cl.last_seq(0) >= before_seq + 3, 20, 0.2)


def test_gateway_restart_drops_only_users():
    with Case() as c:
        cl = cluster(c)
        wait_users(cl)
        nd = cl.nodes[0]
        pids = nd.worker_pids()
        ws = WS(uport(cl))
        ws.handshake()
        nd.ctl("restart", "gateway")
        assert ws.close_code(timeout=10) in (None, 1000, 1001)
        wait_for("gateway back", lambda: nd.worker("gateway")["pid"] != pids["gateway"]
                 and nd.worker("gateway")["state"] == "ready", 20, 0.2)
        now = nd.worker_pids()
        for w in ("consensus", "peer", "state", "runner"):
            assert now[w] == pids[w], "%s restarted with the gateway" % w
        seq = cl.last_seq(0)
        r = js("connect", servers=[url(cl)])
        assert r["connected"], r
        wait_for("ledgers keep closing", lambda: cl.last_seq(0) >= seq + 2, 20, 0.2)


# ---- the real client ----

def test_js_connect_stat_lcl_json_and_bson():
    with Case() as c:
        cl = cluster(c)
        wait_users(cl)
        for proto in ("json", "bson"):
            for trusted in (None, [cl.keys[0]]):
                r = js("stat", servers=[url(cl)], protocol=proto, trusted=trusted)
                assert r["connected"], (proto, trusted, r)
                st = r["stat"]
                assert st["hpVersion"].startswith("0.6."), st
                unl = st["currentUnl"]
                assert [u if u.startswith("ed") else "ed" + u for u in unl] == [cl.keys[0]], st
                assert st["roundTime"] == 500, st
                assert r["lcl2"]["ledgerSeqNo"] > r["lcl1"]["ledgerSeqNo"], r
        r = js("connect", servers=[url(cl)], contractId="00000000-0000-4000-8000-000000000000")
        assert r["connected"] is False, r


def test_js_ledger_events_and_three_nodes():
    with Case() as c:
        cl = cluster(c, 3, roundtime=800)
        wait_users(cl)
        r = js("events", servers=[url(cl)], count=3, trusted=list(cl.keys))
        assert r["connected"], r
        seqs = r["seqs"]
        assert len(seqs) >= 3 and seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs
        r = js("stat", servers=[url(cl, i) for i in range(3)], required=3, trusted=list(cl.keys))
        assert r["connected"], r
        assert isinstance(r["stat"], list) and len(r["stat"]) == 3, r
        for st in r["stat"]:
            assert sorted(st["currentUnl"]) == sorted(cl.keys), st


def test_js_bad_inputs():
    with Case() as c:
        cl = cluster(c, contract={"max_input_ledger_offset": 10})
        wait_users(cl)
        r = js("badinputs", servers=[url(cl)])
        assert r["connected"], r
        assert r["replay"] == {"status": "rejected", "reason": "nonce_expired"}, r
        assert r["expired"] == {"status": "rejected", "reason": "max_ledger_expired"}, r
        assert r["far"] == {"status": "rejected", "reason": "max_ledger_offset_exceeded"}, r


# ---- with the consensus and runner sides (echo contract) ----

def test_js_inputs_outputs_verified():
    with Case() as c:
        # Three nodes: the inputs are relayed to the other two, and each
        # output carries the signatures of the UNL the client checks.
        cl = cluster(c, 3, echo=True, roundtime=1000)
        wait_users(cl)
        for proto in ("json", "bson"):
            r = js("inputs", timeout=120, servers=[url(cl)], protocol=proto, trusted=[cl.keys[0]],
                   count=100, query=True)
            assert r["connected"], r
            acc = [s for s in r["statuses"] if s["status"] == "accepted"]
            assert len(acc) == 100, r["statuses"][:5]
            assert sorted(r["outputs"]) == sorted("echo:input-%d" % i for i in range(100)), (proto, r["outputs"][:5])
            led = r["ledger"]
            led = led[0] if isinstance(led, list) else led
            assert led is not None and led["inputs"] and led["outputs"] is not None, led


def test_outputs_delivered_when_one_node_runs_late():
    """One node's runs end 700 ms after the others' (roundtime 500): its
    output root must reach the next round's first proposal, so that every
    ledger with inputs still carries the agreed root and every output is
    delivered, verified by the client against the UNL's signatures."""
    with Case() as c:
        cl = cluster(c, 3, echo=True, roundtime=500, script=SLOWECHO)
        wait_users(cl)
        r = js("inputs", timeout=120, servers=[url(cl)], protocol="json", trusted=[cl.keys[0]],
               count=30)
        assert r["connected"], r
        assert sorted(r["outputs"]) == sorted("echo:input-%d" % i for i in range(30)), r["outputs"][:5]
        for i in range(3):
            assert "carries no outputs" not in cl.nodes[i].log(), i


def test_every_user_of_a_run_gets_its_outputs():
    """24 users in one run: the contract gets an output socket for each
    (fds 6..29) and every user receives the echo of every input. Catches a
    contract fd lost between the supervisor and exec (an atfork handler
    that reopened a pipe by number over a user's socket lost two users'
    outputs for good once a run had about ten users)."""
    loadgen = os.path.join(BUILD, "tests", "tools", "loadgen")
    with Case() as c:
        cl = cluster(c, 1, echo=True, roundtime=500, contract={"max_input_ledger_offset": 60})
        wait_users(cl)
        r = subprocess.run([loadgen, "--ports", str(uport(cl)), "--conns", "24", "--window", "4",
                            "--inputs", "1200", "--duration", "3", "--warmup", "1", "--drain", "8",
                            "--ledger-offset", "50", "--output-wait", "8"],
                           capture_output=True, text=True, timeout=120)
        res = [json.loads(l[7:]) for l in r.stdout.splitlines() if l.startswith("RESULT ")]
        assert r.returncode == 0 and res, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
        res = res[0]
        assert res["accepted"] > 24 * 4 and res["rejected"] == 0, res
        # Every input sent, warm-up included, came back to its user.
        assert res["missing_outputs"] == 0 and res["no_output_all"] == 0, (res, r.stderr[-2000:])
        assert res["users_without_some_output"] == 0, (res, r.stderr[-2000:])
        # Every user was heard from in the runs: 24 users had outputs.
        assert cl.show(0, "gateway")["outputs_sent"] >= 24, cl.show(0, "gateway")


def test_overload_is_refused_and_ledgers_keep_closing():
    """Three times the inputs a 3-node cluster commits, for 6 s, from 60
    users: the excess is refused (round_inputs_overflow) while ledgers keep
    closing at their pace, every accepted input's output arrives, and no
    node falls out of the cluster. (Pools kept in sorted arrays stalled
    consensus for seconds here: each add and remove moved the pool's tail;
    inputs a full node dropped while the others voted them in left its
    state behind.)"""
    import re
    import test_c_contract
    loadgen = os.path.join(BUILD, "tests", "tools", "loadgen")
    with Case() as c:
        cl = cluster(c, 3, roundtime=500, bundle=test_c_contract.bundle(c.root),
                     contract={"max_input_ledger_offset": 80})
        wait_users(cl)
        ports = ",".join(str(uport(cl, i)) for i in range(3))
        r = subprocess.run([loadgen, "--ports", ports, "--conns", "60", "--window", "4000",
                            "--rate", "20000", "--inputs", "140000", "--duration", "6", "--warmup", "1",
                            "--drain", "10", "--ledger-offset", "75", "--output-wait", "10"],
                           capture_output=True, text=True, timeout=300)
        res = [json.loads(l[7:]) for l in r.stdout.splitlines() if l.startswith("RESULT ")]
        assert r.returncode == 0 and res, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
        res = res[0]
        print("  overload: %s" % json.dumps({k: res[k] for k in ("inputs_per_s", "sent", "accepted",
                                                                  "rejected", "no_output_all")}))
        assert res["rejected"] > 0 and set(res["reasons"]) == {"round_inputs_overflow"}, res
        assert res["accepted"] > 10000, res
        assert res["no_output_all"] == 0, (res, r.stderr[-2000:])
        # Ledgers kept closing: no gap of 5 s (10 rounds) between two on any node.
        for i in range(3):
            ts = [int(h) * 3600000 + int(m) * 60000 + int(sec) * 1000 + int(ms) for h, m, sec, ms in
                  re.findall(r" (\d\d):(\d\d):(\d\d)\.(\d\d\d) \[inf\]\[consensus\] \*\*\*\*Ledger created",
                             cl.nodes[i].log())]
            gaps = [b - a for a, b in zip(ts, ts[1:])]
            assert ts and max(gaps) < 5000, (i, max(gaps), gaps)
            assert "skipped" not in cl.nodes[i].log(), i
        # The flood over, every node drains its pool and takes its own
        # users' inputs again.
        for i in range(3):
            wait_for("node %d pool empty, own users taken again" % i,
                     lambda i=i: (lambda x: x["pool"] == 0 and x["relayed_queued"] == 0 and
                                  not x["refusing_own_users"])(cl.show(i, "consensus")["inputs"]),
                     30, 0.5)
        cl.check_no_fork()


def test_js_read_request_and_ledger_query():
    with Case() as c:
        cl = cluster(c, echo=True, roundtime=1000, user={"concurrent_read_requests": 4})
        wait_users(cl)
        r = js("read", servers=[url(cl)], request="hello")
        assert r["connected"] and r["reply"] is not None and "hello" in json.dumps(r["reply"]), r
        r = js("ledger", servers=[url(cl)], seq=2)
        assert r["connected"] and r["ledger"] is not None and r["ledger"]["seqNo"] == 2, r
        r = js("ledger", servers=[url(cl)], seq=10 ** 9)
        assert r["connected"] and r["ledger"] is None, r


def test_js_read_requests_run_in_parallel():
    """Four read requests whose runs each take 1.5 s come back together, not
    one after the other, and ledgers keep closing meanwhile."""
    with Case() as c:
        cl = cluster(c, echo=True, script=SLOWREAD, roundtime=1000,
                     user={"concurrent_read_requests": 4})
        wait_users(cl)
        before = cl.last_seq(0)
        r = js("reads", servers=[url(cl)], count=4)
        assert r["connected"], r
        got = sorted(x["reply"] for x in r["replies"])
        assert got == ["read:read-%d" % i for i in range(4)], r
        assert r["totalMs"] < 4000, r
        assert all(x["ms"] >= 1400 for x in r["replies"]), r
        s = cl.show(0, "runner")
        assert s["read_runs"] >= 4 and s["read_runs_running"] == 0, s
        cl.wait_ledgers(before + 3, timeout=30)


if __name__ == "__main__":
    main([
        test_upgrade_challenge_and_frames,
        test_bad_frames_close_1002,
        test_handshake_timeout_and_bad_signature,
        test_raw_client_after_handshake,
        test_many_connections_do_not_leak,
        test_gateway_restart_drops_only_users,
        test_js_connect_stat_lcl_json_and_bson,
        test_js_ledger_events_and_three_nodes,
        test_js_bad_inputs,
        test_js_inputs_outputs_verified,
        test_every_user_of_a_run_gets_its_outputs,
        test_outputs_delivered_when_one_node_runs_late,
        test_overload_is_refused_and_ledgers_keep_closing,
        test_js_read_request_and_ledger_query,
        test_js_read_requests_run_in_parallel,
    ])
