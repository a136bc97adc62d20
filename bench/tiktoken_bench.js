// Encode throughput of npm tiktoken (OpenAI's Rust BPE compiled to WASM) with the GPT-2 vocabulary,
// the reference for bench/bench_tokenizer.c. Same corpus, same documents, encode_ordinary.
//
//   node bench/tiktoken_bench.js build/bench/tok_corpus.jsonl [reps]
"use strict";
const path = require("path");
const fs = require("fs");
const { get_encoding } = require(path.join(__dirname, "..", "tests", "node_modules", "tiktoken"));

const file = process.argv[2] || "build/bench/tok_corpus.jsonl";
const reps = parseInt(process.argv[3] || "3", 10);
const docs = fs.readFileSync(file, "utf8").split("\n").filter((l) => l.length).map((l) => JSON.parse(l).text);
const bytes = docs.reduce((s, d) => s + Buffer.byteLength(d, "utf8"), 0);
const enc = get_encoding("gpt2");
let best = Infinity, tokens = 0;
for (let r = 0; r < reps; r++) {
  const t0 = process.hrtime.bigint();
  let n = 0;
  for (const d of docs) n += enc.encode_ordinary(d).length;
  const dt = Number(process.hrtime.bigint() - t0) / 1e9;
  tokens = n;
  if (dt < best) best = dt;
}
enc.free();
console.log(`tiktoken (npm, WASM) gpt2: ${docs.length} docs, ${(bytes / 1e6).toFixed(2)} MB, ${tokens} tokens, ` +
  `best of ${reps}: ${best.toFixed(3)} s = ${(bytes / 1e6 / best).toFixed(2)} MB/s, ${(tokens / 1e6 / best).toFixed(2)} M tokens/s`);
