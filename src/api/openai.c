/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The OpenAI-compatible routes (see openai.h): the request decoder, the model's names, and the
 * calls that turn a request into a runner job and the job's events into a response.
 *
 * Threads: everything here runs on the loop thread; the runner delivers its events there too.
 *
 * A call lives from the handler until its job's DONE event: the job is submitted at once (or the
 * request refused: 429 when the queue is full, 503 while there is no model), the response
 * starts with the job's START event (so a prompt that overflows the context can still be
 * answered 400), and the DONE event ends it. A client that goes away cancels the job through the
 * request's close callback; the call still waits for DONE, which always comes, before it ends
 * the (detached) request and frees itself.
 */
#include "api/openai.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "api/forward.h"
#include "api/http.h"
#include "api/json.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/rng.h"
#include "engine/runner.h"

#define COMPLETION_DEFAULT_MAX_TOKENS 16 /* OpenAI's default for /v1/completions */
#define RETRY_BUSY_S                  "1"
#define RETRY_LOADING_S               "5"

/* The decoder. ----------------------------------------------------------------------------------
 */

static int refuse(struct exo_openai_error *err, int rc, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Fill err as a 400 invalid_request_error about param and return rc. */
static int refuse(struct exo_openai_error *err, int rc, const char *param, const char *fmt, ...)
{
    if (!err)
        return rc;
    err->status = 400;
    err->type = "invalid_request_error";
    err->code = NULL;
    snprintf(err->param, sizeof(err->param), "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->diag.msg, sizeof(err->diag.msg), fmt, ap);
    va_end(ap);
    return rc;
}

static const char *type_name(const cJSON *v)
{
    if (cJSON_IsString(v))
        return "a string";
    if (cJSON_IsNumber(v))
        return "a number";
    if (cJSON_IsBool(v))
        return "a boolean";
    if (cJSON_IsArray(v))
        return "an array";
    if (cJSON_IsObject(v))
        return "an object";
    return "null";
}

static int wrong_type(struct exo_openai_error *err, const char *param, const char *want,
                      const cJSON *got)
{
    return refuse(err, EXO_EFORMAT, param,
                  "Invalid type for '%s': expected %s, but got %s instead.", param, want,
                  type_name(got));
}

/* A field that may be absent or null (both leave *out as it is). */
static const cJSON *field(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsNull(v) ? NULL : v;
}

static int get_number(const cJSON *obj, const char *name, double lo, double hi, double *out,
                      struct exo_openai_error *err)
{
    const cJSON *v = field(obj, name);
    if (!v)
        return 0;
    if (!cJSON_IsNumber(v))
        return wrong_type(err, name, "a number", v);
    if (!isfinite(v->valuedouble) || v->valuedouble < lo || v->valuedouble > hi)
        return refuse(err, EXO_ERANGE, name, "Invalid '%s': %g is not between %g and %g.", name,
                      v->valuedouble, lo, hi);
    *out = v->valuedouble;
    return 0;
}

/* An integer in [lo, hi] (both within +-2^63). */
static int get_integer(const cJSON *obj, const char *name, double lo, double hi, double *out,
                       struct exo_openai_error *err)
{
    const cJSON *v = field(obj, name);
    if (!v)
        return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || floor(v->valuedouble) != v->valuedouble)
        return wrong_type(err, name, "an integer", v);
    if (v->valuedouble < lo || v->valuedouble > hi)
        return refuse(err, EXO_ERANGE, name, "Invalid '%s': %.0f is not between %.0f and %.0f.",
                      name, v->valuedouble, lo, hi);
    *out = v->valuedouble;
    return 0;
}

static int get_bool(const cJSON *obj, const char *name, bool *out, struct exo_openai_error *err)
{
    const cJSON *v = field(obj, name);
    if (!v)
        return 0;
    if (!cJSON_IsBool(v))
        return wrong_type(err, name, "a boolean", v);
    *out = cJSON_IsTrue(v);
    return 0;
}

/* One message's content: a string, null (empty), or an array of text parts joined in order. */
static int get_content(struct exo_openai_request *r, size_t i, const cJSON *msg,
                       struct exo_openai_error *err)
{
    char param[64];
    snprintf(param, sizeof(param), "messages[%zu].content", i);
    const cJSON *c = field(msg, "content");
    if (!c) {
        r->messages[i].content = "";
        return 0;
    }
    if (cJSON_IsString(c)) {
        r->messages[i].content = c->valuestring;
        return 0;
    }
    if (!cJSON_IsArray(c))
        return wrong_type(err, param, "a string or an array of content parts", c);
    int n = cJSON_GetArraySize(c);
    if (n > EXO_OPENAI_MAX_PARTS)
        return refuse(err, EXO_ETOOBIG, param, "Too many content parts: %d (at most %d).", n,
                      EXO_OPENAI_MAX_PARTS);
    size_t total = 1, k = 0;
    const cJSON *part;
    cJSON_ArrayForEach(part, c)
    {
        char pp[80];
        snprintf(pp, sizeof(pp), "%s[%zu]", param, k++);
        if (!cJSON_IsObject(part))
            return wrong_type(err, pp, "an object", part);
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsString(type) || strcmp(type->valuestring, "text") != 0) {
            snprintf(pp + strlen(pp), sizeof(pp) - strlen(pp), ".type");
            return refuse(err, EXO_EUNSUPPORTED, pp,
                          "Only text content parts ({\"type\": \"text\"}) are supported.");
        }
        if (!cJSON_IsString(text)) {
            snprintf(pp + strlen(pp), sizeof(pp) - strlen(pp), ".text");
            return wrong_type(err, pp, "a string", text);
        }
        total += strlen(text->valuestring);
    }
    char *joined = exo_malloc(total);
    if (!joined)
        return refuse(err, EXO_ENOMEM, NULL, "Out of memory.");
    size_t off = 0;
    cJSON_ArrayForEach(part, c)
    {
        const char *t = cJSON_GetObjectItemCaseSensitive(part, "text")->valuestring;
        size_t len = strlen(t);
        memcpy(joined + off, t, len);
        off += len;
    }
    joined[off] = '\0';
    r->owned[i] = joined;
    r->messages[i].content = joined;
    return 0;
}

static int get_messages(struct exo_openai_request *r, const cJSON *root,
                        struct exo_openai_error *err)
{
    const cJSON *msgs = field(root, "messages");
    if (!msgs)
        return refuse(err, EXO_EFORMAT, "messages", "Missing required parameter: 'messages'.");
    if (!cJSON_IsArray(msgs))
        return wrong_type(err, "messages", "an array", msgs);
    int n = cJSON_GetArraySize(msgs);
    if (n == 0)
        return refuse(err, EXO_ERANGE, "messages",
                      "Invalid 'messages': empty array. Expected an array with at least 1 "
                      "element.");
    if (n > EXO_OPENAI_MAX_MESSAGES)
        return refuse(err, EXO_ETOOBIG, "messages", "Too many messages: %d (at most %d).", n,
                      EXO_OPENAI_MAX_MESSAGES);
    r->messages = exo_calloc((size_t)n, sizeof(*r->messages));
    r->owned = exo_calloc((size_t)n, sizeof(*r->owned));
    if (!r->messages || !r->owned)
        return refuse(err, EXO_ENOMEM, NULL, "Out of memory.");
    r->n_messages = (size_t)n;
    size_t i = 0;
    const cJSON *msg;
    cJSON_ArrayForEach(msg, msgs)
    {
        char param[64];
        snprintf(param, sizeof(param), "messages[%zu]", i);
        if (!cJSON_IsObject(msg))
            return wrong_type(err, param, "an object", msg);
        snprintf(param, sizeof(param), "messages[%zu].role", i);
        const cJSON *role = field(msg, "role");
        if (!role)
            return refuse(err, EXO_EFORMAT, param, "Missing required parameter: '%s'.", param);
        if (!cJSON_IsString(role))
            return wrong_type(err, param, "a string", role);
        const char *name = role->valuestring;
        if (strcmp(name, "developer") == 0)
            name = "system";
        if (strcmp(name, "system") != 0 && strcmp(name, "user") != 0 &&
            strcmp(name, "assistant") != 0)
            return refuse(err, EXO_ERANGE, param,
                          "Invalid value for '%s': supported values are 'system', 'developer', "
                          "'user' and 'assistant'.",
                          param);
        r->messages[i].role = name;
        int rc = get_content(r, i, msg, err);
        if (rc < 0)
            return rc;
        i++;
    }
    return 0;
}

static int get_prompt(struct exo_openai_request *r, const cJSON *root, struct exo_openai_error *err)
{
    const cJSON *p = field(root, "prompt");
    if (!p)
        return refuse(err, EXO_EFORMAT, "prompt", "Missing required parameter: 'prompt'.");
    if (cJSON_IsArray(p)) {
        if (cJSON_IsNumber(cJSON_GetArrayItem(p, 0)))
            return refuse(err, EXO_EUNSUPPORTED, "prompt",
                          "Prompts given as token ids are not supported; send text.");
        if (cJSON_GetArraySize(p) != 1)
            return refuse(err, EXO_EUNSUPPORTED, "prompt",
                          "Exactly one prompt per request is supported.");
        p = cJSON_GetArrayItem(p, 0);
    }
    if (!cJSON_IsString(p))
        return wrong_type(err, "prompt", "a string or an array of one string", p);
    r->prompt = p->valuestring;
    return 0;
}

static int get_stop(struct exo_openai_request *r, const cJSON *root, struct exo_openai_error *err)
{
    const cJSON *s = field(root, "stop");
    if (!s)
        return 0;
    if (cJSON_IsString(s)) {
        if (strlen(s->valuestring) > EXO_OPENAI_MAX_STOP_LEN)
            return refuse(err, EXO_ETOOBIG, "stop", "A stop sequence is longer than %d bytes.",
                          EXO_OPENAI_MAX_STOP_LEN);
        if (s->valuestring[0])
            r->stop[r->n_stop++] = s->valuestring;
        return 0;
    }
    if (!cJSON_IsArray(s))
        return wrong_type(err, "stop", "a string or an array of strings", s);
    if (cJSON_GetArraySize(s) > EXO_OPENAI_MAX_STOP)
        return refuse(err, EXO_ETOOBIG, "stop", "At most %d stop sequences are allowed.",
                      EXO_OPENAI_MAX_STOP);
    const cJSON *item;
    cJSON_ArrayForEach(item, s)
    {
        if (!cJSON_IsString(item))
            return wrong_type(err, "stop", "a string or an array of strings", item);
        if (strlen(item->valuestring) > EXO_OPENAI_MAX_STOP_LEN)
            return refuse(err, EXO_ETOOBIG, "stop", "A stop sequence is longer than %d bytes.",
                          EXO_OPENAI_MAX_STOP_LEN);
        if (item->valuestring[0])
            r->stop[r->n_stop++] = item->valuestring;
    }
    return 0;
}

/* Fields that would change the answer's shape in ways this server cannot honour. */
static int check_unsupported(const cJSON *root, enum exo_openai_kind kind,
                             struct exo_openai_error *err)
{
    double n = 1;
    int rc = get_integer(root, "n", 1, 128, &n, err);
    if (rc < 0)
        return rc;
    if (n != 1)
        return refuse(err, EXO_EUNSUPPORTED, "n", "Only n = 1 is supported.");
    const cJSON *lp = field(root, "logprobs");
    if (lp && !cJSON_IsFalse(lp) && !(cJSON_IsNumber(lp) && lp->valuedouble == 0))
        return refuse(err, EXO_EUNSUPPORTED, "logprobs", "logprobs are not supported.");
    if (kind == EXO_OPENAI_COMPLETION) {
        const cJSON *echo = field(root, "echo");
        if (echo && !cJSON_IsFalse(echo))
            return refuse(err, EXO_EUNSUPPORTED, "echo", "echo is not supported.");
    }
    return 0;
}

static int decode_fields(struct exo_openai_request *r, const cJSON *root,
                         struct exo_openai_error *err)
{
    int rc;
    const cJSON *model = field(root, "model");
    if (model) {
        if (!cJSON_IsString(model))
            return wrong_type(err, "model", "a string", model);
        if (strlen(model->valuestring) > EXO_OPENAI_MAX_MODEL_LEN)
            return refuse(err, EXO_ETOOBIG, "model", "The model name is longer than %d bytes.",
                          EXO_OPENAI_MAX_MODEL_LEN);
        r->model = model->valuestring;
    }
    rc = r->kind == EXO_OPENAI_CHAT ? get_messages(r, root, err) : get_prompt(r, root, err);
    if (rc < 0)
        return rc;
    if ((rc = check_unsupported(root, r->kind, err)) < 0 ||
        (rc = get_bool(root, "stream", &r->stream, err)) < 0)
        return rc;
    const cJSON *so = field(root, "stream_options");
    if (so) {
        if (!cJSON_IsObject(so))
            return wrong_type(err, "stream_options", "an object", so);
        const cJSON *iu = field(so, "include_usage");
        if (iu && !cJSON_IsBool(iu))
            return wrong_type(err, "stream_options.include_usage", "a boolean", iu);
        r->include_usage = cJSON_IsTrue(iu);
    }
    double max_tokens = -1, max_completion = -1, seed = 0;
    if ((rc = get_integer(root, "max_tokens", 1, EXO_OPENAI_MAX_TOKENS, &max_tokens, err)) < 0 ||
        (rc = get_integer(root, "max_completion_tokens", 1, EXO_OPENAI_MAX_TOKENS, &max_completion,
                          err)) < 0)
        return rc;
    r->max_tokens = (int32_t)(max_completion > 0 ? max_completion : max_tokens);
    if ((rc = get_number(root, "temperature", 0, 2, &r->temperature, err)) < 0 ||
        (rc = get_number(root, "top_p", 0, 1, &r->top_p, err)) < 0 ||
        (rc = get_number(root, "presence_penalty", -2, 2, &r->presence_penalty, err)) < 0 ||
        (rc = get_number(root, "frequency_penalty", -2, 2, &r->frequency_penalty, err)) < 0)
        return rc;
    /* Seeds are 64-bit integers; a double holds those near +-2^63 only approximately, which is
     * fine for a seed as long as the same number always maps to the same bits. */
    if ((rc = get_integer(root, "seed", -9223372036854775808.0, 9223372036854774784.0, &seed,
                          err)) < 0)
        return rc;
    if (field(root, "seed")) {
        r->has_seed = true;
        r->seed = (uint64_t)(int64_t)seed;
    }
    return get_stop(r, root, err);
}

int exo_openai_decode(enum exo_openai_kind kind, const char *body, size_t len,
                      struct exo_openai_request *ret, struct exo_openai_error *err)
{
    struct exo_openai_request *r = ret;
    memset(r, 0, sizeof(*r));
    r->kind = kind;
    r->max_tokens = -1;
    r->temperature = 1.0;
    r->top_p = 1.0;
    if (err)
        memset(err, 0, sizeof(*err));

    const char *end = NULL;
    r->root = cJSON_ParseWithLengthOpts(body, len, &end, false);
    if (!r->root) {
        if (!end || end < body || end > body + len)
            end = body + len;
        return refuse(err, EXO_EFORMAT, NULL,
                      "We could not parse the JSON body of your request (error near byte %zu). "
                      "The body must be a JSON object.",
                      (size_t)(end - body));
    }
    while (end < body + len && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
        end++;
    if (end != body + len)
        return refuse(err, EXO_EFORMAT, NULL,
                      "We could not parse the JSON body of your request: unexpected bytes after "
                      "the JSON value at byte %zu.",
                      (size_t)(end - body));
    if (!cJSON_IsObject(r->root))
        return refuse(err, EXO_EFORMAT, NULL, "The body must be a JSON object, not %s.",
                      type_name(r->root));
    int rc = decode_fields(r, r->root, err);
    if (rc == 0 && kind == EXO_OPENAI_COMPLETION && r->max_tokens < 0)
        r->max_tokens = COMPLETION_DEFAULT_MAX_TOKENS;
    return rc;
}

void exo_openai_request_free(struct exo_openai_request *req)
{
    if (!req)
        return;
    if (req->owned)
        for (size_t i = 0; i < req->n_messages; i++)
            exo_free(req->owned[i]);
    exo_free(req->owned);
    exo_free(req->messages);
    cJSON_Delete(req->root);
    memset(req, 0, sizeof(*req));
}

void exo_openai_error_json(const struct exo_openai_error *err, struct exo_buf *out)
{
    const char *msg = err->diag.msg;
    exo_buf_put(out, "{\"error\":{\"message\":", 20);
    exo_json_put_string(out, msg, strlen(msg));
    exo_buf_put(out, ",\"type\":", 8);
    exo_json_put_string(out, err->type, strlen(err->type));
    exo_buf_put(out, ",\"param\":", 9);
    if (err->param[0])
        exo_json_put_string(out, err->param, strlen(err->param));
    else
        exo_buf_put(out, "null", 4);
    exo_buf_put(out, ",\"code\":", 8);
    if (err->code)
        exo_json_put_string(out, err->code, strlen(err->code));
    else
        exo_buf_put(out, "null", 4);
    exo_buf_put(out, "}}", 2);
}

/* The model's names. -------------------------------------------------------------------------- */

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* Length of name without a ".gguf" suffix (any case). */
static size_t stem_len(const char *name)
{
    size_t n = strlen(name);
    return n > 5 && strcasecmp(name + n - 5, ".gguf") == 0 ? n - 5 : n;
}

void exo_openai_model_id(const char *path, char *buf, size_t size)
{
    if (!size)
        return;
    const char *name = base_name(path);
    size_t n = stem_len(name), o = 0;
    for (size_t i = 0; i < n && o + 1 < size; i++) {
        char c = name[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                   c == '-'))
            c = '-';
        buf[o++] = c;
    }
    buf[o] = '\0';
}

bool exo_openai_model_matches(const char *requested, const char *path, const char *name)
{
    if (!requested || !path)
        return false;
    char id[256];
    exo_openai_model_id(path, id, sizeof(id));
    const char *file = base_name(path);
    size_t len = strlen(requested);
    return strcasecmp(requested, "default") == 0 || strcasecmp(requested, id) == 0 ||
           strcasecmp(requested, file) == 0 ||
           (len == stem_len(file) && strncasecmp(requested, file, len) == 0) ||
           (name && name[0] && strcasecmp(requested, name) == 0);
}

/* The routes. ---------------------------------------------------------------------------------- */

struct call;

struct exo_openai {
    struct exo_http_server *srv; /* borrowed */
    struct exo_runner *runner;   /* borrowed */
    struct call *calls;          /* in flight */
    size_t n_calls;
    struct exo_rng rng; /* response ids and seeds for requests that give none */
    int64_t created;    /* when the routes came up: /v1/models's "created" */
    bool stopping;
    void (*stop_done)(void *ud);
    void *stop_ud;
    uv_loop_t *loop; /* with peers: where forwarded requests run */
    struct exo_openai_peers peers;
};

struct call {
    struct exo_openai *oa;
    struct call *prev, *next;
    struct exo_http_request *req; /* until the response ends */
    struct exo_runner_job *job;   /* until DONE */
    enum exo_openai_kind kind;
    bool stream;
    bool include_usage;
    bool started;        /* stream: the event stream has begun */
    bool client_gone;    /* the request's close callback came */
    struct exo_buf text; /* not streaming: the answer so far */
    char id[48];
    int64_t created;
    char model[128]; /* the id echoed in every response */
};

static void put_model_id(struct exo_buf *b, const struct call *c)
{
    exo_json_put_string(b, c->model, strlen(c->model));
}

static int respond_error(struct exo_http_request *req, const struct exo_openai_error *err)
{
    struct exo_buf b;
    exo_buf_init(&b, 0);
    exo_openai_error_json(err, &b);
    int rc = b.err ? exo_http_respond_error(req, 500, "out of memory")
                   : exo_http_respond(req, err->status, "application/json", b.data, b.len);
    exo_buf_free(&b);
    return rc;
}

static int fail_with(struct exo_http_request *req, int status, const char *type, const char *code,
                     const char *retry_after, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Answer an error that is not about one parameter. */
static int fail_with(struct exo_http_request *req, int status, const char *type, const char *code,
                     const char *retry_after, const char *fmt, ...)
{
    struct exo_openai_error err = {.status = status, .type = type, .code = code};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err.diag.msg, sizeof(err.diag.msg), fmt, ap);
    va_end(ap);
    if (retry_after)
        exo_http_add_header(req, "Retry-After", retry_after);
    return respond_error(req, &err);
}

/* 503 while there is no model to serve, saying why and how far along it is. */
static void answer_not_ready(struct exo_http_request *req, const struct exo_runner_info *info)
{
    if (info->state == EXO_RUNNER_FAILED) {
        fail_with(req, 503, "server_error", "model_not_available", NULL,
                  "No model is available: %s", info->error);
        return;
    }
    char progress[32] = "";
    if (info->progress >= 0)
        snprintf(progress, sizeof(progress), " (%.0f%%)", info->progress * 100.0);
    fail_with(req, 503, "server_error", "model_not_ready", RETRY_LOADING_S,
              "The model is not ready yet: %s%s. Try again shortly.",
              info->phase[0] ? info->phase : exo_runner_state_name(info->state), progress);
}

static void model_object(struct exo_buf *b, const struct exo_runner_info *info, int64_t created)
{
    char id[256];
    exo_openai_model_id(info->model_path, id, sizeof(id));
    exo_buf_put(b, "{\"id\":", 6);
    exo_json_put_string(b, id, strlen(id));
    exo_buf_printf(b, ",\"object\":\"model\",\"created\":%lld,\"owned_by\":\"exo\",\"status\":",
                   (long long)created);
    const char *state = exo_runner_state_name(info->state);
    exo_json_put_string(b, state, strlen(state));
    if (info->state == EXO_RUNNER_READY) {
        exo_buf_put(b, ",\"name\":", 8);
        exo_json_put_string(b, info->model_name, strlen(info->model_name));
        exo_buf_printf(b, ",\"context_length\":%u", info->n_ctx);
    }
    exo_buf_put(b, "}", 1);
}

static void respond_buf(struct exo_http_request *req, struct exo_buf *b)
{
    if (b->err)
        exo_http_respond_error(req, 500, "out of memory");
    else
        exo_http_respond(req, 200, "application/json", b->data, b->len);
    exo_buf_free(b);
}

static void h_models(struct exo_http_request *req, void *ud)
{
    struct exo_openai *oa = ud;
    const struct exo_runner_info *info = exo_runner_info(oa->runner);
    struct exo_buf b;
    exo_buf_init(&b, 0);
    exo_buf_printf(&b, "{\"object\":\"list\",\"data\":[");
    char local_id[256] = "";
    if (info->model_path[0]) {
        model_object(&b, info, oa->created);
        exo_openai_model_id(info->model_path, local_id, sizeof(local_id));
    }
    if (oa->peers.list)
        oa->peers.list(oa->peers.ud, local_id, local_id[0] != '\0', &b);
    exo_buf_printf(&b, "]}");
    respond_buf(req, &b);
}

static void h_model(struct exo_http_request *req, void *ud)
{
    struct exo_openai *oa = ud;
    const struct exo_runner_info *info = exo_runner_info(oa->runner);
    const char *want = exo_http_request_path(req) + strlen("/v1/models/");
    if (!info->model_path[0] ||
        !exo_openai_model_matches(want, info->model_path, info->model_name)) {
        struct exo_openai_error err = {
            .status = 404, .type = "invalid_request_error", .code = "model_not_found"};
        snprintf(err.param, sizeof(err.param), "model");
        snprintf(err.diag.msg, sizeof(err.diag.msg), "The model '%.*s' does not exist.",
                 EXO_OPENAI_MAX_MODEL_LEN, want);
        respond_error(req, &err);
        return;
    }
    struct exo_buf b;
    exo_buf_init(&b, 0);
    model_object(&b, info, oa->created);
    respond_buf(req, &b);
}

/* Calls. ------------------------------------------------------------------------------------------
 */

static void call_unlink(struct call *c)
{
    struct exo_openai *oa = c->oa;
    if (c->prev)
        c->prev->next = c->next;
    else
        oa->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    oa->n_calls--;
}

static void maybe_drained(struct exo_openai *oa)
{
    if (!oa->stopping || oa->n_calls || !oa->stop_done)
        return;
    void (*done)(void *ud) = oa->stop_done;
    oa->stop_done = NULL;
    done(oa->stop_ud);
}

static void call_free(struct call *c)
{
    struct exo_openai *oa = c->oa;
    call_unlink(c);
    exo_buf_free(&c->text);
    exo_free(c);
    maybe_drained(oa);
}

/* The start of every chunk of this call's stream. */
static void chunk_head(struct exo_buf *b, const struct call *c)
{
    exo_buf_printf(b, "{\"id\":\"%s\",\"object\":\"%s\",\"created\":%lld,\"model\":", c->id,
                   c->kind == EXO_OPENAI_CHAT ? "chat.completion.chunk" : "text_completion",
                   (long long)c->created);
    put_model_id(b, c);
    if (c->kind == EXO_OPENAI_CHAT)
        exo_buf_printf(b, ",\"system_fingerprint\":null");
}

/* A chunk with one choice: delta content (chat) or text (completion), and a finish reason. */
static void put_chunk(struct exo_buf *b, const struct call *c, const char *text, size_t len,
                      bool role, const char *finish)
{
    chunk_head(b, c);
    exo_buf_printf(b, ",\"choices\":[{\"index\":0,");
    if (c->kind == EXO_OPENAI_CHAT) {
        exo_buf_printf(b, "\"delta\":{");
        if (role)
            exo_buf_printf(b, "\"role\":\"assistant\"%s", text ? "," : "");
        if (text) {
            exo_buf_printf(b, "\"content\":");
            exo_json_put_string(b, text, len);
        }
        exo_buf_printf(b, "},");
    } else {
        exo_buf_printf(b, "\"text\":");
        exo_json_put_string(b, text ? text : "", text ? len : 0);
        exo_buf_printf(b, ",");
    }
    exo_buf_printf(b, "\"logprobs\":null,\"finish_reason\":");
    if (finish)
        exo_buf_printf(b, "\"%s\"", finish);
    else
        exo_buf_printf(b, "null");
    exo_buf_printf(b, "}]%s}", c->include_usage ? ",\"usage\":null" : "");
}

static void put_usage(struct exo_buf *b, int32_t n_prompt, int32_t n_generated)
{
    exo_buf_printf(b,
                   "\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,"
                   "\"total_tokens\":%d}",
                   n_prompt, n_generated, n_prompt + n_generated);
}

/* Send one SSE event holding b's text; false when the client is gone. Consumes b. */
static bool send_event(struct call *c, struct exo_buf *b)
{
    int rc = b->err ? b->err : exo_http_sse_send(c->req, NULL, NULL, (const char *)b->data);
    exo_buf_free(b);
    if (rc < 0) {
        exo_runner_cancel(c->job);
        return false;
    }
    return true;
}

static bool stream_begin(struct call *c)
{
    c->started = true;
    if (exo_http_sse_begin(c->req) < 0) {
        exo_runner_cancel(c->job);
        return false;
    }
    if (c->kind != EXO_OPENAI_CHAT)
        return true;
    struct exo_buf b;
    exo_buf_init(&b, 0);
    put_chunk(&b, c, "", 0, true, NULL);
    return send_event(c, &b);
}

static void stream_text(struct call *c, const char *text, size_t len)
{
    struct exo_buf b;
    exo_buf_init(&b, 0);
    put_chunk(&b, c, text, len, false, NULL);
    send_event(c, &b);
}

static const char *finish_name(enum exo_finish f)
{
    return f == EXO_FINISH_LENGTH ? "length" : "stop";
}

static void stream_end(struct call *c, const struct exo_runner_event *ev)
{
    struct exo_buf b;
    exo_buf_init(&b, 0);
    put_chunk(&b, c, NULL, 0, false, finish_name(ev->result.finish));
    if (send_event(c, &b) && c->include_usage) {
        exo_buf_init(&b, 0);
        chunk_head(&b, c);
        exo_buf_printf(&b, ",\"choices\":[],");
        put_usage(&b, ev->n_prompt, ev->result.n_generated);
        exo_buf_put(&b, "}", 1);
        send_event(c, &b);
    }
    exo_http_sse_send(c->req, NULL, NULL, "[DONE]");
}

/* An error after the stream began: OpenAI sends it as an event of its own. */
static void stream_error(struct call *c, const struct exo_openai_error *err)
{
    struct exo_buf b;
    exo_buf_init(&b, 0);
    exo_openai_error_json(err, &b);
    if (send_event(c, &b))
        exo_http_sse_send(c->req, NULL, NULL, "[DONE]");
}

static void respond_whole(struct call *c, const struct exo_runner_event *ev)
{
    struct exo_buf b;
    exo_buf_init(&b, 0);
    const char *text = c->text.data ? (const char *)c->text.data : "";
    bool chat = c->kind == EXO_OPENAI_CHAT;
    exo_buf_printf(&b, "{\"id\":\"%s\",\"object\":\"%s\",\"created\":%lld,\"model\":", c->id,
                   chat ? "chat.completion" : "text_completion", (long long)c->created);
    put_model_id(&b, c);
    if (chat) {
        exo_buf_printf(&b, ",\"system_fingerprint\":null,\"choices\":[{\"index\":0,\"message\":"
                           "{\"role\":\"assistant\",\"content\":");
        exo_json_put_string(&b, text, c->text.len);
        exo_buf_printf(&b, "},");
    } else {
        exo_buf_printf(&b, ",\"choices\":[{\"index\":0,\"text\":");
        exo_json_put_string(&b, text, c->text.len);
        exo_buf_printf(&b, ",");
    }
    exo_buf_printf(&b, "\"logprobs\":null,\"finish_reason\":\"%s\"}],",
                   finish_name(ev->result.finish));
    put_usage(&b, ev->n_prompt, ev->result.n_generated);
    exo_buf_put(&b, "}", 1);
    respond_buf(c->req, &b);
}

/* The job failed: the error to tell the client. */
static void job_error(const struct call *c, const struct exo_runner_event *ev,
                      struct exo_openai_error *err)
{
    const char *what = c->kind == EXO_OPENAI_CHAT ? "messages" : "prompt";
    memset(err, 0, sizeof(*err));
    err->status = 400;
    err->type = "invalid_request_error";
    switch (ev->error) {
    case EXO_ETOOBIG:
        err->code = "context_length_exceeded";
        snprintf(err->param, sizeof(err->param), "%s", what);
        snprintf(err->diag.msg, sizeof(err->diag.msg),
                 "This model's maximum context length is %u tokens. However, your %s resulted "
                 "in %d tokens. Please reduce the length of the %s.",
                 ev->n_ctx, what, ev->n_prompt, what);
        break;
    case EXO_EINVAL:
        snprintf(err->param, sizeof(err->param), "%s", what);
        snprintf(err->diag.msg, sizeof(err->diag.msg),
                 c->kind == EXO_OPENAI_CHAT
                     ? "The model's chat template cannot format these messages (some "
                       "templates need user and assistant turns to alternate)."
                     : "The prompt is empty.");
        break;
    case EXO_ECANCELED:
    case EXO_ECLOSED:
        err->status = 503;
        err->type = "server_error";
        snprintf(err->diag.msg, sizeof(err->diag.msg),
                 "The request was canceled because the server is shutting down.");
        break;
    default:
        err->status = 500;
        err->type = "server_error";
        snprintf(err->diag.msg, sizeof(err->diag.msg), "Generation failed: %s.",
                 exo_strerror(ev->error));
        break;
    }
}

static void on_event(struct exo_runner_job *job, const struct exo_runner_event *ev, void *ud)
{
    struct call *c = ud;
    switch (ev->type) {
    case EXO_RUNNER_EVENT_START:
        if (c->stream && !c->client_gone)
            stream_begin(c);
        return;
    case EXO_RUNNER_EVENT_TEXT:
        if (c->client_gone)
            return;
        if (c->stream) {
            if (!c->started && !stream_begin(c))
                return;
            stream_text(c, ev->text, ev->len);
        } else {
            exo_buf_put(&c->text, ev->text, ev->len);
            if (c->text.err)
                exo_runner_cancel(c->job);
        }
        return;
    case EXO_RUNNER_EVENT_DONE:
        break;
    }
    c->job = NULL;
    if (c->client_gone) {
        exo_http_end(c->req);
    } else if (ev->error == 0 && !c->text.err) {
        if (c->stream) {
            if (c->started || stream_begin(c))
                stream_end(c, ev);
            exo_http_end(c->req);
        } else {
            respond_whole(c, ev);
        }
    } else {
        struct exo_openai_error err;
        job_error(c, ev, &err);
        if (c->text.err) {
            err.status = 500;
            err.type = "server_error";
            snprintf(err.diag.msg, sizeof(err.diag.msg), "Out of memory.");
        }
        if (c->started) {
            stream_error(c, &err);
            exo_http_end(c->req);
        } else {
            respond_error(c->req, &err);
        }
    }
    c->req = NULL;
    call_free(c);
}

static void on_client_close(struct exo_http_request *req, void *ud)
{
    struct call *c = ud;
    c->client_gone = true;
    exo_runner_cancel(c->job);
}

static void random_id(struct exo_openai *oa, const char *prefix, char *buf, size_t size)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    size_t n = (size_t)snprintf(buf, size, "%s", prefix);
    for (; n + 1 < size && n < strlen(prefix) + 24; n++)
        buf[n] = alphabet[exo_rng_below(&oa->rng, sizeof(alphabet) - 1)];
    buf[n] = '\0';
}

/* Turn a decoded request into a job spec; the sampler keeps llama.cpp's top-k and min-p, as
 * llama.cpp's server does, under OpenAI's temperature and top-p. */
static void make_spec(struct exo_openai *oa, const struct exo_openai_request *r,
                      struct exo_runner_job_spec *spec)
{
    memset(spec, 0, sizeof(*spec));
    if (r->kind == EXO_OPENAI_CHAT) {
        spec->messages = r->messages;
        spec->n_messages = r->n_messages;
    } else {
        spec->prompt = r->prompt;
    }
    exo_sampler_params_default(&spec->sampling);
    spec->sampling.temperature = (float)r->temperature;
    spec->sampling.top_p = (float)r->top_p;
    spec->sampling.presence_penalty = (float)r->presence_penalty;
    spec->sampling.frequency_penalty = (float)r->frequency_penalty;
    spec->sampling.seed = r->has_seed ? r->seed : exo_rng_next(&oa->rng);
    spec->max_tokens = r->max_tokens;
    spec->stop = r->stop;
    spec->n_stop = r->n_stop;
}

/* Pass the request on to a node that serves `model`, unless it came from another node. True
 * when the request is in the forwarder's hands. */
static bool try_forward(struct exo_openai *oa, struct exo_http_request *req, const char *model)
{
    char ip[64], label[96];
    uint16_t port;
    if (!oa->peers.find || exo_forward_is_forwarded(req) ||
        oa->peers.find(oa->peers.ud, model, ip, &port, label) < 0)
        return false;
    int rc = exo_forward(oa->loop, req, ip, port, label, 0);
    if (rc < 0)
        exo_log(EXO_LOG_WARN, "api", "cannot forward a request for '%s' to %s: %s", model, label,
                exo_strerror(rc));
    return rc == 0;
}

static void handle_generation(struct exo_http_request *req, struct exo_openai *oa,
                              enum exo_openai_kind kind)
{
    const struct exo_runner_info *info = exo_runner_info(oa->runner);
    struct exo_openai_request r;
    struct exo_openai_error err;
    struct call *c = NULL;
    size_t len;

    if (oa->stopping) {
        fail_with(req, 503, "server_error", NULL, NULL, "The server is shutting down.");
        return;
    }
    const char *body = exo_http_request_body(req, &len);
    if (exo_openai_decode(kind, body, len, &r, &err) < 0) {
        respond_error(req, &err);
        goto out;
    }
    bool serves_it =
        info->state == EXO_RUNNER_READY &&
        (!r.model || exo_openai_model_matches(r.model, info->model_path, info->model_name));
    if (!serves_it && try_forward(oa, req, r.model ? r.model : "default"))
        goto out;
    if (info->state == EXO_RUNNER_WAITING && !info->phase[0]) {
        /* This node serves no model (exo --model none) and no other node serves this one. */
        fail_with(req, 404, "invalid_request_error", "model_not_found", NULL,
                  "No node in the cluster serves the model '%s' (this node serves none; see "
                  "/v1/models).",
                  r.model ? r.model : "default");
        goto out;
    }
    if (info->state != EXO_RUNNER_READY) {
        answer_not_ready(req, info);
        goto out;
    }
    if (r.model && !exo_openai_model_matches(r.model, info->model_path, info->model_name)) {
        err = (struct exo_openai_error){
            .status = 404, .type = "invalid_request_error", .code = "model_not_found"};
        snprintf(err.param, sizeof(err.param), "model");
        snprintf(err.diag.msg, sizeof(err.diag.msg),
                 "The model '%s' does not exist. This server serves '%s' (see /v1/models).",
                 r.model, info->model_name);
        respond_error(req, &err);
        goto out;
    }
    c = exo_calloc(1, sizeof(*c));
    if (!c) {
        exo_http_respond_error(req, 500, "out of memory");
        goto out;
    }
    c->oa = oa;
    c->req = req;
    c->kind = kind;
    c->stream = r.stream;
    c->include_usage = r.stream && r.include_usage;
    c->created = (int64_t)(exo_clock_wall_ms() / 1000);
    exo_buf_init(&c->text, 0);
    random_id(oa, kind == EXO_OPENAI_CHAT ? "chatcmpl-" : "cmpl-", c->id, sizeof(c->id));
    exo_openai_model_id(info->model_path, c->model, sizeof(c->model));

    struct exo_runner_job_spec spec;
    make_spec(oa, &r, &spec);
    int rc = exo_runner_submit(oa->runner, &spec, on_event, c, &c->job);
    if (rc == EXO_EBUSY) {
        fail_with(req, 429, "requests", "rate_limit_exceeded", RETRY_BUSY_S,
                  "Too many requests are waiting for the model; try again shortly.");
    } else if (rc == EXO_EAGAIN) {
        answer_not_ready(req, info);
    } else if (rc == EXO_ECLOSED) {
        fail_with(req, 503, "server_error", NULL, NULL, "The server is shutting down.");
    } else if (rc < 0) {
        fail_with(req, 500, "server_error", NULL, NULL, "Cannot queue the request: %s.",
                  exo_strerror(rc));
    }
    if (rc < 0) {
        exo_buf_free(&c->text);
        exo_free(c);
        goto out;
    }
    c->next = oa->calls;
    if (c->next)
        c->next->prev = c;
    oa->calls = c;
    oa->n_calls++;
    if (exo_http_request_on_close(req, on_client_close, c) == EXO_ECLOSED)
        on_client_close(req, c);
out:
    exo_openai_request_free(&r);
}

static void h_chat(struct exo_http_request *req, void *ud)
{
    handle_generation(req, ud, EXO_OPENAI_CHAT);
}

static void h_completions(struct exo_http_request *req, void *ud)
{
    handle_generation(req, ud, EXO_OPENAI_COMPLETION);
}

int exo_openai_register(struct exo_http_server *srv, struct exo_runner *runner,
                        struct exo_openai **ret)
{
    if (!srv || !runner || !ret)
        return EXO_EINVAL;
    struct exo_openai *oa = exo_calloc(1, sizeof(*oa));
    if (!oa)
        return EXO_ENOMEM;
    oa->srv = srv;
    oa->runner = runner;
    oa->created = (int64_t)(exo_clock_wall_ms() / 1000);
    exo_rng_seed(&oa->rng, exo_clock_wall_ms() ^ (exo_clock_ns() << 20) ^ (uint64_t)getpid());
    int rc;
    if ((rc = exo_http_route(srv, EXO_HTTP_POST, "/v1/chat/completions", 0, h_chat, oa)) < 0 ||
        (rc = exo_http_route(srv, EXO_HTTP_POST, "/v1/completions", 0, h_completions, oa)) < 0 ||
        (rc = exo_http_route(srv, EXO_HTTP_GET, "/v1/models", 0, h_models, oa)) < 0 ||
        (rc = exo_http_route(srv, EXO_HTTP_GET, "/v1/models/", EXO_HTTP_ROUTE_PREFIX, h_model,
                             oa)) < 0 ||
        (rc = exo_http_route_body_max(srv, "/v1/chat/completions", EXO_OPENAI_BODY_MAX)) < 0 ||
        (rc = exo_http_route_body_max(srv, "/v1/completions", EXO_OPENAI_BODY_MAX)) < 0) {
        exo_free(oa);
        return rc;
    }
    *ret = oa;
    return 0;
}

void exo_openai_set_peers(struct exo_openai *oa, uv_loop_t *loop,
                          const struct exo_openai_peers *peers)
{
    oa->loop = loop;
    oa->peers = peers ? *peers : (struct exo_openai_peers){0};
}

size_t exo_openai_in_flight(const struct exo_openai *oa)
{
    return oa->n_calls;
}

void exo_openai_stop(struct exo_openai *oa, void (*done)(void *ud), void *ud)
{
    if (!oa || oa->stopping)
        return;
    oa->stopping = true;
    oa->stop_done = done;
    oa->stop_ud = ud;
    for (struct call *c = oa->calls; c; c = c->next)
        exo_runner_cancel(c->job);
    maybe_drained(oa);
}

void exo_openai_free(struct exo_openai *oa)
{
    exo_free(oa);
}
