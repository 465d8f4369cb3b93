// colors — HotPocket's instance-sync tutorial contract: prints its command
// line arguments (bin_args "index.js red green blue") and whether this node
// is in the UNL; a user input is taken as a node public key and added to
// the UNL through ctx.updateConfig (no governance: a test contract).
const HotPocket = require("hotpocket-nodejs-contract");
const process = require("process");

async function contract(ctx) {
    if (ctx.readonly)
        return;
    console.log("These are my cli args", process.argv.slice(2));
    if (ctx.unl.find(ctx.publicKey))
        console.log("I'm in the UNL.");
    else
        console.log("I'm NOT in the UNL. My public key:", ctx.publicKey);
    for (const user of ctx.users.list()) {
        for (const input of user.inputs) {
            const key = (await ctx.users.read(input)).toString().trim();
            const config = await ctx.getConfig();
            if (/^ed[0-9a-f]{64}$/.test(key) && !config.unl.includes(key)) {
                config.unl.push(key);
                await ctx.updateConfig(config);
                console.log("Added new public key to UNL.");
            }
        }
    }
}

new HotPocket.Contract().init(contract);
