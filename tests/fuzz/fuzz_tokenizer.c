/* libFuzzer harness for the three tokenizer loaders (make fuzz-tokenizer, or all with make fuzz).
   The first input byte picks the form: 'V' = GPT-2 vocab.json and merges.txt (split at the first
   NUL byte), anything else = one file whose format is detected (distill's text format,
   tokenizer.json, llama2.c tokenizer.bin). Any input must load or fail with a message naming the
   file, never crash, hang or leak; a loaded tokenizer must encode and decode text, and a
   byte-level one must round-trip it exactly, through its own format and through Hugging Face's
   tokenizer.json (distill_tokenizer_save_hf: refused with a message, or read back encoding the
   same ids). */
#define DISTILL_IMPLEMENTATION
#include "../../distill.h"
#include <unistd.h>

static void put(const char *path, const uint8_t *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    if (n) fwrite(p, 1, n, f);
    fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64], mpath[64];
    distill_error err;
    distill_tokenizer *t;
    const char *merges = NULL;
    snprintf(path, sizeof path, "build/fuzz/tok_%d.in", (int)getpid());
    snprintf(mpath, sizeof mpath, "build/fuzz/tok_%d.merges", (int)getpid());
    if (size > 0 && data[0] == 'V') {
        const uint8_t *nul = (const uint8_t *)memchr(data + 1, 0, size - 1);
        size_t a = nul ? (size_t)(nul - data - 1) : size - 1;
        put(path, data + 1, a);
        put(mpath, nul ? nul + 1 : data, nul ? size - a - 2 : 0);
        merges = mpath;
    } else {
        put(path, data, size);
    }
    err.msg[0] = 0;
    t = distill_tokenizer_load(path, merges, &err);
    if (!t) {
        if (!strstr(err.msg, "build/fuzz/tok_")) __builtin_trap();   /* errors name the file */
        return 0;
    }
    {
        static const char text[] = "Hello <|endoftext|> w\xc3\xb6rld 123 \xe4\xbd\xa0\xe5\xa5\xbd \xff";
        distill_ids ids = {NULL, 0, 0};
        size_t len = 0, i;
        char *back;
        if (distill_tokenizer_encode(t, text, sizeof text - 1, 1, &ids, &err) == 0) {
            for (i = 0; i < ids.n; i++)
                if (ids.ids[i] < 0 || ids.ids[i] >= distill_tokenizer_vocab_size(t)) __builtin_trap();
            back = distill_tokenizer_decode(t, ids.ids, ids.n, &len);
            if (!back) __builtin_trap();
            if (!distill_tokenizer_is_llama(t) && (len != sizeof text - 1 || memcmp(back, text, len)))
                __builtin_trap();   /* byte-level BPE is lossless */
            distill_free(back);
        }
        distill_ids_free(&ids);
        if (!distill_tokenizer_is_llama(t) && distill_tokenizer_save(t, path, &err) == 0) {
            distill_tokenizer *u = distill_tokenizer_load(path, NULL, &err);
            if (!u || distill_tokenizer_n_merges(u) != distill_tokenizer_n_merges(t)) __builtin_trap();
            distill_tokenizer_free(u);
        }
        /* Hugging Face tokenizer.json: refused with a message, or read back with the same ids */
        err.msg[0] = 0;
        if (distill_tokenizer_save_hf(t, path, &err) != 0) {
            if (!err.msg[0]) __builtin_trap();
        } else {
            distill_tokenizer *u = distill_tokenizer_load(path, NULL, &err);
            distill_ids a = {NULL, 0, 0}, b = {NULL, 0, 0};
            if (!u || distill_tokenizer_vocab_size(u) != distill_tokenizer_vocab_size(t)) __builtin_trap();
            if (distill_tokenizer_encode(t, text, sizeof text - 1, 1, &a, &err) !=
                    distill_tokenizer_encode(u, text, sizeof text - 1, 1, &b, &err) ||
                a.n != b.n || (a.n && memcmp(a.ids, b.ids, a.n * sizeof(int32_t))))
                __builtin_trap();
            distill_ids_free(&a);
            distill_ids_free(&b);
            distill_tokenizer_free(u);
        }
    }
    distill_tokenizer_free(t);
    return 0;
}
