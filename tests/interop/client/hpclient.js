// hpclient.js — drives the real hotpocket-js-client 0.5.7 against hpd's user
// port for tests/integration/test_gateway.py. One scenario per run:
//
//   node hpclient.js SCENARIO 'JSON-OPTIONS'
//
// Options: servers (wss URLs), protocol ("json" | "bson"), trusted (node
// keys for trustedServerKeys), contractId, required (requiredConnectionCount),
// plus what the scenario needs. The last line printed is "RESULT " and a JSON
// object; the library's own log lines come before it.
"use strict";
const path = require("path");
const HotPocket = require(path.join(__dirname, "..", "node_modules", "hotpocket-js-client"));

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function plain(v) {
    if (Buffer.isBuffer(v) || v instanceof Uint8Array)
        return Buffer.from(v).toString("hex");
    if (Array.isArray(v))
        return v.map(plain);
    if (v && typeof v === "object") {
        const o = {};
        for (const k of Object.keys(v))
            o[k] = plain(v[k]);
        return o;
    }
    return v;
}

function done(obj) {
    console.log("RESULT " + JSON.stringify(plain(obj)));
    process.exit(0);
}

async function client(o) {
    const keys = await HotPocket.generateKeys();
    const opts = { protocol: o.protocol === "bson" ? HotPocket.protocols.bson : HotPocket.protocols.json };
    if (o.trusted)
        opts.trustedServerKeys = o.trusted;
    if (o.contractId)
        opts.contractId = o.contractId;
    if (o.required)
        opts.requiredConnectionCount = o.required;
    const c = await HotPocket.createClient(o.servers, keys, opts);
    return { c, keys };
}

const scenarios = {
    // Submit one input (o.input); collect every contract output that
    // arrives within o.waitMs.
    async outputs(o) {
        const { c } = await client(o);
        if (!await c.connect())
            done({ connected: false });
        const outputs = [];
        c.on(HotPocket.events.contractOutput, (r) => {
            for (const x of r.outputs)
                outputs.push(Buffer.isBuffer(x) ? x.toString() : String(x));
        });
        const sub = await c.submitContractInput(o.input);
        const status = await sub.submissionStatus;
        await sleep(o.waitMs || 5000);
        await c.close();
        done({ connected: true, status, outputs });
    },

    // Submit one input (o.input) and wait for its status; collect the
    // unl_change notifications seen until then.
    async submit(o) {
        const { c } = await client(o);
        if (!await c.connect())
            done({ connected: false });
        const unl = [];
        c.on(HotPocket.events.unlChange, (u) => unl.push(u));
        await c.subscribe(HotPocket.notificationChannels.unlChange);
        const sub = await c.submitContractInput(o.input);
        const status = await sub.submissionStatus;
        await sleep(o.waitMs || 0);
        await c.close();
        done({ connected: true, status, unl });
    },

    // connect() only.
    async connect(o) {
        const { c } = await client(o);
        const ok = await c.connect();
        if (ok)
            await c.close();
        done({ connected: ok });
    },

    // getStatus(), and getLcl() twice, o.gapMs apart.
    async stat(o) {
        const { c } = await client(o);
        if (!await c.connect())
            done({ connected: false });
        const stat = await c.getStatus();
        const lcl1 = await c.getLcl();
        await sleep(o.gapMs || 2500);
        const lcl2 = await c.getLcl();
        await c.close();
        done({ connected: true, stat, lcl1, lcl2 });
    },

    // Subscribe to ledger_event and unl_change; collect o.count ledger events.
    async events(o) {
        const { c } = await client(o);
        if (!await c.connect())
            done({ connected: false });
        const seqs = [];
        const votes = [];
        c.on(HotPocket.events.ledgerEvent, (ev) => {
            if (ev.event === "ledger_created")
                seqs.push(ev.ledger.seqNo);
            else
                votes.push(ev.voteStatus);
        });
        await c.subscribe(HotPocket.notificationChannels.ledgerEvent);
        await c.subscribe(HotPocket.notificationChannels.unlChange);
        const deadline = Date.now() + (o.timeoutMs || 20000);
        while (seqs.length < (o.count || 3) && Date.now() < deadline)
            await sleep(100);
        await c.close();
        done({ connected: true, seqs, votes });
    },

    // Submit o.count inputs; wait for every status and every output.
    async inputs(o) {
        const { c } = await client(o);
        if (!await c.connect())
            done({ connected: false });
        const outputs = [];
        c.on(HotPocket.events.contractOutput, (r) => {
            for (const x of r.outputs)
                outputs.push(Buffer.from(x).toString());
        });
        const statuses = [];
        const pending = [];
        let nonce = Date.now();
        for (let i = 0; i < (o.count || 10); i++) {
            const sub = await c.submitContractInput("input-" + i, ++nonce, 10, true);
            pending.push(sub.submissionStatus.then((s) => statuses.push(s)));
        }
        await Promise.all(pending);
        const deadline = Date.now() + (o.timeoutMs || 30000);
        while (outputs.length < (o.count || 10) && Date.now() < deadline)
            await sleep(100);
        let ledger = null;
        const acc = statuses.find((s) => s.status === "accepted");
        if (acc && o.query)
            ledger = await c.getLedgerBySeqNo(acc.ledgerSeqNo, true, true);
        await c.close();
        done({ connected: true, statuses, outputs, ledger });
    },

    // One read request.
    async read(o) {
        const { c } = await client(o);
        if (!await c.connect())
            done({ connected: false });
        const r = await c.submitContractReadRequest(o.request || "read-me", null, o.timeoutMs || 10000);
        await c.close();
        done({ connected: true, reply: r === null ? null : Buffer.isBuffer(r) ? r.toString() : r });
    },

    // o.count read requests ("read-0", ...) sent at once, each with its
    // own id; every reply and the ms from the first send until it came.
    async reads(o) {
        const { c } = await client(o);
        if (!await c.connect())
            done({ connected: false });
        const t0 = Date.now();
        const replies = await Promise.all(Array.from({ length: o.count || 4 }, (_, i) =>
            c.submitContractReadRequest("read-" + i, "r" + i, o.timeoutMs || 20000).then((r) => ({
                reply: r === null ? null : Buffer.isBuffer(r) ? r.toString() : r,
                ms: Date.now() - t0,
            }))));
        const totalMs = Date.now() - t0;
        await c.close();
        done({ connected: true, replies, totalMs });
    },

    // getLedgerBySeqNo(o.seq).
    async ledger(o) {
        const { c } = await client(o);
        if (!await c.connect())
            done({ connected: false });
        const l = await c.getLedgerBySeqNo(o.seq, true, true);
        await c.close();
        done({ connected: true, ledger: l });
    },

    // Inputs the gateway must turn down: a replayed nonce, an expired and a
    // too-distant max ledger.
    async badinputs(o) {
        const { c } = await client(o);
        if (!await c.connect())
            done({ connected: false });
        const lcl = await c.getLcl();
        const nonce = Date.now();
        const first = await c.submitContractInput("first", nonce, 5, true);
        const replay = await c.submitContractInput("again", nonce, 5, true);
        const expired = await c.submitContractInput("late", nonce + 10, Math.max(1, lcl.ledgerSeqNo), false);
        const far = await c.submitContractInput("far", nonce + 20, lcl.ledgerSeqNo + 1000, false);
        const timeout = (p) => Promise.race([p, sleep(o.timeoutMs || 8000).then(() => ({ status: "timeout" }))]);
        const r = {
            replay: await timeout(replay.submissionStatus),
            expired: await timeout(expired.submissionStatus),
            far: await timeout(far.submissionStatus),
        };
        void first;
        await c.close();
        done(Object.assign({ connected: true }, r));
    },
};

HotPocket.setLogLevel(1);
const f = scenarios[process.argv[2]];
if (!f) {
    console.error("usage: node hpclient.js " + Object.keys(scenarios).join("|") + " JSON");
    process.exit(100);
}
f(JSON.parse(process.argv[3] || "{}")).catch((e) => {
    console.log("RESULT " + JSON.stringify({ error: String(e && e.stack || e) }));
    process.exit(1);
});
