// Generate tests/fixtures/tokenizer_gpt2_tiktoken.jsonl: GPT-2 token ids from the reference
// implementation (npm `tiktoken`, OpenAI's Rust BPE compiled to WASM) for a few hundred diverse
// strings, plus the chunk splits of the GPT-2, cl100k and Qwen2 regexes from JavaScript's own
// regex engine (an independent implementation of \p{L}, \p{N}), to check the hand-written
// pre-tokenizers.
//
//   cd tests && npm install && cd .. && node tests/gen_tiktoken_fixture.js
//
// Each output line: {"text": ..., "ids": [...] (encode_ordinary: <|endoftext|> is plain text),
// "ids_special": [...] (encode with <|endoftext|> allowed), "split": {"gpt2": [byte lengths],
// "cl100k": [...], "qwen2": [...]}} ("split" is absent for strings with U+0085 or U+FEFF, where
// JavaScript's \s differs from the Unicode White_Space property that Rust's regex uses).
"use strict";
const path = require("path");
const fs = require("fs");
const { get_encoding } = require(path.join(__dirname, "node_modules", "tiktoken"));

const enc = get_encoding("gpt2");

// The patterns as JavaScript regexes (JS has no (?i:...) groups or possessive quantifiers; the
// spelled-out case variants and plain quantifiers match the same strings here, since the
// possessive parts are followed by characters they cannot match).
const RE = {
  gpt2: /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu,
  cl100k: /'(?:[sSdDmMtT\u017F]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+/gu,
  qwen2: /'(?:[sSdDmMtT\u017F]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu,
};

function split(re, s) {
  const out = [];
  let total = 0;
  for (const m of s.matchAll(re)) {
    out.push(Buffer.byteLength(m[0], "utf8"));
    total += m[0].length;
  }
  if (total !== s.length) throw new Error("regex did not cover the string: " + JSON.stringify(s));
  return out;
}

const base = [
  "", "a", " ", "  ", "\n", "Hello world", "Hello, world!", "hello   world", " leading space",
  "trailing space ", "trailing spaces   ", "tabs\tand\ttabs", "line\nbreaks\n\nand\r\nCRLF\r\n",
  "It's", "it's", "IT'S", "I'm", "you're", "they've", "we'll", "he'd", "don't", "DON'T", "'s", "'sa",
  "''", "'''s", "rock'n'roll", "O'Neil's", "y'all'd've", "'tis", "can't won't shan't",
  "The quick brown fox jumps over the lazy dog.",
  "Numbers: 0 1 12 123 1234 12345 123456 3.14159 -42 +7 1e10 0xDEADBEEF 1,000,000",
  "2024-11-26T10:45:01Z", "$100.00 and 50% off", "x = a**2 + b**2", "i++; j--; k += 1;",
  "def f(x):\n    return x * 2\n", "int main(void) {\n\treturn 0;\n}\n",
  "for (int i = 0; i < n; i++) {\n    sum += a[i];\n}",
  "if (a && b || !c) { /* comment */ }", "// C++ comment\n#include <stdio.h>",
  "<div class=\"x\">text</div>", "https://example.com/path?q=1&r=2#frag", "user@example.com",
  "SELECT * FROM t WHERE id = 1;", "print(f\"{x!r:>10}\")", "λx. x + 1", "`code` and ```blocks```",
  "    four spaces", "        eight spaces\n        more", "\t\t\tdeep\ttabs", "a  b   c    d",
  "end with newline\n", "\n\n\n", "   \n   \n", " \n ", "x\n\n\ny", "a \n b", "a\t\nb",
  "caf\u00e9", "na\u00efve r\u00e9sum\u00e9", "\u00c5ngstr\u00f6m", "Stra\u00dfe", "\u0130stanbul",
  "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac", "\u0420\u0443\u0441\u0441\u043a\u0438\u0439 \u044f\u0437\u044b\u043a",
  "\u0627\u0644\u0639\u0631\u0628\u064a\u0629", "\u05e2\u05d1\u05e8\u05d9\u05ea",
  "\u0939\u093f\u0928\u094d\u0926\u0940 \u092d\u093e\u0937\u093e", "\u0e44\u0e17\u0e22",
  "\u4f60\u597d\uff0c\u4e16\u754c\uff01", "\u65e5\u672c\u8a9e\u306e\u6587\u7ae0\u3067\u3059\u3002",
  "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8", "\u4e2d\u6587 English \u6df7\u5408 mixed 123",
  "\ud83d\ude00", "\ud83d\ude00\ud83d\ude00\ud83d\ude00", "emoji \ud83d\udc4d\ud83c\udffd ok",
  "\ud83d\udc68\u200d\ud83d\udc69\u200d\ud83d\udc67\u200d\ud83d\udc66 family",
  "\ud83c\uddeb\ud83c\uddf7 flag", "\u2764\ufe0f heart", "keycap 1\ufe0f\u20e3",
  "\u00bd \u00b2 \u2167 \u0663\u0664 \u2460", "\u2003em space\u3000ideographic",
  "nbsp\u00a0here", "line\u2028separator", "zero\u200bwidth", "\u00adsoft hyphen",
  "combining e\u0301 accent", "A\u030A", "\u1100\u1161\u11a8",
  "<|endoftext|>", "Hello<|endoftext|>world", "<|endoftext|><|endoftext|>",
  " <|endoftext|> ", "<|endoftext", "|endoftext|>", "<|im_start|>user\nhi<|im_end|>",
  "<think>reasoning</think>answer", "NEL\u0085char", "BOM\ufeffchar",
  "!!!???...", "--- *** ___ ===", "(parenthesized) [bracketed] {braced}", "\"quoted\" 'single'",
  "a.b.c", "a,b;c:d", "snake_case_name", "camelCaseName", "kebab-case-name", "PascalCase",
  "ALLCAPS", "x1y2z3", "abc123def", "123abc", "v1.2.3-beta+build.5", "C3PO R2D2",
  "\u00a0\u00a0", "   leading and trailing   ", "\r\n\r\n", "\r", "word\r\nword",
  "Mixed   \t whitespace\n\t \n", "?!", " ?!", "  ?!", " \u4f60", "  \u4f60\u597d",
];

// Deterministic pseudo-random mixtures of fragments to reach a few hundred strings.
const frags = ["the", " cat", "'s", " 42", "1234567", "\n", "  ", "\t", "!", " ?", "\u4f60\u597d",
  "\ud83d\ude00", "\u00e9t\u00e9", " <|endoftext|>", "x_y", "()", " {", "}\n", "    ", "\u0938\u0902",
  "\u00bd", "DON'T", " ll", "'ve", "\u0413\u0440\u0438\u0433", "\r\n", " \u00a0", "..", "0.5", "a"];
let seed = 12345;
function rnd(n) { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; }
const mixed = [];
for (let i = 0; i < 220; i++) {
  let s = "";
  const k = 1 + rnd(12);
  for (let j = 0; j < k; j++) s += frags[rnd(frags.length)];
  mixed.push(s);
}
// One longer document.
mixed.push(base.slice(30, 70).join(" ").repeat(3));

const lines = [];
for (const text of base.concat(mixed)) {
  const rec = {
    text,
    ids: Array.from(enc.encode_ordinary(text)),
    ids_special: Array.from(enc.encode(text, "all")),
  };
  if (!/[\u0085\ufeff]/.test(text)) {
    rec.split = { gpt2: split(RE.gpt2, text), cl100k: split(RE.cl100k, text), qwen2: split(RE.qwen2, text) };
  }
  lines.push(JSON.stringify(rec));
}
enc.free();
const out = path.join(__dirname, "fixtures", "tokenizer_gpt2_tiktoken.jsonl");
fs.writeFileSync(out, lines.join("\n") + "\n");
console.log("wrote " + lines.length + " strings to " + out);
