// Generate tests/fixtures/tokenizer_minimind_added.jsonl: how Hugging Face tokenizers (npm
// @huggingface/tokenizers) treat minimind's added tokens, special ("<|im_end|>") and not
// ("<think>", "<tool_call>": "special": false in tokenizer.json). For each text:
//   ids        encode as is: every added token becomes its id (our allow_special = 1)
//   ids_split  encode with the special added tokens split into ordinary text, as transformers'
//              split_special_tokens does: the same tokenizer.json with the special entries taken
//              out of added_tokens; non-special added tokens still become their ids (our
//              allow_special = 0)
// and "special": the ids of added tokens marked special.
//
//   cd tests && npm install && cd .. && node tests/gen_added_tokens_fixture.js
"use strict";
const path = require("path");
const fs = require("fs");
const { Tokenizer } = require(path.join(__dirname, "node_modules", "@huggingface", "tokenizers"));

const src = path.join(__dirname, "..", "..", "shared", "data", "minimind", "tokenizer.json");
const json = JSON.parse(fs.readFileSync(src, "utf8"));
const full = new Tokenizer(json, {});
const splitJson = JSON.parse(JSON.stringify(json));
splitJson.added_tokens = splitJson.added_tokens.filter((a) => !a.special);
const split = new Tokenizer(splitJson, {});

const texts = [
  "<think>\nLet me think.\n</think>\n\nAnswer.<|im_end|>",
  "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>",
  "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>x</think>y",
  "plain text, no added tokens",
  "a<tool_response>b</tool_response>c<|buffer3|>d",
  "<|endoftext|><think></think>",
  "<thinking> is not <think>",
];
const lines = texts.map((text) => JSON.stringify({
  text,
  ids: Array.from(full.encode(text, { add_special_tokens: false }).ids),
  ids_split: Array.from(split.encode(text, { add_special_tokens: false }).ids),
}));
lines.push(JSON.stringify({ special: json.added_tokens.filter((a) => a.special).map((a) => a.id),
                            not_special: json.added_tokens.filter((a) => !a.special).map((a) => a.id) }));
const out = path.join(__dirname, "fixtures", "tokenizer_minimind_added.jsonl");
fs.writeFileSync(out, lines.join("\n") + "\n");
console.log("wrote " + texts.length + " strings to " + out);
