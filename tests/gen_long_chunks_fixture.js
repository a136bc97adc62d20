// Generate tests/fixtures/tokenizer_gpt2_long.jsonl: GPT-2 token ids from the reference
// implementation (npm `tiktoken`, OpenAI's Rust BPE compiled to WASM) for strings whose
// pre-tokenizer chunks are longer than 24 bytes, many longer than 64: long words (Latin,
// Cyrillic, CJK), URLs, base64, digit runs, whitespace runs, punctuation runs and code
// identifiers, and pseudo-random letter runs. distill.h merges chunks over 24 bytes with a heap
// (shorter ones with a plain scan), so these ids check the heap's order and tie-breaks.
//
//   cd tests && npm install && cd .. && node tests/gen_long_chunks_fixture.js
//
// Each output line: {"text": ..., "ids": [...] (encode_ordinary), "longest": byte length of the
// longest GPT-2 chunk (from JavaScript's regex engine)}.
"use strict";
const path = require("path");
const fs = require("fs");
const { get_encoding } = require(path.join(__dirname, "node_modules", "tiktoken"));

const enc = get_encoding("gpt2");
const GPT2 = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

function longest(s) {
  let m = 0;
  for (const x of s.matchAll(GPT2)) m = Math.max(m, Buffer.byteLength(x[0], "utf8"));
  return m;
}

let seed = 2718281;
function rnd(n) { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; }
function letters(n, alphabet) {
  let s = "";
  for (let i = 0; i < n; i++) s += alphabet[rnd(alphabet.length)];
  return s;
}
const lower = "abcdefghijklmnopqrstuvwxyz";
const vowelish = "aeioulnrst";   // common letters: many merges apply, many ties
const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";   // base64 between its digits

const texts = [
  // words
  "Pneumonoultramicroscopicsilicovolcanoconiosis",
  " supercalifragilisticexpialidocious and antidisestablishmentarianism",
  "Donaudampfschifffahrtsgesellschaftskapit\u00e4n",
  "Rindfleischetikettierungs\u00fcberwachungsaufgaben\u00fcbertragungsgesetz",
  " incomprehensibilities counterrevolutionaries electroencephalographically",
  "\u043f\u0440\u0435\u0434\u043d\u0430\u043c\u0435\u0440\u0435\u043d\u043d\u043e\u0441\u0442\u044c\u044e \u0434\u043e\u0441\u0442\u043e\u043f\u0440\u0438\u043c\u0435\u0447\u0430\u0442\u0435\u043b\u044c\u043d\u043e\u0441\u0442\u044c",
  "\u4e2d\u534e\u4eba\u6c11\u5171\u548c\u56fd\u5168\u56fd\u4eba\u6c11\u4ee3\u8868\u5927\u4f1a\u5e38\u52a1\u59d4\u5458\u4f1a",
  "\u30a2\u30f3\u30c1\u30c7\u30a3\u30b9\u30a8\u30b9\u30bf\u30d6\u30ea\u30c3\u30b7\u30e1\u30f3\u30bf\u30ea\u30a2\u30cb\u30ba\u30e0",
  "Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogoch",
  " Taumatawhakatangihangakoauauotamateaturipukakapikimaungahoronukupokaiwhenuakitanatahu",
  // URLs
  "https://www.example.com/documentation/internationalizationandlocalization/configurationmanagementguide?utm_source=newsletter",
  "see http://verylongsubdomainnamethatkeepsgoing.anotherlongdomainpart.example.org/pathwithoutseparators",
  "git@github.com:someorganization/averylongrepositorynamewithoutanydashesorunderscores.git",
  // base64 and hex
  "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
  "-----BEGIN KEY-----\nMIIBIjANBgkqhkiGwBAQEFAAOCAQ8AMIIBCgKCAQEAvRfSKmDUjNqHXbYztrWHeJpPKQVbEqzhRaCfLkkwlU\n",
  // digit runs
  "12345678901234567890123456789",
  " 3.14159265358979323846264338327950288419716939937510582097494459230781640628620899",
  "account 0000000000000000000000000000000000000000000000000000000000000000000000007",
  "1111111111111111111111111111111111111111111111111111111111111111111111111111111111111111",
  // whitespace runs
  "x" + " ".repeat(30) + "y",
  "indent" + "\n" + " ".repeat(70) + "deep",
  "tabs\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\tend",
  "lines" + "\n".repeat(40) + "after",
  "mixed " + " \t".repeat(20) + "\n\n" + " ".repeat(33),
  // punctuation runs
  "================================================================================",
  "// ----------------------------------------------------------------------------",
  "!!!!!!!!!!!!!!!!!!!!!!!!!!???????????????????????????......................",
  "emoji \ud83d\ude00\ud83d\ude00\ud83d\ude00\ud83d\ude00\ud83d\ude00\ud83d\ude00\ud83d\ude00\ud83d\ude00\ud83d\ude00\ud83d\ude00\ud83d\ude00\ud83d\ude00\ud83d\ude00\ud83d\ude00\ud83d\ude00\ud83d\ude00\ud83d\ude00\ud83d\ude00",
  // code identifiers
  "AbstractSingletonProxyFactoryBeanImplementation",
  "final SimpleBeanFactoryAwareAspectInstanceFactoryConfigurationHolderBuilder builder;",
  "int thisIsAVeryLongCamelCaseIdentifierNameThatKeepsGoingAndGoingForeverMore = 0;",
  "def compute_the_total_number_of_tokens_in_the_trainingcorpusafterfilteringandshuffling(x):",
  "#define DISTILLIMPLEMENTATIONWITHOUTUNDERSCORESINTHEMACRONAMEATALL 1",
  "XMLHttpRequestEventTargetPrototypeConstructorNameGetter",
  // ties: the same pair at many positions, the leftmost must merge first
  "a".repeat(25),
  "a".repeat(64),
  "a".repeat(101),
  " " + "ab".repeat(40),
  "abc".repeat(30),
  "aab".repeat(23),
  "ll".repeat(20) + "o",
  "the".repeat(33),
  "e".repeat(7) + "r".repeat(19) + "e".repeat(11),
];
// pseudo-random letter runs of 25..140 letters: many merge orders
for (let i = 0; i < 40; i++) texts.push((i % 2 ? " " : "") + letters(25 + rnd(116), i % 3 ? lower : vowelish));
for (let i = 0; i < 10; i++) texts.push(letters(30 + rnd(80), b64));

const lines = [];
let over64 = 0;
for (const text of texts) {
  const n = longest(text);
  if (n <= 24) { console.error("no chunk over 24 bytes in " + JSON.stringify(text)); process.exitCode = 1; }
  if (n > 64) over64++;
  lines.push(JSON.stringify({ text, ids: Array.from(enc.encode_ordinary(text)), longest: n }));
}
enc.free();
const out = path.join(__dirname, "fixtures", "tokenizer_gpt2_long.jsonl");
fs.writeFileSync(out, lines.join("\n") + "\n");
console.log("wrote " + lines.length + " strings (" + over64 + " with a chunk over 64 bytes) to " + out);
