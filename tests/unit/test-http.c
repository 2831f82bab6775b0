/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP server and the blocking client.
 *
 * Two harnesses. Socket tests run the server on 127.0.0.1 (ephemeral port) with its loop in a
 * second thread and talk to it with plain blocking sockets from the test thread; fx_call() runs a
 * function on the loop thread when a test must touch the server (stats, stop). Socket-less tests
 * drive exo_http_conn_* on a loop in the test thread, which makes orderings (client closes,
 * producer writes, producer ends, server stops) exact and repeatable.
 *
 * Every wait is bounded: sockets have receive timeouts, polls have deadlines, loops have counts.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <cjson/cJSON.h>
#include <http_parser.h>
#include <uv.h>

#include "api/http-client.h"
#include "api/http.h"
#include "api/prom.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/error.h"

/* Parsing what the server sent. ------------------------------------------------------------- */

#define MAX_RESP 16

struct resp {
    int status;
    char head[8192]; /* "name: value\n" per header */
    size_t head_len;
    struct exo_buf body;
};

struct parsed {
    struct resp r[MAX_RESP];
    int n;              /* complete responses */
    int started;        /* responses begun */
    unsigned head_mask; /* bit i: response i answers a HEAD request */
    bool in_value;
    bool error;
};

static void head_put(struct resp *r, const char *s, size_t len)
{
    if (len > sizeof(r->head) - 1 - r->head_len)
        len = sizeof(r->head) - 1 - r->head_len;
    memcpy(r->head + r->head_len, s, len);
    r->head_len += len;
    r->head[r->head_len] = '\0';
}

static int pr_begin(http_parser *p)
{
    struct parsed *out = p->data;
    if (out->started == MAX_RESP)
        return -1;
    struct resp *r = &out->r[out->started++];
    memset(r, 0, sizeof(*r));
    exo_buf_init(&r->body, 0);
    out->in_value = false;
    return 0;
}

static int pr_field(http_parser *p, const char *at, size_t len)
{
    struct parsed *out = p->data;
    struct resp *r = &out->r[out->started - 1];
    if (out->in_value)
        head_put(r, "\n", 1);
    out->in_value = false;
    head_put(r, at, len);
    return 0;
}

static int pr_value(http_parser *p, const char *at, size_t len)
{
    struct parsed *out = p->data;
    struct resp *r = &out->r[out->started - 1];
    if (!out->in_value)
        head_put(r, ": ", 2);
    out->in_value = true;
    head_put(r, at, len);
    return 0;
}

static int pr_headers(http_parser *p)
{
    struct parsed *out = p->data;
    struct resp *r = &out->r[out->started - 1];
    if (out->in_value)
        head_put(r, "\n", 1);
    r->status = (int)p->status_code;
    return (out->head_mask >> (out->started - 1)) & 1;
}

static int pr_body(http_parser *p, const char *at, size_t len)
{
    struct parsed *out = p->data;
    exo_buf_put(&out->r[out->started - 1].body, at, len);
    return 0;
}

static int pr_complete(http_parser *p)
{
    struct parsed *out = p->data;
    out->n = out->started;
    return 0;
}

static const http_parser_settings pr_settings = {
    .on_message_begin = pr_begin,
    .on_header_field = pr_field,
    .on_header_value = pr_value,
    .on_headers_complete = pr_headers,
    .on_body = pr_body,
    .on_message_complete = pr_complete,
};

static void parsed_free(struct parsed *out)
{
    for (int i = 0; i < out->started; i++)
        exo_buf_free(&out->r[i].body);
    out->started = out->n = 0;
}

/* Parse everything in data (eof: the connection has closed after it). */
static int parse_all(const void *data, size_t len, bool eof, unsigned head_mask, struct parsed *out)
{
    parsed_free(out);
    memset(out, 0, sizeof(*out));
    out->head_mask = head_mask;
    http_parser p;
    http_parser_init(&p, HTTP_RESPONSE);
    p.data = out;
    size_t n = http_parser_execute(&p, &pr_settings, data, len);
    if (n == len && eof)
        http_parser_execute(&p, &pr_settings, NULL, 0);
    out->error = HTTP_PARSER_ERRNO(&p) != HPE_OK;
    return out->n;
}

/* A header of a response (first match, case-insensitive) copied into buf, or NULL. */
static const char *resp_header(const struct resp *r, const char *name, char *buf, size_t cap)
{
    size_t nlen = strlen(name);
    for (const char *line = r->head; *line;) {
        const char *end = strchr(line, '\n');
        size_t llen = end ? (size_t)(end - line) : strlen(line);
        if (llen > nlen + 1 && strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
            size_t vlen = llen - nlen - 2;
            if (vlen >= cap)
                vlen = cap - 1;
            memcpy(buf, line + nlen + 2, vlen);
            buf[vlen] = '\0';
            return buf;
        }
        line += llen + (end ? 1 : 0);
    }
    return NULL;
}

static const char *body_text(const struct resp *r)
{
    return r->body.data ? (const char *)r->body.data : "";
}

/* The JSON error body's code, or -1 when the body is not the error shape. */
static int error_code(const struct resp *r)
{
    cJSON *root = cJSON_Parse(body_text(r));
    cJSON *err = cJSON_GetObjectItemCaseSensitive(root, "error");
    cJSON *code = cJSON_GetObjectItemCaseSensitive(err, "code");
    cJSON *msg = cJSON_GetObjectItemCaseSensitive(err, "message");
    int v = cJSON_IsNumber(code) && cJSON_IsString(msg) ? code->valueint : -1;
    cJSON_Delete(root);
    return v;
}

/* The test fixture: a server with every route the tests use. --------------------------------- */

struct fx {
    uv_loop_t loop;
    bool threaded;
    uv_async_t wake;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    void (*fn)(struct fx *fx, void *arg);
    void *arg;
    struct exo_http_server *srv;
    uint16_t port;
    atomic_int done_calls;
    atomic_int handled; /* handler calls */
    atomic_int closes;  /* close callbacks */
    atomic_int ends;    /* responses ended by a producer */
    atomic_int write_closed;
    struct exo_http_request *held; /* socket-less: the request of /hold */
};

/* A response produced over time from a timer on the loop. */
enum producer_kind { PRODUCE_SSE, PRODUCE_SLOW, PRODUCE_FLOOD };

struct producer {
    uv_timer_t timer;
    struct fx *fx;
    struct exo_http_request *req; /* NULL once ended */
    enum producer_kind kind;
    int sent, n;
    char id[32];
    bool closing;
};

static void producer_free(uv_handle_t *h)
{
    exo_free(h->data);
}

static void producer_finish(struct producer *p)
{
    if (p->req) {
        exo_http_end(p->req);
        p->req = NULL;
        p->fx->ends++;
    }
    if (!p->closing) {
        p->closing = true;
        uv_timer_stop(&p->timer);
        uv_close((uv_handle_t *)&p->timer, producer_free);
    }
}

static void producer_on_close(struct exo_http_request *req, void *ud)
{
    struct producer *p = ud;
    p->fx->closes++;
    producer_finish(p);
}

static void producer_tick(uv_timer_t *t)
{
    struct producer *p = t->data;
    int rc = 0;
    switch (p->kind) {
    case PRODUCE_SSE: {
        char id[16];
        snprintf(id, sizeof(id), "%d", ++p->sent);
        rc = exo_http_sse_send(p->req, "token", id, "line1\nline2");
        if (rc == 0 && p->sent == p->n)
            producer_finish(p);
        break;
    }
    case PRODUCE_SLOW:
        exo_http_respond(p->req, 200, "text/plain", p->id, strlen(p->id));
        p->req = NULL;
        producer_finish(p);
        return;
    case PRODUCE_FLOOD: {
        static char chunk[64 * 1024];
        for (int i = 0; i < 16 && rc == 0; i++)
            rc = exo_http_write(p->req, chunk, sizeof(chunk));
        break;
    }
    }
    if (rc == EXO_ECLOSED) {
        /* The close callback comes from the loop and ends the response. */
        p->fx->write_closed++;
        uv_timer_stop(&p->timer);
    }
}

static void start_producer(struct fx *fx, struct exo_http_request *req, enum producer_kind kind,
                           int n, uint64_t every_ms)
{
    struct producer *p = exo_calloc(1, sizeof(*p));
    assert_non_null(p);
    p->fx = fx;
    p->req = req;
    p->kind = kind;
    p->n = n;
    uv_timer_init(&fx->loop, &p->timer);
    p->timer.data = p;
    if (exo_http_request_query_param(req, "id", p->id, sizeof(p->id)) != 0)
        snprintf(p->id, sizeof(p->id), "-");
    assert_int_equal(exo_http_request_on_close(req, producer_on_close, p), 0);
    uv_timer_start(&p->timer, producer_tick, every_ms, every_ms);
}

static void h_health(struct exo_http_request *req, void *ud)
{
    exo_http_respond(req, 200, "text/plain", "ok", 2);
}

static void h_echo(struct exo_http_request *req, void *ud)
{
    struct fx *fx = ud;
    fx->handled++;
    char q[256];
    size_t len;
    const char *body = exo_http_request_body(req, &len);
    const char *xt = exo_http_request_header(req, "X-Test");
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "method", exo_http_method_name(exo_http_request_method(req)));
    cJSON_AddStringToObject(o, "path", exo_http_request_path(req));
    cJSON_AddStringToObject(o, "query", exo_http_request_query(req));
    if (exo_http_request_query_param(req, "q", q, sizeof(q)) == 0)
        cJSON_AddStringToObject(o, "q", q);
    if (xt)
        cJSON_AddStringToObject(o, "xtest", xt);
    cJSON_AddNumberToObject(o, "body_len", (double)len);
    cJSON_AddStringToObject(o, "body", body);
    cJSON_AddStringToObject(o, "remote", exo_http_request_remote(req));
    cJSON_AddBoolToObject(o, "loopback", exo_http_request_is_loopback(req));
    exo_http_respond_json(req, 200, o);
    cJSON_Delete(o);
}

static void h_text_path(struct exo_http_request *req, void *ud)
{
    const char *path = exo_http_request_path(req);
    exo_http_respond(req, 200, "text/plain", path, strlen(path));
}

static void h_special(struct exo_http_request *req, void *ud)
{
    exo_http_respond(req, 200, "text/plain", "special", 7);
}

static void h_stream(struct exo_http_request *req, void *ud)
{
    char n[16];
    int count = exo_http_request_query_param(req, "n", n, sizeof(n)) == 0 ? atoi(n) : 3;
    assert_int_equal(exo_http_sse_begin(req), 0);
    start_producer(ud, req, PRODUCE_SSE, count, 5);
}

static void h_slow(struct exo_http_request *req, void *ud)
{
    start_producer(ud, req, PRODUCE_SLOW, 1, 30);
}

static void h_flood(struct exo_http_request *req, void *ud)
{
    assert_int_equal(exo_http_begin(req, 200, "application/octet-stream"), 0);
    start_producer(ud, req, PRODUCE_FLOOD, 0, 1);
}

static void hang_on_close(struct exo_http_request *req, void *ud)
{
    struct fx *fx = ud;
    fx->closes++;
    exo_http_end(req);
    fx->ends++;
}

static void h_hang(struct exo_http_request *req, void *ud)
{
    struct fx *fx = ud;
    fx->handled++;
    assert_int_equal(exo_http_request_on_close(req, hang_on_close, fx), 0);
}

static void held_on_close(struct exo_http_request *req, void *ud)
{
    struct fx *fx = ud;
    fx->closes++;
}

static void h_hold(struct exo_http_request *req, void *ud)
{
    struct fx *fx = ud;
    fx->held = req;
    assert_int_equal(exo_http_request_on_close(req, held_on_close, fx), 0);
    assert_int_equal(exo_http_begin(req, 200, "text/plain"), 0);
}

static void add_routes(struct fx *fx)
{
    struct exo_http_server *s = fx->srv;
    assert_int_equal(
        exo_http_route(s, EXO_HTTP_GET, "/healthz", EXO_HTTP_ROUTE_PUBLIC, h_health, fx), 0);
    assert_int_equal(exo_http_route(s, EXO_HTTP_GET | EXO_HTTP_POST, "/echo", 0, h_echo, fx), 0);
    assert_int_equal(exo_http_route(s, EXO_HTTP_POST, "/small", 0, h_echo, fx), 0);
    assert_int_equal(exo_http_route_body_max(s, "/small", 16), 0);
    assert_int_equal(
        exo_http_route(s, EXO_HTTP_POST, "/admin", EXO_HTTP_ROUTE_MUTATING, h_echo, fx), 0);
    assert_int_equal(
        exo_http_route(s, EXO_HTTP_GET, "/assets/", EXO_HTTP_ROUTE_PREFIX, h_text_path, fx), 0);
    assert_int_equal(exo_http_route(s, EXO_HTTP_GET, "/assets/special", 0, h_special, fx), 0);
    assert_int_equal(exo_http_route(s, EXO_HTTP_GET, "/stream", 0, h_stream, fx), 0);
    assert_int_equal(exo_http_route(s, EXO_HTTP_GET, "/slow", 0, h_slow, fx), 0);
    assert_int_equal(exo_http_route(s, EXO_HTTP_GET, "/flood", 0, h_flood, fx), 0);
    assert_int_equal(exo_http_route(s, EXO_HTTP_GET, "/hang", 0, h_hang, fx), 0);
    assert_int_equal(exo_http_route(s, EXO_HTTP_GET, "/hold", 0, h_hold, fx), 0);
}

static void on_done(void *ud)
{
    struct fx *fx = ud;
    fx->done_calls++;
}

static void *loop_main(void *arg)
{
    struct fx *fx = arg;
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    return NULL;
}

static void on_wake(uv_async_t *a)
{
    struct fx *fx = a->data;
    pthread_mutex_lock(&fx->mu);
    if (fx->fn) {
        fx->fn(fx, fx->arg);
        fx->fn = NULL;
        pthread_cond_broadcast(&fx->cv);
    }
    pthread_mutex_unlock(&fx->mu);
}

/* Run fn(fx, arg) on the loop thread and wait for it. */
static void fx_call(struct fx *fx, void (*fn)(struct fx *, void *), void *arg)
{
    pthread_mutex_lock(&fx->mu);
    fx->fn = fn;
    fx->arg = arg;
    uv_async_send(&fx->wake);
    while (fx->fn)
        pthread_cond_wait(&fx->cv, &fx->mu);
    pthread_mutex_unlock(&fx->mu);
}

static struct fx *fx_new(struct exo_http_config *cfg, bool threaded)
{
    struct fx *fx = exo_calloc(1, sizeof(*fx));
    assert_non_null(fx);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    cfg->listen_addr = threaded ? "127.0.0.1" : NULL;
    assert_int_equal(exo_http_server_start(&fx->loop, cfg, &fx->srv), 0);
    add_routes(fx);
    fx->port = exo_http_server_port(fx->srv);
    fx->threaded = threaded;
    if (threaded) {
        assert_true(fx->port > 0);
        pthread_mutex_init(&fx->mu, NULL);
        pthread_cond_init(&fx->cv, NULL);
        uv_async_init(&fx->loop, &fx->wake, on_wake);
        fx->wake.data = fx;
        assert_int_equal(pthread_create(&fx->thread, NULL, loop_main, fx), 0);
    }
    return fx;
}

static void do_stop(struct fx *fx, void *arg)
{
    exo_http_server_stop(fx->srv, on_done, fx);
    uv_close((uv_handle_t *)&fx->wake, NULL);
}

/* Stop the server, wait for the loop to run dry and check that everything was released. */
static void fx_free(struct fx *fx)
{
    if (fx->threaded) {
        fx_call(fx, do_stop, NULL);
        pthread_join(fx->thread, NULL);
        pthread_mutex_destroy(&fx->mu);
        pthread_cond_destroy(&fx->cv);
    } else {
        exo_http_server_stop(fx->srv, on_done, fx);
        uv_run(&fx->loop, UV_RUN_DEFAULT);
    }
    assert_int_equal(fx->done_calls, 1);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    exo_free(fx);
}

static void get_stats(struct fx *fx, void *arg)
{
    exo_http_server_stats(fx->srv, arg);
}

static struct exo_http_stats fx_stats(struct fx *fx)
{
    struct exo_http_stats st;
    if (fx->threaded)
        fx_call(fx, get_stats, &st);
    else
        exo_http_server_stats(fx->srv, &st);
    return st;
}

/* Wait (bounded) until *v reaches want. */
static bool wait_count(atomic_int *v, int want, int timeout_ms)
{
    uint64_t end = exo_clock_ns() + (uint64_t)timeout_ms * 1000000u;
    while (*v < want && exo_clock_ns() < end)
        usleep(2000);
    return *v >= want;
}

static bool wait_open_conns(struct fx *fx, uint64_t want, int timeout_ms)
{
    uint64_t end = exo_clock_ns() + (uint64_t)timeout_ms * 1000000u;
    while (fx_stats(fx).connections_open != want && exo_clock_ns() < end)
        usleep(5000);
    return fx_stats(fx).connections_open == want;
}

/* Socket clients. ---------------------------------------------------------------------------- */

static int tcp_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static void send_bytes(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        assert_true(n > 0);
        p += n;
        len -= (size_t)n;
    }
}

static void send_str(int fd, const char *s)
{
    send_bytes(fd, s, strlen(s));
}

/* Read until `want` responses are complete, the peer closes, or timeout_ms passes. raw keeps the
 * bytes; *ret_eof says whether the peer closed. */
static int read_responses(int fd, struct exo_buf *raw, struct parsed *out, int want,
                          unsigned head_mask, int timeout_ms, bool *ret_eof)
{
    uint64_t end = exo_clock_ns() + (uint64_t)timeout_ms * 1000000u;
    bool eof = false;
    int n = parse_all(raw->data, raw->len, false, head_mask, out);
    while (n < want && !eof) {
        uint64_t now = exo_clock_ns();
        if (now >= end)
            break;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, (int)((end - now) / 1000000u) + 1) <= 0)
            continue;
        char chunk[65536];
        ssize_t got = recv(fd, chunk, sizeof(chunk), 0);
        if (got < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (got <= 0)
            eof = true;
        else
            exo_buf_put(raw, chunk, (size_t)got);
        n = parse_all(raw->data, raw->len, eof, head_mask, out);
    }
    if (ret_eof)
        *ret_eof = eof;
    return n;
}

/* One connection, one request, want responses; returns whether the server closed. */
static bool exchange(uint16_t port, const void *req, size_t len, int want, unsigned head_mask,
                     struct parsed *out)
{
    int fd = tcp_connect(port);
    send_bytes(fd, req, len);
    struct exo_buf raw;
    exo_buf_init(&raw, 0);
    bool eof = false;
    assert_int_equal(read_responses(fd, &raw, out, want, head_mask, 3000, &eof), want);
    if (!eof) {
        /* A closing server follows its last response with FIN promptly. */
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        char c;
        if (poll(&pfd, 1, 200) == 1 && recv(fd, &c, 1, 0) <= 0)
            eof = true;
    }
    exo_buf_free(&raw);
    close(fd);
    return eof;
}

/* Whether the peer closes within timeout_ms (data before the close is discarded). */
static bool wait_eof(int fd, int timeout_ms)
{
    uint64_t end = exo_clock_ns() + (uint64_t)timeout_ms * 1000000u;
    while (exo_clock_ns() < end) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 20) != 1)
            continue;
        char chunk[4096];
        ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
        if (n <= 0)
            return true;
    }
    return false;
}

static struct exo_http_config test_config(void)
{
    return (struct exo_http_config){.header_timeout_ms = 5000, .idle_timeout_ms = 5000};
}

/* Socket tests. ------------------------------------------------------------------------------ */

static void test_http_routing(void **state)
{
    struct exo_http_config cfg = test_config();
    struct fx *fx = fx_new(&cfg, true);
    struct parsed out = {0};
    char h[256];

    const char *r1 = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_false(exchange(fx->port, r1, strlen(r1), 1, 0, &out));
    assert_int_equal(out.r[0].status, 200);
    assert_string_equal(body_text(&out.r[0]), "ok");
    assert_string_equal(resp_header(&out.r[0], "Content-Type", h, sizeof(h)), "text/plain");
    assert_string_equal(resp_header(&out.r[0], "Access-Control-Allow-Origin", h, sizeof(h)), "*");

    const char *r2 = "GET /nope HTTP/1.1\r\n\r\n";
    exchange(fx->port, r2, strlen(r2), 1, 0, &out);
    assert_int_equal(out.r[0].status, 404);
    assert_int_equal(error_code(&out.r[0]), 404);
    assert_string_equal(resp_header(&out.r[0], "Content-Type", h, sizeof(h)), "application/json");

    const char *r3 = "DELETE /healthz HTTP/1.1\r\n\r\n";
    assert_false(exchange(fx->port, r3, strlen(r3), 1, 0, &out));
    assert_int_equal(out.r[0].status, 405);
    assert_int_equal(error_code(&out.r[0]), 405);
    assert_string_equal(resp_header(&out.r[0], "Allow", h, sizeof(h)), "GET, HEAD, OPTIONS");

    /* Prefix routes, and an exact route inside the prefix wins. */
    const char *r4 = "GET /assets/js/app.js HTTP/1.1\r\n\r\nGET /assets/special HTTP/1.1\r\n\r\n"
                     "GET /assets/%7Euser HTTP/1.1\r\n\r\nGET /assets HTTP/1.1\r\n\r\n";
    exchange(fx->port, r4, strlen(r4), 4, 0, &out);
    assert_string_equal(body_text(&out.r[0]), "/assets/js/app.js");
    assert_string_equal(body_text(&out.r[1]), "special");
    assert_string_equal(body_text(&out.r[2]), "/assets/~user");
    assert_int_equal(out.r[3].status, 404);

    /* Query parameters and headers reach the handler decoded. */
    const char *r5 = "GET /echo?q=a%20b+c&x=1 HTTP/1.1\r\nx-test:  hello \r\n\r\n";
    exchange(fx->port, r5, strlen(r5), 1, 0, &out);
    assert_int_equal(out.r[0].status, 200);
    cJSON *o = cJSON_Parse(body_text(&out.r[0]));
    assert_string_equal(cJSON_GetObjectItem(o, "q")->valuestring, "a b c");
    assert_string_equal(cJSON_GetObjectItem(o, "query")->valuestring, "q=a%20b+c&x=1");
    assert_string_equal(cJSON_GetObjectItem(o, "path")->valuestring, "/echo");
    assert_string_equal(cJSON_GetObjectItem(o, "remote")->valuestring, "127.0.0.1");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(o, "loopback")));
    assert_string_equal(cJSON_GetObjectItem(o, "xtest")->valuestring, "hello");
    cJSON_Delete(o);
    parsed_free(&out);
    fx_free(fx);
}

static void test_http_keepalive_pipelining(void **state)
{
    struct exo_http_config cfg = test_config();
    struct fx *fx = fx_new(&cfg, true);
    struct parsed out = {0};
    struct exo_buf raw;
    exo_buf_init(&raw, 0);

    /* Sequential requests share one connection. */
    int fd = tcp_connect(fx->port);
    for (int i = 0; i < 5; i++) {
        exo_buf_reset(&raw);
        send_str(fd, "GET /healthz HTTP/1.1\r\n\r\n");
        assert_int_equal(read_responses(fd, &raw, &out, 1, 0, 3000, NULL), 1);
        assert_int_equal(out.r[0].status, 200);
    }

    /* Pipelined, with asynchronous answers in the middle: responses keep request order. */
    exo_buf_reset(&raw);
    send_str(fd, "GET /slow?id=first HTTP/1.1\r\n\r\n"
                 "GET /healthz HTTP/1.1\r\n\r\n"
                 "HEAD /healthz HTTP/1.1\r\n\r\n"
                 "GET /slow?id=fourth HTTP/1.1\r\n\r\n"
                 "POST /echo HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
    assert_int_equal(read_responses(fd, &raw, &out, 5, 1u << 2, 3000, NULL), 5);
    assert_string_equal(body_text(&out.r[0]), "first");
    assert_string_equal(body_text(&out.r[1]), "ok");
    char h[64];
    assert_int_equal(out.r[2].status, 200);
    assert_string_equal(resp_header(&out.r[2], "Content-Length", h, sizeof(h)), "2");
    assert_string_equal(body_text(&out.r[3]), "fourth");
    assert_non_null(strstr(body_text(&out.r[4]), "\"body\":\"abc\""));
    close(fd);
    assert_int_equal(fx_stats(fx).connections_total, 1);

    /* Connection: close is honoured. */
    const char *r = "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n";
    assert_true(exchange(fx->port, r, strlen(r), 1, 0, &out));
    assert_string_equal(resp_header(&out.r[0], "Connection", h, sizeof(h)), "close");

    /* HTTP/1.0 closes unless asked to keep alive. */
    r = "GET /healthz HTTP/1.0\r\n\r\n";
    assert_true(exchange(fx->port, r, strlen(r), 1, 0, &out));
    r = "GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    assert_false(exchange(fx->port, r, strlen(r), 1, 0, &out));
    assert_string_equal(resp_header(&out.r[0], "Connection", h, sizeof(h)), "keep-alive");

    exo_buf_free(&raw);
    parsed_free(&out);
    fx_free(fx);
}

static void test_http_chunked_request(void **state)
{
    struct exo_http_config cfg = test_config();
    struct fx *fx = fx_new(&cfg, true);
    struct parsed out = {0};
    int fd = tcp_connect(fx->port);
    send_str(fd, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
    usleep(20000);
    send_str(fd, "6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n");
    struct exo_buf raw;
    exo_buf_init(&raw, 0);
    assert_int_equal(read_responses(fd, &raw, &out, 1, 0, 3000, NULL), 1);
    assert_int_equal(out.r[0].status, 200);
    cJSON *o = cJSON_Parse(body_text(&out.r[0]));
    assert_string_equal(cJSON_GetObjectItem(o, "body")->valuestring, "hello world");
    cJSON_Delete(o);
    close(fd);

    /* Truncated chunked body, then the client leaves: the handler never runs. */
    int before = fx->handled;
    fd = tcp_connect(fx->port);
    send_str(fd, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel");
    usleep(20000);
    close(fd);
    assert_true(wait_open_conns(fx, 0, 3000));
    assert_int_equal(fx->handled, before);

    /* Bad chunk size. */
    const char *bad = "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n";
    assert_true(exchange(fx->port, bad, strlen(bad), 1, 0, &out));
    assert_int_equal(out.r[0].status, 400);
    assert_int_equal(fx->handled, before);
    exo_buf_free(&raw);
    parsed_free(&out);
    fx_free(fx);
}

static void test_http_expect_continue(void **state)
{
    struct exo_http_config cfg = test_config();
    struct fx *fx = fx_new(&cfg, true);
    struct parsed out = {0};
    struct exo_buf raw;
    exo_buf_init(&raw, 0);
    int fd = tcp_connect(fx->port);
    send_str(fd, "POST /echo HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-Continue \t\r\n\r\n");
    assert_int_equal(read_responses(fd, &raw, &out, 1, 0, 3000, NULL), 1);
    assert_int_equal(out.r[0].status, 100);
    send_str(fd, "hello");
    assert_int_equal(read_responses(fd, &raw, &out, 2, 0, 3000, NULL), 2);
    assert_int_equal(out.r[1].status, 200);
    assert_non_null(strstr(body_text(&out.r[1]), "\"body\":\"hello\""));
    close(fd);

    /* Refused before the body is sent: no 100, the error, and the connection closes. */
    const char *big =
        "POST /small HTTP/1.1\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n";
    assert_true(exchange(fx->port, big, strlen(big), 1, 0, &out));
    assert_int_equal(out.r[0].status, 413);

    const char *odd = "GET /healthz HTTP/1.1\r\nExpect: teapot\r\n\r\n";
    exchange(fx->port, odd, strlen(odd), 1, 0, &out);
    assert_int_equal(out.r[0].status, 417);
    exo_buf_free(&raw);
    parsed_free(&out);
    fx_free(fx);
}

struct error_case {
    const char *name;
    const char *request;
    int status;
    bool closes;
};

static void test_http_errors(void **state)
{
    struct exo_http_config cfg = test_config();
    struct fx *fx = fx_new(&cfg, true);
    struct parsed out = {0};
    const struct error_case cases[] = {
        {"bad header", "GET /echo HTTP/1.1\r\nBad Header\r\n\r\n", 400, true},
        {"bad escape", "GET /%zz HTTP/1.1\r\n\r\n", 400, false},
        {"NUL escape", "GET /echo%00 HTTP/1.1\r\n\r\n", 400, false},
        {"dot segment", "GET /assets/../secret HTTP/1.1\r\n\r\n", 400, false},
        {"not origin form", "GET echo HTTP/1.1\r\n\r\n", 400, true},
        {"CL and TE",
         "POST /echo HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
         true},
        {"bad content length", "POST /echo HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", 400, true},
        {"body over route cap",
         "POST /small HTTP/1.1\r\nContent-Length: 17\r\n\r\n"
         "01234567890123456",
         413, true},
        {"chunked over cap",
         "POST /small HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
         "a\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n",
         413, true},
        {"unknown method", "BREW /pot HTTP/1.1\r\n\r\n", 501, true},
        {"unsupported method", "PROPFIND /echo HTTP/1.1\r\n\r\n", 501, false},
        {"HTTP/2.0", "GET /healthz HTTP/2.0\r\n\r\n", 505, true},
        {"asterisk form", "OPTIONS * HTTP/1.1\r\n\r\n", 400, false},
        {"absolute form without path", "GET http://h HTTP/1.1\r\n\r\n", 400, false},
        {"PATCH not routed", "PATCH /echo HTTP/1.1\r\n\r\n", 405, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct error_case *c = &cases[i];
        print_message("case %s\n", c->name);
        bool closed = exchange(fx->port, c->request, strlen(c->request), 1, 0, &out);
        assert_int_equal(out.r[0].status, c->status);
        assert_int_equal(error_code(&out.r[0]), c->status);
        assert_int_equal(closed, c->closes);
    }

    /* 414: a target over 8 KiB; 431: headers over 16 KiB, or more than 100 of them. */
    struct exo_buf req;
    exo_buf_init(&req, 0);
    exo_buf_printf(&req, "GET /");
    for (int i = 0; i < 9000; i++)
        exo_buf_put(&req, "a", 1);
    exo_buf_printf(&req, " HTTP/1.1\r\n\r\n");
    assert_true(exchange(fx->port, req.data, req.len, 1, 0, &out));
    assert_int_equal(out.r[0].status, 414);

    exo_buf_reset(&req);
    exo_buf_printf(&req, "GET /healthz HTTP/1.1\r\n");
    for (int i = 0; i < 200; i++)
        exo_buf_printf(&req, "X-Pad-%d: %0100d\r\n", i, i);
    exo_buf_printf(&req, "\r\n");
    assert_true(exchange(fx->port, req.data, req.len, 1, 0, &out));
    assert_int_equal(out.r[0].status, 431);

    exo_buf_reset(&req);
    exo_buf_printf(&req, "GET /healthz HTTP/1.1\r\n");
    for (int i = 0; i < 10; i++)
        exo_buf_printf(&req, "X-Long-%d: %02000d\r\n", i, i);
    exo_buf_printf(&req, "\r\n");
    assert_true(exchange(fx->port, req.data, req.len, 1, 0, &out));
    assert_int_equal(out.r[0].status, 431);

    exo_buf_reset(&req);
    exo_buf_printf(&req, "GET /healthz HTTP/1.1\r\n");
    for (int i = 0; i < 101; i++)
        exo_buf_printf(&req, "X-%d: 1\r\n", i);
    exo_buf_printf(&req, "\r\n");
    assert_true(exchange(fx->port, req.data, req.len, 1, 0, &out));
    assert_int_equal(out.r[0].status, 431);
    exo_buf_free(&req);

    /* The absolute form is accepted. */
    const char *abs = "GET http://h:1/healthz?x HTTP/1.1\r\n\r\n";
    exchange(fx->port, abs, strlen(abs), 1, 0, &out);
    assert_int_equal(out.r[0].status, 200);

    struct exo_http_stats st = fx_stats(fx);
    assert_true(st.parse_errors >= 7);
    assert_true(st.responses_4xx >= 12);
    assert_true(st.responses_5xx >= 3);
    parsed_free(&out);
    fx_free(fx);
}

/* Bytes that are not UTF-8, and NULs, in paths and headers. */
static void test_http_invalid_utf8(void **state)
{
    struct exo_http_config cfg = test_config();
    struct fx *fx = fx_new(&cfg, true);
    struct parsed out = {0};
    const char r1[] = "GET /\xff\xfe/\xc3\x28 HTTP/1.1\r\n\r\n";
    exchange(fx->port, r1, sizeof(r1) - 1, 1, 0, &out);
    assert_true(out.r[0].status == 404 || out.r[0].status == 400);

    const char r2[] = "GET /echo?q=%ff%c3%28 HTTP/1.1\r\nX-Test: \xc3\x28\xff\xfe\r\n\r\n";
    exchange(fx->port, r2, sizeof(r2) - 1, 1, 0, &out);
    assert_int_equal(out.r[0].status, 200);

    const char r3[] = "GET /echo HTTP/1.1\r\nX-Test: a\0b\r\n\r\n";
    assert_true(exchange(fx->port, r3, sizeof(r3) - 1, 1, 0, &out));
    assert_int_equal(out.r[0].status, 400);

    const char r4[] = "GET /ec\0ho HTTP/1.1\r\n\r\n";
    assert_true(exchange(fx->port, r4, sizeof(r4) - 1, 1, 0, &out));
    assert_int_equal(out.r[0].status, 400);

    const char r5[] = "GET /echo HTTP/1.1\r\nX-\xff: 1\r\n\r\n";
    assert_true(exchange(fx->port, r5, sizeof(r5) - 1, 1, 0, &out));
    assert_int_equal(out.r[0].status, 400);

    /* The server still answers. */
    const char *ok = "GET /healthz HTTP/1.1\r\n\r\n";
    exchange(fx->port, ok, strlen(ok), 1, 0, &out);
    assert_int_equal(out.r[0].status, 200);
    parsed_free(&out);
    fx_free(fx);
}

static void test_http_token(void **state)
{
    struct exo_http_config cfg = test_config();
    cfg.api_token = "s3cret-token";
    struct fx *fx = fx_new(&cfg, true);
    struct parsed out = {0};
    char h[64];
    const struct {
        const char *req;
        int status;
    } cases[] = {
        {"GET /healthz HTTP/1.1\r\n\r\n", 200},
        {"GET /echo HTTP/1.1\r\n\r\n", 401},
        {"GET /nope HTTP/1.1\r\n\r\n", 401},
        {"GET /echo HTTP/1.1\r\nAuthorization: Bearer wrong\r\n\r\n", 401},
        {"GET /echo HTTP/1.1\r\nAuthorization: Bearer s3cret-toke\r\n\r\n", 401},
        {"GET /echo HTTP/1.1\r\nAuthorization: Bearer s3cret-token2\r\n\r\n", 401},
        {"GET /echo HTTP/1.1\r\nAuthorization: Basic s3cret-token\r\n\r\n", 401},
        {"GET /echo HTTP/1.1\r\nAuthorization: Bearer s3cret-token\r\n\r\n", 200},
        {"GET /echo HTTP/1.1\r\nauthorization: bearer   s3cret-token  \r\n\r\n", 200},
        {"GET /nope HTTP/1.1\r\nAuthorization: Bearer s3cret-token\r\n\r\n", 404},
        /* With a token, mutating routes answer any client that has it. */
        {"POST /admin HTTP/1.1\r\nAuthorization: Bearer s3cret-token\r\n\r\n", 200},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        exchange(fx->port, cases[i].req, strlen(cases[i].req), 1, 0, &out);
        assert_int_equal(out.r[0].status, cases[i].status);
        if (cases[i].status == 401) {
            assert_string_equal(resp_header(&out.r[0], "WWW-Authenticate", h, sizeof(h)), "Bearer");
            assert_int_equal(error_code(&out.r[0]), 401);
        }
    }
    /* The client sends the token too. */
    struct exo_buf body;
    exo_buf_init(&body, 0);
    int status = 0;
    assert_int_equal(exo_http_get("127.0.0.1", fx->port, "/echo", NULL, 3000, &body, &status), 0);
    assert_int_equal(status, 401);
    assert_int_equal(
        exo_http_get("127.0.0.1", fx->port, "/echo", "s3cret-token", 3000, &body, &status), 0);
    assert_int_equal(status, 200);
    exo_buf_free(&body);
    parsed_free(&out);
    fx_free(fx);
}

static void test_http_cors(void **state)
{
    struct exo_http_config cfg = test_config();
    struct fx *fx = fx_new(&cfg, true);
    struct parsed out = {0};
    char h[256];
    const char *pre =
        "OPTIONS /echo HTTP/1.1\r\nOrigin: http://example\r\n"
        "Access-Control-Request-Method: POST\r\n"
        "Access-Control-Request-Headers: authorization,content-type,x-stainless-os\r\n"
        "\r\n";
    assert_false(exchange(fx->port, pre, strlen(pre), 1, 0, &out));
    assert_int_equal(out.r[0].status, 204);
    assert_string_equal(resp_header(&out.r[0], "Access-Control-Allow-Origin", h, sizeof(h)), "*");
    assert_string_equal(resp_header(&out.r[0], "Access-Control-Allow-Methods", h, sizeof(h)),
                        "GET, HEAD, POST, OPTIONS");
    assert_string_equal(resp_header(&out.r[0], "Access-Control-Allow-Headers", h, sizeof(h)),
                        "authorization,content-type,x-stainless-os");
    assert_null(resp_header(&out.r[0], "Content-Length", h, sizeof(h)));

    const char *missing = "OPTIONS /nope HTTP/1.1\r\nOrigin: http://example\r\n\r\n";
    exchange(fx->port, missing, strlen(missing), 1, 0, &out);
    assert_int_equal(out.r[0].status, 404);
    parsed_free(&out);
    fx_free(fx);

    cfg.disable_cors = true;
    fx = fx_new(&cfg, true);
    assert_false(exchange(fx->port, pre, strlen(pre), 1, 0, &out));
    assert_int_equal(out.r[0].status, 204);
    assert_null(resp_header(&out.r[0], "Access-Control-Allow-Origin", h, sizeof(h)));
    assert_null(resp_header(&out.r[0], "Access-Control-Allow-Methods", h, sizeof(h)));
    assert_string_equal(resp_header(&out.r[0], "Allow", h, sizeof(h)), "GET, HEAD, POST, OPTIONS");
    parsed_free(&out);
    fx_free(fx);
}

/* SSE framing, and a client that leaves mid-stream: the close callback fires, the producer ends,
 * nothing leaks (LeakSanitizer checks at exit). */
static void test_http_sse_disconnect(void **state)
{
    struct exo_http_config cfg = test_config();
    struct fx *fx = fx_new(&cfg, true);
    struct parsed out = {0};
    char h[64];

    /* A short stream to the end. */
    const char *r = "GET /stream?n=2 HTTP/1.1\r\n\r\n";
    exchange(fx->port, r, strlen(r), 1, 0, &out);
    assert_int_equal(out.r[0].status, 200);
    assert_string_equal(resp_header(&out.r[0], "Content-Type", h, sizeof(h)), "text/event-stream");
    assert_string_equal(resp_header(&out.r[0], "Transfer-Encoding", h, sizeof(h)), "chunked");
    assert_string_equal(resp_header(&out.r[0], "Cache-Control", h, sizeof(h)), "no-cache");
    assert_string_equal(body_text(&out.r[0]), "event: token\nid: 1\ndata: line1\ndata: line2\n\n"
                                              "event: token\nid: 2\ndata: line1\ndata: line2\n\n");
    assert_true(wait_count(&fx->ends, 1, 3000));

    /* HEAD gets the stream's head only; the producer's writes cost nothing. */
    r = "HEAD /stream?n=2 HTTP/1.1\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n";
    assert_false(exchange(fx->port, r, strlen(r), 2, 1, &out));
    assert_int_equal(out.r[0].status, 200);
    assert_string_equal(resp_header(&out.r[0], "Transfer-Encoding", h, sizeof(h)), "chunked");
    assert_string_equal(body_text(&out.r[1]), "ok");
    assert_true(wait_count(&fx->ends, 2, 3000));

    /* To an HTTP/1.0 client the stream is delimited by closing. */
    r = "GET /stream?n=2 HTTP/1.0\r\n\r\n";
    assert_true(exchange(fx->port, r, strlen(r), 1, 0, &out));
    assert_null(resp_header(&out.r[0], "Transfer-Encoding", h, sizeof(h)));
    assert_non_null(strstr(body_text(&out.r[0]), "id: 2\n"));
    assert_true(wait_count(&fx->ends, 3, 3000));

    /* A long stream the client abandons after a few events. */
    int fd = tcp_connect(fx->port);
    send_str(fd, "GET /stream?n=100000 HTTP/1.1\r\n\r\n");
    char buf[4096];
    size_t got = 0;
    uint64_t end = exo_clock_ns() + 3000000000u;
    while (got < 300 && exo_clock_ns() < end) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        assert_true(n > 0);
        got += (size_t)n;
    }
    assert_true(got >= 300);
    close(fd);
    assert_true(wait_count(&fx->closes, 1, 3000));
    assert_true(wait_count(&fx->ends, 4, 3000));
    assert_true(wait_open_conns(fx, 0, 3000));
    parsed_free(&out);
    fx_free(fx);
}

/* A client that trickles its head is cut off at the header timeout with a 408. */
static void test_http_slowloris(void **state)
{
    struct exo_http_config cfg = test_config();
    cfg.header_timeout_ms = 300;
    struct fx *fx = fx_new(&cfg, true);
    int fd = tcp_connect(fx->port);
    uint64_t start = exo_clock_ns();
    send_str(fd, "GET /healthz HTTP/1.1\r\n");
    struct exo_buf raw;
    exo_buf_init(&raw, 0);
    bool closed = false;
    for (int i = 0; i < 100 && !closed; i++) {
        char line[32];
        snprintf(line, sizeof(line), "X-%d: 1\r\n", i);
        if (send(fd, line, strlen(line), MSG_NOSIGNAL) < 0)
            break;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 50) == 1) {
            char chunk[4096];
            ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
            if (n <= 0)
                closed = true;
            else
                exo_buf_put(&raw, chunk, (size_t)n);
        }
    }
    if (!closed)
        closed = wait_eof(fd, 2000);
    double elapsed = (double)(exo_clock_ns() - start) / 1e9;
    print_message("slowloris cut off after %.3f s\n", elapsed);
    assert_true(closed);
    assert_true(elapsed >= 0.25 && elapsed < 2.0);
    struct parsed out = {0};
    assert_int_equal(parse_all(raw.data, raw.len, true, 0, &out), 1);
    assert_int_equal(out.r[0].status, 408);
    close(fd);

    /* A body that stops arriving is cut off too. */
    fd = tcp_connect(fx->port);
    send_str(fd, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel");
    exo_buf_reset(&raw);
    bool eof = false;
    assert_int_equal(read_responses(fd, &raw, &out, 1, 0, 3000, &eof), 1);
    assert_int_equal(out.r[0].status, 408);
    close(fd);

    /* A connection that never sends a byte is closed quietly. */
    fd = tcp_connect(fx->port);
    assert_true(wait_eof(fd, 2000));
    close(fd);
    assert_int_equal(fx_stats(fx).timeouts, 2);
    exo_buf_free(&raw);
    parsed_free(&out);
    fx_free(fx);
}

static void test_http_idle_timeout(void **state)
{
    struct exo_http_config cfg = test_config();
    cfg.idle_timeout_ms = 300;
    struct fx *fx = fx_new(&cfg, true);
    struct parsed out = {0};
    struct exo_buf raw;
    exo_buf_init(&raw, 0);
    int fd = tcp_connect(fx->port);
    send_str(fd, "GET /healthz HTTP/1.1\r\n\r\n");
    assert_int_equal(read_responses(fd, &raw, &out, 1, 0, 3000, NULL), 1);
    uint64_t start = exo_clock_ns();
    assert_true(wait_eof(fd, 3000));
    double elapsed = (double)(exo_clock_ns() - start) / 1e9;
    assert_true(elapsed >= 0.25 && elapsed < 2.0);
    assert_int_equal(fx_stats(fx).timeouts, 0);
    close(fd);
    exo_buf_free(&raw);
    parsed_free(&out);
    fx_free(fx);
}

/* 1000 connections against a cap of 256: the rest get 503 (or a reset) at once, the accepted
 * ones keep working, and once the flood leaves the server answers new clients. */
static void test_http_connection_cap(void **state)
{
    enum { N = 1000, CAP = 256 };
    struct exo_http_config cfg = test_config();
    cfg.max_connections = CAP;
    cfg.header_timeout_ms = 30000;
    struct fx *fx = fx_new(&cfg, true);
    static int fds[N];
    static bool done[N];
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(fx->port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < N; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        assert_true(fds[i] >= 0);
        int rc = connect(fds[i], (struct sockaddr *)&sin, sizeof(sin));
        assert_true(rc == 0 || errno == EINPROGRESS);
        done[i] = false;
    }
    int rejected = 0, saw_503 = 0;
    uint64_t end = exo_clock_ns() + 10000000000u;
    static struct pollfd pfds[N];
    while (rejected < N - CAP && exo_clock_ns() < end) {
        for (int i = 0; i < N; i++)
            pfds[i] = (struct pollfd){.fd = done[i] ? -1 : fds[i], .events = POLLIN};
        if (poll(pfds, N, 100) <= 0)
            continue;
        for (int i = 0; i < N; i++) {
            if (done[i] || !(pfds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char buf[512];
            ssize_t n = recv(fds[i], buf, sizeof(buf) - 1, 0);
            if (n < 0 && errno == EAGAIN)
                continue;
            if (n > 0 && strncmp(buf, "HTTP/1.1 503 ", 13) == 0)
                saw_503++;
            done[i] = true;
            rejected++;
        }
    }
    print_message("rejected %d of %d (%d with a 503)\n", rejected, N, saw_503);
    assert_int_equal(rejected, N - CAP);
    assert_true(saw_503 > 0);
    struct exo_http_stats st = fx_stats(fx);
    assert_int_equal(st.connections_open, CAP);
    assert_int_equal(st.connections_rejected, N - CAP);

    /* The accepted ones are served. */
    int served = 0;
    for (int i = 0; i < N && served < 3; i++) {
        if (done[i])
            continue;
        struct pollfd pfd = {.fd = fds[i], .events = POLLOUT};
        assert_int_equal(poll(&pfd, 1, 1000), 1);
        send_str(fds[i], "GET /healthz HTTP/1.1\r\n\r\n");
        struct exo_buf raw;
        exo_buf_init(&raw, 0);
        struct parsed out = {0};
        assert_int_equal(read_responses(fds[i], &raw, &out, 1, 0, 3000, NULL), 1);
        assert_int_equal(out.r[0].status, 200);
        parsed_free(&out);
        exo_buf_free(&raw);
        served++;
    }
    for (int i = 0; i < N; i++)
        close(fds[i]);
    assert_true(wait_open_conns(fx, 0, 5000));
    struct exo_buf body;
    exo_buf_init(&body, 0);
    int status = 0;
    assert_int_equal(exo_http_get("127.0.0.1", fx->port, "/healthz", NULL, 3000, &body, &status),
                     0);
    assert_int_equal(status, 200);
    exo_buf_free(&body);
    fx_free(fx);
}

/* More pipelined input than the server buffers while a request is in flight: reading pauses and
 * resumes, and every response still arrives, in order. */
static void test_http_pipelined_backpressure(void **state)
{
    enum { N = 6000 };
    struct exo_http_config cfg = test_config();
    struct fx *fx = fx_new(&cfg, true);
    int fd = tcp_connect(fx->port);
    struct exo_buf req;
    exo_buf_init(&req, 0);
    exo_buf_printf(&req, "GET /slow?id=first HTTP/1.1\r\n\r\n");
    for (int i = 0; i < N; i++)
        exo_buf_printf(&req, "GET /healthz HTTP/1.1\r\n\r\n");
    exo_buf_printf(&req, "GET /slow?id=last HTTP/1.1\r\n\r\n");
    assert_true(req.len > 128 * 1024);
    send_bytes(fd, req.data, req.len);
    /* Count response heads and look for the two bodies as bytes arrive. */
    struct exo_buf raw;
    exo_buf_init(&raw, 0);
    uint64_t end = exo_clock_ns() + 10000000000u;
    while (exo_clock_ns() < end) {
        char chunk[65536];
        ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
        assert_true(n > 0);
        exo_buf_put(&raw, chunk, (size_t)n);
        if (raw.len >= 4 && memcmp(raw.data + raw.len - 4, "last", 4) == 0)
            break;
    }
    int heads = 0;
    const char *first = NULL, *ok = NULL;
    for (const char *p = (const char *)raw.data; (p = strstr(p, "HTTP/1.1 200 OK")); p++) {
        heads++;
    }
    first = strstr((const char *)raw.data, "first");
    ok = strstr((const char *)raw.data, "\r\n\r\nok");
    assert_int_equal(heads, N + 2);
    assert_non_null(first);
    assert_true(ok > first);
    close(fd);
    exo_buf_free(&raw);
    exo_buf_free(&req);
    fx_free(fx);
}

/* A client that does not read: the producer's writes fail once max_queued_bytes is queued. */
static void test_http_slow_reader(void **state)
{
    struct exo_http_config cfg = test_config();
    cfg.max_queued_bytes = 256 * 1024;
    struct fx *fx = fx_new(&cfg, true);
    int fd = tcp_connect(fx->port);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    send_str(fd, "GET /flood HTTP/1.1\r\n\r\n");
    assert_true(wait_count(&fx->write_closed, 1, 10000));
    assert_true(wait_count(&fx->closes, 1, 3000));
    assert_true(wait_count(&fx->ends, 1, 3000));
    close(fd);
    assert_true(wait_open_conns(fx, 0, 3000));
    fx_free(fx);
}

/* Stopping with a request in flight: its close callback runs, then done. */
static void test_http_stop_in_flight(void **state)
{
    struct exo_http_config cfg = test_config();
    struct fx *fx = fx_new(&cfg, true);
    int fd = tcp_connect(fx->port);
    send_str(fd, "GET /hang HTTP/1.1\r\n\r\n");
    assert_true(wait_count(&fx->handled, 1, 3000));
    int idle = tcp_connect(fx->port);
    fx_call(fx, do_stop, NULL);
    pthread_join(fx->thread, NULL);
    pthread_mutex_destroy(&fx->mu);
    pthread_cond_destroy(&fx->cv);
    assert_int_equal(fx->done_calls, 1);
    assert_int_equal(fx->closes, 1);
    assert_int_equal(fx->ends, 1);
    assert_true(wait_eof(fd, 1000));
    assert_true(wait_eof(idle, 1000));
    close(fd);
    close(idle);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    exo_free(fx);
}

static void set_alloc_fail(struct fx *fx, void *arg)
{
    exo_alloc_fail_after(*(const long *)arg);
}

/* A connection that arrives while no memory can be had is taken once memory is back. */
static void test_http_accept_alloc_failure(void **state)
{
    struct exo_http_config cfg = test_config();
    struct fx *fx = fx_new(&cfg, true);
    const long fail = 0, recover = -1;
    fx_call(fx, set_alloc_fail, (void *)&fail);
    int fd = tcp_connect(fx->port);
    send_str(fd, "GET /healthz HTTP/1.1\r\n\r\n");
    usleep(250000);
    fx_call(fx, set_alloc_fail, (void *)&recover);
    char buf[2048] = {0};
    size_t got = 0;
    uint64_t end = exo_clock_ns() + 3000000000u;
    while (!strstr(buf, "\r\n\r\nok") && got < sizeof(buf) - 1 && exo_clock_ns() < end) {
        ssize_t n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
        buf[got] = '\0';
    }
    buf[got] = '\0';
    assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
    close(fd);
    assert_int_equal(fx_stats(fx).connections_total, 1);
    fx_free(fx);
}

static void test_http_listen_errors(void **state)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct exo_http_server *a = NULL, *b = NULL;
    struct exo_http_config cfg = {.listen_addr = "not-an-address"};
    assert_int_equal(exo_http_server_start(&loop, &cfg, &a), EXO_EINVAL);
    cfg.listen_addr = "127.0.0.1";
    assert_int_equal(exo_http_server_start(&loop, &cfg, &a), 0);
    cfg.port = exo_http_server_port(a);
    assert_int_equal(exo_http_server_start(&loop, &cfg, &b), EXO_EBUSY);
    cfg.api_token = "bad\r\ntoken";
    cfg.port = 0;
    assert_int_equal(exo_http_server_start(&loop, &cfg, &b), EXO_EINVAL);
    exo_http_server_stop(a, NULL, NULL);

    /* IPv6, where the machine has it. */
    struct exo_http_config v6 = {.listen_addr = "::1"};
    if (exo_http_server_start(&loop, &v6, &b) == 0) {
        assert_true(exo_http_server_port(b) > 0);
        exo_http_server_stop(b, NULL, NULL);
    } else {
        print_message("no IPv6 loopback here\n");
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* The client. -------------------------------------------------------------------------------- */

static void test_http_client_get(void **state)
{
    struct exo_http_config cfg = test_config();
    struct fx *fx = fx_new(&cfg, true);
    struct exo_buf body;
    exo_buf_init(&body, 0);
    int status = 0;
    assert_int_equal(exo_http_get("127.0.0.1", fx->port, "/healthz", NULL, 3000, &body, &status),
                     0);
    assert_int_equal(status, 200);
    assert_int_equal(body.len, 2);
    assert_memory_equal(body.data, "ok", 2);

    assert_int_equal(exo_http_get("localhost", fx->port, "/nope", NULL, 3000, &body, &status), 0);
    assert_int_equal(status, 404);

    /* A chunked response. */
    assert_int_equal(exo_http_get("127.0.0.1", fx->port, "/stream?n=3", NULL, 3000, &body, &status),
                     0);
    assert_int_equal(status, 200);
    assert_non_null(strstr((const char *)body.data, "id: 3\ndata: line1\ndata: line2\n\n"));

    /* No answer in time. */
    uint64_t start = exo_clock_ns();
    assert_int_equal(exo_http_get("127.0.0.1", fx->port, "/hang", NULL, 200, &body, &status),
                     EXO_ETIMEOUT);
    double elapsed = (double)(exo_clock_ns() - start) / 1e9;
    assert_true(elapsed >= 0.19 && elapsed < 1.5);
    assert_true(wait_count(&fx->closes, 1, 3000));

    /* Over the body cap. */
    struct exo_buf small;
    exo_buf_init(&small, 8);
    assert_int_equal(exo_http_get("127.0.0.1", fx->port, "/echo", NULL, 3000, &small, &status),
                     EXO_ETOOBIG);
    exo_buf_free(&small);

    /* Arguments that could break the request apart. */
    assert_int_equal(exo_http_get("127.0.0.1", fx->port, "/a b", NULL, 100, &body, &status),
                     EXO_EINVAL);
    assert_int_equal(exo_http_get("127.0.0.1", fx->port, "/a\r\nX: y", NULL, 100, &body, &status),
                     EXO_EINVAL);
    assert_int_equal(exo_http_get("127.0.0.1", fx->port, "/", "t\r\nX: y", 100, &body, &status),
                     EXO_EINVAL);
    assert_int_equal(exo_http_get("127.0.0.1", fx->port, "nope", NULL, 100, &body, &status),
                     EXO_EINVAL);
    fx_free(fx);

    /* Nobody listening. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof(sin);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
    close(fd);
    assert_true(exo_http_get("127.0.0.1", ntohs(sin.sin_port), "/", NULL, 1000, &body, &status) <
                0);
    exo_buf_free(&body);
}

/* A server that sends malformed or endless responses to the client. */
struct bad_server {
    int listen_fd;
    const char *reply;
    size_t reply_len;
    bool endless;
};

static void *bad_server_main(void *arg)
{
    struct bad_server *b = arg;
    int fd = accept(b->listen_fd, NULL, NULL);
    if (fd < 0)
        return NULL;
    char buf[4096];
    recv(fd, buf, sizeof(buf), 0);
    send(fd, b->reply, b->reply_len, MSG_NOSIGNAL);
    for (int i = 0; b->endless && i < 2000; i++) {
        if (send(fd, "0123456789abcdef", 16, MSG_NOSIGNAL) < 0)
            break;
    }
    close(fd);
    return NULL;
}

static int run_bad_server(const char *reply, bool endless, struct exo_buf *body, int *status)
{
    struct bad_server b = {.reply = reply, .reply_len = strlen(reply), .endless = endless};
    b.listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof(sin);
    assert_int_equal(bind(b.listen_fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(b.listen_fd, 1), 0);
    assert_int_equal(getsockname(b.listen_fd, (struct sockaddr *)&sin, &sl), 0);
    pthread_t t;
    pthread_create(&t, NULL, bad_server_main, &b);
    int rc = exo_http_get("127.0.0.1", ntohs(sin.sin_port), "/", NULL, 2000, body, status);
    pthread_join(t, NULL);
    close(b.listen_fd);
    return rc;
}

static void test_http_client_hostile_responses(void **state)
{
    struct exo_buf body;
    exo_buf_init(&body, 1024);
    int status = 0;
    assert_int_equal(run_bad_server("garbage\r\n\r\n", false, &body, &status), EXO_EPROTO);
    assert_int_equal(
        run_bad_server("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", false, &body, &status),
        EXO_EPROTO);
    assert_int_equal(run_bad_server("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
                                    false, &body, &status),
                     EXO_EPROTO);
    assert_int_equal(
        run_bad_server("HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n", true, &body, &status),
        EXO_ETOOBIG);
    assert_int_equal(run_bad_server("HTTP/1.1 200 OK\r\n\r\n", true, &body, &status), EXO_ETOOBIG);
    /* An interim response, then a body delimited by closing. */
    assert_int_equal(run_bad_server("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n"
                                    "Connection: close\r\n\r\nhello",
                                    false, &body, &status),
                     0);
    assert_int_equal(status, 201);
    assert_int_equal(body.len, 5);
    exo_buf_free(&body);
}

/* Socket-less tests. ------------------------------------------------------------------------- */

/* Feed req on a fresh socket-less connection from remote; the output is parsed into out. */
static bool mem_exchange(struct fx *fx, const char *remote, const void *req, size_t len,
                         unsigned head_mask, struct parsed *out)
{
    struct exo_buf sink;
    exo_buf_init(&sink, 0);
    struct exo_http_conn *c = NULL;
    assert_int_equal(exo_http_conn_open(fx->srv, remote, &sink, &c), 0);
    exo_http_conn_feed(c, req, len);
    bool closed = exo_http_conn_closed(c);
    exo_http_conn_close(c);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    parse_all(sink.data, sink.len, closed, head_mask, out);
    exo_buf_free(&sink);
    return closed;
}

static void test_http_mutating_loopback(void **state)
{
    struct exo_http_config cfg = test_config();
    struct fx *fx = fx_new(&cfg, false);
    struct parsed out = {0};
    const char *req = "POST /admin HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
    mem_exchange(fx, "10.1.2.3", req, strlen(req), 0, &out);
    assert_int_equal(out.r[0].status, 403);
    mem_exchange(fx, "2001:db8::1", req, strlen(req), 0, &out);
    assert_int_equal(out.r[0].status, 403);
    mem_exchange(fx, "127.0.0.1", req, strlen(req), 0, &out);
    assert_int_equal(out.r[0].status, 200);
    mem_exchange(fx, "127.9.8.7", req, strlen(req), 0, &out);
    assert_int_equal(out.r[0].status, 200);
    mem_exchange(fx, "::1", req, strlen(req), 0, &out);
    assert_int_equal(out.r[0].status, 200);
    mem_exchange(fx, "::ffff:127.0.0.1", req, strlen(req), 0, &out);
    assert_int_equal(out.r[0].status, 200);
    assert_non_null(strstr(body_text(&out.r[0]), "\"remote\":\"127.0.0.1\""));
    /* Reading routes answer everyone. */
    const char *get = "GET /echo HTTP/1.1\r\n\r\n";
    mem_exchange(fx, "10.1.2.3", get, strlen(get), 0, &out);
    assert_int_equal(out.r[0].status, 200);
    assert_non_null(strstr(body_text(&out.r[0]), "\"loopback\":false"));
    parsed_free(&out);
    fx_free(fx);

    /* Socket: 127.0.0.1 is loopback. */
    fx = fx_new(&cfg, true);
    assert_false(exchange(fx->port, req, strlen(req), 1, 0, &out));
    assert_int_equal(out.r[0].status, 200);
    parsed_free(&out);
    fx_free(fx);
}

static void test_http_query_param(void **state)
{
    struct exo_http_config cfg = test_config();
    struct fx *fx = fx_new(&cfg, false);
    struct parsed out = {0};
    const char *req = "GET /hold?a=1&b=x%20y+z&empty=&flag&%62ad=%zz&long=0123456789&a=2&cut=%2 "
                      "HTTP/1.1\r\n\r\n";
    struct exo_buf sink;
    exo_buf_init(&sink, 0);
    struct exo_http_conn *c = NULL;
    assert_int_equal(exo_http_conn_open(fx->srv, "127.0.0.1", &sink, &c), 0);
    assert_int_equal(exo_http_conn_feed(c, req, strlen(req)), 0);
    struct exo_http_request *r = fx->held;
    assert_non_null(r);
    char v[8];
    assert_int_equal(exo_http_request_query_param(r, "a", v, sizeof(v)), 0);
    assert_string_equal(v, "1");
    assert_int_equal(exo_http_request_query_param(r, "b", v, sizeof(v)), 0);
    assert_string_equal(v, "x y z");
    assert_int_equal(exo_http_request_query_param(r, "empty", v, sizeof(v)), 0);
    assert_string_equal(v, "");
    assert_int_equal(exo_http_request_query_param(r, "flag", v, sizeof(v)), 0);
    assert_string_equal(v, "");
    assert_int_equal(exo_http_request_query_param(r, "bad", v, sizeof(v)), EXO_EFORMAT);
    assert_int_equal(exo_http_request_query_param(r, "long", v, sizeof(v)), EXO_ETOOBIG);
    assert_int_equal(exo_http_request_query_param(r, "missing", v, sizeof(v)), EXO_ENOENT);
    assert_int_equal(exo_http_request_query_param(r, "cut", v, sizeof(v)), EXO_EFORMAT);
    assert_int_equal(exo_http_request_query_param(r, "empty", v, 0), EXO_ETOOBIG);
    assert_string_equal(exo_http_request_path(r), "/hold");
    assert_int_equal(exo_http_request_method(r), EXO_HTTP_GET);
    assert_null(exo_http_request_header(r, "X-None"));
    size_t len = 1;
    assert_string_equal(exo_http_request_body(r, &len), "");
    assert_int_equal(len, 0);
    assert_false(exo_http_request_closed(r));

    /* Headers added after the response began are refused; so is header injection. */
    assert_int_equal(exo_http_add_header(r, "X-After", "1"), EXO_EINVAL);
    assert_int_equal(exo_http_write(r, "hi", 2), 0);
    assert_int_equal(exo_http_respond(r, 200, NULL, NULL, 0), EXO_EINVAL);
    assert_int_equal(exo_http_end(r), 0);
    fx->held = NULL;
    exo_http_conn_close(c);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    parse_all(sink.data, sink.len, false, 0, &out);
    assert_int_equal(out.n, 1);
    assert_string_equal(body_text(&out.r[0]), "hi");
    exo_buf_free(&sink);
    parsed_free(&out);
    fx_free(fx);
}

static void h_headers(struct exo_http_request *req, void *ud)
{
    assert_int_equal(exo_http_add_header(req, "X-Ok", "v a l"), 0);
    assert_int_equal(exo_http_add_header(req, "X-Bad", "a\r\nInjected: 1"), EXO_EINVAL);
    assert_int_equal(exo_http_add_header(req, "Bad Name", "1"), EXO_EINVAL);
    assert_int_equal(exo_http_add_header(req, "Content-Length", "1"), EXO_EINVAL);
    assert_int_equal(exo_http_add_header(req, "connection", "close"), EXO_EINVAL);
    char big[9000];
    memset(big, 'v', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(exo_http_add_header(req, "X-Big", big), EXO_ETOOBIG);
    assert_int_equal(exo_http_respond(req, 99, NULL, NULL, 0), EXO_EINVAL);
    assert_int_equal(exo_http_respond(req, 200, "text/plain\r\nX: y", NULL, 0), EXO_EINVAL);
    assert_int_equal(exo_http_sse_send(req, "a\nb", NULL, "x"), EXO_EINVAL);
    assert_int_equal(exo_http_write(req, "x", 1), EXO_EINVAL); /* not streaming */
    assert_int_equal(exo_http_respond(req, 201, "text/plain", "made", 4), 0);
}

static void h_moved(struct exo_http_request *req, void *ud)
{
    assert_int_equal(exo_http_add_header(req, "Location", "/healthz"), 0);
    assert_int_equal(exo_http_respond(req, 302, NULL, NULL, 0), 0);
}

static void h_quoted_error(struct exo_http_request *req, void *ud)
{
    exo_http_respond_error(req, 422, "say \"hi\"\n\t\\ \x01");
}

static void h_unanswered(struct exo_http_request *req, void *ud)
{
    exo_http_end(req);
}

static void h_sse_lines(struct exo_http_request *req, void *ud)
{
    exo_http_sse_begin(req);
    exo_http_sse_send(req, NULL, NULL, "a\r\nb\rc\n");
    exo_http_sse_send(req, "done", "7", NULL);
    exo_http_end(req);
}

static void test_http_route_and_response_api(void **state)
{
    struct exo_http_config cfg = test_config();
    struct fx *fx = fx_new(&cfg, false);
    struct exo_http_server *s = fx->srv;
    assert_int_equal(exo_http_route(s, EXO_HTTP_GET, "nope", 0, h_health, NULL), EXO_EINVAL);
    assert_int_equal(exo_http_route(s, 0, "/x", 0, h_health, NULL), EXO_EINVAL);
    assert_int_equal(exo_http_route(s, EXO_HTTP_OPTIONS, "/x", 0, h_health, NULL), EXO_EINVAL);
    assert_int_equal(exo_http_route(s, EXO_HTTP_GET, "/x", 1u << 9, h_health, NULL), EXO_EINVAL);
    assert_int_equal(exo_http_route(s, EXO_HTTP_GET, "/x", 0, NULL, NULL), EXO_EINVAL);
    assert_int_equal(exo_http_route(s, EXO_HTTP_GET | EXO_HTTP_PUT, "/healthz", 0, h_health, NULL),
                     EXO_EEXIST);
    assert_int_equal(exo_http_route(s, EXO_HTTP_PUT, "/healthz", 0, h_headers, NULL), 0);
    assert_int_equal(
        exo_http_route(s, EXO_HTTP_GET, "/healthz", EXO_HTTP_ROUTE_PREFIX, h_health, NULL), 0);
    assert_int_equal(exo_http_route(s, EXO_HTTP_GET, "/unanswered", 0, h_unanswered, NULL), 0);
    assert_int_equal(exo_http_route(s, EXO_HTTP_GET, "/lines", 0, h_sse_lines, NULL), 0);
    assert_int_equal(exo_http_route(s, EXO_HTTP_GET, "/moved", 0, h_moved, NULL), 0);
    assert_int_equal(exo_http_route(s, EXO_HTTP_GET, "/quoted", 0, h_quoted_error, NULL), 0);
    assert_int_equal(exo_http_route_body_max(s, "/none", 5), EXO_ENOENT);
    assert_int_equal(exo_http_route_body_max(NULL, "/none", 5), EXO_EINVAL);
    assert_string_equal(exo_http_method_name(EXO_HTTP_PATCH), "PATCH");
    assert_string_equal(exo_http_method_name(0), "UNKNOWN");
    assert_int_equal(exo_http_respond(NULL, 200, NULL, NULL, 0), EXO_EINVAL);
    assert_int_equal(exo_http_end(NULL), EXO_EINVAL);
    assert_int_equal(exo_http_begin(NULL, 200, NULL), EXO_EINVAL);
    assert_int_equal(exo_http_write(NULL, "x", 1), EXO_EINVAL);
    assert_int_equal(exo_http_sse_send(NULL, NULL, NULL, "x"), EXO_EINVAL);
    assert_int_equal(exo_http_respond_json(NULL, 200, NULL), EXO_EINVAL);
    assert_int_equal(exo_http_respond_json_str(NULL, 200, NULL), EXO_EINVAL);
    assert_int_equal(exo_http_respond_error(NULL, 500, NULL), EXO_EINVAL);
    assert_int_equal(exo_http_add_header(NULL, "a", "b"), EXO_EINVAL);

    /* Socket-less connection misuse. */
    struct exo_buf sink;
    exo_buf_init(&sink, 0);
    struct exo_http_conn *c = NULL;
    assert_int_equal(exo_http_conn_open(s, "not-an-ip", &sink, &c), EXO_EINVAL);
    assert_int_equal(exo_http_conn_open(s, "127.0.0.1", NULL, &c), EXO_EINVAL);
    assert_int_equal(exo_http_conn_feed(NULL, "x", 1), EXO_EINVAL);
    exo_http_conn_close(NULL);
    assert_int_equal(exo_http_conn_open(s, "127.0.0.1", &sink, &c), 0);
    assert_int_equal(exo_http_conn_feed(c, NULL, 1), EXO_EINVAL);
    const char *closing = "GET / HTTP/1.1\r\nConnection: close\r\n\r\n";
    assert_int_equal(exo_http_conn_feed(c, closing, strlen(closing)), 0);
    assert_true(exo_http_conn_closed(c));
    assert_int_equal(exo_http_conn_feed(c, "x", 1), EXO_ECLOSED);
    exo_http_conn_close(c);
    exo_buf_free(&sink);

    struct parsed out = {0};
    char h[64];
    const char *req = "PUT /healthz HTTP/1.1\r\n\r\nGET /unanswered HTTP/1.1\r\n\r\n"
                      "GET /lines HTTP/1.1\r\n\r\nGET /moved HTTP/1.1\r\n\r\n"
                      "GET /quoted HTTP/1.1\r\n\r\n";
    mem_exchange(fx, "127.0.0.1", req, strlen(req), 0, &out);
    assert_int_equal(out.n, 5);
    assert_int_equal(out.r[3].status, 302);
    assert_string_equal(resp_header(&out.r[3], "Location", h, sizeof(h)), "/healthz");
    assert_string_equal(resp_header(&out.r[3], "Content-Length", h, sizeof(h)), "0");
    cJSON *o = cJSON_Parse(body_text(&out.r[4]));
    assert_non_null(o);
    cJSON *err = cJSON_GetObjectItem(o, "error");
    assert_string_equal(cJSON_GetObjectItem(err, "message")->valuestring, "say \"hi\"\n\t\\ \x01");
    assert_string_equal(cJSON_GetObjectItem(err, "type")->valuestring, "unprocessable_entity");
    cJSON_Delete(o);
    assert_int_equal(fx_stats(fx).responses_3xx, 1);
    assert_int_equal(out.r[0].status, 201);
    assert_string_equal(resp_header(&out.r[0], "X-Ok", h, sizeof(h)), "v a l");
    assert_null(resp_header(&out.r[0], "Injected", h, sizeof(h)));
    assert_int_equal(out.r[1].status, 500);
    assert_int_equal(error_code(&out.r[1]), 500);
    assert_string_equal(body_text(&out.r[2]),
                        "data: a\ndata: b\ndata: c\ndata: \n\nevent: done\nid: 7\n\n");
    parsed_free(&out);
    fx_free(fx);
}

/* The head cap counts raw bytes, whitespace included: 414 while the target is still being read,
 * 431 after. */
static void test_http_head_caps(void **state)
{
    struct exo_http_config cfg = test_config();
    cfg.max_header_bytes = 1024;
    cfg.max_url_bytes = 100000; /* clamped to 65535, so the head cap decides */
    struct fx *fx = fx_new(&cfg, false);
    struct parsed out = {0};
    struct exo_buf req;
    exo_buf_init(&req, 0);
    exo_buf_printf(&req, "GET /%02000d HTTP/1.1\r\n\r\n", 1);
    assert_true(mem_exchange(fx, "127.0.0.1", req.data, req.len, 0, &out));
    assert_int_equal(out.r[0].status, 414);
    exo_buf_reset(&req);
    exo_buf_printf(&req, "GET /healthz HTTP/1.1\r\nX-A: 1%01000d\r\n\r\n", 1);
    assert_true(mem_exchange(fx, "127.0.0.1", req.data, req.len, 0, &out));
    assert_int_equal(out.r[0].status, 431);
    exo_buf_reset(&req);
    for (int i = 0; i < 1100; i++)
        exo_buf_put(&req, "\r\n", 2);
    assert_true(mem_exchange(fx, "127.0.0.1", req.data, req.len, 0, &out));
    assert_int_equal(out.r[0].status, 400);
    /* Just under the cap is fine. */
    exo_buf_reset(&req);
    exo_buf_printf(&req, "GET /healthz HTTP/1.1\r\nX-A: %0900d\r\n\r\n", 1);
    assert_false(mem_exchange(fx, "127.0.0.1", req.data, req.len, 0, &out));
    assert_int_equal(out.r[0].status, 200);
    assert_int_equal(fx_stats(fx).parse_errors, 3);
    exo_buf_free(&req);
    parsed_free(&out);
    fx_free(fx);
}

/* Socket-less connections count against the cap, and none open once stop has begun. */
static void test_http_conn_open_limits(void **state)
{
    struct exo_http_config cfg = test_config();
    cfg.max_connections = 1;
    struct fx *fx = fx_new(&cfg, false);
    struct exo_buf sink;
    exo_buf_init(&sink, 0);
    struct exo_http_conn *a = NULL, *b = NULL;
    assert_int_equal(exo_http_conn_open(fx->srv, "127.0.0.1", &sink, &a), 0);
    assert_int_equal(exo_http_conn_open(fx->srv, "127.0.0.1", &sink, &b), EXO_EBUSY);
    exo_http_server_stop(fx->srv, on_done, fx);
    assert_int_equal(exo_http_conn_open(fx->srv, "127.0.0.1", &sink, &b), EXO_ECLOSED);
    assert_true(exo_http_conn_closed(a));
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(fx->done_calls, 1);
    exo_http_conn_close(a); /* the caller's hold outlives the server */
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    exo_buf_free(&sink);
    exo_free(fx);
}

/* The same bytes fed whole or one at a time give the same responses (Date lines aside). */
static void strip_dates(struct exo_buf *b)
{
    size_t w = 0;
    for (size_t r = 0; r < b->len;) {
        if (b->len - r > 6 && memcmp(b->data + r, "Date: ", 6) == 0) {
            while (r < b->len && b->data[r] != '\n')
                r++;
            r++;
            continue;
        }
        b->data[w++] = b->data[r++];
    }
    b->len = w;
}

static void test_http_bytewise_feed(void **state)
{
    struct exo_http_config cfg = test_config();
    struct fx *fx = fx_new(&cfg, false);
    const char *req = "GET /healthz HTTP/1.1\r\n\r\n"
                      "POST /echo?q=1 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
                      "\r\nGET /assets/a%2Fb HTTP/1.1\r\nHost: h\r\n\r\n"
                      "HEAD /echo HTTP/1.1\r\n\r\n"
                      "GET /stream?n=2 HTTP/1.1\r\n\r\n";
    struct exo_buf whole, bytes;
    exo_buf_init(&whole, 0);
    exo_buf_init(&bytes, 0);
    struct exo_http_conn *c = NULL;
    assert_int_equal(exo_http_conn_open(fx->srv, "127.0.0.1", &whole, &c), 0);
    assert_int_equal(exo_http_conn_feed(c, req, strlen(req)), 0);
    exo_http_conn_close(c);
    assert_int_equal(exo_http_conn_open(fx->srv, "127.0.0.1", &bytes, &c), 0);
    for (size_t i = 0; req[i]; i++)
        assert_int_equal(exo_http_conn_feed(c, req + i, 1), 0);
    exo_http_conn_close(c);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    strip_dates(&whole);
    strip_dates(&bytes);
    assert_int_equal(whole.len, bytes.len);
    assert_memory_equal(whole.data, bytes.data, whole.len);
    struct parsed out = {0};
    /* The stream's producer runs on the loop, which these tests do not run: 4 complete. */
    assert_int_equal(parse_all(whole.data, whole.len, false, 1u << 3, &out), 4);
    assert_string_equal(body_text(&out.r[2]), "/assets/a/b");
    exo_buf_free(&whole);
    exo_buf_free(&bytes);
    parsed_free(&out);
    fx_free(fx);
}

/* Every order of: the client closes (C), the producer writes (W) and ends (E), the server stops
 * (S), with W before E. Nothing may be used after it is freed, and the close callback runs
 * exactly when the client or the server left before the response ended. */
static void run_order(const char *order)
{
    struct exo_http_config cfg = test_config();
    struct fx *fx = fx_new(&cfg, false);
    struct exo_buf sink;
    exo_buf_init(&sink, 0);
    struct exo_http_conn *c = NULL;
    assert_int_equal(exo_http_conn_open(fx->srv, "127.0.0.1", &sink, &c), 0);
    const char *req = "GET /hold HTTP/1.1\r\n\r\n";
    assert_int_equal(exo_http_conn_feed(c, req, strlen(req)), 0);
    struct exo_http_request *r = fx->held;
    assert_non_null(r);
    bool gone = false, ended = false;
    for (const char *step = order; *step; step++) {
        switch (*step) {
        case 'C':
            exo_http_conn_close(c);
            gone = true;
            break;
        case 'W':
            assert_int_equal(exo_http_write(r, "x", 1), gone ? EXO_ECLOSED : 0);
            break;
        case 'E': {
            int closes = fx->closes;
            assert_int_equal(exo_http_end(r), gone ? EXO_ECLOSED : 0);
            assert_int_equal(fx->closes, closes); /* never from inside an exo_http_* call */
            ended = true;
            break;
        }
        case 'S':
            exo_http_server_stop(fx->srv, on_done, fx);
            gone = true;
            break;
        }
        uv_run(&fx->loop, UV_RUN_NOWAIT);
        if (gone && !ended) {
            assert_int_equal(fx->closes, 1);
            assert_true(exo_http_request_closed(r));
            assert_int_equal(exo_http_request_on_close(r, held_on_close, fx), EXO_ECLOSED);
            assert_int_equal(exo_http_sse_send(r, "e", NULL, "d"), EXO_ECLOSED);
        }
    }
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    bool left_first = strcspn(order, "CS") < strcspn(order, "E");
    assert_int_equal(fx->closes, left_first ? 1 : 0);
    assert_int_equal(fx->done_calls, 1);
    if (!left_first)
        assert_non_null(strstr((const char *)sink.data, "1\r\nx\r\n0\r\n\r\n"));
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    exo_buf_free(&sink);
    exo_free(fx);
}

static void test_http_close_orders(void **state)
{
    const char *steps = "CWES";
    int runs = 0;
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++)
            for (int c = 0; c < 4; c++)
                for (int d = 0; d < 4; d++) {
                    if (a == b || a == c || a == d || b == c || b == d || c == d)
                        continue;
                    char order[5] = {steps[a], steps[b], steps[c], steps[d], 0};
                    if (strchr(order, 'W') > strchr(order, 'E'))
                        continue;
                    print_message("order %s\n", order);
                    run_order(order);
                    runs++;
                }
    assert_int_equal(runs, 12);
}

/* The socket-less input buffer is bounded while a request is in flight. */
static void test_http_feed_backpressure(void **state)
{
    struct exo_http_config cfg = test_config();
    struct fx *fx = fx_new(&cfg, false);
    struct exo_buf sink;
    exo_buf_init(&sink, 0);
    struct exo_http_conn *c = NULL;
    assert_int_equal(exo_http_conn_open(fx->srv, "127.0.0.1", &sink, &c), 0);
    const char *req = "GET /hold HTTP/1.1\r\n\r\n";
    assert_int_equal(exo_http_conn_feed(c, req, strlen(req)), 0);
    /* Pipelined requests wait in the buffer until it is full. */
    static char pipelined[200 * 1024];
    const char *one = "GET /healthz HTTP/1.1\r\n\r\n";
    for (int i = 0; i < 1000; i++)
        assert_int_equal(exo_http_conn_feed(c, one, strlen(one)), 0);
    assert_int_equal(exo_http_conn_feed(c, pipelined, sizeof(pipelined)), EXO_EAGAIN);
    assert_true(strstr((const char *)sink.data, "200 OK") != NULL);
    assert_null(strstr((const char *)sink.data, "ok"));
    assert_int_equal(exo_http_end(fx->held), 0);
    struct parsed out = {0};
    assert_int_equal(parse_all(sink.data, sink.len, false, 0, &out), MAX_RESP);
    exo_http_conn_close(c);
    exo_buf_free(&sink);
    parsed_free(&out);
    fx_free(fx);
}

static void test_http_alloc_failures(void **state)
{
    const char *req =
        "GET /healthz HTTP/1.1\r\n\r\n"
        "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        "GET /nope HTTP/1.1\r\nX-A: b\r\n\r\n";
    int complete_runs = 0;
    for (long n = 0; n < 120; n++) {
        uv_loop_t loop;
        assert_int_equal(uv_loop_init(&loop), 0);
        struct exo_http_config cfg = test_config();
        struct exo_http_server *srv = NULL;
        struct exo_buf sink;
        exo_buf_init(&sink, 0);
        exo_alloc_fail_after(n);
        if (exo_http_server_start(&loop, &cfg, &srv) == 0) {
            struct fx fx = {0};
            exo_http_route(srv, EXO_HTTP_GET, "/healthz", 0, h_health, &fx);
            exo_http_route(srv, EXO_HTTP_POST, "/echo", 0, h_echo, &fx);
            struct exo_http_conn *c = NULL;
            if (exo_http_conn_open(srv, "127.0.0.1", &sink, &c) == 0) {
                exo_http_conn_feed(c, req, strlen(req));
                exo_http_conn_close(c);
            }
            exo_alloc_fail_after(-1);
            exo_http_server_stop(srv, NULL, NULL);
        }
        exo_alloc_fail_after(-1);
        uv_run(&loop, UV_RUN_DEFAULT);
        assert_int_equal(uv_loop_close(&loop), 0);
        struct parsed out = {0};
        complete_runs += parse_all(sink.data, sink.len, false, 0, &out) == 3;
        parsed_free(&out);
        exo_buf_free(&sink);
    }
    assert_true(complete_runs > 0);
}

static void test_http_stats_prom(void **state)
{
    struct exo_http_config cfg = test_config();
    struct fx *fx = fx_new(&cfg, false);
    struct parsed out = {0};
    const char *req = "GET /healthz HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n\r\n";
    mem_exchange(fx, "127.0.0.1", req, strlen(req), 0, &out);
    mem_exchange(fx, "127.0.0.1", "BAD\r\n\r\n", 7, 0, &out);
    struct exo_http_stats st = fx_stats(fx);
    assert_int_equal(st.connections_total, 2);
    assert_int_equal(st.responses_2xx, 1);
    assert_int_equal(st.responses_4xx, 1);
    assert_int_equal(st.responses_5xx, 1);
    assert_int_equal(st.parse_errors, 1);
    assert_true(st.bytes_in == strlen(req) + 7);
    assert_true(st.bytes_out > 100);

    struct exo_buf text;
    struct exo_prom p;
    exo_buf_init(&text, 0);
    exo_prom_init(&p, &text);
    assert_int_equal(exo_http_stats_prom(&st, &p), 0);
    const char *t = (const char *)text.data;
    assert_non_null(strstr(t, "# TYPE exo_http_responses_total counter\n"));
    assert_non_null(strstr(t, "exo_http_responses_total{code=\"2xx\"} 1\n"));
    assert_non_null(strstr(t, "exo_http_connections_total 2\n"));
    assert_non_null(strstr(t, "exo_http_parse_errors_total 1\n"));
    if (system("command -v promtool >/dev/null 2>&1") == 0) {
        FILE *f = popen("promtool check metrics", "w");
        assert_non_null(f);
        fwrite(text.data, 1, text.len, f);
        assert_int_equal(pclose(f), 0);
    }
    exo_prom_free(&p);
    exo_buf_free(&text);
    parsed_free(&out);
    fx_free(fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_routing),
        cmocka_unit_test(test_http_keepalive_pipelining),
        cmocka_unit_test(test_http_chunked_request),
        cmocka_unit_test(test_http_expect_continue),
        cmocka_unit_test(test_http_errors),
        cmocka_unit_test(test_http_invalid_utf8),
        cmocka_unit_test(test_http_token),
        cmocka_unit_test(test_http_cors),
        cmocka_unit_test(test_http_sse_disconnect),
        cmocka_unit_test(test_http_slowloris),
        cmocka_unit_test(test_http_idle_timeout),
        cmocka_unit_test(test_http_connection_cap),
        cmocka_unit_test(test_http_pipelined_backpressure),
        cmocka_unit_test(test_http_slow_reader),
        cmocka_unit_test(test_http_stop_in_flight),
        cmocka_unit_test(test_http_accept_alloc_failure),
        cmocka_unit_test(test_http_listen_errors),
        cmocka_unit_test(test_http_client_get),
        cmocka_unit_test(test_http_client_hostile_responses),
        cmocka_unit_test(test_http_mutating_loopback),
        cmocka_unit_test(test_http_query_param),
        cmocka_unit_test(test_http_route_and_response_api),
        cmocka_unit_test(test_http_head_caps),
        cmocka_unit_test(test_http_conn_open_limits),
        cmocka_unit_test(test_http_bytewise_feed),
        cmocka_unit_test(test_http_close_orders),
        cmocka_unit_test(test_http_feed_backpressure),
        cmocka_unit_test(test_http_alloc_failures),
        cmocka_unit_test(test_http_stats_prom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
