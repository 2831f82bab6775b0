/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The client of upstream.h: a TCP handle and a timer on the loop, the request written in one
 * piece, the response parsed with http-parser as it is read. The struct lives until both handles
 * have closed; `finished` marks the point after which no callback may run.
 */
#include "api/upstream.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <http_parser.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/error.h"

#define DEFAULT_HEAD_TIMEOUT_MS 10000
#define DEFAULT_IDLE_TIMEOUT_MS 60000
#define READ_CHUNK              16384
#define CTYPE_MAX               128

struct exo_upstream {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t connect;
    uv_write_t write;
    http_parser parser;
    struct exo_upstream_handler h;
    void *ud;
    struct exo_buf request;
    char read_buf[READ_CHUNK];
    int head_timeout_ms, idle_timeout_ms;
    uint64_t deadline_ms; /* uv_now() by which all must be done; 0: none */
    /* Header parsing: the Content-Type value, and whether the header being read is it. */
    char field[16];
    size_t field_len;
    bool field_overflow, in_value, is_ctype;
    char ctype[CTYPE_MAX];
    size_t ctype_len;
    bool head_seen, complete, finished, canceled;
    bool socketless; /* exo_upstream_parse: no handles to close */
    int body_rc;     /* on_body's code when it asked to stop */
    int open_handles;
};

static void on_handle_closed(uv_handle_t *handle)
{
    struct exo_upstream *u = handle->data;
    if (--u->open_handles == 0) {
        exo_buf_free(&u->request);
        exo_free(u);
    }
}

static void close_handles(struct exo_upstream *u)
{
    uv_close((uv_handle_t *)&u->timer, on_handle_closed);
    uv_close((uv_handle_t *)&u->tcp, on_handle_closed);
}

static void finish(struct exo_upstream *u, int rc)
{
    if (u->finished)
        return;
    u->finished = true;
    if (!u->socketless)
        close_handles(u);
    if (!u->canceled)
        u->h.on_done(u->ud, rc);
}

static int uv_to_exo(int uv_err)
{
    return uv_err == UV_ETIMEDOUT ? EXO_ETIMEOUT
           : uv_err == UV_EOF     ? EXO_ECLOSED
                                  : exo_error_from_errno(-uv_err);
}

/* The timer: the head timeout until the head is in, then the idle timeout, never past the
 * deadline. */
static void on_timeout(uv_timer_t *t)
{
    finish(t->data, EXO_ETIMEOUT);
}

static void arm_timer(struct exo_upstream *u)
{
    uint64_t ms = (uint64_t)(u->head_seen ? u->idle_timeout_ms : u->head_timeout_ms);
    if (u->deadline_ms) {
        uint64_t now = uv_now(u->timer.loop);
        uint64_t left = u->deadline_ms > now ? u->deadline_ms - now : 0;
        if (left < ms)
            ms = left;
    }
    uv_timer_start(&u->timer, on_timeout, ms, 0);
}

/* Response parsing. ------------------------------------------------------------------------- */

static int on_message_begin(http_parser *p)
{
    struct exo_upstream *u = p->data;
    u->field_len = u->ctype_len = 0;
    u->field_overflow = u->in_value = u->is_ctype = false;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct exo_upstream *u = p->data;
    if (u->in_value) {
        u->in_value = false;
        u->field_len = 0;
        u->field_overflow = false;
    }
    if (len > sizeof(u->field) - 1 - u->field_len)
        u->field_overflow = true;
    else {
        memcpy(u->field + u->field_len, at, len);
        u->field_len += len;
    }
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct exo_upstream *u = p->data;
    if (!u->in_value) {
        u->in_value = true;
        u->field[u->field_len] = '\0';
        u->is_ctype = !u->field_overflow && strcasecmp(u->field, "content-type") == 0;
        if (u->is_ctype)
            u->ctype_len = 0;
    }
    if (u->is_ctype) {
        size_t room = sizeof(u->ctype) - 1 - u->ctype_len;
        size_t n = len < room ? len : room;
        memcpy(u->ctype + u->ctype_len, at, n);
        u->ctype_len += n;
    }
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct exo_upstream *u = p->data;
    if (p->status_code / 100 == 1) /* an interim response: the real one follows */
        return 0;
    if (p->status_code < 200 || p->status_code > 599) /* no status a server may send */
        return -1;
    u->ctype[u->ctype_len] = '\0';
    u->head_seen = true;
    u->h.on_head(u->ud, (int)p->status_code, u->ctype);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct exo_upstream *u = p->data;
    if (u->canceled)
        return -1;
    if (!u->head_seen) { /* a body on an interim (1xx) response */
        u->body_rc = EXO_EPROTO;
        return -1;
    }
    u->body_rc = u->h.on_body(u->ud, at, len);
    return u->body_rc ? -1 : 0;
}

static int on_message_complete(http_parser *p)
{
    struct exo_upstream *u = p->data;
    if (p->status_code / 100 == 1)
        return 0;
    u->complete = true;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* Feed bytes (len 0: the end of the stream) and finish when the response is complete or bad. */
static void parse(struct exo_upstream *u, const char *data, size_t len)
{
    http_parser_execute(&u->parser, &parser_settings, data, len);
    if (u->canceled) /* a callback dropped the request */
        return;
    if (u->complete)
        finish(u, 0);
    else if (HTTP_PARSER_ERRNO(&u->parser) != HPE_OK)
        finish(u, u->body_rc ? u->body_rc : EXO_EPROTO);
    else if (len == 0)
        finish(u, EXO_EPROTO);
}

/* The connection. --------------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    struct exo_upstream *u = handle->data;
    (void)suggested;
    *buf = uv_buf_init(u->read_buf, sizeof(u->read_buf));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct exo_upstream *u = stream->data;
    if (u->finished)
        return;
    if (nread > 0) {
        parse(u, buf->base, (size_t)nread);
        if (!u->finished)
            arm_timer(u);
    } else if (nread == UV_EOF) {
        parse(u, NULL, 0);
    } else if (nread < 0) {
        finish(u, uv_to_exo((int)nread));
    }
}

static void on_written(uv_write_t *w, int status)
{
    struct exo_upstream *u = w->data;
    /* A server may answer (an error, say) without reading the whole body and close: the read
     * side still delivers that answer, so only a failure before anything was read counts. */
    if (status < 0 && status != UV_ECANCELED && !u->head_seen)
        finish(u, uv_to_exo(status));
}

static void on_connect(uv_connect_t *c, int status)
{
    struct exo_upstream *u = c->data;
    if (u->finished)
        return;
    if (status < 0) {
        finish(u, uv_to_exo(status));
        return;
    }
    uv_buf_t b = uv_buf_init((char *)u->request.data, (unsigned)u->request.len);
    int rc = uv_write(&u->write, (uv_stream_t *)&u->tcp, &b, 1, on_written);
    if (rc == 0)
        rc = uv_read_start((uv_stream_t *)&u->tcp, on_alloc, on_read);
    if (rc < 0)
        finish(u, uv_to_exo(rc));
}

/* Bytes that could split the request line or a header apart. */
static bool safe_text(const char *s, bool allow_space)
{
    for (const unsigned char *q = (const unsigned char *)s; *q; q++)
        if (*q < 0x20 || *q == 0x7f || (*q == ' ' && !allow_space))
            return false;
    return true;
}

/* Header lines: printable text, each line ending in CRLF. */
static bool safe_headers(const char *s)
{
    for (const unsigned char *q = (const unsigned char *)s; *q; q++) {
        if (*q == '\r' && q[1] == '\n') {
            q++;
            continue;
        }
        if ((*q < 0x20 && *q != '\t') || *q == 0x7f)
            return false;
    }
    size_t n = strlen(s);
    return n == 0 || (n >= 2 && s[n - 2] == '\r' && s[n - 1] == '\n');
}

static int format_request(const struct exo_upstream_request *rq, const char *host,
                          struct exo_buf *out)
{
    exo_buf_printf(out, "%s %s HTTP/1.1\r\nHost: %s:%u\r\nConnection: close\r\n", rq->method,
                   rq->target, host, rq->port);
    if (rq->token)
        exo_buf_printf(out, "Authorization: Bearer %s\r\n", rq->token);
    if (rq->headers)
        exo_buf_printf(out, "%s", rq->headers);
    if (rq->content_type)
        exo_buf_printf(out, "Content-Type: %s\r\n", rq->content_type);
    if (rq->body_len || rq->content_type)
        exo_buf_printf(out, "Content-Length: %zu\r\n", rq->body_len);
    exo_buf_put(out, "\r\n", 2);
    if (rq->body_len)
        exo_buf_put(out, rq->body, rq->body_len);
    return out->err;
}

static struct exo_upstream *upstream_new(const struct exo_upstream_handler *h, void *ud)
{
    struct exo_upstream *u = exo_calloc(1, sizeof(*u));
    if (!u)
        return NULL;
    u->h = *h;
    u->ud = ud;
    http_parser_init(&u->parser, HTTP_RESPONSE);
    u->parser.data = u;
    return u;
}

int exo_upstream_start(uv_loop_t *loop, const struct exo_upstream_request *rq,
                       const struct exo_upstream_handler *h, void *ud, struct exo_upstream **ret)
{
    if (!loop || !rq || !h || !h->on_head || !h->on_body || !h->on_done || !ret || !rq->ip ||
        !rq->method || !safe_text(rq->method, false) || !rq->target || rq->target[0] != '/' ||
        !safe_text(rq->target, false) || (rq->token && !safe_text(rq->token, true)) ||
        (rq->headers && !safe_headers(rq->headers)) ||
        (rq->content_type && !safe_text(rq->content_type, true)) || (rq->body_len && !rq->body))
        return EXO_EINVAL;
    struct sockaddr_storage addr;
    bool v6 = strchr(rq->ip, ':') != NULL;
    if ((v6 ? uv_ip6_addr(rq->ip, rq->port, (struct sockaddr_in6 *)&addr)
            : uv_ip4_addr(rq->ip, rq->port, (struct sockaddr_in *)&addr)) != 0)
        return EXO_EINVAL;

    struct exo_upstream *u = upstream_new(h, ud);
    if (!u)
        return EXO_ENOMEM;
    u->head_timeout_ms = rq->head_timeout_ms > 0 ? rq->head_timeout_ms : DEFAULT_HEAD_TIMEOUT_MS;
    u->idle_timeout_ms = rq->idle_timeout_ms > 0 ? rq->idle_timeout_ms : DEFAULT_IDLE_TIMEOUT_MS;
    exo_buf_init(&u->request, 0);
    char host[64];
    snprintf(host, sizeof(host), v6 ? "[%s]" : "%s", rq->ip);
    if (format_request(rq, host, &u->request) < 0) {
        exo_buf_free(&u->request);
        exo_free(u);
        return EXO_ENOMEM;
    }

    /* From here on the struct is freed by closing its handles. */
    uv_tcp_init(loop, &u->tcp);
    uv_timer_init(loop, &u->timer);
    u->open_handles = 2;
    u->tcp.data = u->timer.data = u->connect.data = u->write.data = u;
    if (rq->total_timeout_ms > 0)
        u->deadline_ms = uv_now(loop) + (uint64_t)rq->total_timeout_ms;
    int rc = uv_tcp_connect(&u->connect, &u->tcp, (const struct sockaddr *)&addr, on_connect);
    if (rc < 0) {
        u->finished = u->canceled = true;
        close_handles(u);
        return uv_to_exo(rc);
    }
    arm_timer(u);
    *ret = u;
    return 0;
}

int exo_upstream_parse(const void *data, size_t len, size_t piece,
                       const struct exo_upstream_handler *h, void *ud)
{
    if ((len && !data) || !h || !h->on_head || !h->on_body || !h->on_done)
        return EXO_EINVAL;
    struct exo_upstream *u = upstream_new(h, ud);
    if (!u)
        return EXO_ENOMEM;
    u->socketless = true;
    const char *p = data;
    for (size_t off = 0; off < len && !u->finished;) {
        size_t n = piece && piece < len - off ? piece : len - off;
        parse(u, p + off, n);
        off += n;
    }
    if (!u->finished)
        parse(u, NULL, 0);
    exo_free(u);
    return 0;
}

void exo_upstream_cancel(struct exo_upstream *u)
{
    if (!u)
        return;
    u->canceled = true;
    if (!u->finished) {
        u->finished = true;
        close_handles(u);
    }
}
