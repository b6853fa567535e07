// Reference side of the tokenizer parity test: @huggingface/tokenizers (pure JS) encodes every text of a
// length-prefixed batch file (bytes decoded as TextDecoder does: invalid UTF-8 -> U+FFFD) and writes ids and
// decode(ids) (no clean-up of tokenization spaces, as the Rust library does). Usage: node tok_ref.mjs DIR IN OUT
import { readFileSync, writeFileSync, existsSync } from "node:fs";
import { Tokenizer } from "@huggingface/tokenizers";

const [dir, inPath, outPath] = process.argv.slice(2);
const json = JSON.parse(readFileSync(`${dir}/tokenizer.json`, "utf8"));
const cfgPath = `${dir}/tokenizer_config.json`;
const cfg = existsSync(cfgPath) ? JSON.parse(readFileSync(cfgPath, "utf8")) : {};
const tok = new Tokenizer(json, cfg);
const data = readFileSync(inPath);
const dec = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });
const enc = new TextEncoder();
const chunks = [];
let pos = 0;
const t0 = performance.now();
let bytes = 0;
while (pos < data.length) {
  const n = data.readUInt32LE(pos);
  pos += 4;
  const text = dec.decode(data.subarray(pos, pos + n));
  pos += n;
  bytes += n;
  const ids = tok.encode(text).ids;
  const back = ids.length ? enc.encode(tok.decode(ids, { clean_up_tokenization_spaces: false })) : new Uint8Array();
  const head = Buffer.alloc(4 + 4 * ids.length + 4);
  head.writeUInt32LE(ids.length, 0);
  ids.forEach((id, i) => head.writeInt32LE(id, 4 + 4 * i));
  head.writeUInt32LE(back.length, 4 + 4 * ids.length);
  chunks.push(head, Buffer.from(back));
}
const ms = performance.now() - t0;
writeFileSync(outPath, Buffer.concat(chunks));
process.stderr.write(`reference: ${bytes} bytes in ${ms.toFixed(0)} ms (${(bytes / 1e3 / ms).toFixed(2)} MB/s)\n`);
