// hang — never ends: the node must kill it at round_limits.exec_timeout.
const HotPocket = require("hotpocket-nodejs-contract");
const fs = require("fs");

async function contract(ctx) {
    fs.appendFileSync("started.txt", `${ctx.lclSeqNo}\n`);
    setInterval(() => {}, 1000);
    await new Promise(() => {});
}

new HotPocket.Contract().init(contract);
