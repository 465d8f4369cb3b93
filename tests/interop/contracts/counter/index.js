// counter — appends one line per consensus run to runs.txt in its state:
// the ledger it ran for, as the library reports it (ctx.lclSeqNo, ...),
// and what it read back of the line the previous run wrote ("prev=SEQ",
// "prev=none" for the first run): state written in one round is read in
// the next.
const HotPocket = require("hotpocket-nodejs-contract");
const fs = require("fs");

async function contract(ctx) {
    let prev = "none";
    if (fs.existsSync("runs.txt")) {
        const lines = fs.readFileSync("runs.txt", "utf8").trim().split("\n");
        prev = lines[lines.length - 1].split(" ")[0];
    }
    fs.appendFileSync("runs.txt", `${ctx.lclSeqNo} ${ctx.lclHash} ${ctx.timestamp}` +
        ` readonly=${ctx.readonly} unl=${ctx.unl.count()} users=${ctx.users.count()}` +
        ` prev=${prev}\n`);
}

new HotPocket.Contract().init(contract);
