// npl — every consensus run sends one NPL message to the other instances
// and records, in npl.txt, which UNL members' messages reached it before
// it stopped waiting (at most 700 ms): "SEQ SENDER8,SENDER8,...".
const HotPocket = require("hotpocket-nodejs-contract");
const fs = require("fs");

async function contract(ctx) {
    if (ctx.readonly)
        return;
    const from = new Set();
    const all = new Promise((resolve) => {
        ctx.unl.onMessage((node, msg) => {
            if (node && msg.toString() === `npl ${ctx.lclSeqNo}`)
                from.add(node.publicKey.substring(2, 10));
            if (from.size === ctx.unl.count())
                resolve();
        });
    });
    await ctx.unl.send(`npl ${ctx.lclSeqNo}`);
    await Promise.race([all, new Promise((r) => setTimeout(r, 700))]);
    fs.appendFileSync("npl.txt", `${ctx.lclSeqNo} ${[...from].sort().join(",")}\n`);
    // A blocked read on the NPL socket keeps the process from exiting
    // until one more packet arrives: our own last message is delivered
    // back to us and frees it.
    await ctx.unl.send("done");
    process.exit(0);
}

new HotPocket.Contract().init(contract);
