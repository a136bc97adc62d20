#!/usr/bin/env python3
"""Build the tokenizer benchmark corpus from text already on a Debian machine: English prose
(README / .txt / .md files under /usr/share/doc) and code (Python's standard library, C headers),
interleaved file by file, valid UTF-8 only, cut to the requested size. Deterministic for a
given machine (sorted file lists).

    python3 bench/make_tokenizer_corpus.py --mb 4 --out build/bench/tok_corpus.jsonl

Writes one JSON line {"text": ...} per source file (at most 64 KB each)."""
import argparse, json, os, glob

def files(pattern_roots, exts):
    out = []
    for root in pattern_roots:
        for dp, dn, fn in os.walk(root):
            dn.sort()
            for f in sorted(fn):
                if any(f.endswith(e) or f.startswith(e) for e in exts):
                    out.append(os.path.join(dp, f))
    return out

def read(path):
    try:
        with open(path, "rb") as f:
            b = f.read(65536)
        return b.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=4)
    ap.add_argument("--out", default="build/bench/tok_corpus.jsonl")
    a = ap.parse_args()
    prose = files(["/usr/share/doc"], [".txt", ".md", "README", ".rst"])
    code = files(sorted(glob.glob("/usr/lib/python3.*")) + ["/usr/include"], [".py", ".h"])
    limit, total, n = int(a.mb * 1e6), 0, 0
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    with open(a.out, "w", encoding="utf-8") as out:
        i = j = 0
        while total < limit and (i < len(prose) or j < len(code)):
            for lst, k in ((prose, i), (code, j)):
                if k < len(lst) and total < limit:
                    t = read(lst[k])
                    if t and t.strip():
                        t = t[: limit - total]
                        out.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")
                        total += len(t.encode("utf-8"))
                        n += 1
            i += 1
            j += 1
    print("wrote %d documents, %.2f MB to %s" % (n, total / 1e6, a.out))

if __name__ == "__main__":
    main()
