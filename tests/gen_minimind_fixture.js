// Generate tests/fixtures/tokenizer_minimind_hf.jsonl: token ids of minimind's tokenizer.json
// (a 6,400-token byte-level BPE with ChatML and <think> added tokens) from Hugging Face's own
// JavaScript implementation (npm @huggingface/tokenizers), as the reference for the
// tokenizer.json loader. Added tokens in the text become their ids (Hugging Face's default, i.e.
// our allow_special = 1).
//
//   cd tests && npm install && cd .. && node tests/gen_minimind_fixture.js
"use strict";
const path = require("path");
const fs = require("fs");
const { Tokenizer } = require(path.join(__dirname, "node_modules", "@huggingface", "tokenizers"));

const src = path.join(__dirname, "..", "..", "shared", "data", "minimind", "tokenizer.json");
const tok = new Tokenizer(JSON.parse(fs.readFileSync(src, "utf8")), {});

const texts = [
  "", "a", "Hello world", "Hello, world! It's 2024.", "  two spaces", "tabs\tand\nnewlines\n\n",
  "\u4f60\u597d\uff0c\u4e16\u754c\uff01", "\u65e5\u672c\u8a9e\u306e\u6587\u7ae0", "\u4e2d\u6587 English \u6df7\u5408 123",
  "\ud83d\ude00 emoji \ud83d\udc68\u200d\ud83d\udc69\u200d\ud83d\udc67", "def f(x):\n    return x * 2\n",
  "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n\u4f60\u597d<|im_end|>\n<|im_start|>assistant\n",
  "<think>\nLet me think: 12 + 30 = 42.\n</think>\n\nThe answer is 42.<|im_end|>",
  "<think></think>", "text<think>inner</think>text", "<|endoftext|>", "a<|im_end|>b",
  "<tool_call>{\"name\": \"f\"}</tool_call>", "don't DON'T we'll", "1234567890", "   \n   \n",
  "Numbers 3.14 and 1,000,000", "caf\u00e9 na\u00efve", "\u0420\u0443\u0441\u0441\u043a\u0438\u0439",
];
const lines = texts.map((text) => JSON.stringify({ text, ids: Array.from(tok.encode(text, { add_special_tokens: false }).ids) }));
const out = path.join(__dirname, "fixtures", "tokenizer_minimind_hf.jsonl");
fs.writeFileSync(out, lines.join("\n") + "\n");
console.log("wrote " + lines.length + " strings to " + out);
