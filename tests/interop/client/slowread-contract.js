// slowread-contract.js — the contract test_gateway.py deploys to see read
// requests run side by side: a read request's run waits 1500 ms, then
// sends "read:" + the request back; a consensus run echoes its inputs at
// once ("echo:" + the input), so ledgers keep closing meanwhile.
const HotPocket = require("hotpocket-nodejs-contract");

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function contract(ctx) {
    if (ctx.readonly)
        await sleep(1500);
    for (const user of ctx.users.list()) {
        for (const input of user.inputs) {
            const buf = await ctx.users.read(input);
            await user.send(Buffer.from((ctx.readonly ? "read:" : "echo:") + buf.toString()));
        }
    }
}

new HotPocket.Contract().init(contract);
