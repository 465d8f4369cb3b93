// echo-contract.js — the contract tests/integration/test_gateway.py deploys:
// every input and read request comes back to its user as raw bytes
// ("echo:" + the input), so that hotpocket-js-client's output check passes
// in JSON mode as well as BSON (spec: outputs that look like JSON fail it).
const HotPocket = require("hotpocket-nodejs-contract");

async function contract(ctx) {
    for (const user of ctx.users.list()) {
        for (const input of user.inputs) {
            const buf = await ctx.users.read(input);
            await user.send(Buffer.from("echo:" + buf.toString()));
        }
    }
}

new HotPocket.Contract().init(contract);
