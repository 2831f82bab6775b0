/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP/1.1 server every route of the daemon sits on: /healthz, the JSON API, Server-Sent
 * Events, /metrics, the OpenAI-compatible /v1 routes and the dashboard's files. It runs on the
 * daemon's libuv loop and every function here must be called from the loop thread; a producer on
 * a compute thread hands its output to the loop (uv_async_send) and writes from there.
 *
 * Requests are parsed with http-parser, under hard caps on header bytes, URL length, body size,
 * connection count and queued output, and with timeouts against clients that send slowly or not
 * at all. A handler is called once the whole body has arrived. It answers at once (one-shot
 * exo_http_respond*) or later: a request stays valid until its response is ended, even when the
 * client leaves first (exo_http_request_on_close tells the producer; writes then fail with
 * EXO_ECLOSED at no cost) or the server stops. Requests pipelined on one connection are handled
 * one at a time, so responses leave in request order.
 *
 * The same connection logic runs without a socket (exo_http_conn_open/feed): bytes in, response
 * bytes out into a buffer. The fuzz target and the unit tests drive it that way.
 *
 * docs/internals/http.md describes the design; errors are JSON in the OpenAI error shape,
 * {"error":{"message","type","param","code"}}, on every route.
 */
#ifndef EXO_API_HTTP_H
#define EXO_API_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct cJSON;
struct exo_buf;
struct exo_prom;
struct exo_http_server;
struct exo_http_request;
struct exo_http_conn;

/* Methods are bits so that a route can take several and a 405 can list them. */
enum exo_http_method {
    EXO_HTTP_GET = 1 << 0,
    EXO_HTTP_HEAD = 1 << 1,
    EXO_HTTP_POST = 1 << 2,
    EXO_HTTP_PUT = 1 << 3,
    EXO_HTTP_DELETE = 1 << 4,
    EXO_HTTP_PATCH = 1 << 5,
    EXO_HTTP_OPTIONS = 1 << 6,
};

enum exo_http_route_flags {
    /* Answered without the API token (/healthz). */
    EXO_HTTP_ROUTE_PUBLIC = 1 << 0,
    /* Changes state: without an API token only loopback clients may call it (DESIGN.md §7). */
    EXO_HTTP_ROUTE_MUTATING = 1 << 1,
    /* The path is a prefix ("/assets/") rather than an exact path. */
    EXO_HTTP_ROUTE_PREFIX = 1 << 2,
};

/* Zero fields take the defaults in brackets. */
struct exo_http_config {
    const char *listen_addr;    /* IPv4 or IPv6 literal ("0.0.0.0", "::"); NULL: no socket,
                                 * only exo_http_conn_open (tests, fuzzing) */
    uint16_t port;              /* 0: an ephemeral port (see exo_http_server_port) */
    size_t max_header_bytes;    /* request line + headers [16 KiB]; beyond: 431 */
    size_t max_url_bytes;       /* request target [8 KiB, at most 65535]; beyond: 414 */
    size_t max_body_bytes;      /* per request unless the route sets its own [1 MiB]: 413 */
    uint32_t max_connections;   /* open at once [1024]; beyond: 503 and close */
    uint32_t header_timeout_ms; /* from a request's first byte to its last header, and the
                                 * longest pause inside a body [10 s]; beyond: 408 */
    uint32_t idle_timeout_ms;   /* keep-alive connection with no request [60 s] */
    size_t max_queued_bytes;    /* unsent response bytes per connection [16 MiB]; a write
                                 * beyond it drops the client as too slow */
    const char *api_token;      /* NULL or "": no token; copied */
    bool disable_cors;          /* CORS is on unless set: Access-Control-Allow-Origin: * */
};

struct exo_http_stats {
    uint64_t connections_open;
    uint64_t connections_total;    /* accepted since start */
    uint64_t connections_rejected; /* turned away at the connection cap */
    uint64_t responses_2xx, responses_3xx, responses_4xx, responses_5xx;
    uint64_t bytes_in, bytes_out;
    uint64_t parse_errors; /* malformed or oversized request heads */
    uint64_t timeouts;     /* 408s: header or body too slow */
};

/* The route's handler, called once per request when the body is complete. The request is
 * borrowed by the handler until it answers: one exo_http_respond* call, or exo_http_begin ...
 * exo_http_end, now or later. */
typedef void (*exo_http_handler_cb)(struct exo_http_request *req, void *ud);

/* The client went away (or the server stopped) before the response ended. Called from the loop,
 * never from inside an exo_http_* call. req stays valid: the producer still ends it. */
typedef void (*exo_http_close_cb)(struct exo_http_request *req, void *ud);

typedef void (*exo_http_done_cb)(void *ud);

/* Server lifecycle. ------------------------------------------------------------------------- */

/* Listen on cfg's address (cfg and its strings are copied) with loop (borrowed; must outlive the
 * server). *ret_srv is owned by the caller and released by exo_http_server_stop. Returns 0,
 * EXO_EINVAL (bad address or config), EXO_ENOMEM, or the bind/listen error mapped from errno
 * (EXO_EBUSY when the port is taken). Nothing is left behind on failure, except in the unlikely
 * case that libuv refuses the bound socket: that handle is released on the loop's next turn. */
int exo_http_server_start(uv_loop_t *loop, const struct exo_http_config *cfg,
                          struct exo_http_server **ret_srv);

/* Close the listener and every connection (requests still in flight get their close callback),
 * then call done(ud) from the loop and free the server. Consumes srv; accepts NULL. */
void exo_http_server_stop(struct exo_http_server *srv, exo_http_done_cb done, void *ud);

/* The bound port (useful with port 0), or 0 without a listener. */
uint16_t exo_http_server_port(const struct exo_http_server *srv);

void exo_http_server_stats(const struct exo_http_server *srv, struct exo_http_stats *ret_stats);

/* Write the stats as exo_http_* families for /metrics. prom is borrowed. */
int exo_http_stats_prom(const struct exo_http_stats *stats, struct exo_prom *prom);

/* Routing. ---------------------------------------------------------------------------------- */

/* Route the methods (a mask of enum exo_http_method; GET routes also answer HEAD) on path (copied;
 * must start with '/') to handler with ud (borrowed). An exact path wins over a prefix and a
 * longer prefix over a shorter one; a path that matches but not for this method gets 405 with
 * Allow, no match at all 404. OPTIONS is answered by the server (CORS preflight). Returns 0,
 * EXO_EINVAL, EXO_EEXIST (the same path already routes one of these methods) or EXO_ENOMEM. */
int exo_http_route(struct exo_http_server *srv, unsigned methods, const char *path, unsigned flags,
                   exo_http_handler_cb handler, void *ud);

/* Body cap for every route registered with exactly this path (borrowed), in place of
 * max_body_bytes. 0, EXO_EINVAL or EXO_ENOENT. */
int exo_http_route_body_max(struct exo_http_server *srv, const char *path, size_t max);

/* Requests. Every pointer returned is borrowed from req and valid until its response ends. ---- */

enum exo_http_method exo_http_request_method(const struct exo_http_request *req);

/* "GET", "POST", ... */
const char *exo_http_method_name(enum exo_http_method method);

/* The path, percent-decoded; never holds NUL, "." or ".." segments (those are answered 400). */
const char *exo_http_request_path(const struct exo_http_request *req);

/* The raw query string after '?', without it; "" when there is none. */
const char *exo_http_request_query(const struct exo_http_request *req);

/* The first query parameter called name, percent-decoded ('+' is a space) into buf (caller's,
 * buf_len bytes, NUL-terminated). 0, EXO_ENOENT, EXO_ETOOBIG (does not fit) or EXO_EFORMAT (bad
 * escape or a NUL). */
int exo_http_request_query_param(const struct exo_http_request *req, const char *name, char *buf,
                                 size_t buf_len);

/* The first header called name (case-insensitive), or NULL. */
const char *exo_http_request_header(const struct exo_http_request *req, const char *name);

/* The body (always followed by a NUL that *ret_len does not count, so JSON can be parsed in
 * place). Chunked bodies arrive de-chunked. */
const void *exo_http_request_body(const struct exo_http_request *req, size_t *ret_len);

/* The client's address as text ("127.0.0.1", "::1"). */
const char *exo_http_request_remote(const struct exo_http_request *req);

bool exo_http_request_is_loopback(const struct exo_http_request *req);

/* Whether the client has gone (every write would return EXO_ECLOSED). */
bool exo_http_request_closed(const struct exo_http_request *req);

/* Call cb(req, ud) (ud borrowed) if the client goes away before the response ends. 0, or
 * EXO_ECLOSED when it is already gone (no callback will come). */
int exo_http_request_on_close(struct exo_http_request *req, exo_http_close_cb cb, void *ud);

/* Responses. ---------------------------------------------------------------------------------
 * Every call that ends a response (respond*, end) releases req, whatever it returns, except
 * EXO_EINVAL, which means a misuse that sent nothing and leaves req with the caller. A response
 * to a client that has gone returns EXO_ECLOSED; that is normal, not a failure. */

/* Add a response header before the response starts. Name and value are copied; the framing
 * headers (Content-Length, Transfer-Encoding, Connection) belong to the server. 0, EXO_EINVAL,
 * EXO_ETOOBIG (8 KiB of extra headers) or EXO_ENOMEM. */
int exo_http_add_header(struct exo_http_request *req, const char *name, const char *value);

/* A whole response: status 200-599, content_type (borrowed; NULL for none), len bytes of body
 * (borrowed). HEAD requests get the headers only. */
int exo_http_respond(struct exo_http_request *req, int status, const char *content_type,
                     const void *body, size_t len);

/* The same as application/json: a cJSON tree (borrowed) or text that is already JSON. */
int exo_http_respond_json(struct exo_http_request *req, int status, const struct cJSON *json);
int exo_http_respond_json_str(struct exo_http_request *req, int status, const char *json);

/* A JSON error: {"error":{"message":message,"type":"<status text>","param":null,"code":status}}. */
int exo_http_respond_error(struct exo_http_request *req, int status, const char *message);

/* Start a streamed response (chunked; to an HTTP/1.0 client, delimited by closing). */
int exo_http_begin(struct exo_http_request *req, int status, const char *content_type);

/* One piece of a streamed response (data borrowed). 0, EXO_ECLOSED (client gone, or too slow:
 * over max_queued_bytes), EXO_EINVAL (not streaming) or EXO_ENOMEM. */
int exo_http_write(struct exo_http_request *req, const void *data, size_t len);

/* End the response (a request never answered gets a 500) and release req. */
int exo_http_end(struct exo_http_request *req);

/* Server-Sent Events: begin a text/event-stream response ... */
int exo_http_sse_begin(struct exo_http_request *req);

/* ... and send one event. event and id (NULL to omit) must be one line; data (NULL for none) may
 * hold several lines (\n, \r\n or \r), each sent as its own "data:" line. */
int exo_http_sse_send(struct exo_http_request *req, const char *event, const char *id,
                      const char *data);

/* Socket-less connections, for tests and fuzzing. ---------------------------------------------
 * They behave like a client on remote_ip: every response byte is appended to out. */

/* out (borrowed) must outlive the connection; remote_ip is an IPv4/IPv6 literal (copied).
 * *ret_conn is owned by the caller until exo_http_conn_close. 0, EXO_EINVAL, EXO_ECLOSED (server
 * stopping), EXO_EBUSY (connection cap) or EXO_ENOMEM. */
int exo_http_conn_open(struct exo_http_server *srv, const char *remote_ip, struct exo_buf *out,
                       struct exo_http_conn **ret_conn);

/* Bytes from the client (borrowed). 0, EXO_ECLOSED (the server closed the connection) or
 * EXO_EAGAIN (the input buffer is full while a request is in flight; finish it and retry). */
int exo_http_conn_feed(struct exo_http_conn *conn, const void *data, size_t len);

/* Whether the server has closed the connection (after Connection: close, an error, a stop). */
bool exo_http_conn_closed(const struct exo_http_conn *conn);

/* The client hangs up: consumes conn. Accepts NULL. */
void exo_http_conn_close(struct exo_http_conn *conn);

#endif
