// counter — appends one line per consensus run to runs.txt in its state:
// the ledger it ran for, as the library reports it (ctx.lclSeqNo, ...).
const HotPocket = require("hotpocket-nodejs-contract");
const fs = require("fs");

async function contract(ctx) {
    fs.appendFileSync("runs.txt", `${ctx.lclSeqNo} ${ctx.lclHash} ${ctx.timestamp}` +
        ` readonly=${ctx.readonly} unl=${ctx.unl.count()} users=${ctx.users.count()}\n`);
}

new HotPocket.Contract().init(contract);
