/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for the OpenAI request decoder: the body of a /v1/chat/completions or
 * /v1/completions request, as any client could send it. Beyond not crashing, it checks the
 * decoder's promises: a decoded request keeps every cap (messages, stops, ranges), and a refused
 * one comes with an error that serialises to valid JSON in the OpenAI shape.
 *
 * Input: byte 0 picks the route (even: chat, odd: completions), the rest is the body.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "api/openai.h"
#include "core/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
    if (!ok)
        abort();
}

static void check_request(const struct exo_openai_request *r)
{
    if (r->kind == EXO_OPENAI_CHAT) {
        check(r->n_messages >= 1 && r->n_messages <= EXO_OPENAI_MAX_MESSAGES);
        for (size_t i = 0; i < r->n_messages; i++)
            check(r->messages[i].role && r->messages[i].content);
    } else {
        check(r->prompt != NULL);
    }
    check(r->n_stop <= EXO_OPENAI_MAX_STOP);
    for (size_t i = 0; i < r->n_stop; i++)
        check(r->stop[i][0] && strlen(r->stop[i]) <= EXO_OPENAI_MAX_STOP_LEN);
    check(!r->model || strlen(r->model) <= EXO_OPENAI_MAX_MODEL_LEN);
    check(r->max_tokens == -1 || (r->max_tokens >= 1 && r->max_tokens <= EXO_OPENAI_MAX_TOKENS));
    check(r->temperature >= 0 && r->temperature <= 2 && r->top_p >= 0 && r->top_p <= 1);
    check(fabs(r->presence_penalty) <= 2 && fabs(r->frequency_penalty) <= 2);
}

static void check_error(const struct exo_openai_error *err)
{
    struct exo_buf b;
    exo_buf_init(&b, 0);
    exo_openai_error_json(err, &b);
    exo_buf_put(&b, "", 1);
    check(!b.err);
    cJSON *root = cJSON_Parse((const char *)b.data);
    cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
    check(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "message")));
    check(err->status >= 400 && err->status <= 599);
    cJSON_Delete(root);
    exo_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    enum exo_openai_kind kind = data[0] & 1 ? EXO_OPENAI_COMPLETION : EXO_OPENAI_CHAT;
    /* The HTTP layer hands the decoder a NUL-terminated copy; so does the fuzzer, but the
     * decoder must not rely on it, so the copy is exactly as long as the body. */
    size_t len = size - 1;
    char *body = malloc(len ? len : 1);
    if (!body)
        return 0;
    memcpy(body, data + 1, len);
    struct exo_openai_request r;
    struct exo_openai_error err;
    int rc = exo_openai_decode(kind, body, len, &r, &err);
    if (rc == 0)
        check_request(&r);
    else
        check_error(&err);
    exo_openai_request_free(&r);
    free(body);
    return 0;
}
