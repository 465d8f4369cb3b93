// probe — tries what the sandbox must refuse and writes what happened into
// probe.json in its state: reading the node's hp.cfg (at its real path and
// relative to the working directory), connecting to 127.0.0.1 and making
// a new user namespace (unshare, which the seccomp deny-list refuses).
const HotPocket = require("hotpocket-nodejs-contract");
const fs = require("fs");
const net = require("net");
const { spawnSync } = require("child_process");

function tryRead(p) {
    try {
        fs.readFileSync(p);
        return "read";
    } catch (e) {
        return e.code || String(e);
    }
}

function tryConnect(port) {
    return new Promise((resolve) => {
        const s = net.connect({ host: "127.0.0.1", port: port });
        const done = (r) => { s.destroy(); resolve(r); };
        s.on("connect", () => done("connected"));
        s.on("error", (e) => done(e.code || String(e)));
        setTimeout(() => done("timeout"), 2000);
    });
}

async function contract(ctx) {
    const cfg = process.env.HPD_TEST_CFG;
    const out = {
        seq: ctx.lclSeqNo,
        cfg_abs: tryRead(cfg),
        cfg_rel: tryRead("../../cfg/hp.cfg"),
        connect: await tryConnect(parseInt(process.env.HPD_TEST_PORT, 10)),
        unshare: spawnSync("/usr/bin/unshare", ["--user", "/bin/true"]).status,
        child: spawnSync("/bin/true").status,
        uid: process.getuid(),
    };
    fs.writeFileSync("probe.json", JSON.stringify(out));
}

new HotPocket.Contract().init(contract);
