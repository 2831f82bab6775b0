/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The upstream client against the daemon's own HTTP server on the same loop: a whole response,
 * a body streamed in pieces (each handed over as it comes, not at the end), a POST body passed
 * through, a server that never answers (timeout), a refused connection, a handler that stops
 * the body, cancel in flight, and requests that could split the request line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/http.h"
#include "api/upstream.h"
#include "core/buf.h"
#include "core/error.h"

struct fx {
    uv_loop_t loop;
    struct exo_http_server *srv;
    uint16_t port;
    uv_timer_t tick; /* the streaming route writes one piece per tick */
    struct exo_http_request *streaming;
    struct exo_http_request *silent;
    int pieces_left;
    /* What the client saw. */
    int status;
    char ctype[128];
    struct exo_buf body;
    int body_calls;
    int body_calls_at_second_piece; /* body callbacks seen when the server wrote piece 2 */
    int done_rc;
    int done_calls;
    int stop_after; /* on_body returns EXO_ECANCELED after this many calls; 0: never */
    struct exo_upstream *u;
    bool cancel_on_head;
};

static void h_hello(struct exo_http_request *req, void *ud)
{
    (void)ud;
    exo_http_respond(req, 200, "text/plain", "hello", 5);
}

static void h_echo(struct exo_http_request *req, void *ud)
{
    (void)ud;
    size_t len;
    const void *body = exo_http_request_body(req, &len);
    const char *auth = exo_http_request_header(req, "authorization");
    const char *fwd = exo_http_request_header(req, "x-test");
    struct exo_buf b;
    exo_buf_init(&b, 0);
    exo_buf_printf(&b, "%s|%s|%.*s", auth ? auth : "-", fwd ? fwd : "-", (int)len,
                   (const char *)body);
    exo_http_respond(req, 201, "application/json", b.data, b.len);
    exo_buf_free(&b);
}

static void on_tick(uv_timer_t *t)
{
    struct fx *fx = t->data;
    char piece[32];
    int n = snprintf(piece, sizeof(piece), "piece %d;", 4 - fx->pieces_left);
    if (fx->pieces_left == 2)
        fx->body_calls_at_second_piece = fx->body_calls;
    exo_http_write(fx->streaming, piece, (size_t)n);
    if (--fx->pieces_left == 0) {
        uv_timer_stop(t);
        exo_http_end(fx->streaming);
        fx->streaming = NULL;
    }
}

static void h_stream(struct exo_http_request *req, void *ud)
{
    struct fx *fx = ud;
    exo_http_begin(req, 200, "text/event-stream");
    fx->streaming = req;
    fx->pieces_left = 3;
    uv_timer_start(&fx->tick, on_tick, 20, 20);
}

static void h_silent(struct exo_http_request *req, void *ud)
{
    struct fx *fx = ud;
    fx->silent = req; /* never answered; teardown ends it */
}

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    struct exo_http_config cfg = {.listen_addr = "127.0.0.1"};
    assert_int_equal(exo_http_server_start(&fx->loop, &cfg, &fx->srv), 0);
    fx->port = exo_http_server_port(fx->srv);
    assert_int_equal(exo_http_route(fx->srv, EXO_HTTP_GET, "/hello", 0, h_hello, fx), 0);
    assert_int_equal(exo_http_route(fx->srv, EXO_HTTP_POST, "/echo", 0, h_echo, fx), 0);
    assert_int_equal(exo_http_route(fx->srv, EXO_HTTP_GET, "/stream", 0, h_stream, fx), 0);
    assert_int_equal(exo_http_route(fx->srv, EXO_HTTP_GET, "/silent", 0, h_silent, fx), 0);
    uv_timer_init(&fx->loop, &fx->tick);
    fx->tick.data = fx;
    exo_buf_init(&fx->body, 0);
    *state = fx;
    return 0;
}

static void on_stopped(void *ud)
{
    (void)ud;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    if (fx->streaming)
        exo_http_end(fx->streaming);
    if (fx->silent)
        exo_http_end(fx->silent);
    exo_http_server_stop(fx->srv, on_stopped, NULL);
    uv_close((uv_handle_t *)&fx->tick, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    exo_buf_free(&fx->body);
    free(fx);
    return 0;
}

static void on_head(void *ud, int status, const char *content_type)
{
    struct fx *fx = ud;
    fx->status = status;
    snprintf(fx->ctype, sizeof(fx->ctype), "%s", content_type);
    if (fx->cancel_on_head) {
        exo_upstream_cancel(fx->u);
        fx->u = NULL;
    }
}

static int on_body(void *ud, const void *data, size_t len)
{
    struct fx *fx = ud;
    exo_buf_put(&fx->body, data, len);
    fx->body_calls++;
    return fx->stop_after && fx->body_calls >= fx->stop_after ? EXO_ECANCELED : 0;
}

static void on_done(void *ud, int rc)
{
    struct fx *fx = ud;
    fx->done_rc = rc;
    fx->done_calls++;
    fx->u = NULL;
}

static const struct exo_upstream_handler handler = {on_head, on_body, on_done};

/* Run one request to completion on the loop. */
static int run(struct fx *fx, struct exo_upstream_request *rq)
{
    rq->ip = rq->ip ? rq->ip : "127.0.0.1";
    rq->port = rq->port ? rq->port : fx->port;
    rq->method = rq->method ? rq->method : "GET";
    int rc = exo_upstream_start(&fx->loop, rq, &handler, fx, &fx->u);
    if (rc)
        return rc;
    while (fx->u && uv_run(&fx->loop, UV_RUN_ONCE))
        ;
    return 0;
}

static void test_upstream_whole_response(void **state)
{
    struct fx *fx = *state;
    struct exo_upstream_request rq = {.target = "/hello"};
    assert_int_equal(run(fx, &rq), 0);
    assert_int_equal(fx->done_calls, 1);
    assert_int_equal(fx->done_rc, 0);
    assert_int_equal(fx->status, 200);
    assert_string_equal(fx->ctype, "text/plain");
    assert_int_equal(fx->body.len, 5);
    assert_memory_equal(fx->body.data, "hello", 5);
}

static void test_upstream_post_passes_body_and_headers(void **state)
{
    struct fx *fx = *state;
    const char body[] = "{\"a\":1}";
    struct exo_upstream_request rq = {.method = "POST",
                                      .target = "/echo",
                                      .token = "tok en",
                                      .headers = "X-Test: yes\r\n",
                                      .content_type = "application/json",
                                      .body = body,
                                      .body_len = strlen(body)};
    assert_int_equal(run(fx, &rq), 0);
    assert_int_equal(fx->done_rc, 0);
    assert_int_equal(fx->status, 201);
    exo_buf_put(&fx->body, "", 1);
    assert_string_equal((const char *)fx->body.data, "Bearer tok en|yes|{\"a\":1}");
}

static void test_upstream_streams_pieces_as_they_come(void **state)
{
    struct fx *fx = *state;
    struct exo_upstream_request rq = {.target = "/stream"};
    assert_int_equal(run(fx, &rq), 0);
    assert_int_equal(fx->done_rc, 0);
    assert_string_equal(fx->ctype, "text/event-stream");
    exo_buf_put(&fx->body, "", 1);
    assert_string_equal((const char *)fx->body.data, "piece 1;piece 2;piece 3;");
    /* The first piece reached the client before the server wrote the second. */
    assert_true(fx->body_calls_at_second_piece >= 1);
}

static void test_upstream_handler_stops_body(void **state)
{
    struct fx *fx = *state;
    fx->stop_after = 1;
    struct exo_upstream_request rq = {.target = "/stream"};
    assert_int_equal(run(fx, &rq), 0);
    assert_int_equal(fx->done_calls, 1);
    assert_int_equal(fx->done_rc, EXO_ECANCELED);
    assert_int_equal(fx->body_calls, 1);
}

static void test_upstream_timeout(void **state)
{
    struct fx *fx = *state;
    struct exo_upstream_request rq = {.target = "/silent", .head_timeout_ms = 100};
    assert_int_equal(run(fx, &rq), 0);
    assert_int_equal(fx->done_calls, 1);
    assert_int_equal(fx->done_rc, EXO_ETIMEOUT);
    assert_int_equal(fx->status, 0);
}

static void test_upstream_refused(void **state)
{
    struct fx *fx = *state;
    /* A port that was just free: bind an ephemeral server, note its port, stop it. */
    uv_tcp_t probe;
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    uv_tcp_init(&fx->loop, &probe);
    assert_int_equal(uv_tcp_bind(&probe, (const struct sockaddr *)&sa, 0), 0);
    struct sockaddr_storage got;
    int len = sizeof(got);
    uv_tcp_getsockname(&probe, (struct sockaddr *)&got, &len);
    uint16_t port = ntohs(((struct sockaddr_in *)&got)->sin_port);
    uv_close((uv_handle_t *)&probe, NULL);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    struct exo_upstream_request rq = {.target = "/hello", .port = port};
    assert_int_equal(run(fx, &rq), 0);
    assert_int_equal(fx->done_calls, 1);
    assert_true(fx->done_rc < 0);
    assert_int_not_equal(fx->done_rc, EXO_ETIMEOUT);
}

static void test_upstream_cancel_in_flight(void **state)
{
    struct fx *fx = *state;
    fx->cancel_on_head = true;
    struct exo_upstream_request rq = {.target = "/stream"};
    assert_int_equal(run(fx, &rq), 0);
    assert_int_equal(fx->status, 200);
    assert_int_equal(fx->done_calls, 0);
    /* The server sees the client go; its stream writes fail quietly. */
    for (int i = 0; i < 20 && fx->streaming; i++)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_int_equal(fx->done_calls, 0);
}

static void test_upstream_rejects_bad_requests(void **state)
{
    struct fx *fx = *state;
    struct exo_upstream *u;
    struct exo_upstream_request bad[] = {
        {.ip = "localhost", .port = 1, .method = "GET", .target = "/"},
        {.ip = "127.0.0.1", .port = 1, .method = "GET", .target = "/a b"},
        {.ip = "127.0.0.1", .port = 1, .method = "GET", .target = "/\r\nX: y"},
        {.ip = "127.0.0.1", .port = 1, .method = "GET", .target = "nope"},
        {.ip = "127.0.0.1", .port = 1, .method = "GET", .target = "/", .token = "a\nb"},
        {.ip = "127.0.0.1", .port = 1, .method = "GET", .target = "/", .headers = "X: y"},
        {.ip = "127.0.0.1", .port = 1, .method = "GET", .target = "/", .headers = "X: y\nZ: w\r\n"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(exo_upstream_start(&fx->loop, &bad[i], &handler, fx, &u), EXO_EINVAL);
    assert_int_equal(fx->done_calls, 0);
}

/* Hostile and odd responses through the parser alone, whole and a byte at a time. */
static void test_upstream_parse_hostile_responses(void **state)
{
    struct fx *fx = *state;
    static const struct {
        const char *bytes;
        int rc;
        int status;
        const char *body;
    } cases[] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", 0, 200, "{}"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n", 0,
         200, "abc"},
        {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 1\r\n\r\nx", 0,
         404, "x"},
        {"HTTP/1.1 200 OK\r\n\r\nuntil the end", 0, 200, "until the end"}, /* close-delimited */
        {"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\ncut", EXO_EPROTO, 200, "cut"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n", EXO_EPROTO,
         200, ""},
        {"HTTP/1.1 200 OK\r\nContent-Le", EXO_EPROTO, 0, ""},
        {"SSH-2.0-OpenSSH_9.2\r\n", EXO_EPROTO, 0, ""},
        {"HTTP/1.1 0 Zero\r\nContent-Length: 1\r\n\r\nx", EXO_EPROTO, 0, ""},
        {"HTTP/1.1 199 Odd\r\n\r\nbody after an interim head", EXO_EPROTO, 0, ""},
        {"HTTP/1.1 600 Odd\r\nContent-Length: 1\r\n\r\nx", EXO_EPROTO, 0, ""},
        {"", EXO_EPROTO, 0, ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (size_t piece = 0; piece < 2; piece++) {
            fx->status = 0;
            fx->done_calls = 0;
            exo_buf_reset(&fx->body);
            assert_int_equal(
                exo_upstream_parse(cases[i].bytes, strlen(cases[i].bytes), piece, &handler, fx), 0);
            assert_int_equal(fx->done_calls, 1);
            assert_int_equal(fx->done_rc, cases[i].rc);
            assert_int_equal(fx->status, cases[i].status);
            assert_int_equal(fx->body.len, strlen(cases[i].body));
            assert_memory_equal(fx->body.data ? (const char *)fx->body.data : "", cases[i].body,
                                fx->body.len);
        }
    }
    /* A Content-Type longer than the client keeps is cut, not overrun. */
    char big[512];
    int n = snprintf(big, sizeof(big), "HTTP/1.1 200 OK\r\nContent-Type: %0300d\r\n\r\n", 7);
    assert_int_equal(exo_upstream_parse(big, (size_t)n, 0, &handler, fx), 0);
    assert_int_equal(strlen(fx->ctype), 127);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_upstream_whole_response, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upstream_post_passes_body_and_headers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_upstream_streams_pieces_as_they_come, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upstream_handler_stops_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upstream_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upstream_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upstream_cancel_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upstream_rejects_bad_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upstream_parse_hostile_responses, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
