/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The OpenAI-compatible API: the request decoder on good and hostile bodies, the JSON writer,
 * the model's names, and every route through socket-less connections (exo_http_conn_*) to an API
 * whose runner serves the tiny chat model. The test thread runs the loop; the runner gate
 * (support/runner-gate.h) holds generation where a test needs a job queued or running.
 *
 * Every wait is bounded by a deadline on the loop.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <http_parser.h>
#include <uv.h>

#include "api/api.h"
#include "api/forward.h"
#include "api/http.h"
#include "api/json.h"
#include "api/openai.h"
#include "api/prom.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/error.h"
#include "engine/runner.h"
#include "support/runner-gate.h"
#include "support/tiny-chat.h"

#define WAIT_MS 60000

/* The decoder. ------------------------------------------------------------------------------ */

static int decode(enum exo_openai_kind kind, const char *body, struct exo_openai_request *r,
                  struct exo_openai_error *err)
{
    return exo_openai_decode(kind, body, strlen(body), r, err);
}

static void test_openai_decode_chat(void **state)
{
    struct exo_openai_request r;
    struct exo_openai_error err;
    const char *body =
        "{\"model\":\"m\",\"messages\":[{\"role\":\"developer\",\"content\":\"be kind\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hel\"},{\"type\":\"text\","
        "\"text\":\"lo\"}]},{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[]}],"
        "\"stream\":true,\"stream_options\":{\"include_usage\":true},\"max_tokens\":9,"
        "\"max_completion_tokens\":7,\"temperature\":0.5,\"top_p\":0.9,\"seed\":-3,"
        "\"presence_penalty\":1.5,\"frequency_penalty\":-0.5,\"stop\":[\"a\",\"\",\"bc\"],"
        "\"n\":1,\"logprobs\":false,\"user\":\"ignored\",\"tools\":null}";
    assert_int_equal(decode(EXO_OPENAI_CHAT, body, &r, &err), 0);
    assert_string_equal(r.model, "m");
    assert_int_equal(r.n_messages, 3);
    assert_string_equal(r.messages[0].role, "system");
    assert_string_equal(r.messages[0].content, "be kind");
    assert_string_equal(r.messages[1].role, "user");
    assert_string_equal(r.messages[1].content, "hello");
    assert_string_equal(r.messages[2].role, "assistant");
    assert_string_equal(r.messages[2].content, "");
    assert_true(r.stream && r.include_usage);
    assert_int_equal(r.max_tokens, 7); /* max_completion_tokens wins */
    assert_true(r.temperature == 0.5 && r.top_p == 0.9);
    assert_true(r.presence_penalty == 1.5 && r.frequency_penalty == -0.5);
    assert_true(r.has_seed);
    assert_true(r.seed == (uint64_t)-3);
    assert_int_equal(r.n_stop, 2); /* the empty one is dropped */
    assert_string_equal(r.stop[0], "a");
    assert_string_equal(r.stop[1], "bc");
    exo_openai_request_free(&r);

    /* Defaults, and a single stop string. */
    assert_int_equal(decode(EXO_OPENAI_CHAT,
                            " {\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                            "\"stop\":\"\\n\",\"model\":null,\"seed\":null}\r\n",
                            &r, &err),
                     0);
    assert_null(r.model);
    assert_false(r.stream || r.include_usage || r.has_seed);
    assert_int_equal(r.max_tokens, -1);
    assert_true(r.temperature == 1.0 && r.top_p == 1.0);
    assert_int_equal(r.n_stop, 1);
    assert_string_equal(r.stop[0], "\n");
    exo_openai_request_free(&r);
}

static void test_openai_decode_completion(void **state)
{
    struct exo_openai_request r;
    struct exo_openai_error err;
    assert_int_equal(decode(EXO_OPENAI_COMPLETION, "{\"prompt\":\"Once\"}", &r, &err), 0);
    assert_string_equal(r.prompt, "Once");
    assert_int_equal(r.max_tokens, 16); /* OpenAI's default for completions */
    assert_int_equal(r.n_messages, 0);
    exo_openai_request_free(&r);
    assert_int_equal(decode(EXO_OPENAI_COMPLETION,
                            "{\"prompt\":[\"upon\"],\"max_tokens\":3,\"echo\":false}", &r, &err),
                     0);
    assert_string_equal(r.prompt, "upon");
    assert_int_equal(r.max_tokens, 3);
    exo_openai_request_free(&r);
}

struct bad_case {
    enum exo_openai_kind kind;
    const char *body;
    int rc;
    const char *param; /* "" for none */
    const char *needle;
};

static void test_openai_decode_hostile(void **state)
{
    static const struct bad_case cases[] = {
        {EXO_OPENAI_CHAT, "", EXO_EFORMAT, "", "parse"},
        {EXO_OPENAI_CHAT, "{", EXO_EFORMAT, "", "parse"},
        {EXO_OPENAI_CHAT, "{\"messages\":[]", EXO_EFORMAT, "", "parse"},
        {EXO_OPENAI_CHAT, "{\"messages\":1} x", EXO_EFORMAT, "", "after the JSON"},
        {EXO_OPENAI_CHAT, "[1,2]", EXO_EFORMAT, "", "object"},
        {EXO_OPENAI_CHAT, "\"str\"", EXO_EFORMAT, "", "object"},
        {EXO_OPENAI_CHAT, "{}", EXO_EFORMAT, "messages", "Missing"},
        {EXO_OPENAI_CHAT, "{\"messages\":{}}", EXO_EFORMAT, "messages", "an array"},
        {EXO_OPENAI_CHAT, "{\"messages\":[]}", EXO_ERANGE, "messages", "empty"},
        {EXO_OPENAI_CHAT, "{\"messages\":[1]}", EXO_EFORMAT, "messages[0]", "an object"},
        {EXO_OPENAI_CHAT, "{\"messages\":[{\"content\":\"x\"}]}", EXO_EFORMAT, "messages[0].role",
         "Missing"},
        {EXO_OPENAI_CHAT, "{\"messages\":[{\"role\":5}]}", EXO_EFORMAT, "messages[0].role",
         "a string"},
        {EXO_OPENAI_CHAT, "{\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}", EXO_ERANGE,
         "messages[0].role", "supported"},
        {EXO_OPENAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":7}]}", EXO_EFORMAT,
         "messages[0].content", "got a number"},
        {EXO_OPENAI_CHAT,
         "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}",
         EXO_EUNSUPPORTED, "messages[0].content[0].type", "text"},
        {EXO_OPENAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\"}]}]}",
         EXO_EFORMAT, "messages[0].content[0].text", "a string"},
        {EXO_OPENAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":[\"x\"]}]}", EXO_EFORMAT,
         "messages[0].content[0]", "an object"},
        {EXO_OPENAI_CHAT, "{\"messages\":[{\"role\":\"user\"}],\"model\":1}", EXO_EFORMAT, "model",
         "a string"},
        {EXO_OPENAI_CHAT, "{\"messages\":[{\"role\":\"user\"}],\"stream\":\"yes\"}", EXO_EFORMAT,
         "stream", "a boolean"},
        {EXO_OPENAI_CHAT, "{\"messages\":[{\"role\":\"user\"}],\"stream_options\":1}", EXO_EFORMAT,
         "stream_options", "an object"},
        {EXO_OPENAI_CHAT,
         "{\"messages\":[{\"role\":\"user\"}],\"stream_options\":{\"include_usage\":1}}",
         EXO_EFORMAT, "stream_options.include_usage", "a boolean"},
        {EXO_OPENAI_CHAT, "{\"messages\":[{\"role\":\"user\"}],\"temperature\":\"hot\"}",
         EXO_EFORMAT, "temperature", "a number"},
        {EXO_OPENAI_CHAT, "{\"messages\":[{\"role\":\"user\"}],\"temperature\":2.5}", EXO_ERANGE,
         "temperature", "between"},
        {EXO_OPENAI_CHAT, "{\"messages\":[{\"role\":\"user\"}],\"temperature\":-0.1}", EXO_ERANGE,
         "temperature", "between"},
        {EXO_OPENAI_CHAT, "{\"messages\":[{\"role\":\"user\"}],\"temperature\":1e999}", EXO_ERANGE,
         "temperature", "between"},
        {EXO_OPENAI_CHAT, "{\"messages\":[{\"role\":\"user\"}],\"top_p\":1.01}", EXO_ERANGE,
         "top_p", "between"},
        {EXO_OPENAI_CHAT, "{\"messages\":[{\"role\":\"user\"}],\"presence_penalty\":-3}",
         EXO_ERANGE, "presence_penalty", "between"},
        {EXO_OPENAI_CHAT, "{\"messages\":[{\"role\":\"user\"}],\"frequency_penalty\":[]}",
         EXO_EFORMAT, "frequency_penalty", "an array"},
        {EXO_OPENAI_CHAT, "{\"messages\":[{\"role\":\"user\"}],\"max_tokens\":0}", EXO_ERANGE,
         "max_tokens", "between"},
        {EXO_OPENAI_CHAT, "{\"messages\":[{\"role\":\"user\"}],\"max_tokens\":1.5}", EXO_EFORMAT,
         "max_tokens", "an integer"},
        {EXO_OPENAI_CHAT, "{\"messages\":[{\"role\":\"user\"}],\"max_tokens\":1e300}", EXO_ERANGE,
         "max_tokens", "between"},
        {EXO_OPENAI_CHAT, "{\"messages\":[{\"role\":\"user\"}],\"max_completion_tokens\":-1}",
         EXO_ERANGE, "max_completion_tokens", "between"},
        {EXO_OPENAI_CHAT, "{\"messages\":[{\"role\":\"user\"}],\"seed\":\"1\"}", EXO_EFORMAT,
         "seed", "an integer"},
        {EXO_OPENAI_CHAT, "{\"messages\":[{\"role\":\"user\"}],\"seed\":1e20}", EXO_ERANGE, "seed",
         "between"},
        {EXO_OPENAI_CHAT, "{\"messages\":[{\"role\":\"user\"}],\"n\":2}", EXO_EUNSUPPORTED, "n",
         "n = 1"},
        {EXO_OPENAI_CHAT, "{\"messages\":[{\"role\":\"user\"}],\"n\":0}", EXO_ERANGE, "n",
         "between"},
        {EXO_OPENAI_CHAT, "{\"messages\":[{\"role\":\"user\"}],\"logprobs\":true}",
         EXO_EUNSUPPORTED, "logprobs", "not supported"},
        {EXO_OPENAI_CHAT, "{\"messages\":[{\"role\":\"user\"}],\"stop\":5}", EXO_EFORMAT, "stop",
         "array of strings"},
        {EXO_OPENAI_CHAT, "{\"messages\":[{\"role\":\"user\"}],\"stop\":[\"a\",null]}", EXO_EFORMAT,
         "stop", "array of strings"},
        {EXO_OPENAI_CHAT,
         "{\"messages\":[{\"role\":\"user\"}],\"stop\":[\"a\",\"b\",\"c\",\"d\","
         "\"e\"]}",
         EXO_ETOOBIG, "stop", "At most 4"},
        {EXO_OPENAI_COMPLETION, "{}", EXO_EFORMAT, "prompt", "Missing"},
        {EXO_OPENAI_COMPLETION, "{\"prompt\":1}", EXO_EFORMAT, "prompt", "a string"},
        {EXO_OPENAI_COMPLETION, "{\"prompt\":[]}", EXO_EUNSUPPORTED, "prompt", "one prompt"},
        {EXO_OPENAI_COMPLETION, "{\"prompt\":[\"a\",\"b\"]}", EXO_EUNSUPPORTED, "prompt",
         "one prompt"},
        {EXO_OPENAI_COMPLETION, "{\"prompt\":[1,2]}", EXO_EUNSUPPORTED, "prompt", "token ids"},
        {EXO_OPENAI_COMPLETION, "{\"prompt\":[[1]]}", EXO_EFORMAT, "prompt", "a string"},
        {EXO_OPENAI_COMPLETION, "{\"prompt\":\"x\",\"echo\":true}", EXO_EUNSUPPORTED, "echo",
         "not supported"},
        {EXO_OPENAI_COMPLETION, "{\"prompt\":\"x\",\"logprobs\":3}", EXO_EUNSUPPORTED, "logprobs",
         "not supported"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct bad_case *c = &cases[i];
        struct exo_openai_request r;
        struct exo_openai_error err;
        int rc = decode(c->kind, c->body, &r, &err);
        if (rc != c->rc || strcmp(err.param, c->param) != 0 || !strstr(err.diag.msg, c->needle))
            fail_msg("case %zu (%s): rc %s param '%s' message '%s'", i, c->body, exo_errname(rc),
                     err.param, err.diag.msg);
        assert_int_equal(err.status, 400);
        assert_string_equal(err.type, "invalid_request_error");
        exo_openai_request_free(&r);
    }
    /* Decoding without an error struct is allowed. */
    struct exo_openai_request r;
    assert_int_equal(exo_openai_decode(EXO_OPENAI_CHAT, "{", 1, &r, NULL), EXO_EFORMAT);
    exo_openai_request_free(&r);
    exo_openai_request_free(NULL);
}

static void test_openai_decode_caps(void **state)
{
    struct exo_openai_request r;
    struct exo_openai_error err;
    struct exo_buf b;

    /* One message over the cap. */
    exo_buf_init(&b, 0);
    exo_buf_printf(&b, "{\"messages\":[");
    for (int i = 0; i <= EXO_OPENAI_MAX_MESSAGES; i++)
        exo_buf_printf(&b, "%s{\"role\":\"user\",\"content\":\"m\"}", i ? "," : "");
    exo_buf_printf(&b, "]}");
    assert_int_equal(exo_openai_decode(EXO_OPENAI_CHAT, (char *)b.data, b.len, &r, &err),
                     EXO_ETOOBIG);
    assert_string_equal(err.param, "messages");
    exo_openai_request_free(&r);

    /* Content parts over the cap. */
    exo_buf_reset(&b);
    exo_buf_printf(&b, "{\"messages\":[{\"role\":\"user\",\"content\":[");
    for (int i = 0; i <= EXO_OPENAI_MAX_PARTS; i++)
        exo_buf_printf(&b, "%s{\"type\":\"text\",\"text\":\"p\"}", i ? "," : "");
    exo_buf_printf(&b, "]}]}");
    assert_int_equal(exo_openai_decode(EXO_OPENAI_CHAT, (char *)b.data, b.len, &r, &err),
                     EXO_ETOOBIG);
    exo_openai_request_free(&r);

    /* A stop string and a model name over their caps. */
    exo_buf_reset(&b);
    exo_buf_printf(&b, "{\"prompt\":\"x\",\"stop\":\"%0*d\"}", EXO_OPENAI_MAX_STOP_LEN + 1, 0);
    assert_int_equal(exo_openai_decode(EXO_OPENAI_COMPLETION, (char *)b.data, b.len, &r, &err),
                     EXO_ETOOBIG);
    exo_openai_request_free(&r);
    exo_buf_reset(&b);
    exo_buf_printf(&b, "{\"prompt\":\"x\",\"model\":\"%0*d\"}", EXO_OPENAI_MAX_MODEL_LEN + 1, 0);
    assert_int_equal(exo_openai_decode(EXO_OPENAI_COMPLETION, (char *)b.data, b.len, &r, &err),
                     EXO_ETOOBIG);
    assert_string_equal(err.param, "model");
    exo_openai_request_free(&r);

    /* Deep nesting is refused by the parser's own limit rather than exhausting the stack. */
    exo_buf_reset(&b);
    exo_buf_printf(&b, "{\"prompt\":\"x\",\"extra\":");
    for (int i = 0; i < 100000; i++)
        exo_buf_put(&b, "[", 1);
    assert_int_equal(exo_openai_decode(EXO_OPENAI_COMPLETION, (char *)b.data, b.len, &r, &err),
                     EXO_EFORMAT);
    exo_openai_request_free(&r);

    /* Bytes after a NUL are trailing garbage, not ignored. */
    static const char nul[] = "{\"prompt\":\"x\"}\0{}";
    assert_int_equal(exo_openai_decode(EXO_OPENAI_COMPLETION, nul, sizeof(nul) - 1, &r, &err),
                     EXO_EFORMAT);
    exo_openai_request_free(&r);

    /* Invalid UTF-8 in content is the tokenizer's business, not a decoding error. */
    assert_int_equal(decode(EXO_OPENAI_COMPLETION, "{\"prompt\":\"\xff\xc3(\"}", &r, &err), 0);
    exo_openai_request_free(&r);

    /* Every allocation failure is an error, never a crash or a leak. */
    exo_buf_reset(&b);
    exo_buf_printf(&b, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
                       "\"text\":\"a\"}]},{\"role\":\"assistant\",\"content\":\"b\"}],"
                       "\"stop\":[\"x\"]}");
    int failures = 0;
    for (long n = 0; n < 64; n++) {
        exo_alloc_fail_after(n);
        int rc = exo_openai_decode(EXO_OPENAI_CHAT, (char *)b.data, b.len, &r, &err);
        exo_alloc_fail_after(-1);
        exo_openai_request_free(&r);
        if (rc == 0)
            break;
        failures++;
    }
    assert_true(failures > 0);
    exo_buf_free(&b);
}

static void test_openai_error_json(void **state)
{
    struct exo_openai_error err = {
        .status = 404, .type = "invalid_request_error", .code = "model_not_found"};
    snprintf(err.param, sizeof(err.param), "model");
    snprintf(err.diag.msg, sizeof(err.diag.msg), "no \"such\" model \xff\n");
    struct exo_buf b;
    exo_buf_init(&b, 0);
    exo_openai_error_json(&err, &b);
    exo_buf_put(&b, "", 1);
    cJSON *root = cJSON_Parse((char *)b.data);
    assert_non_null(root);
    cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(e, "message")->valuestring,
                        "no \"such\" model \xef\xbf\xbd\n");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(e, "type")->valuestring,
                        "invalid_request_error");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(e, "param")->valuestring, "model");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(e, "code")->valuestring,
                        "model_not_found");
    cJSON_Delete(root);
    /* Without param and code both are null. */
    err.param[0] = '\0';
    err.code = NULL;
    exo_buf_reset(&b);
    exo_openai_error_json(&err, &b);
    exo_buf_put(&b, "", 1);
    assert_non_null(strstr((char *)b.data, "\"param\":null,\"code\":null"));
    exo_buf_free(&b);
}

static void test_openai_json_string(void **state)
{
    static const struct {
        const char *in;
        size_t len;
        const char *out;
    } cases[] = {
        {"plain", 5, "\"plain\""},
        {"q\"b\\s/", 6, "\"q\\\"b\\\\s/\""},
        {"\n\r\t\x01\x1f\x7f", 6, "\"\\n\\r\\t\\u0001\\u001f\x7f\""},
        {"\0x", 2, "\"\\u0000x\""},
        {"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9, "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\""},
        /* Unicode's maximal subparts: one U+FFFD each. */
        {"\xff", 1, "\"\xef\xbf\xbd\""},
        {"\xc3(", 2, "\"\xef\xbf\xbd(\""},
        {"\xe2\x82", 2, "\"\xef\xbf\xbd\""},
        {"\xe0\x80\x80", 3, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""}, /* overlong */
        {"\xed\xa0\x80", 3, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""}, /* surrogate */
        {"\xf4\x90\x80\x80", 4,
         "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""}, /* above U+10FFFF */
        {"\xf0\x9f\x98", 3, "\"\xef\xbf\xbd\""},
        {"a\xf0\x9f\x98z", 5, "\"a\xef\xbf\xbdz\""},
        {"\xc0\xaf", 2, "\"\xef\xbf\xbd\xef\xbf\xbd\""},
    };
    struct exo_buf b;
    exo_buf_init(&b, 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        exo_buf_reset(&b);
        exo_json_put_string(&b, cases[i].in, cases[i].len);
        exo_buf_put(&b, "", 1);
        if (strcmp((char *)b.data, cases[i].out) != 0)
            fail_msg("case %zu: got %s", i, (char *)b.data);
        cJSON *v = cJSON_Parse((char *)b.data);
        assert_true(cJSON_IsString(v));
        cJSON_Delete(v);
    }
    exo_buf_free(&b);
}

static void test_openai_model_names(void **state)
{
    char id[64];
    exo_openai_model_id("/cache/SmolLM2-135M-Instruct.Q4_1.gguf", id, sizeof(id));
    assert_string_equal(id, "smollm2-135m-instruct.q4_1");
    exo_openai_model_id("weird name+x.GGUF", id, sizeof(id));
    assert_string_equal(id, "weird-name-x");
    exo_openai_model_id("/a/b/model.bin", id, 6);
    assert_string_equal(id, "model");

    const char *path = "/cache/SmolLM2-135M-Instruct.Q4_1.gguf";
    assert_true(exo_openai_model_matches("smollm2-135m-instruct.q4_1", path, "SmolLM2 135M"));
    assert_true(exo_openai_model_matches("SmolLM2-135M-Instruct.Q4_1.gguf", path, NULL));
    assert_true(exo_openai_model_matches("SmolLM2-135M-Instruct.Q4_1", path, NULL));
    assert_true(exo_openai_model_matches("default", path, NULL));
    assert_true(exo_openai_model_matches("smollm2 135m", path, "SmolLM2 135M"));
    assert_false(exo_openai_model_matches("gpt-4o", path, "SmolLM2 135M"));
    assert_false(exo_openai_model_matches("", path, ""));
    assert_false(exo_openai_model_matches(NULL, path, NULL));
}

/* The routes: fixture. ------------------------------------------------------------------------ */

struct fx {
    uv_loop_t loop;
    uv_timer_t deadline;
    bool timed_out;
    struct exo_runner *runner;
    struct exo_api *api;
    struct gate gate;
    char path[512];
    bool api_stopped, runner_stopped;
};

static void on_step(void *ud, int32_t n_tokens)
{
    gate_step(&((struct fx *)ud)->gate, n_tokens);
}

static void on_deadline(uv_timer_t *t)
{
    ((struct fx *)t->data)->timed_out = true;
}

static void run_until(struct fx *fx, bool (*cond)(void *arg), void *arg)
{
    fx->timed_out = false;
    uv_timer_start(&fx->deadline, on_deadline, WAIT_MS, 0);
    while (!cond(arg) && !fx->timed_out)
        uv_run(&fx->loop, UV_RUN_ONCE);
    uv_timer_stop(&fx->deadline);
    assert_false(fx->timed_out);
}

static bool runner_settled(void *arg)
{
    struct fx *fx = arg;
    enum exo_runner_state s = exo_runner_info(fx->runner)->state;
    return s == EXO_RUNNER_READY || s == EXO_RUNNER_FAILED;
}

struct fx_opts {
    const char *token;
    uint32_t max_queued;
    uint32_t n_ctx;
    bool no_model;
};

static void fx_start(struct fx *fx, const struct fx_opts *o)
{
    memset(fx, 0, sizeof(*fx));
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    uv_timer_init(&fx->loop, &fx->deadline);
    fx->deadline.data = fx;
    gate_init(&fx->gate);
    struct exo_runner_config rc = {.session = {.n_ctx = o->n_ctx, .n_threads = 1},
                                   .max_queued = o->max_queued,
                                   .on_step = on_step,
                                   .ud = fx};
    assert_int_equal(exo_runner_start(&fx->loop, &rc, &fx->runner), 0);
    struct exo_api_config ac = {.http = {.api_token = o->token}};
    assert_int_equal(exo_api_start(&fx->loop, &ac, fx->runner, &fx->api), 0);
    if (!o->no_model) {
        tiny_chat_model_path("openai", fx->path, sizeof(fx->path));
        tiny_chat_model_save(fx->path);
        assert_int_equal(exo_runner_load(fx->runner, fx->path), 0);
        run_until(fx, runner_settled, fx);
        assert_int_equal(exo_runner_info(fx->runner)->state, EXO_RUNNER_READY);
    }
}

static void on_api_stopped(void *ud)
{
    ((struct fx *)ud)->api_stopped = true;
}

static void on_runner_stopped(void *ud)
{
    ((struct fx *)ud)->runner_stopped = true;
}

static bool api_stopped(void *arg)
{
    return ((struct fx *)arg)->api_stopped;
}

static bool runner_stopped(void *arg)
{
    return ((struct fx *)arg)->runner_stopped;
}

/* Stop in the daemon's order: the API (draining its calls) before the runner. */
static void fx_stop(struct fx *fx)
{
    gate_release(&fx->gate);
    exo_api_stop(fx->api, on_api_stopped, fx);
    run_until(fx, api_stopped, fx);
    exo_runner_stop(fx->runner, on_runner_stopped, fx);
    run_until(fx, runner_stopped, fx);
    uv_close((uv_handle_t *)&fx->deadline, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    gate_destroy(&fx->gate);
    if (fx->path[0])
        unlink(fx->path);
}

/* The routes: a client on a socket-less connection. ----------------------------------------- */

struct resp {
    int status;
    char head[4096];
    size_t head_len;
    struct exo_buf body;
    bool complete;
    bool in_value;
};

struct client {
    struct fx *fx;
    struct exo_http_conn *conn;
    struct exo_buf out;
    struct resp r;
};

static void head_put(struct resp *r, const char *s, size_t len)
{
    if (len > sizeof(r->head) - 1 - r->head_len)
        len = sizeof(r->head) - 1 - r->head_len;
    memcpy(r->head + r->head_len, s, len);
    r->head_len += len;
    r->head[r->head_len] = '\0';
}

static int on_field(http_parser *p, const char *at, size_t len)
{
    struct resp *r = p->data;
    if (r->in_value)
        head_put(r, "\n", 1);
    r->in_value = false;
    head_put(r, at, len);
    return 0;
}

static int on_value(http_parser *p, const char *at, size_t len)
{
    struct resp *r = p->data;
    if (!r->in_value)
        head_put(r, ": ", 2);
    r->in_value = true;
    head_put(r, at, len);
    return 0;
}

static int on_headers(http_parser *p)
{
    struct resp *r = p->data;
    head_put(r, "\n", 1);
    r->status = (int)p->status_code;
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    exo_buf_put(&((struct resp *)p->data)->body, at, len);
    return 0;
}

static int on_complete(http_parser *p)
{
    ((struct resp *)p->data)->complete = true;
    http_parser_pause(p, 1); /* only the first response */
    return 0;
}

static const http_parser_settings settings = {
    .on_header_field = on_field,
    .on_header_value = on_value,
    .on_headers_complete = on_headers,
    .on_body = on_body,
    .on_message_complete = on_complete,
};

/* Parse the first response in the client's output, as far as it has arrived. */
static bool client_parse(void *arg)
{
    struct client *c = arg;
    exo_buf_free(&c->r.body);
    memset(&c->r, 0, sizeof(c->r));
    exo_buf_init(&c->r.body, 0);
    http_parser p;
    http_parser_init(&p, HTTP_RESPONSE);
    p.data = &c->r;
    http_parser_execute(&p, &settings, (const char *)c->out.data, c->out.len);
    if (!c->r.complete && exo_http_conn_closed(c->conn))
        http_parser_execute(&p, &settings, NULL, 0); /* close-delimited */
    exo_buf_put(&c->r.body, "", 1);
    c->r.body.len--;
    return c->r.complete;
}

static void client_open(struct fx *fx, struct client *c)
{
    memset(c, 0, sizeof(*c));
    c->fx = fx;
    exo_buf_init(&c->out, 0);
    exo_buf_init(&c->r.body, 0);
    assert_int_equal(exo_http_conn_open(exo_api_server(fx->api), "127.0.0.1", &c->out, &c->conn),
                     0);
}

static void client_close(struct client *c)
{
    exo_http_conn_close(c->conn);
    c->conn = NULL;
    exo_buf_free(&c->out);
    exo_buf_free(&c->r.body);
}

/* Send a request (body may be NULL: GET) and wait for the whole response. */
static void client_send(struct client *c, const char *method, const char *path, const char *body,
                        const char *headers)
{
    struct exo_buf req;
    exo_buf_init(&req, 0);
    exo_buf_reset(&c->out);
    exo_buf_printf(&req, "%s %s HTTP/1.1\r\nHost: x\r\n%s", method, path, headers ? headers : "");
    if (body)
        exo_buf_printf(&req, "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                       strlen(body), body);
    else
        exo_buf_printf(&req, "\r\n");
    assert_int_equal(exo_http_conn_feed(c->conn, req.data, req.len), 0);
    exo_buf_free(&req);
}

static struct resp *client_wait(struct client *c)
{
    run_until(c->fx, client_parse, c);
    return &c->r;
}

static struct resp *request(struct client *c, const char *method, const char *path,
                            const char *body, const char *headers)
{
    client_send(c, method, path, body, headers);
    return client_wait(c);
}

static const char *header(const struct resp *r, const char *name, char *buf, size_t cap)
{
    size_t n = strlen(name);
    for (const char *line = r->head; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (len > n + 1 && strncasecmp(line, name, n) == 0 && line[n] == ':') {
            snprintf(buf, cap, "%.*s", (int)(len - n - 2), line + n + 2);
            return buf;
        }
        line += len + (end ? 1 : 0);
    }
    return NULL;
}

/* The error object of an OpenAI error body; owned by *root (cJSON_Delete). */
static cJSON *error_of(const struct resp *r, cJSON **root)
{
    *root = cJSON_Parse((const char *)r->body.data);
    assert_non_null(*root);
    cJSON *e = cJSON_GetObjectItemCaseSensitive(*root, "error");
    assert_true(cJSON_IsObject(e));
    assert_true(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "message")));
    assert_true(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "type")));
    assert_non_null(cJSON_GetObjectItemCaseSensitive(e, "param"));
    assert_non_null(cJSON_GetObjectItemCaseSensitive(e, "code"));
    return e;
}

static void expect_error(const struct resp *r, int status, const char *param, const char *code)
{
    cJSON *root;
    cJSON *e = error_of(r, &root);
    assert_int_equal(r->status, status);
    cJSON *p = cJSON_GetObjectItemCaseSensitive(e, "param");
    cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "code");
    if (param)
        assert_string_equal(p->valuestring, param);
    if (code)
        assert_string_equal(c->valuestring, code);
    cJSON_Delete(root);
}

#define CHAT_BODY(extra)                                                                     \
    "{\"model\":\"default\",\"messages\":[{\"role\":\"user\",\"content\":\"hello there\"}]," \
    "\"temperature\":0" extra "}"

/* The routes: tests. -------------------------------------------------------------------------- */

static void test_openai_route_not_ready(void **state)
{
    struct fx fx;
    struct fx_opts o = {.no_model = true};
    struct client c;
    char buf[64];
    fx_start(&fx, &o);
    client_open(&fx, &c);

    struct resp *r = request(&c, "GET", "/healthz", NULL, NULL);
    assert_int_equal(r->status, 200);
    exo_runner_progress(fx.runner, "fetching the default model", 0.4);
    r = request(&c, "GET", "/readyz", NULL, NULL);
    assert_int_equal(r->status, 503);
    assert_non_null(strstr((char *)r->body.data, "\"status\":\"waiting\""));
    assert_non_null(strstr((char *)r->body.data, "\"progress\":0.400"));
    assert_non_null(strstr((char *)r->body.data, "fetching the default model"));
    r = request(&c, "POST", "/v1/chat/completions", CHAT_BODY(""), NULL);
    expect_error(r, 503, NULL, "model_not_ready");
    assert_string_equal(header(r, "Retry-After", buf, sizeof(buf)), "5");
    assert_non_null(strstr((char *)r->body.data, "40%"));
    /* Validation still comes first. */
    r = request(&c, "POST", "/v1/chat/completions", "{", NULL);
    expect_error(r, 400, NULL, NULL);
    r = request(&c, "GET", "/v1/models", NULL, NULL);
    assert_int_equal(r->status, 200);
    assert_string_equal((char *)r->body.data, "{\"object\":\"list\",\"data\":[]}");

    exo_runner_fail(fx.runner, "cannot fetch the default model: offline");
    r = request(&c, "GET", "/readyz", NULL, NULL);
    assert_int_equal(r->status, 503);
    assert_non_null(strstr((char *)r->body.data, "offline"));
    r = request(&c, "POST", "/v1/completions", "{\"prompt\":\"x\"}", NULL);
    expect_error(r, 503, NULL, "model_not_available");
    client_close(&c);
    fx_stop(&fx);
}

static void test_openai_route_chat(void **state)
{
    struct fx fx;
    struct fx_opts o = {0};
    struct client c;
    char buf[128];
    fx_start(&fx, &o);
    client_open(&fx, &c);

    struct resp *r = request(&c, "GET", "/readyz", NULL, NULL);
    assert_int_equal(r->status, 200);
    assert_non_null(strstr((char *)r->body.data, "\"status\":\"ready\""));

    r = request(&c, "POST", "/v1/chat/completions", CHAT_BODY(",\"max_tokens\":5"), NULL);
    assert_int_equal(r->status, 200);
    assert_string_equal(header(r, "Content-Type", buf, sizeof(buf)), "application/json");
    cJSON *root = cJSON_Parse((char *)r->body.data);
    assert_non_null(root);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(root, "object")->valuestring,
                        "chat.completion");
    assert_true(
        strncmp(cJSON_GetObjectItemCaseSensitive(root, "id")->valuestring, "chatcmpl-", 9) == 0);
    char id[64];
    exo_openai_model_id(fx.path, id, sizeof(id));
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(root, "model")->valuestring, id);
    cJSON *choice = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "choices"), 0);
    cJSON *msg = cJSON_GetObjectItemCaseSensitive(choice, "message");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(msg, "role")->valuestring, "assistant");
    assert_true(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(msg, "content")));
    const char *finish = cJSON_GetObjectItemCaseSensitive(choice, "finish_reason")->valuestring;
    cJSON *usage = cJSON_GetObjectItemCaseSensitive(root, "usage");
    int completion = cJSON_GetObjectItemCaseSensitive(usage, "completion_tokens")->valueint;
    int prompt = cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens")->valueint;
    assert_true(prompt > 5);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(usage, "total_tokens")->valueint,
                     prompt + completion);
    assert_true((strcmp(finish, "length") == 0 && completion == 5) ||
                (strcmp(finish, "stop") == 0 && completion <= 5));
    char first[4096];
    snprintf(first, sizeof(first), "%s",
             cJSON_GetObjectItemCaseSensitive(msg, "content")->valuestring);
    cJSON_Delete(root);

    /* Same seed, same sampling: the same answer (greedy here, seeded below). */
    r = request(&c, "POST", "/v1/chat/completions", CHAT_BODY(",\"max_tokens\":5"), NULL);
    root = cJSON_Parse((char *)r->body.data);
    choice = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "choices"), 0);
    msg = cJSON_GetObjectItemCaseSensitive(choice, "message");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(msg, "content")->valuestring, first);
    cJSON_Delete(root);
    client_close(&c);
    fx_stop(&fx);
}

/* The data: payloads of an SSE body, in order. */
static int sse_events(const char *body, char events[][4096], int max)
{
    int n = 0;
    for (const char *p = body; *p && n < max;) {
        const char *end = strstr(p, "\n\n");
        if (!end)
            break;
        if (strncmp(p, "data: ", 6) == 0)
            snprintf(events[n++], 4096, "%.*s", (int)(end - p - 6), p + 6);
        p = end + 2;
    }
    return n;
}

static void test_openai_route_stream(void **state)
{
    struct fx fx;
    struct fx_opts o = {0};
    struct client c;
    char buf[128];
    static char ev[64][4096];
    fx_start(&fx, &o);
    client_open(&fx, &c);

    struct resp *r = request(
        &c, "POST", "/v1/chat/completions",
        CHAT_BODY(",\"max_tokens\":6,\"stream\":true,\"stream_options\":{\"include_usage\":true}"),
        NULL);
    assert_int_equal(r->status, 200);
    assert_string_equal(header(r, "Content-Type", buf, sizeof(buf)), "text/event-stream");
    int n = sse_events((char *)r->body.data, ev, 64);
    assert_true(n >= 4);
    assert_string_equal(ev[n - 1], "[DONE]");
    /* The role comes first, then content pieces, then the finish reason, then usage. */
    for (int i = 0; i < n - 1; i++) {
        cJSON *root = cJSON_Parse(ev[i]);
        assert_non_null(root);
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(root, "object")->valuestring,
                            "chat.completion.chunk");
        cJSON *choices = cJSON_GetObjectItemCaseSensitive(root, "choices");
        cJSON *usage = cJSON_GetObjectItemCaseSensitive(root, "usage");
        if (i == n - 2) {
            assert_int_equal(cJSON_GetArraySize(choices), 0);
            assert_true(cJSON_IsObject(usage));
            assert_true(cJSON_GetObjectItemCaseSensitive(usage, "completion_tokens")->valueint <=
                        6);
        } else {
            assert_true(cJSON_IsNull(usage));
            cJSON *ch = cJSON_GetArrayItem(choices, 0);
            cJSON *delta = cJSON_GetObjectItemCaseSensitive(ch, "delta");
            cJSON *fin = cJSON_GetObjectItemCaseSensitive(ch, "finish_reason");
            if (i == 0)
                assert_string_equal(cJSON_GetObjectItemCaseSensitive(delta, "role")->valuestring,
                                    "assistant");
            else
                assert_null(cJSON_GetObjectItemCaseSensitive(delta, "role"));
            if (i == n - 3)
                assert_true(cJSON_IsString(fin));
            else
                assert_true(cJSON_IsNull(fin));
        }
        cJSON_Delete(root);
    }

    /* Completions stream text pieces and no usage unless asked. */
    r = request(&c, "POST", "/v1/completions",
                "{\"prompt\":\"the\",\"max_tokens\":3,\"stream\":true,\"temperature\":0}", NULL);
    assert_int_equal(r->status, 200);
    n = sse_events((char *)r->body.data, ev, 64);
    assert_true(n >= 2);
    assert_string_equal(ev[n - 1], "[DONE]");
    assert_non_null(strstr(ev[0], "\"object\":\"text_completion\""));
    assert_null(strstr((char *)r->body.data, "usage"));
    client_close(&c);
    fx_stop(&fx);
}

static void test_openai_route_completions(void **state)
{
    struct fx fx;
    struct fx_opts o = {0};
    struct client c;
    fx_start(&fx, &o);
    client_open(&fx, &c);
    struct resp *r =
        request(&c, "POST", "/v1/completions", "{\"prompt\":[\"the\"],\"seed\":7}", NULL);
    assert_int_equal(r->status, 200);
    cJSON *root = cJSON_Parse((char *)r->body.data);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(root, "object")->valuestring,
                        "text_completion");
    cJSON *choice = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "choices"), 0);
    assert_true(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(choice, "text")));
    cJSON *usage = cJSON_GetObjectItemCaseSensitive(root, "usage");
    assert_true(cJSON_GetObjectItemCaseSensitive(usage, "completion_tokens")->valueint <= 16);
    char first[4096];
    snprintf(first, sizeof(first), "%s",
             cJSON_GetObjectItemCaseSensitive(choice, "text")->valuestring);
    cJSON_Delete(root);
    /* A seed reproduces a sampled answer. */
    r = request(&c, "POST", "/v1/completions", "{\"prompt\":[\"the\"],\"seed\":7}", NULL);
    root = cJSON_Parse((char *)r->body.data);
    choice = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "choices"), 0);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(choice, "text")->valuestring, first);
    cJSON_Delete(root);
    client_close(&c);
    fx_stop(&fx);
}

static void test_openai_route_errors(void **state)
{
    struct fx fx;
    struct fx_opts o = {.n_ctx = 64};
    struct client c;
    fx_start(&fx, &o);
    client_open(&fx, &c);

    expect_error(request(&c, "POST", "/v1/chat/completions", "{\"messages\":", NULL), 400, NULL,
                 NULL);
    expect_error(request(&c, "POST", "/v1/chat/completions",
                         "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"top_p\":\"a\"}",
                         NULL),
                 400, "top_p", NULL);
    expect_error(request(&c, "POST", "/v1/chat/completions",
                         "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":"
                         "\"x\"}]}",
                         NULL),
                 404, "model", "model_not_found");
    /* A model name with bytes that are not UTF-8 still gets a JSON error. */
    expect_error(
        request(&c, "POST", "/v1/completions", "{\"model\":\"\xff\xfe\",\"prompt\":\"x\"}", NULL),
        404, "model", "model_not_found");
    /* Context overflow: 400 context_length_exceeded, before any stream starts. */
    char big[2048];
    snprintf(big, sizeof(big), "{\"prompt\":\"%0*d\",\"stream\":true}", 1000, 0);
    expect_error(request(&c, "POST", "/v1/completions", big, NULL), 400, "prompt",
                 "context_length_exceeded");
    /* The chat template refuses nothing for ChatML; an empty raw prompt has no tokens. */
    expect_error(request(&c, "POST", "/v1/completions", "{\"prompt\":\"\"}", NULL), 400, "prompt",
                 NULL);
    /* Wrong methods and paths. */
    struct resp *r = request(&c, "GET", "/v1/chat/completions", NULL, NULL);
    assert_int_equal(r->status, 405);
    r = request(&c, "GET", "/v1/models/gpt-4o", NULL, NULL);
    expect_error(r, 404, "model", "model_not_found");
    client_close(&c);

    /* A body over the generation routes' cap is refused from its head. */
    client_open(&fx, &c);
    char head[256];
    snprintf(head, sizeof(head),
             "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %u\r\n\r\n",
             EXO_OPENAI_BODY_MAX + 1);
    assert_int_equal(exo_http_conn_feed(c.conn, head, strlen(head)), 0);
    r = client_wait(&c);
    assert_int_equal(r->status, 413);
    cJSON *root;
    error_of(r, &root);
    cJSON_Delete(root);
    client_close(&c);
    fx_stop(&fx);
}

static void test_openai_route_queue_full(void **state)
{
    struct fx fx;
    struct fx_opts o = {.max_queued = 1};
    struct client a, b, c;
    char buf[64];
    fx_start(&fx, &o);
    gate_hold(&fx.gate, 1, 0);
    client_open(&fx, &a);
    client_open(&fx, &b);
    client_open(&fx, &c);
    client_send(&a, "POST", "/v1/chat/completions", CHAT_BODY(",\"max_tokens\":2"), NULL);
    assert_true(gate_wait_held(&fx.gate)); /* a runs */
    client_send(&b, "POST", "/v1/chat/completions", CHAT_BODY(",\"max_tokens\":2"), NULL);
    struct resp *r = request(&c, "POST", "/v1/chat/completions", CHAT_BODY(""), NULL);
    expect_error(r, 429, NULL, "rate_limit_exceeded");
    assert_string_equal(header(r, "Retry-After", buf, sizeof(buf)), "1");
    gate_release(&fx.gate);
    assert_int_equal(client_wait(&a)->status, 200);
    assert_int_equal(client_wait(&b)->status, 200);
    /* /metrics counts what happened. */
    r = request(&c, "GET", "/metrics", NULL, NULL);
    assert_int_equal(r->status, 200);
    assert_non_null(strstr((char *)r->body.data, "exo_runner_jobs_rejected_total 1\n"));
    assert_non_null(strstr((char *)r->body.data, "exo_runner_jobs_total{result=\"done\"} 2\n"));
    assert_non_null(strstr((char *)r->body.data, "exo_http_responses_total{code=\"4xx\"} 1\n"));
    assert_non_null(strstr((char *)r->body.data, "exo_model_ready 1\n"));
    client_close(&a);
    client_close(&b);
    client_close(&c);
    fx_stop(&fx);
}

static bool job_finished(void *arg)
{
    struct exo_runner_stats st;
    exo_runner_stats(((struct fx *)arg)->runner, &st);
    return st.jobs_canceled == 1 && !st.busy;
}

static void test_openai_route_disconnect_cancels(void **state)
{
    struct fx fx;
    struct fx_opts o = {0};
    struct client a, b;
    fx_start(&fx, &o);
    /* The streaming request is held after its second token; its client goes away. */
    gate_hold(&fx.gate, 1, 2);
    client_open(&fx, &a);
    client_send(&a, "POST", "/v1/chat/completions",
                CHAT_BODY(",\"max_tokens\":200,\"stream\":true"), NULL);
    assert_true(gate_wait_held(&fx.gate));
    client_close(&a);
    /* The close callback runs on the loop and cancels the job; then it may go on. */
    uv_run(&fx.loop, UV_RUN_NOWAIT);
    gate_release(&fx.gate);
    run_until(&fx, job_finished, &fx);
    assert_true(gate_max_token(&fx.gate, 1) <= 2 + 3);
    /* The next request starts at once. */
    client_open(&fx, &b);
    struct resp *r =
        request(&b, "POST", "/v1/chat/completions", CHAT_BODY(",\"max_tokens\":2"), NULL);
    assert_int_equal(r->status, 200);
    client_close(&b);
    fx_stop(&fx);
}

static void test_openai_route_models_and_auth(void **state)
{
    struct fx fx;
    struct fx_opts o = {.token = "s3cret"};
    struct client c;
    fx_start(&fx, &o);
    client_open(&fx, &c);
    struct resp *r = request(&c, "GET", "/healthz", NULL, NULL);
    assert_int_equal(r->status, 200); /* public */
    r = request(&c, "GET", "/v1/models", NULL, NULL);
    expect_error(r, 401, NULL, NULL);
    r = request(&c, "POST", "/v1/chat/completions", CHAT_BODY(""), NULL);
    assert_int_equal(r->status, 401);
    /* A refused request whose body was on its way ends its connection. */
    client_close(&c);
    client_open(&fx, &c);
    r = request(&c, "GET", "/metrics", NULL, "Authorization: Bearer wrong\r\n");
    assert_int_equal(r->status, 401);

    const char *auth = "Authorization: Bearer s3cret\r\n";
    r = request(&c, "GET", "/v1/models", NULL, auth);
    assert_int_equal(r->status, 200);
    cJSON *root = cJSON_Parse((char *)r->body.data);
    cJSON *m = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "data"), 0);
    char id[64];
    exo_openai_model_id(fx.path, id, sizeof(id));
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(m, "id")->valuestring, id);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(m, "object")->valuestring, "model");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(m, "owned_by")->valuestring, "exo");
    cJSON_Delete(root);
    char path[128];
    snprintf(path, sizeof(path), "/v1/models/%s", id);
    r = request(&c, "GET", path, NULL, auth);
    assert_int_equal(r->status, 200);
    r = request(&c, "GET", "/v1/models/default", NULL, auth);
    assert_int_equal(r->status, 200);
    r = request(&c, "GET", "/", NULL, auth);
    assert_int_equal(r->status, 200);
    /* CORS preflight needs no token and allows the Authorization header. */
    r = request(&c, "OPTIONS", "/v1/chat/completions", NULL,
                "Origin: http://example.test\r\nAccess-Control-Request-Method: POST\r\n"
                "Access-Control-Request-Headers: authorization, content-type\r\n");
    assert_int_equal(r->status, 204);
    char buf[128];
    assert_string_equal(header(r, "Access-Control-Allow-Origin", buf, sizeof(buf)), "*");
    client_close(&c);
    fx_stop(&fx);
}

static int extra_metrics(struct exo_prom *prom, void *ud)
{
    int *calls = ud;
    (*calls)++;
    exo_prom_family(prom, "exo_test_extra", EXO_PROM_GAUGE, "A provider's family.");
    return exo_prom_sample(prom, NULL, 0, 42);
}

static int clashing_metrics(struct exo_prom *prom, void *ud)
{
    return exo_prom_family(prom, "exo_runner_busy", EXO_PROM_GAUGE, "Already exported.");
}

static void test_openai_route_metrics_providers(void **state)
{
    struct fx fx;
    struct fx_opts o = {0};
    struct client c;
    int calls = 0;
    fx_start(&fx, &o);
    assert_int_equal(exo_api_add_metrics(fx.api, extra_metrics, &calls), 0);
    client_open(&fx, &c);
    struct resp *r = request(&c, "GET", "/metrics", NULL, NULL);
    assert_int_equal(r->status, 200);
    assert_non_null(strstr((char *)r->body.data, "\nexo_test_extra 42\n"));
    assert_non_null(strstr((char *)r->body.data, "# TYPE exo_runner_queue_depth gauge\n"));
    assert_int_equal(calls, 1);
    /* A provider that repeats a family turns /metrics into a 500, not a malformed page. */
    assert_int_equal(exo_api_add_metrics(fx.api, clashing_metrics, NULL), 0);
    r = request(&c, "GET", "/metrics", NULL, NULL);
    assert_int_equal(r->status, 500);
    client_close(&c);
    fx_stop(&fx);
}

static bool stream_began(void *arg)
{
    struct client *c = arg;
    return c->out.len > 0 && strstr((const char *)c->out.data, "\"delta\"") != NULL;
}

static void test_openai_route_stop_in_flight(void **state)
{
    struct fx fx;
    struct fx_opts o = {0};
    struct client a, b;
    static char ev[64][4096];
    fx_start(&fx, &o);
    gate_hold(&fx.gate, 1, 1);
    client_open(&fx, &a);
    client_open(&fx, &b);
    client_send(&a, "POST", "/v1/chat/completions",
                CHAT_BODY(",\"max_tokens\":200,\"stream\":true"), NULL);
    client_send(&b, "POST", "/v1/chat/completions", CHAT_BODY(",\"max_tokens\":200"), NULL);
    assert_true(gate_wait_held(&fx.gate));
    run_until(&fx, stream_began, &a);
    /* Stopping the API ends both: the stream with an error event and [DONE], the queued
     * request with 503; then the connections close. */
    exo_api_stop(fx.api, on_api_stopped, &fx);
    gate_release(&fx.gate);
    run_until(&fx, api_stopped, &fx);
    client_parse(&a);
    int n = sse_events((char *)a.r.body.data, ev, 64);
    assert_true(n >= 2);
    assert_string_equal(ev[n - 1], "[DONE]");
    assert_non_null(strstr(ev[n - 2], "\"error\""));
    client_parse(&b);
    assert_int_equal(b.r.status, 503);
    assert_true(exo_http_conn_closed(a.conn) && exo_http_conn_closed(b.conn));
    client_close(&a);
    client_close(&b);
    exo_runner_stop(fx.runner, on_runner_stopped, &fx);
    run_until(&fx, runner_stopped, &fx);
    uv_close((uv_handle_t *)&fx.deadline, NULL);
    uv_run(&fx.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx.loop), 0);
    gate_destroy(&fx.gate);
    unlink(fx.path);
}

/* Forwarding to the node that serves a model: a peer server on the same loop stands in for the
 * other node's API. ---------------------------------------------------------------------------- */

struct peer {
    struct exo_http_server *srv;
    uint16_t port;
    uint16_t find_port; /* what find answers: the peer, or a port where nothing listens */
    int calls;
    bool stopped;
};

static void h_peer_chat(struct exo_http_request *req, void *ud)
{
    struct peer *p = ud;
    size_t len;
    const char *body = exo_http_request_body(req, &len);
    const char *hop = exo_http_request_header(req, EXO_FORWARD_HEADER);
    const char *auth = exo_http_request_header(req, "authorization");
    char answer[512];
    snprintf(answer, sizeof(answer), "data: hop=%s auth=%s body=%.*s\n\n", hop ? hop : "-",
             auth ? auth : "-", (int)len, body);
    p->calls++;
    exo_http_begin(req, 200, "text/event-stream");
    exo_http_write(req, answer, strlen(answer));
    exo_http_write(req, "data: [DONE]\n\n", 14);
    exo_http_end(req);
}

static void peer_list(void *ud, const char *local_id, bool comma, struct exo_buf *out)
{
    (void)ud;
    (void)local_id;
    exo_buf_printf(out, "%s{\"id\":\"remote-model\",\"object\":\"model\"}", comma ? "," : "");
}

static int peer_find(void *ud, const char *model, char ip[64], uint16_t *port, char label[96])
{
    struct peer *p = ud;
    if (strcmp(model, "remote-model") != 0)
        return EXO_ENOENT;
    snprintf(ip, 64, "127.0.0.1");
    *port = p->find_port;
    snprintf(label, 96, "the test peer");
    return 0;
}

static void on_peer_stopped(void *ud)
{
    ((struct peer *)ud)->stopped = true;
}

static bool peer_stopped(void *arg)
{
    return ((struct peer *)arg)->stopped;
}

static void test_openai_route_forwards_to_peers(void **state)
{
    struct fx fx;
    struct fx_opts o = {.no_model = true};
    struct client c;
    struct peer p = {0};
    fx_start(&fx, &o);
    struct exo_http_config pc = {.listen_addr = "127.0.0.1"};
    assert_int_equal(exo_http_server_start(&fx.loop, &pc, &p.srv), 0);
    p.port = p.find_port = exo_http_server_port(p.srv);
    assert_int_equal(
        exo_http_route(p.srv, EXO_HTTP_POST, "/v1/chat/completions", 0, h_peer_chat, &p), 0);
    struct exo_openai_peers peers = {.list = peer_list, .find = peer_find, .ud = &p};
    exo_api_set_peers(fx.api, &peers);
    client_open(&fx, &c);

    struct resp *r = request(&c, "GET", "/v1/models", NULL, NULL);
    assert_string_equal(
        (char *)r->body.data,
        "{\"object\":\"list\",\"data\":[{\"id\":\"remote-model\",\"object\":\"model\"}]}");
    /* Passed on with the hop marker and the client's token, and streamed back. */
    const char *body =
        "{\"model\":\"remote-model\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    r = request(&c, "POST", "/v1/chat/completions", body, "Authorization: Bearer tok\r\n");
    assert_int_equal(r->status, 200);
    assert_int_equal(p.calls, 1);
    assert_non_null(
        strstr((char *)r->body.data, "hop=1 auth=Bearer tok body={\"model\":\"remote-model\""));
    assert_non_null(strstr((char *)r->body.data, "data: [DONE]"));
    /* A model nobody serves, and a request that has already been forwarded once. */
    r = request(&c, "POST", "/v1/chat/completions",
                "{\"model\":\"nope\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", NULL);
    expect_error(r, 404, NULL, "model_not_found");
    r = request(&c, "POST", "/v1/chat/completions", body, EXO_FORWARD_HEADER ": 1\r\n");
    expect_error(r, 404, NULL, "model_not_found");
    assert_int_equal(p.calls, 1);
    /* A peer that cannot be reached: 502 in the OpenAI shape. */
    exo_http_server_stop(p.srv, on_peer_stopped, &p);
    run_until(&fx, peer_stopped, &p);
    r = request(&c, "POST", "/v1/chat/completions", body, NULL);
    expect_error(r, 502, NULL, "upstream_unavailable");

    exo_api_set_peers(fx.api, NULL);
    client_close(&c);
    fx_stop(&fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_openai_decode_chat),
        cmocka_unit_test(test_openai_decode_completion),
        cmocka_unit_test(test_openai_decode_hostile),
        cmocka_unit_test(test_openai_decode_caps),
        cmocka_unit_test(test_openai_error_json),
        cmocka_unit_test(test_openai_json_string),
        cmocka_unit_test(test_openai_model_names),
        cmocka_unit_test(test_openai_route_not_ready),
        cmocka_unit_test(test_openai_route_chat),
        cmocka_unit_test(test_openai_route_stream),
        cmocka_unit_test(test_openai_route_completions),
        cmocka_unit_test(test_openai_route_errors),
        cmocka_unit_test(test_openai_route_queue_full),
        cmocka_unit_test(test_openai_route_disconnect_cancels),
        cmocka_unit_test(test_openai_route_models_and_auth),
        cmocka_unit_test(test_openai_route_metrics_providers),
        cmocka_unit_test(test_openai_route_stop_in_flight),
        cmocka_unit_test(test_openai_route_forwards_to_peers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
