// Generate tests/fixtures/hf_export/{chat_templates,tokenizer_ids}.json: what Hugging Face's own
// JavaScript libraries make of a folder written by `distill export`.
//
//   chat_templates.json  for each built-in template: the chat_template string of the exported
//                        tokenizer_config.json (and for one custom template, the library's
//                        Jinja for it), and each conversation below rendered by npm
//                        @huggingface/jinja (the Jinja engine of transformers.js) with the
//                        add_generation_prompt flag given. test_hf_export.c checks that
//                        distill_chat_render gives the same strings and that the library still
//                        writes the same template text.
//   tokenizer_ids.json   the sha256 of the exported tokenizer.json (of the committed
//                        tests/fixtures/hf_export/tokenizer_small.txt) and the ids npm
//                        @huggingface/tokenizers encodes the texts below to with it (special and
//                        added tokens matched, as distill's allow_special = 1); and the same for
//                        the tokenizer's merges under the gpt2, cl100k and none pre-tokenizers.
//
//   make distill && (cd tests && npm install) && node tests/gen_hf_export_fixture.js
"use strict";
const path = require("path");
const fs = require("fs");
const os = require("os");
const crypto = require("crypto");
const { execFileSync } = require("child_process");
const { Template } = require(path.join(__dirname, "node_modules", "@huggingface", "jinja"));
const { Tokenizer } = require(path.join(__dirname, "node_modules", "@huggingface", "tokenizers"));

const root = path.join(__dirname, "..");
const fix = path.join(__dirname, "fixtures", "hf_export");
const tokSrc = path.join(fix, "tokenizer_small.txt");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "distill-hf-export-"));

function exportFolder(template) {
  const out = path.join(tmp, template);
  execFileSync(path.join(root, "distill"), ["export", path.join(__dirname, "fixtures", "hf_qwen3"), "--tokenizer", tokSrc,
    "--template", template, "-o", out], { stdio: ["ignore", "ignore", "inherit"] });
  return out;
}

const think = "<think>\nThe user asks for 2+2. That is 4.\n</think>\n\n4";
const conversations = [
  { add_generation_prompt: false, messages: [
    { role: "system", content: "You are a helpful assistant." },
    { role: "user", content: "What is 2+2?" },
    { role: "assistant", content: "4" }] },
  { add_generation_prompt: true, messages: [{ role: "user", content: "Hello!" }] },
  { add_generation_prompt: true, messages: [
    { role: "system", content: "Answer briefly." },
    { role: "user", content: "What is 2+2?" }] },
  { add_generation_prompt: false, messages: [
    { role: "user", content: "What is 2+2?" },
    { role: "assistant", content: think }] },
  { add_generation_prompt: false, messages: [   // multi-turn, <think> in both assistant turns
    { role: "system", content: "Think first." },
    { role: "user", content: "What is 2+2?" },
    { role: "assistant", content: think },
    { role: "user", content: "And 3+3?" },
    { role: "assistant", content: "<think>\n3+3 = 6\n</think>\n\n6" }] },
  { add_generation_prompt: true, messages: [
    { role: "user", content: "First question" },
    { role: "assistant", content: "First answer" },
    { role: "user", content: "Second question" }] },
  { add_generation_prompt: false, messages: [   // text that looks like template syntax or escapes
    { role: "user", content: "Quote ' and \" and \\n (backslash n), {{ x }} {% if y %}, tab\there\r\nCRLF" },
    { role: "assistant", content: "\u00e9t\u00e9 \u4e2d\u6587 \ud83c\udf89 <|im_end|> inside" }] },
  { add_generation_prompt: true, messages: [] },
  { add_generation_prompt: false, messages: [{ role: "assistant", content: "<think>\n</think>\n\nno thinking" }] },
];

// A template that is not built in, with what none of them has (a bos, a default system turn with
// quotes and a backslash, a pre-filled generation prompt): its Jinja comes from
// distill_chat_template_jinja through a small program (test_hf_export.c has the same struct).
function customJinja() {
  const src = path.join(tmp, "custom.c"), exe = path.join(tmp, "custom");
  fs.writeFileSync(src, `#define DISTILL_IMPLEMENTATION
#include "${path.join(root, "distill.h")}"
static const distill_chat_template custom = {"custom", "<s>", {"<<SYS>>\\n", "[INST] ", "[/INST] "}, "</s>", "\\n",
    "Be helpful; don't say \\"no\\" \\\\ ever.", "<think>\\n"};
int main(void) { char *j = distill_chat_template_jinja(&custom); fputs(j, stdout); distill_free(j); return 0; }
`);
  execFileSync(process.env.CC || "cc", ["-std=c99", "-O0", "-o", exe, src, "-lm", "-lpthread"], { stdio: "inherit" });
  return execFileSync(exe).toString("utf8");
}

const templates = {};
const rendered = {};
for (const name of ["chatml", "chatml-prefill", "plain", "custom"]) {
  const text = name === "custom" ? customJinja()
    : JSON.parse(fs.readFileSync(path.join(exportFolder(name), "tokenizer_config.json"), "utf8")).chat_template;
  const t = new Template(text);
  templates[name] = text;
  rendered[name] = conversations.map((c) => t.render({ messages: c.messages, add_generation_prompt: c.add_generation_prompt }));
}
fs.writeFileSync(path.join(fix, "chat_templates.json"),
  JSON.stringify({ templates, conversations, rendered }, null, 1) + "\n");

const tokJson = fs.readFileSync(path.join(tmp, "chatml", "tokenizer.json"));
const tok = new Tokenizer(JSON.parse(tokJson.toString("utf8")), {});
const texts = [
  "The quick brown fox jumps over the lazy dog.",
  "def add(a, b):\n    return a + b\n",
  "<|im_start|>user\nWhat is 12*12?<|im_end|>\n<|im_start|>assistant\n<think>\n144\n</think>\n\n144<|im_end|>",
  "<tool_call>\n{\"name\": \"f\"}\n</tool_call><|endoftext|>",
  "\u00e9t\u00e9 caf\u00e9 \u4e2d\u6587 \u65e5\u672c\u8a9e \ud83c\udf89 \u043f\u0440\u0438\u0432\u0435\u0442 \u00ff\u00fe",
  "  spaces   and\ttabs\r\n and numbers 3.14159 2718 1000000 and 'quotes' \"double\" \\backslash\\",
  "<think>x</think><thinking> is not <think>, <|im_end|><|im_start|>",
  "unseen words: zyxwvut qqqq, punctuation!?;:--==>>",
  "",
].concat(rendered["chatml"], rendered["plain"]);
const ids = texts.map((text) => Array.from(tok.encode(text, { add_special_tokens: false }).ids));
// The same merges under the other pre-tokenizers (the own format's "pattern" line changed): the
// exported pre_tokenizer must make Hugging Face cut the text as the library does.
const patterns = {};
for (const pat of ["gpt2", "cl100k", "none"]) {
  const variant = path.join(tmp, "tok_" + pat + ".txt"), out = path.join(tmp, "p_" + pat);
  fs.writeFileSync(variant, fs.readFileSync(tokSrc, "utf8").replace("\npattern qwen2\n", "\npattern " + pat + "\n"));
  execFileSync(path.join(root, "distill"), ["export", path.join(__dirname, "fixtures", "hf_qwen3"), "--tokenizer", variant,
    "-o", out], { stdio: ["ignore", "ignore", "ignore"] });
  const j = fs.readFileSync(path.join(out, "tokenizer.json"));
  const t = new Tokenizer(JSON.parse(j.toString("utf8")), {});
  patterns[pat] = { tokenizer_json_sha256: crypto.createHash("sha256").update(j).digest("hex"),
    ids: texts.map((text) => Array.from(t.encode(text, { add_special_tokens: false }).ids)) };
}
fs.writeFileSync(path.join(fix, "tokenizer_ids.json"), JSON.stringify({
  tokenizer_json_sha256: crypto.createHash("sha256").update(tokJson).digest("hex"), texts, ids, patterns }, null, 1) + "\n");
fs.rmSync(tmp, { recursive: true, force: true });
console.log("wrote " + conversations.length + " conversations x 4 templates and " + texts.length + " encodings to " + fix);
