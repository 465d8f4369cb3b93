// flood — for an input "N SIZE" sends its user N outputs of SIZE bytes
// each ("0001xxxx..."), more than round_limits.user_output_bytes allows,
// then notes in flood.txt that it got to the end (the library's send
// never reports the failed writes past the limit).
const HotPocket = require("hotpocket-nodejs-contract");
const fs = require("fs");

async function contract(ctx) {
    for (const user of ctx.users.list()) {
        for (const input of user.inputs) {
            const [n, size] = (await ctx.users.read(input)).toString().split(" ").map(Number);
            for (let i = 0; i < n; i++) {
                const head = String(i).padStart(4, "0");
                await user.send(Buffer.from(head + "x".repeat(Math.max(0, size - 4))));
            }
            fs.appendFileSync("flood.txt", `${ctx.lclSeqNo} sent=${n}\n`);
        }
    }
}

new HotPocket.Contract().init(contract);
