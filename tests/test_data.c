/* The data layer: schema adapters, filters, the chat template and its loss weights, length
   policy, bad input, selection, batches, cursor resume, packing. Expected token ids come from
   encoding the fully rendered text in ONE call (the data layer encodes piece by piece; the
   pieces are chosen so BPE cannot merge across their boundaries) or are hand-checked GPT-2 ids;
   expected loss weights come from the lengths of encoded prefixes. */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include "harness.h"

#define MINIMIND "../shared/data/minimind/tokenizer.json"
#define GPT2_VOCAB "../shared/data/gpt2/vocab.json"
#define GPT2_MERGES "../shared/data/gpt2/merges.txt"
#define FIX "tests/fixtures/data/"

/* The minimind tokenizer, or NULL: absent (the caller skips) or failing to load (a failed
   CHECK here, so the caller's skip counts as a failure). */
static distill_tokenizer *minimind(void) {
    distill_error err;
    distill_tokenizer *tok;
    if (!harness_have(MINIMIND)) return NULL;
    tok = distill_tokenizer_load(MINIMIND, NULL, &err);
    CHECK(tok != NULL, "%s is present but does not load: %s", MINIMIND, err.msg);
    return tok;
}

static distill_json *parse(const char *s) {
    distill_error err;
    distill_json *j = distill_json_parse(s, strlen(s), "t.jsonl", 1, &err);
    if (!j) printf("    parse error: %s\n", err.msg);
    return j;
}

static int conv_of(const char *json, const distill_data_options *o, distill_conv *c, distill_error *err) {
    distill_json *j = parse(json);
    int rc;
    memset(c, 0, sizeof *c);
    if (!j) return -1;
    rc = distill_conv_from_json(j, o, NULL, "t.jsonl", c, err);
    /* make the conversation independent of the document for the checks below */
    if (rc == 0) {
        distill_conv copy;
        int i;
        memset(&copy, 0, sizeof copy);
        for (i = 0; i < c->n; i++) distill_conv_add(&copy, c->msgs[i].role, c->msgs[i].content, c->msgs[i].len, c->msgs[i].loss_weight);
        distill_conv_free(c);
        *c = copy;
    }
    distill_json_free(j);
    return rc;
}

static int msg_is(const distill_conv *c, int i, distill_role role, const char *text) {
    return i < c->n && c->msgs[i].role == role && c->msgs[i].len == strlen(text) && memcmp(c->msgs[i].content, text, c->msgs[i].len) == 0;
}

static void test_adapters(void) {
    distill_data_options o = distill_data_options_default();
    distill_conv c;
    distill_error err;
    const char *maps[] = {"question=prompt", "r1_generation=response", "reasoning=think"};
    /* messages with typed parts and per-message loss_weight */
    CHECK(conv_of("{\"messages\":[{\"role\":\"system\",\"content\":\"S\"},{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
                  "{\"type\":\"text\",\"text\":\"b\"}]},{\"role\":\"assistant\",\"content\":\"A\",\"loss_weight\":0.5}]}", &o, &c, &err) == 0, "%s", err.msg);
    CHECK(c.n == 3 && msg_is(&c, 0, DISTILL_ROLE_SYSTEM, "S") && msg_is(&c, 1, DISTILL_ROLE_USER, "ab") &&
          msg_is(&c, 2, DISTILL_ROLE_ASSISTANT, "A") && c.msgs[2].loss_weight == 0.5f && c.msgs[1].loss_weight < 0, "messages");
    distill_conv_free(&c);
    /* reasoning_content wrapped in <think> */
    CHECK(conv_of("{\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"reasoning_content\":\"R\",\"content\":\"A\"}]}", &o, &c, &err) == 0, "%s", err.msg);
    CHECK(msg_is(&c, 1, DISTILL_ROLE_ASSISTANT, "<think>\nR\n</think>\n\nA"), "reasoning_content -> think");
    distill_conv_free(&c);
    /* ShareGPT conversations */
    CHECK(conv_of("{\"conversations\":[{\"from\":\"system\",\"value\":\"S\"},{\"from\":\"human\",\"value\":\"H\"},{\"from\":\"gpt\",\"value\":\"G\"},"
                  "{\"from\":\"user\",\"value\":\"U\"},{\"from\":\"assistant\",\"value\":\"A\"}]}", &o, &c, &err) == 0, "%s", err.msg);
    CHECK(c.n == 5 && msg_is(&c, 0, DISTILL_ROLE_SYSTEM, "S") && msg_is(&c, 1, DISTILL_ROLE_USER, "H") &&
          msg_is(&c, 2, DISTILL_ROLE_ASSISTANT, "G") && msg_is(&c, 3, DISTILL_ROLE_USER, "U") && msg_is(&c, 4, DISTILL_ROLE_ASSISTANT, "A"), "conversations");
    distill_conv_free(&c);
    /* prompt/completion, strings and message lists */
    CHECK(conv_of("{\"prompt\":\"P\",\"completion\":\"C\"}", &o, &c, &err) == 0 && c.n == 2 &&
          msg_is(&c, 0, DISTILL_ROLE_USER, "P") && msg_is(&c, 1, DISTILL_ROLE_ASSISTANT, "C"), "prompt/completion: %s", err.msg);
    distill_conv_free(&c);
    CHECK(conv_of("{\"prompt\":[{\"role\":\"user\",\"content\":\"P\"}],\"completion\":[{\"role\":\"assistant\",\"content\":\"C\"}]}", &o, &c, &err) == 0 &&
          c.n == 2 && msg_is(&c, 1, DISTILL_ROLE_ASSISTANT, "C"), "conversational prompt/completion: %s", err.msg);
    distill_conv_free(&c);
    /* alpaca: instruction + blank line + input */
    CHECK(conv_of("{\"instruction\":\"I\",\"input\":\"X\",\"output\":\"O\",\"system\":\"S\"}", &o, &c, &err) == 0 && c.n == 3 &&
          msg_is(&c, 0, DISTILL_ROLE_SYSTEM, "S") && msg_is(&c, 1, DISTILL_ROLE_USER, "I\n\nX") && msg_is(&c, 2, DISTILL_ROLE_ASSISTANT, "O"),
          "alpaca: %s", err.msg);
    distill_conv_free(&c);
    /* a prompt without an answer converts (evaluation prompts); the loader rejects it as a row */
    CHECK(conv_of("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", &o, &c, &err) == 0 && c.n == 1, "prompt only: %s", err.msg);
    distill_conv_free(&c);
    CHECK(conv_of("{\"text\":\"T\"}", &o, &c, &err) == 0 && c.n == 1 && msg_is(&c, 0, DISTILL_ROLE_TEXT, "T"), "text");
    distill_conv_free(&c);
    /* field mapping with a separate reasoning field */
    o.map = maps;
    o.n_map = 3;
    CHECK(conv_of("{\"question\":\"Q\",\"r1_generation\":\"R\",\"reasoning\":\"T\"}", &o, &c, &err) == 0 && c.n == 2 &&
          msg_is(&c, 0, DISTILL_ROLE_USER, "Q") && msg_is(&c, 1, DISTILL_ROLE_ASSISTANT, "<think>\nT\n</think>\n\nR"), "mapped: %s", err.msg);
    distill_conv_free(&c);
    CHECK(conv_of("{\"question\":\"Q\",\"r1_generation\":\"R\",\"reasoning\":\"\"}", &o, &c, &err) == 0 &&
          msg_is(&c, 1, DISTILL_ROLE_ASSISTANT, "R"), "mapped, empty reasoning: %s", err.msg);
    distill_conv_free(&c);
    CHECK(conv_of("{\"question\":\"Q\"}", &o, &c, &err) == -1 && strstr(err.msg, "t.jsonl:1:1: field 'r1_generation': missing"),
          "mapped, missing response: %s", err.msg);
    distill_conv_free(&c);
    o.n_map = 0;
    /* normalisation of other reasoning markers */
    o.normalize_think = 1;
    CHECK(conv_of("{\"conversations\":[{\"from\":\"human\",\"value\":\"q\"},{\"from\":\"gpt\",\"value\":"
                  "\"<|begin_of_thought|>\\n\\nT\\n\\n<|end_of_thought|>\\n\\n<|begin_of_solution|>\\n\\nS\\n\\n<|end_of_solution|>\"}]}", &o, &c, &err) == 0 &&
          msg_is(&c, 1, DISTILL_ROLE_ASSISTANT, "<think>\n\nT\n\n</think>\n\nS"), "normalize_think: '%s'", c.n > 1 ? c.msgs[1].content : "");
    distill_conv_free(&c);
    o.normalize_think = 0;
    CHECK(conv_of("{\"conversations\":[{\"from\":\"human\",\"value\":\"q\"},{\"from\":\"gpt\",\"value\":\"<|begin_of_thought|>x\"}]}", &o, &c, &err) == 0 &&
          msg_is(&c, 1, DISTILL_ROLE_ASSISTANT, "<|begin_of_thought|>x"), "no normalisation unless asked");
    distill_conv_free(&c);
}

static void test_adapter_errors(void) {
    static const struct { const char *json; const char *want; } cases[] = {
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\",\"content\":5}]}",
         "t.jsonl:1:74: field 'messages.1.content': expected a string or a list of parts, got number"},
        {"{\"messages\":\"hi\"}", "t.jsonl:1:13: field 'messages': expected an array of turns, got string"},
        {"{\"messages\":[]}", "field 'messages': empty conversation"},
        {"{\"messages\":[{\"role\":\"robot\",\"content\":\"x\"}]}", "field 'messages.0.role': unsupported role 'robot'"},
        {"{\"messages\":[{\"content\":\"x\"}]}", "field 'messages.0.role': missing"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image\"}]},{\"role\":\"assistant\",\"content\":\"a\"}]}",
         "only text parts are supported (got type 'image')"},
        {"{\"prompt\":\"p\",\"completion\":null}", "field 'completion': expected a string, got null"},
        {"{\"instruction\":\"i\",\"output\":[1]}", "field 'output': expected a string, got array"},
        {"{\"foo\":1,\"bar\":2}", "cannot detect the format from the keys ('foo', 'bar')"},
        {"[1,2]", "expected a JSON object per record, got array"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\",\"content\":\"y\",\"loss_weight\":\"high\"}]}",
         "field 'messages.1.loss_weight': expected a number >= 0"},
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        distill_data_options o = distill_data_options_default();
        distill_conv c;
        distill_error err;
        err.msg[0] = 0;
        CHECK(conv_of(cases[i].json, &o, &c, &err) == -1 && strstr(err.msg, cases[i].want) != NULL,
              "case %zu: got '%s', want '%s'", i, err.msg, cases[i].want);
        distill_conv_free(&c);
    }
}

static void test_filters(void) {
    distill_json *j = parse("{\"difficulty\":\"EASY\",\"pass_rate\":1,\"judgement\":\"right\",\"meta\":{\"len\":120,\"tags\":[\"a\"]},\"ok\":true}");
    distill_error err;
    static const struct { const char *expr; int want; } cases[] = {
        {"difficulty in {EASY, MEDIUM}", 1}, {"difficulty in {HARD}", 0}, {"difficulty in [\"EASY\"]", 1},
        {"pass_rate == 1", 1}, {"pass_rate == 1.0", 1}, {"pass_rate != 1", 0}, {"pass_rate >= 0.5", 1}, {"pass_rate < 1", 0},
        {"judgement == \"right\"", 1}, {"judgement == right", 1}, {"judgement == \"wrong\"", 0},
        {"meta.len < 4000", 1}, {"meta.len > 4000", 0}, {"meta.len <= 120", 1}, {"meta.tags.0 == a", 1},
        {"ok == true", 1}, {"missing == 1", 0}, {"missing != 1", 0}, {"pass_rate == \"1\"", 0},
    };
    size_t i;
    REQUIRE(j != NULL, "the filter test document does not parse");
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int m = distill_data_filter_match(j, cases[i].expr, &err);
        CHECK(m == cases[i].want, "'%s': got %d want %d (%s)", cases[i].expr, m, cases[i].want, m < 0 ? err.msg : "");
    }
    CHECK(distill_data_filter_match(j, "difficulty", &err) == -1, "no operator is an error");
    CHECK(distill_data_filter_match(j, "difficulty in EASY", &err) == -1, "'in' without a set is an error");
    distill_json_free(j);
}

static void test_template_text(void) {
    distill_conv c;
    char *s;
    const char *want = "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n";
    memset(&c, 0, sizeof c);
    distill_conv_add(&c, DISTILL_ROLE_SYSTEM, "S", 1, -1);
    distill_conv_add(&c, DISTILL_ROLE_USER, "U", 1, -1);
    distill_conv_add(&c, DISTILL_ROLE_ASSISTANT, "A", 1, -1);
    s = distill_chat_render(NULL, &c, 0, NULL);
    CHECK(s && strcmp(s, want) == 0, "chatml row: %s", s);
    distill_free(s);
    c.n = 2;
    s = distill_chat_render(NULL, &c, 1, NULL);
    CHECK(s && strcmp(s, "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n") == 0, "chatml prompt: %s", s);
    distill_free(s);
    s = distill_chat_render_prompt(distill_chat_template_get("chatml-prefill"), NULL, "U", NULL);
    CHECK(s && strcmp(s, "<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n<think>\n") == 0, "prefill prompt: %s", s);
    distill_free(s);
    CHECK(distill_chat_template_get("nope") == NULL, "unknown template");
    distill_conv_free(&c);
}

/* Encode text in one call (the independent reference). */
static size_t enc(const distill_tokenizer *tok, const char *s, distill_ids *out) {
    distill_error err;
    out->n = 0;
    distill_tokenizer_encode(tok, s, strlen(s), 1, out, &err);
    return out->n;
}

static void test_chatml_ids_and_weights(void) {
    distill_tokenizer *tok = minimind();
    distill_conv c;
    distill_ids ids, ref, pre;
    distill_floats w;
    distill_error err;
    size_t i, a1s, a1e, a2s, a2e;
    int ok = 1;
    /* multi-turn; assistant content begins with a special token or a letter right after "\n" */
    const char *sys = "You are terse.", *u1 = "Add 2 and 3.", *a1 = "<think>\nadd them\n</think>\n\n5", *u2 = "Times 2?", *a2 = "10";
    const char *p1 = "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nAdd 2 and 3.<|im_end|>\n<|im_start|>assistant\n";
    const char *p2 = "<|im_end|>\n<|im_start|>user\nTimes 2?<|im_end|>\n<|im_start|>assistant\n";
    char full[1024], buf[1024];
    if (!tok) SKIP("%s not available", MINIMIND);
    memset(&c, 0, sizeof c);
    memset(&ids, 0, sizeof ids);
    memset(&ref, 0, sizeof ref);
    memset(&pre, 0, sizeof pre);
    memset(&w, 0, sizeof w);
    distill_conv_add(&c, DISTILL_ROLE_SYSTEM, sys, strlen(sys), -1);
    distill_conv_add(&c, DISTILL_ROLE_USER, u1, strlen(u1), -1);
    distill_conv_add(&c, DISTILL_ROLE_ASSISTANT, a1, strlen(a1), -1);
    distill_conv_add(&c, DISTILL_ROLE_USER, u2, strlen(u2), -1);
    distill_conv_add(&c, DISTILL_ROLE_ASSISTANT, a2, strlen(a2), 0.5f);
    CHECK(distill_chat_encode(NULL, tok, &c, DISTILL_LOSS_ASSISTANT, 0, &ids, &w, &err) == 0, "%s", err.msg);
    snprintf(full, sizeof full, "%s%s%s%s<|im_end|>\n", p1, a1, p2, a2);
    enc(tok, full, &ref);
    CHECK(ids.n == ref.n && memcmp(ids.ids, ref.ids, ids.n * 4) == 0, "ids equal the one-call encoding (%zu vs %zu)", ids.n, ref.n);
    CHECK(w.n == ids.n, "one weight per id");
    /* supervised spans from prefix lengths: [a1s, a1e) = a1 + <|im_end|>, [a2s, a2e) = a2 + <|im_end|> */
    a1s = enc(tok, p1, &pre);
    snprintf(buf, sizeof buf, "%s%s<|im_end|>", p1, a1);
    a1e = enc(tok, buf, &pre);
    snprintf(buf, sizeof buf, "%s%s%s", p1, a1, p2);
    a2s = enc(tok, buf, &pre);
    snprintf(buf, sizeof buf, "%s%s%s%s<|im_end|>", p1, a1, p2, a2);
    a2e = enc(tok, buf, &pre);
    for (i = 0; i < w.n; i++) {
        float want = (i >= a1s && i < a1e) ? 1.0f : (i >= a2s && i < a2e) ? 0.5f : 0.0f;
        if (w.v[i] != want) { ok = 0; printf("    weight[%zu] = %g, want %g\n", i, (double)w.v[i], (double)want); break; }
    }
    CHECK(ok, "assistant-only weights, end-of-turn supervised, per-message loss_weight");
    CHECK(ids.ids[a1e - 1] == distill_tokenizer_token_id(tok, "<|im_end|>") && distill_chat_eot_id(NULL, tok) == ids.ids[a1e - 1],
          "the last supervised token of a turn is <|im_end|>");
    CHECK(ids.ids[a1s] == distill_tokenizer_token_id(tok, "<think>"), "<think> is one special token, supervised");
    /* completion-only: only the last assistant turn */
    ids.n = 0;
    w.n = 0;
    distill_chat_encode(NULL, tok, &c, DISTILL_LOSS_LAST, 0, &ids, &w, &err);
    for (i = 0, ok = 1; i < w.n; i++) if (w.v[i] != ((i >= a2s && i < a2e) ? 0.5f : 0.0f)) ok = 0;
    CHECK(ok, "last-turn weights");
    /* training and inference agree: the generation prompt is the prefix of the training row
       up to the first supervised token of the final assistant turn */
    ids.n = 0;
    c.n = 4;
    CHECK(distill_chat_encode(NULL, tok, &c, DISTILL_LOSS_ASSISTANT, 1, &ids, NULL, &err) == 0, "%s", err.msg);
    CHECK(ids.n == a2s && memcmp(ids.ids, ref.ids, a2s * 4) == 0, "prompt == row prefix (%zu vs %zu)", ids.n, a2s);
    /* the two-turn convenience equals encode on that conversation */
    pre.n = 0;
    ids.n = 0;
    c.n = 2;
    distill_chat_prompt_ids(NULL, tok, sys, u1, &pre, &err);
    distill_chat_encode(NULL, tok, &c, DISTILL_LOSS_ASSISTANT, 1, &ids, NULL, &err);
    CHECK(pre.n == a1s && ids.n == a1s && memcmp(pre.ids, ref.ids, a1s * 4) == 0, "prompt_ids == row prefix");
    distill_ids_free(&ids);
    distill_ids_free(&ref);
    distill_ids_free(&pre);
    distill_floats_free(&w);
    distill_conv_free(&c);
    distill_tokenizer_free(tok);
}

static void test_gpt2_plain_ids(void) {
    /* hand-checked GPT-2 ids: "\n" 198, "Hello" 15496, "<|endoftext|>" 50256 */
    distill_error err;
    distill_tokenizer *tok;
    distill_conv c;
    distill_ids ids;
    distill_floats w;
    FILE *f = fopen(GPT2_VOCAB, "rb");
    if (!f) SKIP("%s not available", GPT2_VOCAB);
    fclose(f);
    tok = distill_tokenizer_load(GPT2_VOCAB, GPT2_MERGES, &err);
    CHECK(tok != NULL, "%s", err.msg);
    if (!tok) return;
    memset(&c, 0, sizeof c);
    memset(&ids, 0, sizeof ids);
    memset(&w, 0, sizeof w);
    distill_conv_add(&c, DISTILL_ROLE_USER, "Hi", 2, -1);
    distill_conv_add(&c, DISTILL_ROLE_ASSISTANT, "Hello", 5, -1);
    CHECK(distill_chat_encode(distill_chat_template_get("plain"), tok, &c, DISTILL_LOSS_ASSISTANT, 0, &ids, &w, &err) == 0, "%s", err.msg);
    /* ... "Assistant:" "\n" | "Hello" "<|endoftext|>" | "\n\n" */
    CHECK(ids.n >= 5 && ids.ids[ids.n - 4] == 198 && ids.ids[ids.n - 3] == 15496 && ids.ids[ids.n - 2] == 50256 &&
          w.v[ids.n - 4] == 0 && w.v[ids.n - 3] == 1 && w.v[ids.n - 2] == 1 && w.v[ids.n - 1] == 0,
          "plain template tail ids/weights");
    CHECK(distill_chat_eot_id(distill_chat_template_get("plain"), tok) == 50256, "eot id");
    distill_ids_free(&ids);
    distill_floats_free(&w);
    distill_conv_free(&c);
    distill_tokenizer_free(tok);
}

static void write_file(const char *path, const char *s) {
    distill_error err;
    distill_write_file_atomic(path, s, strlen(s), &err);
}

static void test_load_formats(void) {
    distill_tokenizer *tok = minimind();
    static const struct { const char *file; const char *format; int64_t rows; } files[] = {
        {FIX "messages.jsonl", "messages", 3}, {FIX "conversations.jsonl", "conversations", 2},
        {FIX "prompt_completion.jsonl", "prompt-completion", 2}, {FIX "alpaca.json", "alpaca", 2}, {FIX "text.jsonl", "text", 1},
    };
    size_t i;
    distill_error err;
    if (!tok) SKIP("%s not available", MINIMIND);
    for (i = 0; i < sizeof files / sizeof files[0]; i++) {
        distill_dataset *ds = distill_dataset_load(files[i].file, NULL, tok, &err);
        const distill_data_stats *s = ds ? distill_dataset_stats(ds) : NULL;
        CHECK(ds && s->rows == files[i].rows && !strcmp(distill_data_format_name(s->format), files[i].format) && s->eot_rows ==
              (strcmp(files[i].format, "text") ? files[i].rows : 0),
              "%s: %s", files[i].file, ds ? "wrong stats" : err.msg);
        distill_dataset_free(ds);
    }
    {   /* the .json array rows carry their real line numbers */
        distill_dataset *ds = distill_dataset_load(FIX "alpaca.json", NULL, tok, &err);
        distill_row r;
        CHECK(ds && distill_dataset_row(ds, 1, &r) == 0 && r.line == 3 && r.id == 1, "array item line");
        distill_dataset_free(ds);
    }
    distill_tokenizer_free(tok);
}

static void test_bad_input(void) {
    distill_data_options o = distill_data_options_default();
    distill_error err;
    distill_dataset *ds;
    /* strict: the first bad row stops the load with file:line:col and field */
    ds = distill_dataset_load(FIX "bad.jsonl", &o, NULL, &err);
    CHECK(!ds && strstr(err.msg, "bad.jsonl:2:") && strstr(err.msg, "field 'messages.1.content'"), "strict: %s", err.msg);
    /* skip: counted, the first error kept */
    o.policy = DISTILL_POLICY_SKIP;
    ds = distill_dataset_load(FIX "bad.jsonl", &o, NULL, &err);
    CHECK(ds && distill_dataset_stats(ds)->rows == 2 && distill_dataset_stats(ds)->skipped == 5 && distill_dataset_stats(ds)->records == 7,
          "skip: %s", ds ? "wrong counts" : err.msg);
    distill_dataset_free(ds);
    write_file("build/data_noanswer.jsonl", "{\"messages\": [{\"role\": \"user\", \"content\": \"only a question\"}]}\n");
    o.policy = DISTILL_POLICY_STRICT;
    ds = distill_dataset_load("build/data_noanswer.jsonl", &o, NULL, &err);
    CHECK(!ds && strstr(err.msg, "data_noanswer.jsonl:1:1: no assistant turn to learn from"), "no answer: %s", err.msg);
    o.policy = DISTILL_POLICY_SKIP;
    distill_dataset_free(ds);
    /* empty, blank-only, not JSON, zero usable rows */
    write_file("build/data_empty.jsonl", "");
    ds = distill_dataset_load("build/data_empty.jsonl", &o, NULL, &err);
    CHECK(!ds && strstr(err.msg, "empty file"), "empty: %s", err.msg);
    write_file("build/data_blank.jsonl", "\n  \n\n");
    ds = distill_dataset_load("build/data_blank.jsonl", &o, NULL, &err);
    CHECK(!ds && strstr(err.msg, "empty file"), "blank: %s", err.msg);
    write_file("build/data_notjson.jsonl", "this is not json\nat all\n");
    ds = distill_dataset_load("build/data_notjson.jsonl", &o, NULL, &err);
    CHECK(!ds && strstr(err.msg, "no usable rows") && strstr(err.msg, "data_notjson.jsonl:1:1:"), "not json (skip): %s", err.msg);
    o.policy = DISTILL_POLICY_STRICT;
    ds = distill_dataset_load("build/data_notjson.jsonl", &o, NULL, &err);
    CHECK(!ds && strncmp(err.msg, "build/data_notjson.jsonl:1:1: ", 30) == 0, "not json (strict): %s", err.msg);
    ds = distill_dataset_load("build/nope.jsonl", &o, NULL, &err);
    CHECK(!ds && strstr(err.msg, "cannot open"), "missing file: %s", err.msg);
    write_file("build/data_badarray.json", "[{\"text\": \"a\"},\n {\"text\": 1}]");
    ds = distill_dataset_load("build/data_badarray.json", &o, NULL, &err);
    CHECK(!ds && strstr(err.msg, "data_badarray.json:2:11: field 'text': expected a string, got number"), "array item: %s", err.msg);
    write_file("build/data_truncarray.json", "[{\"text\": \"a\"},\n {\"text\": ");
    ds = distill_dataset_load("build/data_truncarray.json", &o, NULL, &err);
    CHECK(!ds && strstr(err.msg, "data_truncarray.json:2:"), "truncated array: %s", err.msg);
}

static void test_big_line(void) {
    /* one 100 MB line in a file: a clear result, no crash; with the line limit, a clear error */
    const char *path = "build/data_bigline.jsonl";
    size_t n = (size_t)100 << 20, i;
    FILE *f = fopen(path, "wb");
    char *chunk = (char *)malloc(1 << 20);
    distill_data_options o = distill_data_options_default();
    distill_error err;
    distill_dataset *ds;
    if (!f || !chunk) { if (f) fclose(f); free(chunk); CHECK(0, "cannot write %s", path); return; }
    memset(chunk, 'a', 1 << 20);
    fputs("{\"prompt\": \"q\", \"completion\": \"", f);
    for (i = 0; i < n >> 20; i++) fwrite(chunk, 1, 1 << 20, f);
    fputs("\"}\n{\"prompt\": \"q\", \"completion\": \"short\"}\n", f);
    fclose(f);
    free(chunk);
    ds = distill_dataset_load(path, &o, NULL, &err);
    CHECK(ds && distill_dataset_stats(ds)->rows == 2, "100 MB line loads: %s", ds ? "" : err.msg);
    distill_dataset_free(ds);
    o.max_line = 1 << 20;
    ds = distill_dataset_load(path, &o, NULL, &err);
    CHECK(!ds && strstr(err.msg, ":1: line longer than 1048576 bytes"), "line limit: %s", err.msg);
    remove(path);
}

static void test_length_policy(void) {
    distill_tokenizer *tok = minimind();
    distill_data_options o = distill_data_options_default();
    distill_error err;
    distill_dataset *full, *ds;
    distill_row r;
    int64_t i;
    int max_seq = 38;   /* rows are 45, 42 and 32 tokens; row 0's </think> is token 39 */
    if (!tok) SKIP("%s not available", MINIMIND);
    full = distill_dataset_load(FIX "messages.jsonl", &o, tok, &err);
    CHECK(full != NULL, "%s", err.msg);
    if (!full) { distill_tokenizer_free(tok); return; }
    o.max_seq = max_seq;
    ds = distill_dataset_load(FIX "messages.jsonl", &o, tok, &err);
    {
        int64_t longer = 0;
        for (i = 0; i < distill_dataset_size(full); i++) { distill_dataset_row(full, i, &r); if (r.n > max_seq) longer++; }
        CHECK(longer > 0, "fixture has rows over %d tokens", max_seq);
        CHECK(ds && distill_dataset_stats(ds)->dropped == longer && distill_dataset_stats(ds)->rows == 3 - longer, "drop: %s",
              ds ? "wrong counts" : err.msg);
    }
    distill_dataset_free(ds);
    o.truncate = 1;
    ds = distill_dataset_load(FIX "messages.jsonl", &o, tok, &err);
    CHECK(ds != NULL, "%s", err.msg);
    if (ds) {
        int64_t lost = 0, trunc = 0;
        for (i = 0; i < distill_dataset_size(full); i++) {
            distill_row a, b;
            distill_dataset_row(full, i, &a);
            distill_dataset_row(ds, i, &b);
            CHECK(b.n == (a.n > max_seq ? max_seq : a.n) && memcmp(a.tokens, b.tokens, (size_t)b.n * 4) == 0, "row %lld truncated prefix", (long long)i);
            if (a.n > max_seq) {
                int32_t close = distill_tokenizer_token_id(tok, "</think>");
                int k, had = 0, kept = 0;
                trunc++;
                for (k = 0; k < a.n; k++) if (a.tokens[k] == close) { had = 1; if (k < max_seq) kept = 1; }
                if (had && !kept) lost++;
                {   /* the EOT flag says whether the kept supervised part ends with <|im_end|> */
                    int last = -1;
                    for (k = 1; k < b.n; k++) if (b.weights[k] > 0) last = k;
                    CHECK(!!(b.flags & DISTILL_ROW_EOT) == (last >= 0 && b.tokens[last] == distill_tokenizer_token_id(tok, "<|im_end|>")),
                          "row %lld: EOT flag after truncation", (long long)i);
                }
            }
        }
        CHECK(distill_dataset_stats(ds)->truncated == trunc && distill_dataset_stats(ds)->lost_think == lost && lost > 0,
              "truncated %lld (want %lld), lost_think %lld (want %lld)", (long long)distill_dataset_stats(ds)->truncated,
              (long long)trunc, (long long)distill_dataset_stats(ds)->lost_think, (long long)lost);
    }
    distill_dataset_free(ds);
    /* a row whose supervised part is cut away entirely: strict error, skip counts */
    o.max_seq = 8;
    ds = distill_dataset_load(FIX "messages.jsonl", &o, tok, &err);
    CHECK(!ds && strstr(err.msg, "no supervised token") && strstr(err.msg, "messages.jsonl:1"), "strict no-supervised: %s", err.msg);
    o.policy = DISTILL_POLICY_SKIP;
    ds = distill_dataset_load(FIX "messages.jsonl", &o, tok, &err);
    CHECK(!ds && strstr(err.msg, "no usable rows") && strstr(err.msg, "3 skipped"), "skip no-supervised: %s", err.msg);
    distill_dataset_free(full);
    distill_tokenizer_free(tok);
}

static void test_load_filters(void) {
    const char *filters[] = {"difficulty in {EASY, MEDIUM}", "pass_rate >= 0.5"};
    const char *maps[] = {"question=prompt", "r1_generation=response", "reasoning=think"};
    const char *f2[] = {"judgement == \"right\"", "meta.difficulty == EASY"};
    distill_data_options o = distill_data_options_default();
    distill_error err;
    distill_dataset *ds;
    distill_row r;
    o.filters = filters;
    o.n_filters = 2;
    ds = distill_dataset_load(FIX "messages.jsonl", &o, NULL, &err);
    CHECK(ds && distill_dataset_size(ds) == 2 && distill_dataset_stats(ds)->filtered == 1, "filters: %s", ds ? "counts" : err.msg);
    CHECK(ds && distill_dataset_row(ds, 1, &r) == 0 && r.id == 1 && r.line == 2, "row ids and lines survive filtering");
    distill_dataset_free(ds);
    o.filters = f2;
    o.map = maps;
    o.n_map = 3;
    ds = distill_dataset_load(FIX "mapped.jsonl", &o, NULL, &err);
    CHECK(ds && distill_dataset_size(ds) == 1 && distill_dataset_stats(ds)->think_rows == 1, "mapped + filters: %s", ds ? "counts" : err.msg);
    distill_dataset_free(ds);
    filters[0] = "difficulty === 1";
    o.filters = filters;
    o.n_map = 0;
    o.n_filters = 1;
    ds = distill_dataset_load(FIX "messages.jsonl", &o, NULL, &err);
    CHECK(!ds, "bad filter is an error");
}

/* a synthetic dataset of n rows of varying length, written as prompt/completion JSONL */
static distill_dataset *synthetic(distill_tokenizer *tok, int n, distill_error *err) {
    const char *path = "build/data_synth.jsonl";
    FILE *f = fopen(path, "wb");
    int i, k;
    if (!f) { snprintf(err->msg, sizeof err->msg, "cannot write %s", path); return NULL; }
    for (i = 0; i < n; i++) {
        fprintf(f, "{\"prompt\": \"question %d\", \"completion\": \"", i);
        for (k = 0; k < 1 + (i * 7) % 13; k++) fprintf(f, "w%d ", k);
        fprintf(f, "end\", \"id\": %d}\n", i);
    }
    fclose(f);
    return distill_dataset_load(path, NULL, tok, err);
}

static void test_select(void) {
    distill_tokenizer *tok = minimind();
    distill_error err;
    distill_dataset *ds, *a, *b, *s0, *s1;
    distill_select_options sel;
    int64_t i, j;
    int nested = 1, disjoint = 1;
    if (!tok) SKIP("%s not available", MINIMIND);
    ds = synthetic(tok, 100, &err);
    CHECK(ds != NULL, "%s", err.msg);
    if (!ds) { distill_tokenizer_free(tok); return; }
    memset(&sel, 0, sizeof sel);
    sel.seed = 42;
    sel.n = 10;
    sel.manifest = "build/data_manifest.json";
    a = distill_dataset_select(ds, &sel, &err);
    sel.n = 30;
    sel.manifest = NULL;
    b = distill_dataset_select(ds, &sel, &err);
    CHECK(a && b && distill_dataset_size(a) == 10 && distill_dataset_size(b) == 30, "sizes");
    for (i = 0; a && b && i < 10; i++) {
        distill_row ra, rb;
        int found = 0;
        distill_dataset_row(a, i, &ra);
        for (j = 0; j < 30; j++) { distill_dataset_row(b, j, &rb); if (rb.id == ra.id) found = 1; }
        if (!found) nested = 0;
    }
    CHECK(nested, "the first 10 are inside the first 30 (nested)");
    {   /* the manifest lists exactly the chosen ids */
        distill_json *m = distill_json_parse_file("build/data_manifest.json", &err);
        const distill_json *rows = m ? distill_json_get(m, "rows") : NULL;
        int same = rows && rows->len == 10;
        for (i = 0; same && i < 10; i++) {
            distill_row ra;
            distill_dataset_row(a, i, &ra);
            if (rows->items[i].i64 != ra.id) same = 0;
        }
        CHECK(same && distill_json_get(m, "seed")->i64 == 42, "manifest: %s", m ? "" : err.msg);
        distill_json_free(m);
    }
    sel.seed = 43;
    sel.n = 10;
    distill_dataset_free(b);
    b = distill_dataset_select(ds, &sel, &err);
    {
        int same = 1;
        for (i = 0; i < 10; i++) {
            distill_row ra, rb;
            distill_dataset_row(a, i, &ra);
            distill_dataset_row(b, i, &rb);
            if (ra.id != rb.id) same = 0;
        }
        CHECK(!same, "another seed gives another subset");
    }
    /* equal-size splits: disjoint, same size */
    sel.seed = 7;
    sel.n = 0;
    sel.n_splits = 3;
    sel.split = 0;
    s0 = distill_dataset_select(ds, &sel, &err);
    sel.split = 1;
    s1 = distill_dataset_select(ds, &sel, &err);
    CHECK(s0 && s1 && distill_dataset_size(s0) == 33 && distill_dataset_size(s1) == 33, "split sizes");
    for (i = 0; s0 && s1 && i < 33; i++)
        for (j = 0; j < 33; j++) {
            distill_row r0, r1;
            memset(&r0, 0, sizeof r0);
            memset(&r1, 0, sizeof r1);
            r1.id = -1;
            distill_dataset_row(s0, i, &r0);
            distill_dataset_row(s1, j, &r1);
            if (r0.id == r1.id) disjoint = 0;
        }
    CHECK(disjoint, "splits are disjoint");
    sel.n_splits = 0;
    sel.n = 101;
    CHECK(distill_dataset_select(ds, &sel, &err) == NULL && strstr(err.msg, "only 100"), "too many: %s", err.msg);
    distill_dataset_free(ds);   /* subsets keep the shared tokens alive */
    {
        distill_row r;
        CHECK(distill_dataset_row(a, 9, &r) == 0 && r.n > 0 && r.tokens[0] >= 0, "subset outlives its parent");
    }
    distill_dataset_free(a);
    distill_dataset_free(b);
    distill_dataset_free(s0);
    distill_dataset_free(s1);
    distill_tokenizer_free(tok);
}

/* every batch position checked against the rows it came from */
static int check_batch(const distill_dataset *ds, const distill_loader *L, const distill_batch *b, int packed) {
    int n, i, bi = 0, off = 0, seg = 0;
    const int64_t *rows = distill_loader_last_rows(L, &n);
    for (i = 0; i < n; i++) {
        distill_row r;
        int t;
        distill_dataset_row(ds, rows[i], &r);
        if (packed) {
            if (off + r.n > b->lengths[bi]) { bi++; off = 0; seg = 0; }
        } else {
            bi = i;
            off = 0;
            if (b->lengths[bi] != r.n) return 0;
        }
        for (t = 0; t < r.n; t++) {
            size_t k = (size_t)bi * b->T + off + t;
            int32_t want_target = (t + 1 < r.n && r.weights[t + 1] > 0) ? r.tokens[t + 1] : -1;
            if (b->tokens[k] != r.tokens[t] || b->targets[k] != want_target) return 0;
            if (b->weights[k] != (want_target >= 0 ? r.weights[t + 1] : 0.0f)) return 0;
            if (packed && (b->segments[k] != seg || b->positions[k] != t)) return 0;
        }
        off += r.n;
        seg++;
    }
    return 1;
}

/* A byte-level tokenizer (256 ids, no merges, no special tokens): one token per byte, so token
   positions are byte offsets of the rendered text and tests need no external file. */
static distill_tokenizer *byte_tokenizer(void) {
    distill_error err;
    const char *texts[1] = {"abc"};
    size_t lens[1] = {3};
    distill_tokenizer *t = distill_tokenizer_train(texts, lens, 1, 256, DISTILL_PATTERN_GPT2, NULL, 0, &err);
    CHECK(t != NULL && distill_tokenizer_vocab_size(t) == 256, "byte-level tokenizer: %s", t ? "vocab" : err.msg);
    return t;
}

/* chatml-prefill: the "<think>\n" that opens an assistant turn is part of the generation prompt,
   so in training it is cut from the content and left unsupervised; the reasoning after it, the
   answer and <|im_end|> are targets. One token per byte: weights are per byte of the text. */
static void test_prefill_unsupervised(void) {
    const distill_chat_template *tm = distill_chat_template_get("chatml-prefill");
    distill_tokenizer *tok = byte_tokenizer();
    distill_error err;
    distill_conv c;
    distill_ids ids = {NULL, 0, 0};
    distill_floats w = {NULL, 0, 0};
    const char *asst = "<think>\nr\n</think>\n\nA";
    char *text;
    size_t len, at, i;
    int ok = 1;
    REQUIRE(tok && tm, "tokenizer or template chatml-prefill missing");
    memset(&c, 0, sizeof c);
    distill_conv_add(&c, DISTILL_ROLE_USER, "Q", 1, -1);
    distill_conv_add(&c, DISTILL_ROLE_ASSISTANT, asst, strlen(asst), -1);
    text = distill_chat_render(tm, &c, 0, &len);
    CHECK(distill_chat_encode(tm, tok, &c, DISTILL_LOSS_ASSISTANT, 0, &ids, &w, &err) == 0, "%s", err.msg);
    CHECK(text && ids.n == len && w.n == len, "one token per byte: %zu ids, %zu bytes", ids.n, len);
    if (text && ids.n == len && w.n == len) {
        const char *p = strstr(text, asst);
        CHECK(p != NULL, "rendered text holds the assistant content: %s", text);
        at = p ? (size_t)(p - text) : 0;
        for (i = 0; p && i < len; i++) {
            int want = i >= at + 8 && i < at + strlen(asst) + strlen("<|im_end|>");   /* after "<think>\n" */
            if ((w.v[i] > 0) != want) { if (ok) printf("    byte %zu '%c': weight %g\n", i, text[i], (double)w.v[i]); ok = 0; }
        }
        CHECK(ok, "weights: the prefill \"<think>\\n\" unsupervised, the rest of the turn supervised");
    }
    distill_free(text);
    distill_ids_free(&ids);
    distill_floats_free(&w);
    distill_conv_free(&c);
    distill_tokenizer_free(tok);
}

/* A row cut inside "</think>" lost its think end: with one token per byte, cutting before the
   final '>' sets DISTILL_ROW_LOST_THINK (and counts lost_think), keeping the '>' does not. */
static void test_lost_think_inside_close_tag(void) {
    const char *path = "build/data_lost_think.jsonl";
    distill_tokenizer *tok = byte_tokenizer();
    distill_data_options o = distill_data_options_default();
    distill_error err;
    distill_dataset *full, *ds;
    distill_row r;
    FILE *f = fopen(path, "wb");
    char text[512];
    int i, gt = -1, cut;
    if (f) {
        fputs("{\"prompt\": \"Q\", \"completion\": \"<think>\\nreasoning\\n</think>\\n\\nanswer\"}\n", f);
        fclose(f);
    }
    REQUIRE(tok && f, "tokenizer, or cannot write %s", path);
    full = distill_dataset_load(path, &o, tok, &err);
    REQUIRE(full != NULL && distill_dataset_row(full, 0, &r) == 0 && r.n < (int)sizeof text, "%s", err.msg);
    for (i = 0; i < r.n; i++) {   /* the text back from the token bytes */
        size_t bl = 0;
        const char *b = distill_tokenizer_token_bytes(tok, r.tokens[i], &bl);
        text[i] = bl == 1 ? b[0] : '?';
    }
    text[r.n] = 0;
    if (strstr(text, "</think>")) gt = (int)(strstr(text, "</think>") - text) + 7;   /* the '>' */
    REQUIRE(gt > 0, "no </think> in the row: %s", text);
    for (cut = gt; cut <= gt + 1; cut++) {
        o.max_seq = cut;
        o.truncate = 1;
        ds = distill_dataset_load(path, &o, tok, &err);
        CHECK(ds != NULL && distill_dataset_row(ds, 0, &r) == 0, "%s", err.msg);
        if (!ds) continue;
        CHECK(!!(r.flags & DISTILL_ROW_LOST_THINK) == (cut == gt) && distill_dataset_stats(ds)->lost_think == (cut == gt),
              "max_seq %d (the '>' of </think> is token %d): lost_think flag %d, count %lld", cut, gt,
              !!(r.flags & DISTILL_ROW_LOST_THINK), (long long)distill_dataset_stats(ds)->lost_think);
        distill_dataset_free(ds);
    }
    distill_dataset_free(full);
    distill_tokenizer_free(tok);
}

/* The shuffle behind selection and the loader's epochs (internal distill__data_permute, visible
   because the test includes the implementation) is a uniform random permutation: over 24000
   seeds each of the 24 orders of 4 rows appears about 1000 times. Chi-square with 23 degrees of
   freedom: above 70 has probability < 1e-6 for a uniform shuffle (the seeds are fixed, so the
   result is too). A biased shuffle (Sattolo's cycles, an off-by-one range) gives thousands. */
static void test_shuffle_is_uniform(void) {
    int counts[24], i, k;
    int64_t perm[4];
    double chi2 = 0.0;
    memset(counts, 0, sizeof counts);
    for (i = 0; i < 24000; i++) {
        int code = 0, used = 0;
        distill__data_permute(perm, 4, 1000 + (uint64_t)i * 7919);
        /* the Lehmer code of the permutation: 0..23 */
        for (k = 0; k < 4; k++) {
            int smaller = 0, j;
            for (j = 0; j < (int)perm[k]; j++) smaller += !(used >> j & 1);
            used |= 1 << perm[k];
            code = code * (4 - k) + smaller;
        }
        CHECK(used == 15, "seed %d: not a permutation", i);
        if (used != 15) return;
        counts[code]++;
    }
    for (k = 0; k < 24; k++) chi2 += (counts[k] - 1000.0) * (counts[k] - 1000.0) / 1000.0;
    printf("    chi-square of the 24 orders of 4 rows over 24000 seeds: %.1f\n", chi2);
    CHECK(chi2 < 70.0, "chi-square of the 24 orders = %.1f (counts %d %d %d ... %d)", chi2, counts[0], counts[1], counts[2], counts[23]);
}

static void test_loader(void) {
    distill_tokenizer *tok = minimind();
    distill_error err;
    distill_dataset *ds;
    distill_loader *L, *L2;
    distill_loader_options lo = distill_loader_options_default();
    distill_batch b;
    distill_loader_cursor cur;
    int64_t seen[64];
    int i, n, ok = 1, cover = 1;
    if (!tok) SKIP("%s not available", MINIMIND);
    ds = synthetic(tok, 37, &err);
    CHECK(ds != NULL, "%s", err.msg);
    if (!ds) { distill_tokenizer_free(tok); return; }
    lo.batch_rows = 5;
    lo.seed = 3;
    L = distill_loader_create(ds, &lo, &err);
    CHECK(L != NULL, "%s", err.msg);
    memset(seen, 0, sizeof seen);
    /* one epoch: 8 batches (7 of 5 and one of 2), every row exactly once */
    for (i = 0; i < 8; i++) {
        int k;
        const int64_t *rows;
        CHECK(distill_loader_next(L, &b, &err) == 0, "%s", err.msg);
        rows = distill_loader_last_rows(L, &n);
        if (!check_batch(ds, L, &b, 0)) ok = 0;
        CHECK(b.B == (i < 7 ? 5 : 2) && b.segments == NULL, "batch %d has B=%d", i, b.B);
        for (k = 0; k < n; k++) seen[rows[k]]++;
    }
    for (i = 0; i < 37; i++) if (seen[i] != 1) cover = 0;
    CHECK(ok, "batch contents match rows (targets = next supervised token)");
    CHECK(cover, "one epoch serves every row once");
    CHECK(distill_loader_get_cursor(L).epoch == 0, "still epoch 0");
    /* exact resume: save after 3 batches of epoch 1, continue; a new loader restored gives the same */
    for (i = 0; i < 3; i++) distill_loader_next(L, &b, &err);
    cur = distill_loader_get_cursor(L);
    CHECK(cur.epoch == 1 && cur.pos == 15, "cursor epoch %lld pos %lld", (long long)cur.epoch, (long long)cur.pos);
    L2 = distill_loader_create(ds, &lo, &err);
    CHECK(distill_loader_set_cursor(L2, &cur, &err) == 0, "%s", err.msg);
    for (i = 0; i < 12; i++) {
        distill_batch b2;
        int n1, n2;
        const int64_t *r1, *r2;
        distill_loader_next(L, &b, &err);
        distill_loader_next(L2, &b2, &err);
        r1 = distill_loader_last_rows(L, &n1);
        r2 = distill_loader_last_rows(L2, &n2);
        if (n1 != n2 || memcmp(r1, r2, (size_t)n1 * 8) != 0 || b.T != b2.T ||
            memcmp(b.tokens, b2.tokens, (size_t)b.B * b.T * 4) != 0) ok = 0;
    }
    CHECK(ok, "restored loader continues identically (across an epoch boundary)");
    lo.seed = 4;
    distill_loader_free(L2);
    L2 = distill_loader_create(ds, &lo, &err);
    CHECK(distill_loader_set_cursor(L2, &cur, &err) == -1 && strstr(err.msg, "fingerprint"), "cursor for other options refused");
    distill_loader_free(L2);
    distill_loader_free(L);
    /* token budget: B * T <= budget */
    lo = distill_loader_options_default();
    lo.batch_rows = 0;
    lo.token_budget = 200;
    L = distill_loader_create(ds, &lo, &err);
    for (i = 0, ok = 1; L && i < 10; i++) {
        distill_loader_next(L, &b, &err);
        if ((int64_t)b.B * b.T > 200 || !check_batch(ds, L, &b, 0)) ok = 0;
    }
    CHECK(L && ok, "token budget respected");
    distill_loader_free(L);
    /* packing: segments and positions restart per row, nothing crosses a row */
    lo = distill_loader_options_default();
    lo.pack = 1;
    lo.seq_len = 64;
    lo.batch_rows = 2;
    L = distill_loader_create(ds, &lo, &err);
    CHECK(L != NULL, "%s", err.msg);
    for (i = 0, ok = 1; L && i < 10; i++) {
        distill_loader_next(L, &b, &err);
        if (b.T > 64 || b.B > 2 || !b.segments || !check_batch(ds, L, &b, 1)) ok = 0;
    }
    CHECK(ok, "packed batches");
    distill_loader_free(L);
    lo.seq_len = 8;
    CHECK(distill_loader_create(ds, &lo, &err) == NULL && strstr(err.msg, "seq_len 8"), "rows longer than seq_len: %s", err.msg);
    distill_dataset_free(ds);
    distill_tokenizer_free(tok);
}

/* Packing without leakage, checked through the model: the loss and the gradients of a packed
   batch equal those of the same rows unpacked (one row per sequence). */
static void test_packed_equals_unpacked(void) {
    distill_tokenizer *tok = minimind();
    distill_error err;
    distill_dataset *ds;
    distill_loader *Lp, *Lu;
    distill_loader_options lo = distill_loader_options_default();
    distill_config cfg = distill_config_default();
    distill_model *m;
    distill_batch bp, bu;
    distill_stats sp, su;
    float *gp;
    size_t i;
    double maxd = 0, maxg = 0;
    int np, nu;
    const int64_t *rp, *ru;
    if (!tok) SKIP("%s not available", MINIMIND);
    ds = synthetic(tok, 6, &err);
    if (!ds) { distill_tokenizer_free(tok); CHECK(0, "%s", err.msg); return; }
    lo.shuffle = 0;
    lo.pack = 1;
    lo.seq_len = 256;
    lo.batch_rows = 1;
    Lp = distill_loader_create(ds, &lo, &err);
    lo.pack = 0;
    lo.seq_len = 0;
    lo.batch_rows = 6;
    Lu = distill_loader_create(ds, &lo, &err);
    distill_loader_next(Lp, &bp, &err);
    distill_loader_next(Lu, &bu, &err);
    rp = distill_loader_last_rows(Lp, &np);
    ru = distill_loader_last_rows(Lu, &nu);
    CHECK(np == 6 && nu == 6 && memcmp(rp, ru, 6 * 8) == 0 && bp.B == 1, "same rows in both batches (%d, %d)", np, nu);
    cfg.vocab_size = distill_tokenizer_vocab_size(tok);
    cfg.dim = 32;
    cfg.n_layers = 2;
    cfg.n_heads = 4;
    cfg.n_kv_heads = 2;
    cfg.hidden_dim = 64;
    m = distill_model_create(&cfg, 6, 256, 5, &err);
    CHECK(m != NULL, "%s", err.msg);
    if (m && np == 6) {
        gp = (float *)malloc(m->num_params * sizeof(float));
        distill_model_zero_grad(m);
        CHECK(distill_model_forward(m, &bp, NULL, 0, &sp, &err) == 0, "%s", err.msg);
        distill_model_backward(m);
        memcpy(gp, m->grads, m->num_params * sizeof(float));
        distill_model_zero_grad(m);
        CHECK(distill_model_forward(m, &bu, NULL, 0, &su, &err) == 0, "%s", err.msg);
        distill_model_backward(m);
        for (i = 0; i < m->num_params; i++) {
            double d = fabs((double)gp[i] - (double)m->grads[i]);
            if (d > maxd) maxd = d;
            if (fabs((double)m->grads[i]) > maxg) maxg = fabs((double)m->grads[i]);
        }
        CHECK(sp.weight_sum == su.weight_sum && sp.weight_sum > 0, "same supervised weight %g %g", sp.weight_sum, su.weight_sum);
        CHECK_CLOSE(sp.loss, su.loss, 1e-5, 1e-6, "packed loss vs unpacked");
        CHECK(maxd <= 1e-5 * maxg + 1e-7, "max |grad packed - unpacked| = %g (max |grad| %g)", maxd, maxg);
        free(gp);
    }
    distill_model_free(m);
    distill_loader_free(Lp);
    distill_loader_free(Lu);
    distill_dataset_free(ds);
    distill_tokenizer_free(tok);
}

static void test_threads_identical(void) {
    /* the loader tokenises on the thread pool: 1 and 2 threads give the same dataset */
    distill_tokenizer *tok = minimind();
    distill_error err;
    distill_dataset *a, *b;
    int64_t i;
    int same = 1;
    if (!tok) SKIP("%s not available", MINIMIND);
    distill_set_threads(1);
    a = synthetic(tok, 600, &err);
    distill_set_threads(2);
    b = synthetic(tok, 600, &err);
    CHECK(a && b && distill_dataset_size(a) == 600 && distill_dataset_size(b) == 600, "sizes");
    for (i = 0; a && b && i < 600; i++) {
        distill_row ra, rb;
        distill_dataset_row(a, i, &ra);
        distill_dataset_row(b, i, &rb);
        if (ra.n != rb.n || ra.id != rb.id || memcmp(ra.tokens, rb.tokens, (size_t)ra.n * 4) != 0 ||
            memcmp(ra.weights, rb.weights, (size_t)ra.n * 4) != 0) same = 0;
    }
    CHECK(same, "identical rows");
    distill_dataset_free(a);
    distill_dataset_free(b);
    distill_tokenizer_free(tok);
}

int main(void) {
    RUN(test_adapters);
    RUN(test_adapter_errors);
    RUN(test_filters);
    RUN(test_template_text);
    RUN(test_chatml_ids_and_weights);
    RUN(test_gpt2_plain_ids);
    RUN(test_load_formats);
    RUN(test_bad_input);
    RUN(test_big_line);
    RUN(test_length_policy);
    RUN(test_load_filters);
    RUN(test_select);
    RUN(test_prefill_unsupervised);
    RUN(test_lost_think_inside_close_tag);
    RUN(test_shuffle_is_uniform);
    RUN(test_loader);
    RUN(test_packed_equals_unpacked);
    RUN(test_threads_identical);
    return harness_done("test_data");
}
