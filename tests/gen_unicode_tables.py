#!/usr/bin/env python3
"""Generate the Unicode tables the tokenizer's hand-written pre-tokenizers need, from Debian's
unicode-data package (apt-get install unicode-data), and splice them into
distill.h (tokenizer section) between the BEGIN/END GENERATED UNICODE TABLES markers.

The regexes of GPT-2 and cl100k/Qwen use three classes: \\p{L} (general category L*: Lu Ll Lt Lm
Lo), \\p{N} (Nd Nl No) and \\s (the White_Space property in Rust's regex crate, which tiktoken
uses). Letters and numbers become one sorted table of code point ranges with a class each; the
short White_Space list is written out as ranges too. A third table lists the code points whose
NFC_Quick_Check is No or Maybe, so that tokenizers with an NFC normalizer can prove that a text
is already NFC (distill.h does not implement normalization itself).

    python3 tests/gen_unicode_tables.py [UnicodeData.txt PropList.txt]
"""
import sys, os, re

UDATA = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/unicode/UnicodeData.txt"
PROPS = sys.argv[2] if len(sys.argv) > 2 else "/usr/share/unicode/PropList.txt"
HERE = os.path.dirname(os.path.abspath(__file__))
TARGET = os.path.join(HERE, "..", "distill.h")
BEGIN = "/* BEGIN GENERATED UNICODE TABLES (tests/gen_unicode_tables.py; do not edit by hand) */"
END = "/* END GENERATED UNICODE TABLES */"

def classes():
    """Yield (codepoint, class) with class 1 = letter, 2 = number, for every assigned code point."""
    first = None
    with open(UDATA, encoding="utf-8") as f:
        for line in f:
            fields = line.split(";")
            cp, name, cat = int(fields[0], 16), fields[1], fields[2]
            cls = 1 if cat.startswith("L") else 2 if cat.startswith("N") else 0
            if name.endswith(", First>"):
                first = cp
                continue
            if name.endswith(", Last>"):
                for c in range(first, cp + 1):
                    yield c, cls
                first = None
                continue
            yield cp, cls

def ranges(pairs):
    out = []
    for cp, cls in sorted(pairs):
        if cls == 0:
            continue
        if out and out[-1][1] == cp - 1 and out[-1][2] == cls:
            out[-1][1] = cp
        else:
            out.append([cp, cp, cls])
    return out

def white_space():
    out = []
    with open(PROPS, encoding="utf-8") as f:
        for line in f:
            line = line.split("#")[0].strip()
            if not line:
                continue
            rng, prop = [x.strip() for x in line.split(";")]
            if prop != "White_Space":
                continue
            a, _, b = rng.partition("..")
            out.append((int(a, 16), int(b or a, 16)))
    return sorted(out)

def nfc_maybe_or_no():
    """Code points whose NFC_Quick_Check is No or Maybe (DerivedNormalizationProps.txt): text
    without any of them is already in NFC."""
    out = []
    with open(os.path.join(os.path.dirname(UDATA), "DerivedNormalizationProps.txt"), encoding="utf-8") as f:
        for line in f:
            line = line.split("#")[0].strip()
            if not line:
                continue
            parts = [x.strip() for x in line.split(";")]
            if len(parts) == 3 and parts[1] == "NFC_QC" and parts[2] in ("N", "M"):
                a, _, b = parts[0].partition("..")
                out.append([int(a, 16), int(b or a, 16)])
    out.sort()
    merged = []
    for a, b in out:
        if merged and merged[-1][1] + 1 >= a:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return merged

def main():
    ln = ranges(classes())
    ws = white_space()
    nfc = nfc_maybe_or_no()
    version = "unknown"
    readme = os.path.join(os.path.dirname(UDATA), "ReadMe.txt")
    if os.path.exists(readme):
        m = re.search(r"Version (\d+\.\d+\.\d+)", open(readme, encoding="utf-8", errors="replace").read())
        if m:
            version = m.group(1)
    lines = [BEGIN,
             "/* Unicode %s: %d ranges of letters (class 1, \\p{L}) and numbers (class 2, \\p{N}), sorted. */" % (version, len(ln)),
             "static const uint32_t distill__tk_uni_ln[%d][3] = {" % len(ln)]
    row = []
    for a, b, c in ln:
        row.append("{0x%X,0x%X,%d}," % (a, b, c))
        if len(row) == 5:
            lines.append("    " + "".join(row)); row = []
    if row:
        lines.append("    " + "".join(row))
    lines.append("};")
    lines.append("/* White_Space (PropList.txt): what \\s matches in the reference regex engines. */")
    lines.append("static const uint32_t distill__tk_uni_ws[%d][2] = {" % len(ws))
    lines.append("    " + "".join("{0x%X,0x%X}," % r for r in ws))
    lines.append("};")
    lines.append("/* NFC_Quick_Check = No or Maybe (DerivedNormalizationProps.txt): text without these is NFC. */")
    lines.append("static const uint32_t distill__tk_uni_nfcqc[%d][2] = {" % len(nfc))
    row = []
    for a, b in nfc:
        row.append("{0x%X,0x%X}," % (a, b))
        if len(row) == 6:
            lines.append("    " + "".join(row)); row = []
    if row:
        lines.append("    " + "".join(row))
    lines.append("};")
    lines.append(END)
    block = "\n".join(lines)
    src = open(TARGET, encoding="utf-8").read()
    i, j = src.find(BEGIN), src.find(END)
    if i < 0 or j < 0:
        sys.exit("markers not found in " + TARGET)
    src = src[:i] + block + src[j + len(END):]
    open(TARGET, "w", encoding="utf-8").write(src)
    print("wrote %d letter/number ranges, %d white-space ranges, %d NFC quick-check ranges into %s"
          % (len(ln), len(ws), len(nfc), TARGET))

if __name__ == "__main__":
    main()
