// patcher — reads its configuration every run (config.txt: "SEQ ROUNDTIME
// UNLSIZE") and, from ledger 4 on, sets consensus.roundtime to 600 through
// ctx.updateConfig (the same on every node, so the patch hash agrees).
const HotPocket = require("hotpocket-nodejs-contract");
const fs = require("fs");

async function contract(ctx) {
    if (ctx.readonly)
        return;
    const cfg = await ctx.getConfig();
    fs.appendFileSync("config.txt",
        `${ctx.lclSeqNo} ${cfg.consensus.roundtime} ${cfg.unl.length}\n`);
    if (ctx.lclSeqNo >= 4 && cfg.consensus.roundtime !== 600) {
        cfg.consensus.roundtime = 600;
        await ctx.updateConfig(cfg);
    }
}

new HotPocket.Contract().init(contract);
