/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for the HTTP server's connection logic, driven without a socket: the input is fed
 * to a socket-less connection in pieces and the server's routes answer synchronously, later
 * (after the next piece, as a producer on the loop would) or only when the client leaves, so
 * pipelining, chunked bodies, 100-continue, caps, and every way a request can end are reached.
 * Small caps make the limits reachable with short inputs.
 *
 * Input: byte 0 is the piece size (0: everything at once), byte 1 holds option bits (bit 0: the
 * client is not on loopback; bit 1: an API token "tok" is configured; bit 2: CORS off; bit 3: the
 * client hangs up before the server stops), the rest is what the client sends.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "api/http.h"
#include "core/buf.h"
#include "core/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uv_loop_t loop;
static bool loop_ready;
static struct exo_http_request *later; /* /later: answered after the next piece */

static void on_close_end(struct exo_http_request *req, void *ud)
{
    if (req == later)
        later = NULL;
    exo_http_end(req);
}

static void h_health(struct exo_http_request *req, void *ud)
{
    exo_http_respond(req, 200, "text/plain", "ok", 2);
}

/* Touches every accessor so that the sanitizers see what they return. */
static void h_echo(struct exo_http_request *req, void *ud)
{
    char q[64];
    size_t len;
    const char *body = exo_http_request_body(req, &len);
    const char *h = exo_http_request_header(req, "X-Test");
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "path", exo_http_request_path(req));
    cJSON_AddStringToObject(o, "query", exo_http_request_query(req));
    cJSON_AddStringToObject(o, "remote", exo_http_request_remote(req));
    if (exo_http_request_query_param(req, "q", q, sizeof(q)) == 0)
        cJSON_AddStringToObject(o, "q", q);
    if (h)
        cJSON_AddStringToObject(o, "h", h);
    cJSON_AddNumberToObject(o, "len", (double)len);
    cJSON_AddBoolToObject(o, "lo", exo_http_request_is_loopback(req));
    cJSON_AddBoolToObject(o, "nul", body[len] == '\0');
    exo_http_add_header(req, "X-Echo", exo_http_method_name(exo_http_request_method(req)));
    exo_http_respond_json(req, 200, o);
    cJSON_Delete(o);
}

/* The body, line by line, as Server-Sent Events. */
static void h_events(struct exo_http_request *req, void *ud)
{
    size_t len;
    const char *body = exo_http_request_body(req, &len);
    exo_http_sse_begin(req);
    exo_http_sse_send(req, "e", "1", body);
    exo_http_write(req, body, len);
    exo_http_end(req);
}

static void h_later(struct exo_http_request *req, void *ud)
{
    if (later)
        __builtin_trap(); /* a second request ran while the first was in flight */
    later = req;
    exo_http_request_on_close(req, on_close_end, NULL);
    exo_http_begin(req, 202, "text/plain");
}

static void h_hang(struct exo_http_request *req, void *ud)
{
    exo_http_request_on_close(req, on_close_end, NULL);
}

static void finish_later(void)
{
    struct exo_http_request *req = later;
    if (!req)
        return;
    later = NULL;
    exo_http_write(req, "done", 4);
    exo_http_end(req);
}

static void on_done(void *ud)
{
    *(bool *)ud = true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    if (!loop_ready) {
        uv_loop_init(&loop);
        loop_ready = true;
    }
    size_t piece = data[0];
    uint8_t opts = data[1];
    data += 2;
    size -= 2;

    struct exo_http_config cfg = {.max_header_bytes = 1024,
                                  .max_url_bytes = 256,
                                  .max_body_bytes = 4096,
                                  .max_queued_bytes = 8192,
                                  .api_token = (opts & 2) ? "tok" : NULL,
                                  .disable_cors = opts & 4};
    struct exo_http_server *srv = NULL;
    if (exo_http_server_start(&loop, &cfg, &srv) != 0)
        return 0;
    exo_http_route(srv, EXO_HTTP_GET, "/healthz", EXO_HTTP_ROUTE_PUBLIC, h_health, NULL);
    exo_http_route(srv, EXO_HTTP_GET | EXO_HTTP_POST | EXO_HTTP_PUT, "/echo", 0, h_echo, NULL);
    exo_http_route(srv, EXO_HTTP_POST, "/admin", EXO_HTTP_ROUTE_MUTATING, h_echo, NULL);
    exo_http_route_body_max(srv, "/admin", 16);
    exo_http_route(srv, EXO_HTTP_GET, "/a/", EXO_HTTP_ROUTE_PREFIX, h_echo, NULL);
    exo_http_route(srv, EXO_HTTP_POST, "/events", 0, h_events, NULL);
    exo_http_route(srv, EXO_HTTP_GET, "/later", 0, h_later, NULL);
    exo_http_route(srv, EXO_HTTP_GET, "/hang", 0, h_hang, NULL);

    struct exo_buf out;
    exo_buf_init(&out, 1u << 20);
    struct exo_http_conn *conn = NULL;
    if (exo_http_conn_open(srv, (opts & 1) ? "192.0.2.7" : "127.0.0.1", &out, &conn) == 0) {
        size_t off = 0;
        while (off < size) {
            size_t n = piece ? piece : size;
            if (n > size - off)
                n = size - off;
            int rc = exo_http_conn_feed(conn, data + off, n);
            if (rc == EXO_EAGAIN) {
                finish_later();
                rc = exo_http_conn_feed(conn, data + off, n);
            }
            if (rc != 0)
                break;
            off += n;
            finish_later();
        }
        if (opts & 8) {
            exo_http_conn_close(conn);
            conn = NULL;
            uv_run(&loop, UV_RUN_NOWAIT);
        }
    }
    bool done = false;
    exo_http_server_stop(srv, on_done, &done);
    exo_http_conn_close(conn);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (!done || later)
        __builtin_trap(); /* every request ended and the server went away */
    if (out.len && memcmp(out.data, "HTTP/1.1 ", 9) != 0)
        __builtin_trap();
    exo_buf_free(&out);
    return 0;
}
