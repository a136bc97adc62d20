/* libFuzzer harness for the tokenizer half of a Hugging Face folder (make fuzz-all). Input: u16
   little-endian length a, a bytes of tokenizer_config.json; the rest is tokenizer.json. Both are
   written beside a small valid model (config.json + model.safetensors, made once) and the folder
   is loaded with distill_model_load asking for the tokenizer: the load must end in a model or an
   error message, never a crash, a sanitizer report or an unjustified allocation; a template name
   taken from tokenizer_config.json must be a built-in's. A loaded byte-level tokenizer is then
   exported (distill_hf_save_tokenizer) and read back: it must either be refused with a message
   or come back encoding the same text to the same ids. */
#define DISTILL_IMPLEMENTATION
#include "../../distill.h"
#include "fuzz_put.h"
#include <unistd.h>
#include <sys/stat.h>

static char fuzz_dir[64], fuzz_out[64], fuzz_tc[128], fuzz_tj[128], fuzz_back[128];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    distill_config c = distill_config_default();
    distill_model *m;
    distill_error err;
    (void)argc; (void)argv;
    snprintf(fuzz_dir, sizeof fuzz_dir, "/tmp/distill_fuzz_hf.%ld", (long)getpid());
    snprintf(fuzz_out, sizeof fuzz_out, "/tmp/distill_fuzz_hf_out.%ld", (long)getpid());
    mkdir(fuzz_dir, 0755);
    mkdir(fuzz_out, 0755);
    snprintf(fuzz_tc, sizeof fuzz_tc, "%s/tokenizer_config.json", fuzz_dir);
    snprintf(fuzz_tj, sizeof fuzz_tj, "%s/tokenizer.json", fuzz_dir);
    snprintf(fuzz_back, sizeof fuzz_back, "%s/tokenizer.json", fuzz_out);
    c.vocab_size = 300; c.dim = 8; c.n_layers = 1; c.n_heads = 2; c.n_kv_heads = 2; c.hidden_dim = 12;
    m = distill_model_create(&c, 1, 4, 1, &err);
    if (!m || distill_safetensors_save_sharded(m, fuzz_dir, "F32", 2000000000, &err) != 0) __builtin_trap();
    distill_model_free(m);
    return 0;
}


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char text[] = "Hello <|im_end|> w\xc3\xb6rld 123 \xe4\xbd\xa0\xe5\xa5\xbd <think>";
    distill_error err;
    distill_model *m;
    distill_tokenizer *tok = NULL, *back;
    const char *tn;
    size_t a;
    if (size < 2 || size > (1 << 20)) return 0;
    a = (size_t)data[0] | ((size_t)data[1] << 8);
    if (a > size - 2 || put(fuzz_tc, data + 2, a) || put(fuzz_tj, data + 2 + a, size - 2 - a)) return 0;
    err.msg[0] = 0;
    m = distill_model_load(fuzz_dir, 1, 4, &tok, &err);
    if (!m) {
        if (!err.msg[0]) __builtin_trap();
        return 0;
    }
    tn = distill_model_chat_template(m);
    if (tn && !distill_chat_template_get(tn)) __builtin_trap();
    if (tok && !distill_tokenizer_is_llama(tok)) {
        err.msg[0] = 0;
        if (distill_hf_save_tokenizer(tok, distill_chat_template_get(tn), fuzz_out, &err) != 0) {
            if (!err.msg[0]) __builtin_trap();
        } else if (!(back = distill_tokenizer_load(fuzz_back, NULL, &err))) {
            __builtin_trap();   /* what the library writes it must read */
        } else {
            distill_ids x = {NULL, 0, 0}, y = {NULL, 0, 0};
            int rx = distill_tokenizer_encode(tok, text, sizeof text - 1, 1, &x, &err);
            int ry = distill_tokenizer_encode(back, text, sizeof text - 1, 1, &y, &err);
            if (distill_tokenizer_vocab_size(tok) != distill_tokenizer_vocab_size(back) || rx != ry || x.n != y.n ||
                (x.n && memcmp(x.ids, y.ids, x.n * sizeof(int32_t))))
                __builtin_trap();
            distill_ids_free(&x);
            distill_ids_free(&y);
            distill_tokenizer_free(back);
        }
    }
    distill_tokenizer_free(tok);
    distill_model_free(m);
    return 0;
}
