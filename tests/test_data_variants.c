/* Dataset variants as real files have them: conversations with role/content and messages
   with from/value, typed content parts with "value" and reasoning parts, tool use (ShareGPT
   function_call/observation with a "tools" string, OpenAI tool_calls/tool turns with a
   "tools" list), and pairwise preference files. Each fixture in tests/fixtures/data/ is in
   the schema it is named after. The expected renderings are written out from Qwen3's ChatML
   chat template (the tool parts of Qwen2.5's are the same but for its default system text):
   tools in the system turn as json.dumps lines inside <tools>, calls as <tool_call> blocks in
   the assistant turn, runs of tool results as one user turn of <tool_response> blocks. */
#define DISTILL_IMPLEMENTATION
#include "../distill.h"
#include "harness.h"
#include "cli_harness.h"

#define MINIMIND "../shared/data/minimind/tokenizer.json"
#define FIX "tests/fixtures/data/"

#define TOOLS_HEAD "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n" \
                   "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
#define TOOLS_TAIL "\n</tools>\n\nFor each function call, return a json object with function name and arguments within " \
                   "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": " \
                   "<args-json-object>}\n</tool_call>"

/* Record i of a fixture (a .jsonl line or an item of a .json array) as a conversation. */
static int fixture_conv(const char *file, size_t i, const distill_data_options *o, distill_conv *c, distill_error *err) {
    size_t n;
    char *text = (char *)distill_read_file(file, &n, err);
    distill_json *doc = NULL;
    const distill_json *rec = NULL;
    int rc = -1;
    memset(c, 0, sizeof *c);
    if (!text) return -1;
    if (text[0] == '[') {
        doc = distill_json_parse(text, n, file, 1, err);
        rec = doc ? distill_json_at(doc, i) : NULL;
    } else {
        char *line = text, *end;
        size_t k;
        for (k = 0; k < i && line; k++) { line = strchr(line, '\n'); if (line) line++; }
        end = line ? strchr(line, '\n') : NULL;
        if (line) doc = distill_json_parse(line, end ? (size_t)(end - line) : strlen(line), file, (int)i + 1, err);
        rec = doc;
    }
    if (rec) {
        rc = distill_conv_from_json(rec, o, NULL, file, c, err);
        if (rc == 0) {   /* independent of the document from here on */
            distill_conv copy;
            int k;
            memset(&copy, 0, sizeof copy);
            for (k = 0; k < c->n; k++) distill_conv_add(&copy, c->msgs[k].role, c->msgs[k].content, c->msgs[k].len, c->msgs[k].loss_weight);
            distill_conv_free(c);
            *c = copy;
        }
    } else if (doc) {
        snprintf(err->msg, sizeof err->msg, "no record %zu", i);
    }
    distill_json_free(doc);
    distill_free(text);
    return rc;
}

/* The record rendered with the default ChatML template equals `want`. */
static void check_render(const char *file, size_t i, const distill_data_options *o, const char *want) {
    distill_conv c;
    distill_error err;
    char *s = NULL;
    if (fixture_conv(file, i, o, &c, &err) != 0) {
        CHECK(0, "%s record %zu: %s", file, i, err.msg);
        return;
    }
    s = distill_chat_render(NULL, &c, 0, NULL);
    CHECK(s && strcmp(s, want) == 0, "%s record %zu renders\n----- got:\n%s\n----- want:\n%s", file, i, s ? s : "(null)", want);
    distill_free(s);
    distill_conv_free(&c);
}

static void test_role_content_and_from_value(void) {
    distill_data_options o = distill_data_options_default();
    check_render(FIX "conversations_role_content.jsonl", 0, &o,
                 "<|im_start|>system\nYou are a careful math tutor.<|im_end|>\n<|im_start|>user\nWhat is 12 * 12?<|im_end|>\n"
                 "<|im_start|>assistant\n<think>\n12 * 12 = 144.\n</think>\n\n144<|im_end|>\n");
    check_render(FIX "conversations_role_content.jsonl", 1, &o,
                 "<|im_start|>user\nSay hi.<|im_end|>\n<|im_start|>assistant\nHi!<|im_end|>\n<|im_start|>user\nAgain.<|im_end|>\n"
                 "<|im_start|>assistant\nHi again!<|im_end|>\n");
    check_render(FIX "messages_from_value.jsonl", 1, &o,
                 "<|im_start|>system\nAnswer in one word.<|im_end|>\n<|im_start|>user\nColor of the sky?<|im_end|>\n"
                 "<|im_start|>assistant\nBlue<|im_end|>\n");
}

static void test_content_parts(void) {
    distill_data_options o = distill_data_options_default();
    distill_conv c;
    distill_error err;
    check_render(FIX "content_parts.jsonl", 0, &o,
                 "<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n");
    check_render(FIX "content_parts.jsonl", 1, &o,
                 "<|im_start|>user\nIs 91 prime?<|im_end|>\n<|im_start|>assistant\n<think>\n91 = 7 * 13.\n</think>\n\nNo: 91 = 7 * 13.<|im_end|>\n");
    check_render(FIX "content_parts.jsonl", 2, &o,
                 "<|im_start|>user\nCapital of France?<|im_end|>\n<|im_start|>assistant\n<think>\nIt is Paris.\n</think>\n\nParis.<|im_end|>\n");
    /* a reasoning part outside an assistant turn is an error naming the field */
    {
        distill_json *j;
        const char *bad = "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"reasoning\",\"text\":\"x\"}]},{\"role\":\"assistant\",\"content\":\"a\"}]}";
        j = distill_json_parse(bad, strlen(bad), "t.jsonl", 1, &err);
        memset(&c, 0, sizeof c);
        CHECK(j && distill_conv_from_json(j, &o, NULL, "t.jsonl", &c, &err) == -1 &&
              strstr(err.msg, "field 'messages.0.content': part 0: only text parts are supported (got type 'reasoning')"), "%s", err.msg);
        distill_conv_free(&c);
        distill_json_free(j);
    }
}

static const char *sharegpt_tools_row =
    "<|im_start|>system\nYou are a weather assistant.\n\n" TOOLS_HEAD
    "\n{\"name\": \"get_weather\", \"description\": \"Current weather in a city\", \"parameters\": {\"type\": \"object\", "
    "\"properties\": {\"city\": {\"type\": \"string\"}, \"unit\": {\"type\": \"string\", \"enum\": [\"celsius\", \"fahrenheit\"]}}, "
    "\"required\": [\"city\"]}}" TOOLS_TAIL "<|im_end|>\n"
    "<|im_start|>user\nWhat is the weather in Paris?<|im_end|>\n"
    "<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"celsius\"}}\n</tool_call><|im_end|>\n"
    "<|im_start|>user\n<tool_response>\n{\"temperature\": 18.5, \"sky\": \"cloudy\"}\n</tool_response><|im_end|>\n"
    "<|im_start|>assistant\nIt is 18.5 \xc2\xb0" "C and cloudy in Paris.<|im_end|>\n";

#define ADD_TOOL "{\"type\": \"function\", \"function\": {\"name\": \"add\", \"description\": \"Add two numbers\", \"parameters\": " \
                 "{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"number\"}, \"b\": {\"type\": \"number\"}}, \"required\": [\"a\", \"b\"]}}}"
#define MUL_TOOL "{\"type\": \"function\", \"function\": {\"name\": \"mul\", \"description\": \"Multiply two numbers\", \"parameters\": " \
                 "{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"number\"}, \"b\": {\"type\": \"number\"}}, \"required\": [\"a\", \"b\"]}}}"
static const char *openai_tools_row =
    "<|im_start|>system\nYou can use tools.\n\n" TOOLS_HEAD "\n" ADD_TOOL "\n" MUL_TOOL TOOLS_TAIL "<|im_end|>\n"
    "<|im_start|>user\nAdd 2 and 3, and multiply 4 by 5.<|im_end|>\n"
    "<|im_start|>assistant\n<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 2, \"b\": 3}}\n</tool_call>\n"
    "<tool_call>\n{\"name\": \"mul\", \"arguments\": {\"a\": 4, \"b\": 5}}\n</tool_call><|im_end|>\n"
    "<|im_start|>user\n<tool_response>\n5\n</tool_response>\n<tool_response>\n20\n</tool_response><|im_end|>\n"
    "<|im_start|>assistant\n2 + 3 = 5 and 4 * 5 = 20.<|im_end|>\n";

static void test_tool_use_render(void) {
    distill_data_options o = distill_data_options_default();
    check_render(FIX "tools_sharegpt.json", 0, &o, sharegpt_tools_row);
    check_render(FIX "tools_sharegpt.json", 1, &o,      /* "tools": "[]" adds nothing */
                 "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHello! How can I help?<|im_end|>\n");
    check_render(FIX "tools_openai.jsonl", 0, &o, openai_tools_row);
    /* no system turn: the tools block alone; content before a call; arguments as an object;
       floats as Python writes them */
    check_render(FIX "tools_openai.jsonl", 1, &o,
                 "<|im_start|>system\n" TOOLS_HEAD "\n{\"type\": \"function\", \"function\": {\"name\": \"search\", \"description\": "
                 "\"Web search\", \"parameters\": {\"type\": \"object\", \"properties\": {\"query\": {\"type\": \"string\"}, \"top_k\": "
                 "{\"type\": \"integer\", \"default\": 5}, \"min_score\": {\"type\": \"number\", \"default\": 0.25}}}}}" TOOLS_TAIL "<|im_end|>\n"
                 "<|im_start|>user\nSearch for llama facts.<|im_end|>\n"
                 "<|im_start|>assistant\nLet me look.\n<tool_call>\n{\"name\": \"search\", \"arguments\": {\"query\": \"llama facts\", \"top_k\": 3}}\n"
                 "</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\nLlamas hum.\n</tool_response><|im_end|>\n"
                 "<|im_start|>assistant\nLlamas hum to communicate.<|im_end|>\n");
}

/* json.dumps(x, ensure_ascii=False) as transformers' tojson writes it: numbers as Python's repr,
   escapes as Python's (lowercase \u00XX for other control characters, non-ASCII kept). */
static void test_tojson_like_python(void) {
    distill_data_options o = distill_data_options_default();
    const char *rec = "{\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":"
                      "[{\"name\":\"f\",\"arguments\":{\"n\":[1e-05,100.0,1.5e16,0.0001,-2.50,1E2,12345678.9,1e300,0.1,-0,7],"
                      "\"s\":\"a\\\"b\\\\c\\n\\u0001\\u007f\\u00e9/\",\"t\":true,\"z\":null,\"e\":{},\"l\":[]}}]}]}";
    const char *want = "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"n\": [1e-05, 100.0, 1.5e+16, 0.0001, -2.5, 100.0, "
                       "12345678.9, 1e+300, 0.1, 0, 7], \"s\": \"a\\\"b\\\\c\\n\\u0001\x7f\xc3\xa9/\", \"t\": true, \"z\": null, "
                       "\"e\": {}, \"l\": []}}\n</tool_call>";
    distill_error err;
    distill_json *j = distill_json_parse(rec, strlen(rec), "t.jsonl", 1, &err);
    distill_conv c;
    memset(&c, 0, sizeof c);
    CHECK(j && distill_conv_from_json(j, &o, NULL, "t.jsonl", &c, &err) == 0, "%s", err.msg);
    CHECK(c.n == 2 && c.msgs[1].len == strlen(want) && memcmp(c.msgs[1].content, want, c.msgs[1].len) == 0,
          "tojson\n got: %.*s\nwant: %s", c.n == 2 ? (int)c.msgs[1].len : 0, c.n == 2 ? c.msgs[1].content : "", want);
    distill_conv_free(&c);
    distill_json_free(j);
}

/* The loss covers the assistant's calls and answers (with their <|im_end|>), never the tools
   block or the tool results: the supervised tokens' bytes, concatenated, are exactly these. */
static void check_supervised(const distill_tokenizer *tok, const char *file, size_t i, const char *want) {
    distill_data_options o = distill_data_options_default();
    distill_conv c;
    distill_error err;
    distill_ids ids;
    distill_floats w;
    char got[4096];
    size_t k, n = 0;
    memset(&ids, 0, sizeof ids);
    memset(&w, 0, sizeof w);
    if (fixture_conv(file, i, &o, &c, &err) != 0) { CHECK(0, "%s: %s", file, err.msg); return; }
    CHECK(distill_chat_encode(NULL, tok, &c, DISTILL_LOSS_ASSISTANT, 0, &ids, &w, &err) == 0, "%s", err.msg);
    for (k = 0; k < ids.n; k++) {
        size_t bl = 0;
        const char *b = distill_tokenizer_token_bytes(tok, ids.ids[k], &bl);
        if (w.v[k] > 0 && n + bl < sizeof got) { memcpy(got + n, b, bl); n += bl; }
    }
    got[n] = 0;
    CHECK(strcmp(got, want) == 0, "%s record %zu supervised text\n got: %s\nwant: %s", file, i, got, want);
    distill_ids_free(&ids);
    distill_floats_free(&w);
    distill_conv_free(&c);
}

static void test_tool_use_loss(void) {
    distill_error err;
    distill_tokenizer *tok;
    FILE *f = fopen(MINIMIND, "rb");
    if (!f) SKIP("%s not available", MINIMIND);
    fclose(f);
    tok = distill_tokenizer_load(MINIMIND, NULL, &err);
    CHECK(tok != NULL, "%s", err.msg);
    if (!tok) return;
    check_supervised(tok, FIX "tools_sharegpt.json", 0,
                     "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"celsius\"}}\n</tool_call><|im_end|>"
                     "It is 18.5 \xc2\xb0" "C and cloudy in Paris.<|im_end|>");
    check_supervised(tok, FIX "tools_openai.jsonl", 0,
                     "<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 2, \"b\": 3}}\n</tool_call>\n"
                     "<tool_call>\n{\"name\": \"mul\", \"arguments\": {\"a\": 4, \"b\": 5}}\n</tool_call><|im_end|>"
                     "2 + 3 = 5 and 4 * 5 = 20.<|im_end|>");
    distill_tokenizer_free(tok);
}

static void test_tool_use_errors(void) {
    static const struct { const char *json; const char *want; } cases[] = {
        {"{\"conversations\":[{\"from\":\"human\",\"value\":\"q\"},{\"from\":\"function_call\",\"value\":\"{not json\"}]}",
         "field 'conversations.1.value': a string that should hold JSON does not parse"},
        {"{\"conversations\":[{\"from\":\"human\",\"value\":\"q\"},{\"from\":\"function_call\",\"value\":\"{\\\"arguments\\\": {}}\"}]}",
         "field 'conversations.1.value': call 0: expected {\"name\": string, \"arguments\": ...}"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":null,\"tool_calls\":5}]}",
         "field 'messages.1.tool_calls': expected a call object or a list of calls, got number"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[]}]}",
         "field 'messages.1.tool_calls': empty list of calls"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":\"a\"}],\"tools\":{\"name\":\"f\"}}",
         "field 'tools': expected a list of tool schemas, got object"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":\"a\"}],\"tools\":\"[{\"}",
         "field 'tools': a string that should hold JSON does not parse"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"tool\",\"content\":7}]}",
         "field 'messages.1.content': expected a string or a list of parts, got number"},
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        distill_data_options o = distill_data_options_default();
        distill_error err;
        distill_json *j = distill_json_parse(cases[i].json, strlen(cases[i].json), "t.jsonl", 1, &err);
        distill_conv c;
        memset(&c, 0, sizeof c);
        err.msg[0] = 0;
        CHECK(j && distill_conv_from_json(j, &o, NULL, "t.jsonl", &c, &err) == -1 && strstr(err.msg, cases[i].want),
              "case %zu: got '%s', want '%s'", i, err.msg, cases[i].want);
        distill_conv_free(&c);
        distill_json_free(j);
    }
}

static void test_preference(void) {
    static const struct { const char *file, *hint; } files[] = {
        {FIX "preference_trl.jsonl", "--map prompt=prompt --map chosen=response"},
        {FIX "preference_sharegpt.json", "--map conversations=conversations --map chosen=response"},
        {FIX "preference_trl_conversational.jsonl", "--map chosen=messages"},
    };
    const char *m1[] = {"prompt=prompt", "chosen=response"};
    const char *m2[] = {"conversations=conversations", "chosen=response"};
    const char *m3[] = {"chosen=messages"};
    const char *const *maps[] = {m1, m2, m3};
    int nmaps[] = {2, 2, 1};
    const char *want[] = {
        "<|im_start|>user\nWhat color is the sky?<|im_end|>\n<|im_start|>assistant\nBlue.<|im_end|>\n",
        "<|im_start|>user\nWhat color is the sky?<|im_end|>\n<|im_start|>assistant\nBlue.<|im_end|>\n",
        "<|im_start|>user\nWhat color is the sky?<|im_end|>\n<|im_start|>assistant\nBlue.<|im_end|>\n",
    };
    size_t i;
    for (i = 0; i < 3; i++) {
        distill_data_options o = distill_data_options_default();
        distill_error err;
        distill_dataset *ds = distill_dataset_load(files[i].file, &o, NULL, &err);
        CHECK(!ds && strstr(err.msg, "pairwise preference record") && strstr(err.msg, files[i].hint) &&
              strstr(err.msg, files[i].file), "%s: %s", files[i].file, ds ? "loaded" : err.msg);
        distill_dataset_free(ds);
        /* the advice works */
        o.map = maps[i];
        o.n_map = nmaps[i];
        ds = distill_dataset_load(files[i].file, &o, NULL, &err);
        CHECK(ds != NULL, "%s with the advised --map: %s", files[i].file, err.msg);
        distill_dataset_free(ds);
        check_render(files[i].file, 0, &o, want[i]);
    }
}

/* distill data stats --format auto reads every variant */
static void test_cli_stats(void) {
    static const struct { const char *file, *format; int rows; } files[] = {
        {"conversations_role_content.jsonl", "conversations", 2}, {"messages_from_value.jsonl", "messages", 2},
        {"content_parts.jsonl", "messages", 3}, {"tools_sharegpt.json", "conversations", 2},
        {"tools_openai.jsonl", "messages", 2},
    };
    size_t i;
    char cmd[512], want[128], out[512];
    if (!have_cli()) SKIP("./distill not built");
    for (i = 0; i < sizeof files / sizeof files[0]; i++) {
        FILE *f;
        size_t n;
        snprintf(cmd, sizeof cmd, "./distill data stats --data " FIX "%s --format auto > build/variants_stats.json", files[i].file);
        CHECK(sh(cmd) == 0, "%s", cmd);
        f = fopen("build/variants_stats.json", "rb");
        n = f ? fread(out, 1, sizeof out - 1, f) : 0;
        if (f) fclose(f);
        out[n] = 0;
        snprintf(want, sizeof want, "\"rows\": %d", files[i].rows);
        CHECK(strstr(out, want) != NULL, "%s: %s", files[i].file, out);
        snprintf(want, sizeof want, "\"format\": \"%s\"", files[i].format);
        CHECK(strstr(out, want) != NULL, "%s: %s", files[i].file, out);
    }
    CHECK(sh("./distill data stats --data " FIX "preference_trl.jsonl --format auto 2> build/variants_pref.txt > /dev/null") != 0,
          "a preference file is an error");
}

int main(void) {
    RUN(test_role_content_and_from_value);
    RUN(test_content_parts);
    RUN(test_tool_use_render);
    RUN(test_tojson_like_python);
    RUN(test_tool_use_loss);
    RUN(test_tool_use_errors);
    RUN(test_preference);
    RUN(test_cli_stats);
    return harness_done("test_data_variants");
}
