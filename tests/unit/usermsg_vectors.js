/*
 * usermsg_vectors.js — checks hpd's contract_output messages with the real
 * hotpocket-js-client 0.5.7 (tests/interop/node_modules), for
 * tests/unit/test_usermsg.c.
 *
 * The client's output check (verifyContractOutputTrust, getMerkleHash,
 * validateHashSignatures) and its MessageHelper are closures inside the
 * client, so their text is cut out of the installed index.js and run here
 * unchanged, with the client's own blake3, libsodium and bson modules.
 *
 *   node usermsg_vectors.js FILE   one case per line, JSON:
 *     {proto, pubkey, trusted:[hex], msg:hex, leaves:[hex], root:hex}
 *     prints "ok" per case that the client accepts and whose root matches
 *     an independent BLAKE3 16-ary tree; exit 1 on any failure
 *   node usermsg_vectors.js --roots   prints the tree roots hard-coded in
 *     test_usermsg.c
 */
"use strict";
const fs = require("fs");
const path = require("path");

const mods = path.join(__dirname, "..", "interop", "node_modules");
const need = (m) => require(path.join(mods, m));
const blake3 = need("blake3");

/* An independent tree root: groups of 16, a group of one is its child. */
function treeRoot(leaves) {
	let level = leaves;
	if (level.length === 0)
		return Buffer.alloc(32);
	while (level.length > 1) {
		const next = [];
		for (let i = 0; i < level.length; i += 16) {
			const g = level.slice(i, i + 16);
			next.push(g.length === 1 ? g[0] :
			    blake3.hash(Buffer.concat(g)));
		}
		level = next;
	}
	return level[0];
}

/* Leaf i of the test trees (test_usermsg.c test_leaf). */
function testLeaf(i) {
	const b = Buffer.alloc(32, 0xa5);
	b[0] = i & 0xff;
	b[1] = (i >> 8) & 0xff;
	return b;
}

/* The text of the declaration that starts at `start`, to its matching brace. */
function cut(src, start) {
	const at = src.indexOf(start);
	if (at < 0)
		throw new Error("client source lacks " + start);
	let depth = 0;
	for (let i = src.indexOf("{", at); i < src.length; i++) {
		if (src[i] === "{")
			depth++;
		else if (src[i] === "}" && --depth === 0)
			return src.slice(at, i + 1);
	}
	throw new Error("unbalanced " + start);
}

async function clientChecker(pubkey, proto) {
	const sodium = need("libsodium-wrappers");
	await sodium.ready;
	const bson = need("bson");
	const src = fs.readFileSync(path.join(mods, "hotpocket-js-client",
	    "index.js"), "utf8");
	const a = src.indexOf("const getHash = (arr) =>");
	const b = src.indexOf("const processUnlUpdate");
	if (a < 0 || b < a)
		throw new Error("client source has changed");
	const body = [
	    cut(src, "const protocols = {"),
	    cut(src, "function MessageHelper("),
	    cut(src, "function hexToUint8Array("),
	    cut(src, "function uint8ArrayToHex("),
	    cut(src, "function isString("),
	    cut(src, "function arraysEqual("),
	    "const msgHelper = new MessageHelper(clientKeys, proto);",
	    src.slice(a, b),
	    "return { msgHelper, verifyContractOutputTrust, getMerkleHash };",
	].join("\n");
	const f = new Function("blake3", "sodium", "bson", "clientKeys", "proto",
	    "liblog", "outputValidationPassThreshold", body);
	const logs = [];
	return { logs, api: f(blake3, sodium, bson, { publicKey: pubkey },
	    proto, (lvl, m) => logs.push(m), 0.8) };
}

async function check(c) {
	const pubkey = new Uint8Array(Buffer.from(c.pubkey, "hex"));
	const { logs, api } = await clientChecker(pubkey, c.proto);
	const raw = Buffer.from(c.msg, "hex");
	const msg = api.msgHelper.deserializeMessage(c.proto === "json" ?
	    raw.toString("utf8") : raw);
	const trusted = {};
	c.trusted.forEach(k => trusted[k] = true);
	const leaves = c.leaves.map(h => Buffer.from(h, "hex"));
	const root = treeRoot(leaves).toString("hex");
	if (root !== c.root)
		return `root ${c.root} != independent ${root}`;
	const selfHash = api.msgHelper.binaryDecode(msg.output_hash);
	const [found, croot] = api.getMerkleHash(msg.hash_tree, selfHash);
	if (!found || Buffer.from(croot).toString("hex") !== root)
		return "client tree root differs: " + JSON.stringify(logs);
	if (!api.verifyContractOutputTrust(msg, trusted))
		return "client rejected: " + JSON.stringify(logs);
	return null;
}

async function main() {
	if (process.argv[2] === "--roots") {
		for (const n of [1, 2, 16, 17, 300]) {
			const l = [];
			for (let i = 0; i < n; i++)
				l.push(testLeaf(i));
			console.log(n, treeRoot(l).toString("hex"));
		}
		return 0;
	}
	const lines = fs.readFileSync(process.argv[2], "utf8").split("\n")
	    .filter(l => l.length > 0);
	let bad = 0;
	for (const [i, l] of lines.entries()) {
		const why = await check(JSON.parse(l));
		console.log(why ? `FAIL ${i}: ${why}` : `ok ${i}`);
		if (why)
			bad++;
	}
	return bad ? 1 : 0;
}

main().then(rc => process.exit(rc), e => {
	console.log("FAIL " + e);
	process.exit(1);
});
