// diverge — the counter contract (one line per consensus run in runs.txt),
// except that the UNL member with the smallest public key also writes
// stray.txt in its run for ledger 4: that node's state leaves the
// cluster's once, and it must sync back and go on running the contract.
const HotPocket = require("hotpocket-nodejs-contract");
const fs = require("fs");

async function contract(ctx) {
    fs.appendFileSync("runs.txt", `${ctx.lclSeqNo} ${ctx.lclHash}\n`);
    const first = ctx.unl.list().map(n => n.publicKey).sort()[0];
    if (ctx.lclSeqNo === 4 && ctx.publicKey === first)
        fs.writeFileSync("stray.txt", "only here\n");
}

new HotPocket.Contract().init(contract);
