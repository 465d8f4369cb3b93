// slowcounter — appends one line per consensus run to runs.txt, then
// takes 400 ms more: its state session is open most of each round
// (tests/integration/test_runner.py restarts the runner meanwhile).
const HotPocket = require("hotpocket-nodejs-contract");
const fs = require("fs");

async function contract(ctx) {
    fs.appendFileSync("runs.txt", `${ctx.lclSeqNo}\n`);
    await new Promise(r => setTimeout(r, 400));
}

new HotPocket.Contract().init(contract);
