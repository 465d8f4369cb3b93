// crash — writes a line, then exits with status 1 on every run.
const HotPocket = require("hotpocket-nodejs-contract");
const fs = require("fs");

async function contract(ctx) {
    fs.appendFileSync("crashes.txt", `${ctx.lclSeqNo}\n`);
    process.exit(1);
}

new HotPocket.Contract().init(contract);
