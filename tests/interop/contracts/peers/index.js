// peers — asks the node, through the control channel (ctx.updatePeers),
// to add 127.0.0.1:9 to its known peers and to forget the last configured
// peer given in the environment (PEER_TO_DROP), once, at ledger 3.
const HotPocket = require("hotpocket-nodejs-contract");

async function contract(ctx) {
    if (!ctx.readonly && ctx.lclSeqNo === 3)
        await ctx.updatePeers(["127.0.0.1:9"], [process.env.PEER_TO_DROP]);
}

new HotPocket.Contract().init(contract);
