// Reference throughput: @huggingface/tokenizers (pure JS, one thread) encoding the same documents as bench.lua
// (split at blank lines), over at most MAX_MB of them. Usage: node ref_bench.mjs TOKDIR TEXT [MAX_MB]
import { readFileSync, existsSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(new URL("../../parity/", import.meta.url));
const { Tokenizer } = require("@huggingface/tokenizers");
const [dir, textPath, maxMbArg] = process.argv.slice(2);
const maxBytes = Number(maxMbArg ?? 2) * 1e6;
const json = JSON.parse(readFileSync(`${dir}/tokenizer.json`, "utf8"));
const cfgPath = `${dir}/tokenizer_config.json`;
const tok = new Tokenizer(json, existsSync(cfgPath) ? JSON.parse(readFileSync(cfgPath, "utf8")) : {});
const text = readFileSync(textPath, "utf8");
const docs = (text + "\n\n").split(/\n\n+/).filter((d) => d.length > 0);
const enc = new TextEncoder();
let bytes = 0, ntok = 0, ndocs = 0;
for (const d of docs.slice(0, 200)) tok.encode(d, { add_special_tokens: false }); // warm-up (JIT)
const t0 = performance.now();
const c0 = process.cpuUsage();
for (const d of docs) {
  if (bytes >= maxBytes) break;
  ntok += tok.encode(d, { add_special_tokens: false }).ids.length;
  bytes += enc.encode(d).length + 2;
  ndocs++;
}
const s = (performance.now() - t0) / 1e3;
const cu = process.cpuUsage(c0);
const cpu = (cu.user + cu.system) / 1e6;
console.log(`@huggingface/tokenizers (node ${process.version}, 1 thread): ${(bytes / 1e6).toFixed(1)} MB in ${s.toFixed(2)} s = ${(bytes / 1e6 / s).toFixed(2)} MB/s; ${cpu.toFixed(2)} CPU s = ${(bytes / 1e6 / cpu).toFixed(2)} MB per CPU-second (${ntok} tokens, ${ndocs} docs)`);
