// slowecho-contract.js — the echo contract, except that on the UNL member
// with the smallest public key every run with inputs takes 700 ms longer:
// that node reports its run, and so its output root, well after the others
// have started the next round (tests/integration/test_gateway.py).
const HotPocket = require("hotpocket-nodejs-contract");

async function contract(ctx) {
    const keys = ctx.unl.list().map(n => n.publicKey).sort();
    let any = false;
    for (const user of ctx.users.list()) {
        for (const input of user.inputs) {
            const buf = await ctx.users.read(input);
            await user.send(Buffer.from("echo:" + buf.toString()));
            any = true;
        }
    }
    if (any && ctx.publicKey === keys[0])
        await new Promise(r => setTimeout(r, 700));
}

new HotPocket.Contract().init(contract);
