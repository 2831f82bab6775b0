/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pairing of forward.h: one client request and one upstream request, freed when both are
 * done. The response head is passed on as it comes (status and Content-Type; the framing is the
 * server's own), then every piece of the body.
 */
#include "api/forward.h"

#include <stdio.h>
#include <string.h>

#include "api/http.h"
#include "api/openai.h"
#include "api/upstream.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/error.h"
#include "core/log.h"

#define HEAD_TIMEOUT_MS 30000 /* the peer may queue the request behind others first */
#define IDLE_TIMEOUT_MS 60000

struct forward {
    struct exo_http_request *req; /* until its response ends */
    struct exo_upstream *up;      /* until on_done or cancel */
    char label[96];
    bool begun;
};

bool exo_forward_is_forwarded(const struct exo_http_request *req)
{
    return exo_http_request_header(req, EXO_FORWARD_HEADER) != NULL;
}

static void respond_failure(struct forward *f, int rc)
{
    struct exo_openai_error err = {.status = rc == EXO_ETIMEOUT ? 504 : 502,
                                   .type = "server_error",
                                   .code = "upstream_unavailable"};
    snprintf(err.diag.msg, sizeof(err.diag.msg),
             "The node that can answer this request (%s) did not answer: %s. Try again.", f->label,
             exo_strerror(rc));
    struct exo_buf b;
    exo_buf_init(&b, 0);
    exo_openai_error_json(&err, &b);
    if (b.err)
        exo_http_respond_error(f->req, 500, "out of memory");
    else
        exo_http_respond(f->req, err.status, "application/json", b.data, b.len);
    exo_buf_free(&b);
}

static void on_client_close(struct exo_http_request *req, void *ud)
{
    struct forward *f = ud;
    exo_upstream_cancel(f->up);
    exo_http_end(req); /* writes to a client that has gone cost nothing */
    exo_free(f);
}

static void on_head(void *ud, int status, const char *content_type)
{
    struct forward *f = ud;
    if (exo_http_begin(f->req, status, content_type[0] ? content_type : NULL) == 0)
        f->begun = true;
}

static int on_body(void *ud, const void *data, size_t len)
{
    struct forward *f = ud;
    if (!f->begun)
        return EXO_EPROTO;
    int rc = exo_http_write(f->req, data, len);
    return rc == EXO_ECLOSED ? 0 : rc; /* the close callback cancels us */
}

static void on_done(void *ud, int rc)
{
    struct forward *f = ud;
    if (rc < 0)
        exo_log(EXO_LOG_WARN, "api", "forwarding %s to %s: %s", exo_http_request_path(f->req),
                f->label, exo_strerror(rc));
    if (f->begun)
        exo_http_end(f->req); /* a cut stream ends short; the client sees no [DONE] */
    else
        respond_failure(f, rc < 0 ? rc : EXO_EPROTO);
    exo_free(f);
}

static const struct exo_upstream_handler handler = {on_head, on_body, on_done};

int exo_forward(uv_loop_t *loop, struct exo_http_request *req, const char *ip, uint16_t port,
                const char *label, int head_timeout_ms)
{
    const char *query = exo_http_request_query(req);
    struct exo_buf target;
    exo_buf_init(&target, 0);
    exo_buf_printf(&target, "%s%s%s", exo_http_request_path(req), query[0] ? "?" : "", query);
    exo_buf_put(&target, "", 1);
    struct forward *f = exo_calloc(1, sizeof(*f));
    if (target.err || !f) {
        exo_buf_free(&target);
        exo_free(f);
        return EXO_ENOMEM;
    }
    f->req = req;
    snprintf(f->label, sizeof(f->label), "%s", label);

    size_t body_len;
    const void *body = exo_http_request_body(req, &body_len);
    const char *ctype = exo_http_request_header(req, "content-type");
    const char *auth = exo_http_request_header(req, "authorization");
    char headers[1024];
    snprintf(headers, sizeof(headers), "%s: 1\r\n%s%s%s", EXO_FORWARD_HEADER,
             auth ? "Authorization: " : "", auth ? auth : "", auth ? "\r\n" : "");
    struct exo_upstream_request rq = {
        .ip = ip,
        .port = port,
        .method = exo_http_method_name(exo_http_request_method(req)),
        .target = (const char *)target.data,
        .headers = headers,
        .content_type = body_len || ctype ? (ctype ? ctype : "application/json") : NULL,
        .body = body,
        .body_len = body_len,
        .head_timeout_ms = head_timeout_ms > 0 ? head_timeout_ms : HEAD_TIMEOUT_MS,
        .idle_timeout_ms = IDLE_TIMEOUT_MS,
    };
    int rc = exo_upstream_start(loop, &rq, &handler, f, &f->up);
    exo_buf_free(&target);
    if (rc == 0 && (rc = exo_http_request_on_close(req, on_client_close, f)) < 0) {
        /* The client has gone already: nothing to pass on. */
        exo_upstream_cancel(f->up);
        exo_http_end(req);
        exo_free(f);
        return 0;
    }
    if (rc < 0)
        exo_free(f);
    return rc;
}
