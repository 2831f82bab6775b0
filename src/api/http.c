/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP/1.1 server (see http.h for the contract and docs/internals/http.md for the design).
 *
 * Threads: everything here runs on the loop thread that owns the server; nothing is locked.
 *
 * A connection is a small state machine over http-parser, which is paused at two points of every
 * request: when the head is complete (so routing, the token check, the body cap and
 * "Expect: 100-continue" are decided before any body byte is stored) and when the message is
 * complete (so the handler runs outside the parser's callbacks). Parsing stays paused while a
 * request is in flight; later pipelined bytes wait in the input buffer and the socket stops being
 * read when that buffer is full. That is what keeps responses in request order and bounds the
 * memory a client can make us hold.
 *
 *   HEAD ---head complete---> BODY ---message complete---> ACTIVE ---response ended---> HEAD
 *     \                         \                             \
 *      `--error, timeout, Connection: close, stop---------------`--> DRAIN --> CLOSED
 *
 * DRAIN sends what is queued, shuts down our side and reads (discarding) until the client closes
 * or a short linger ends, so that a response is not lost to a reset when the client had sent more.
 *
 * Lifetimes: a connection is freed when its libuv handles have closed (always asynchronously) and
 * nobody else holds it (a socket-less connection is also held by its caller). A request belongs to
 * its connection until it is dispatched to a handler; from then on it belongs to the producer until
 * the response ends. If the connection closes first, the request is detached (req->conn = NULL,
 * writes return EXO_ECLOSED) and its close callback is called from the connection's handle-close
 * callback, so it never runs inside an exo_http_* call that the producer is making.
 */
#include "api/http.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <http_parser.h>

#include "api/json.h"
#include "api/prom.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/error.h"

#define DEFAULT_HEADER_BYTES (16u * 1024)
#define DEFAULT_URL_BYTES    (8u * 1024)
#define DEFAULT_BODY_BYTES   (1024u * 1024)
#define DEFAULT_CONNECTIONS  1024u
#define DEFAULT_HEADER_MS    10000u
#define DEFAULT_IDLE_MS      60000u
#define DEFAULT_QUEUED_BYTES (16u * 1024 * 1024)
#define MAX_URL_BYTES        65535u /* http_parser_parse_url keeps 16-bit offsets */
#define MAX_HEADERS          100u
#define MAX_EXTRA_HEADERS    (8u * 1024)
#define READ_CHUNK           (64u * 1024)
#define IN_HIGH              (64u * 1024) /* stop reading while a request is in flight */
#define IN_MAX               (IN_HIGH + READ_CHUNK)
#define LINGER_MS            2000u
#define LISTEN_BACKLOG       1024

#define ALL_METHODS                                                                  \
    (EXO_HTTP_GET | EXO_HTTP_HEAD | EXO_HTTP_POST | EXO_HTTP_PUT | EXO_HTTP_DELETE | \
     EXO_HTTP_PATCH | EXO_HTTP_OPTIONS)
#define ALL_ROUTE_FLAGS (EXO_HTTP_ROUTE_PUBLIC | EXO_HTTP_ROUTE_MUTATING | EXO_HTTP_ROUTE_PREFIX)

struct route {
    char *path; /* owned */
    size_t path_len;
    unsigned methods;
    unsigned flags;
    size_t body_max; /* 0: the server's max_body_bytes */
    exo_http_handler_cb handler;
    void *ud;
};

enum phase {
    PHASE_HEAD,   /* reading a request head (or waiting for one) */
    PHASE_BODY,   /* head accepted, reading the body */
    PHASE_ACTIVE, /* a handler owns the request; parsing is paused */
    PHASE_DRAIN,  /* no more requests: flush, shut down, linger */
    PHASE_CLOSED, /* handles closing or closed */
};

enum timer_kind { TIMER_NONE, TIMER_HEADER, TIMER_IDLE, TIMER_BODY, TIMER_LINGER };

enum parse_event { EVENT_NONE, EVENT_HEADERS, EVENT_MESSAGE };

enum header_cb { HCB_NONE, HCB_FIELD, HCB_VALUE };

enum resp_state { RESP_NONE, RESP_STREAMING, RESP_DONE };

struct exo_http_request {
    struct exo_http_conn *conn;      /* NULL once the connection is gone */
    struct exo_http_conn *orphan_of; /* the closed connection that still owes us on_close */
    enum exo_http_method method;
    bool http10;
    bool keep_alive;
    bool head_only;
    bool dispatched; /* handed to a handler (or to the server's own reply) */
    bool url_done;
    bool headers_done;
    enum resp_state resp;
    bool chunked;      /* writes are framed as chunks */
    bool body_allowed; /* writes carry body bytes (not HEAD, 204 or 304) */
    int reject_status; /* decided at the head, answered at message complete */
    unsigned allow;    /* methods routed on this path */
    exo_http_handler_cb handler;
    void *handler_ud;
    exo_http_close_cb close_cb;
    void *close_ud;

    struct exo_buf target;  /* request target as received */
    char *strings;          /* owned: decoded path, NUL, raw query, NUL */
    const char *query;      /* into strings */
    struct exo_buf headers; /* "name\0value\0" pairs */
    uint32_t name_off[MAX_HEADERS];
    uint32_t value_off[MAX_HEADERS];
    unsigned n_headers;
    enum header_cb last_cb;
    struct exo_buf body;
    struct exo_buf extra; /* response headers added by the handler, as wire lines */

    char remote[INET6_ADDRSTRLEN];
    bool loopback;
};

struct exo_http_conn {
    struct exo_http_server *srv; /* NULL once the handles have closed */
    struct exo_http_conn *prev, *next;
    int refs;         /* 1 for the handles, 1 more for a socket-less connection's caller */
    int handles_open; /* timer, plus the socket */
    bool has_tcp;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shutdown;
    struct exo_buf *sink; /* socket-less: borrowed output */

    enum phase phase;
    enum timer_kind timer_kind;
    bool reading;
    bool in_process;
    bool msg_begun; /* the current request's first byte has been parsed */
    uint64_t n_requests;
    http_parser parser;
    enum parse_event event;
    int fail_status; /* set by a parser callback that refused the input */
    struct exo_buf in;
    size_t in_off;
    size_t head_bytes; /* of the request being read, against max_header_bytes */

    struct exo_http_request *req;    /* being read, or in flight */
    struct exo_http_request *orphan; /* detached in flight request owed its close callback */

    char remote[INET6_ADDRSTRLEN];
    bool loopback;
};

struct exo_http_server {
    uv_loop_t *loop;
    struct exo_http_config cfg; /* defaults applied; api_token points at token */
    char *token;                /* owned; NULL when none */
    size_t token_len;
    uint16_t port;
    uv_tcp_t listener; /* always initialised (without a socket when not listening), so that
                        * closing it gives stop its asynchronous completion */
    uv_timer_t retry;  /* accepting again after an allocation failure */
    struct route *routes;
    size_t n_routes;
    struct exo_http_conn *conns;
    uint32_t n_conns;
    unsigned pending; /* handles closing that stop must wait for: listener, retry, rejects */
    bool stopping;
    exo_http_done_cb done;
    void *done_ud;
    struct exo_http_stats stats;
    char read_buf[READ_CHUNK]; /* shared by all connections: each read is consumed at once */
};

struct write_req {
    uv_write_t req;
    struct exo_http_conn *conn;
    uint8_t *data; /* owned */
    size_t len;
};

struct reject {
    uv_tcp_t tcp;
    struct exo_http_server *srv;
};

static void process(struct exo_http_conn *c);
static void conn_close(struct exo_http_conn *c);

/* Small helpers. ---------------------------------------------------------------------------- */

static const struct {
    enum exo_http_method method;
    const char *name;
} method_names[] = {
    {EXO_HTTP_GET, "GET"},         {EXO_HTTP_HEAD, "HEAD"},     {EXO_HTTP_POST, "POST"},
    {EXO_HTTP_PUT, "PUT"},         {EXO_HTTP_DELETE, "DELETE"}, {EXO_HTTP_PATCH, "PATCH"},
    {EXO_HTTP_OPTIONS, "OPTIONS"},
};

static enum exo_http_method method_from_parser(unsigned m)
{
    switch (m) {
    case HTTP_GET:
        return EXO_HTTP_GET;
    case HTTP_HEAD:
        return EXO_HTTP_HEAD;
    case HTTP_POST:
        return EXO_HTTP_POST;
    case HTTP_PUT:
        return EXO_HTTP_PUT;
    case HTTP_DELETE:
        return EXO_HTTP_DELETE;
    case HTTP_PATCH:
        return EXO_HTTP_PATCH;
    case HTTP_OPTIONS:
        return EXO_HTTP_OPTIONS;
    default:
        return 0;
    }
}

/* "GET, HEAD, POST, OPTIONS": GET implies HEAD, and OPTIONS is always answered. */
static void allow_list(unsigned methods, char *out, size_t cap)
{
    if (methods & EXO_HTTP_GET)
        methods |= EXO_HTTP_HEAD;
    methods |= EXO_HTTP_OPTIONS;
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof(method_names) / sizeof(method_names[0]); i++) {
        if (!(methods & method_names[i].method))
            continue;
        int n = snprintf(out + len, cap - len, "%s%s", len ? ", " : "", method_names[i].name);
        if (n < 0 || (size_t)n >= cap - len)
            return;
        len += (size_t)n;
    }
}

static const char *status_text(int status)
{
    const char *s = http_status_str((enum http_status)status);
    return s[0] == '<' ? "Unknown" : s;
}

/* What the server says for its own errors; handlers pass their own message. */
static const char *status_message(int status)
{
    switch (status) {
    case 400:
        return "malformed request";
    case 401:
        return "a valid API token is required (Authorization: Bearer <token>)";
    case 403:
        return "this route answers only loopback clients when no API token is configured";
    case 404:
        return "no such route";
    case 405:
        return "method not allowed on this route";
    case 408:
        return "the request did not arrive in time";
    case 413:
        return "request body too large";
    case 414:
        return "request target too long";
    case 417:
        return "unsupported expectation";
    case 431:
        return "request header fields too large";
    case 501:
        return "method not implemented";
    case 503:
        return "too many connections";
    case 505:
        return "HTTP version not supported";
    default:
        return "internal error";
    }
}

static bool is_tchar(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* A header value we may put on the wire: visible characters, spaces and tabs. */
static bool valid_field_value(const char *s)
{
    for (const unsigned char *q = (const unsigned char *)s; *q; q++)
        if ((*q < 0x20 && *q != '\t') || *q == 0x7f)
            return false;
    return true;
}

static int hex_value(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Percent-decode n bytes of s into out (cap bytes with the NUL); '+' is a space when plus is set.
 * A decoded NUL is refused: every consumer treats the result as a C string. */
static int pct_decode(const char *s, size_t n, bool plus, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '%') {
            if (n - i < 3)
                return EXO_EFORMAT;
            int hi = hex_value((unsigned char)s[i + 1]), lo = hex_value((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0)
                return EXO_EFORMAT;
            ch = (unsigned char)(hi * 16 + lo);
            i += 2;
        } else if (plus && ch == '+') {
            ch = ' ';
        }
        if (ch == '\0')
            return EXO_EFORMAT;
        if (o + 1 >= cap)
            return EXO_ETOOBIG;
        out[o++] = (char)ch;
    }
    if (cap == 0)
        return EXO_ETOOBIG;
    out[o] = '\0';
    return 0;
}

/* "." and ".." segments are refused rather than resolved: clients resolve them before sending,
 * and a file-serving route must never see a path that climbs out of its directory. */
static bool has_dot_segment(const char *path)
{
    for (const char *seg = path; seg; seg = strchr(seg + 1, '/')) {
        const char *s = seg + 1;
        if (s[0] == '.' && (s[1] == '/' || s[1] == '\0' || (s[1] == '.' && (s[2] == '/' || !s[2]))))
            return true;
    }
    return false;
}

/* Comparison whose time depends only on the expected token's length. */
static bool token_equal(const char *given, size_t given_len, const char *want, size_t want_len)
{
    volatile unsigned char diff = given_len != want_len;
    for (size_t i = 0; i < want_len; i++)
        diff |= (unsigned char)want[i] ^ (unsigned char)(i < given_len ? given[i] : 0);
    return diff == 0;
}

/* {"error":{"message":...,"type":"not_found","param":null,"code":404}}: the OpenAI error shape,
 * which every route uses so that one client-side check fits all. */
static void put_error_body(struct exo_buf *b, int status, const char *message)
{
    char type[64];
    const char *text = status_text(status);
    size_t n = 0;
    for (; text[n] && n + 1 < sizeof(type); n++) {
        char ch = text[n];
        type[n] = (ch == ' ' || ch == '-') ? '_' : (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
    }
    type[n] = '\0';
    exo_buf_put(b, "{\"error\":{\"message\":", 20);
    exo_json_put_string(b, message, strlen(message));
    exo_buf_printf(b, ",\"type\":\"%s\",\"param\":null,\"code\":%d}}", type, status);
}

enum framing { FRAME_LENGTH, FRAME_CHUNKED, FRAME_TO_CLOSE, FRAME_NONE };

struct head {
    int status;
    const char *content_type; /* NULL: none */
    enum framing framing;
    size_t length; /* for FRAME_LENGTH */
    bool keep_alive;
    bool http10;
    bool cors;
    const struct exo_buf *extra; /* NULL: none */
};

static void put_head(struct exo_buf *b, const struct head *h)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    exo_buf_printf(b, "HTTP/1.1 %d %s\r\nDate: %s, %02d %s %d %02d:%02d:%02d GMT\r\n", h->status,
                   status_text(h->status), days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
                   tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    exo_buf_printf(b, "Server: exo/%s\r\n", EXO_VERSION);
    if (h->content_type)
        exo_buf_printf(b, "Content-Type: %s\r\n", h->content_type);
    if (h->framing == FRAME_LENGTH)
        exo_buf_printf(b, "Content-Length: %zu\r\n", h->length);
    else if (h->framing == FRAME_CHUNKED)
        exo_buf_printf(b, "Transfer-Encoding: chunked\r\n");
    if (!h->keep_alive)
        exo_buf_printf(b, "Connection: close\r\n");
    else if (h->http10)
        exo_buf_printf(b, "Connection: keep-alive\r\n");
    if (h->cors)
        exo_buf_printf(b, "Access-Control-Allow-Origin: *\r\n");
    if (h->extra && h->extra->len)
        exo_buf_put(b, h->extra->data, h->extra->len);
    exo_buf_put(b, "\r\n", 2);
}

/* A complete error response that closes the connection, for errors that have no request object
 * to answer through. */
static void put_error_response(struct exo_buf *b, int status, bool cors)
{
    struct exo_buf body;
    exo_buf_init(&body, 0);
    put_error_body(&body, status, status_message(status));
    struct head h = {.status = status,
                     .content_type = "application/json",
                     .framing = FRAME_LENGTH,
                     .length = body.len,
                     .cors = cors};
    put_head(b, &h);
    exo_buf_put(b, body.data, body.len);
    if (body.err && !b->err)
        b->err = body.err;
    exo_buf_free(&body);
}

static void count_status(struct exo_http_server *srv, int status)
{
    switch (status / 100) {
    case 2:
        srv->stats.responses_2xx++;
        break;
    case 3:
        srv->stats.responses_3xx++;
        break;
    case 4:
        srv->stats.responses_4xx++;
        break;
    default:
        srv->stats.responses_5xx++;
        break;
    }
}

/* Addresses. --------------------------------------------------------------------------------- */

/* Text and loopback-ness of a peer; IPv4-mapped IPv6 addresses (from a dual-stack listener) are
 * shown as the IPv4 address they carry. */
static void describe_addr(const struct sockaddr_storage *ss, char *text, size_t cap,
                          bool *ret_loopback)
{
    *ret_loopback = false;
    snprintf(text, cap, "unknown");
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        uv_ip4_name(in, text, cap);
        *ret_loopback = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        const uint8_t *a = in6->sin6_addr.s6_addr;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            snprintf(text, cap, "%u.%u.%u.%u", a[12], a[13], a[14], a[15]);
            *ret_loopback = a[12] == 127;
        } else {
            uv_ip6_name(in6, text, cap);
            *ret_loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
        }
    }
}

static int parse_addr(const char *text, uint16_t port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (uv_ip4_addr(text, port, (struct sockaddr_in *)ss) == 0)
        return 0;
    if (uv_ip6_addr(text, port, (struct sockaddr_in6 *)ss) == 0)
        return 0;
    return EXO_EINVAL;
}

/* Requests. ---------------------------------------------------------------------------------- */

static struct exo_http_request *req_new(struct exo_http_conn *c)
{
    struct exo_http_request *req = exo_calloc(1, sizeof(*req));
    if (!req)
        return NULL;
    req->conn = c;
    exo_buf_init(&req->target, c->srv->cfg.max_url_bytes);
    exo_buf_init(&req->headers, c->srv->cfg.max_header_bytes);
    exo_buf_init(&req->body, c->srv->cfg.max_body_bytes);
    exo_buf_init(&req->extra, MAX_EXTRA_HEADERS);
    memcpy(req->remote, c->remote, sizeof(req->remote));
    req->loopback = c->loopback;
    req->query = "";
    return req;
}

static void req_free(struct exo_http_request *req)
{
    if (!req)
        return;
    exo_buf_free(&req->target);
    exo_buf_free(&req->headers);
    exo_buf_free(&req->body);
    exo_buf_free(&req->extra);
    exo_free(req->strings);
    exo_free(req);
}

/* Split the target into the decoded path and the raw query. Returns 0 or an HTTP status. */
static int parse_target(struct exo_http_request *req)
{
    struct http_parser_url u;
    http_parser_url_init(&u);
    const char *t = (const char *)req->target.data;
    if (!req->target.len || http_parser_parse_url(t, req->target.len, 0, &u) != 0 ||
        !(u.field_set & (1 << UF_PATH)))
        return 400;
    const char *path = t + u.field_data[UF_PATH].off;
    size_t path_len = u.field_data[UF_PATH].len;
    const char *query = "";
    size_t query_len = 0;
    if (u.field_set & (1 << UF_QUERY)) {
        query = t + u.field_data[UF_QUERY].off;
        query_len = u.field_data[UF_QUERY].len;
    }
    if (path[0] != '/')
        return 400;
    req->strings = exo_malloc(path_len + query_len + 2);
    if (!req->strings)
        return 500;
    if (pct_decode(path, path_len, false, req->strings, path_len + 1) != 0 ||
        has_dot_segment(req->strings))
        return 400;
    char *q = req->strings + strlen(req->strings) + 1;
    memcpy(q, query, query_len);
    q[query_len] = '\0';
    req->query = q;
    return 0;
}

/* The route for path and method: the exact pattern or else the longest prefix, and among the
 * routes of that pattern the one that takes the method. *ret_allow gets every method the pattern
 * takes (0: no pattern matches). */
static const struct route *route_lookup(const struct exo_http_server *srv, const char *path,
                                        enum exo_http_method method, unsigned *ret_allow)
{
    const struct route *best = NULL;
    size_t best_rank = 0;
    for (size_t i = 0; i < srv->n_routes; i++) {
        const struct route *r = &srv->routes[i];
        bool prefix = r->flags & EXO_HTTP_ROUTE_PREFIX;
        if (prefix ? strncmp(path, r->path, r->path_len) != 0 : strcmp(path, r->path) != 0)
            continue;
        size_t rank = prefix ? r->path_len : SIZE_MAX;
        if (!best || rank > best_rank) {
            best = r;
            best_rank = rank;
        }
    }
    *ret_allow = 0;
    if (!best)
        return NULL;
    const struct route *hit = NULL, *get = NULL;
    for (size_t i = 0; i < srv->n_routes; i++) {
        const struct route *r = &srv->routes[i];
        if ((r->flags & EXO_HTTP_ROUTE_PREFIX) != (best->flags & EXO_HTTP_ROUTE_PREFIX) ||
            strcmp(r->path, best->path) != 0)
            continue;
        *ret_allow |= r->methods;
        if (r->methods & method)
            hit = r;
        if (r->methods & EXO_HTTP_GET)
            get = r;
    }
    return hit ? hit : method == EXO_HTTP_HEAD ? get : NULL;
}

static bool authorized(const struct exo_http_server *srv, const struct exo_http_request *req)
{
    const char *v = exo_http_request_header(req, "Authorization");
    if (!v)
        return false;
    if (strncasecmp(v, "Bearer", 6) != 0 || (v[6] != ' ' && v[6] != '\t'))
        return false;
    v += 6;
    v += strspn(v, " \t");
    return token_equal(v, strlen(v), srv->token, srv->token_len);
}

/* Routing, authorization and method policy for a complete head. 0 or an HTTP status. */
static int route_check(struct exo_http_server *srv, struct exo_http_request *req)
{
    const struct route *hit =
        route_lookup(srv, exo_http_request_path(req), req->method, &req->allow);
    if (req->method == EXO_HTTP_OPTIONS)
        return req->allow ? 0 : 404;
    bool public = hit && (hit->flags & EXO_HTTP_ROUTE_PUBLIC);
    if (srv->token && !public && !authorized(srv, req))
        return 401;
    if (!req->allow)
        return 404;
    if (!hit)
        return 405;
    if ((hit->flags & EXO_HTTP_ROUTE_MUTATING) && !srv->token && !req->loopback)
        return 403;
    req->handler = hit->handler;
    req->handler_ud = hit->ud;
    req->body.max = hit->body_max ? hit->body_max : srv->cfg.max_body_bytes;
    return 0;
}

/* Output. ------------------------------------------------------------------------------------ */

static void on_write(uv_write_t *w, int status)
{
    struct write_req *wr = (struct write_req *)w;
    struct exo_http_conn *c = wr->conn;
    if (status == 0)
        c->srv->stats.bytes_out += wr->len;
    exo_free(wr->data);
    exo_free(wr);
    if (status < 0)
        conn_close(c);
}

/* Queue b's bytes on the connection; consumes b. A failure closes the connection, since a
 * response cut in the middle cannot be repaired. */
static int conn_send(struct exo_http_conn *c, struct exo_buf *b)
{
    int rc = b->err;
    if (!rc && b->len > UINT32_MAX)
        rc = EXO_ETOOBIG;
    if (rc) {
        exo_buf_free(b);
        conn_close(c);
        return rc;
    }
    if (c->sink) {
        exo_buf_put(c->sink, b->data, b->len);
        c->srv->stats.bytes_out += b->len;
        exo_buf_free(b);
        return 0;
    }
    struct write_req *wr = exo_malloc(sizeof(*wr));
    if (!wr) {
        exo_buf_free(b);
        conn_close(c);
        return EXO_ENOMEM;
    }
    wr->conn = c;
    wr->data = b->data;
    wr->len = b->len;
    uv_buf_t ub = uv_buf_init((char *)wr->data, (unsigned)wr->len);
    if (uv_write(&wr->req, (uv_stream_t *)&c->tcp, &ub, 1, on_write) != 0) {
        exo_free(wr->data);
        exo_free(wr);
        conn_close(c);
        return EXO_ECLOSED;
    }
    return 0;
}

/* Connections. ------------------------------------------------------------------------------- */

static void srv_maybe_done(struct exo_http_server *srv)
{
    if (!srv->stopping || srv->pending || srv->n_conns)
        return;
    exo_http_done_cb done = srv->done;
    void *ud = srv->done_ud;
    for (size_t i = 0; i < srv->n_routes; i++)
        exo_free(srv->routes[i].path);
    exo_free(srv->routes);
    exo_free(srv->token);
    exo_free(srv);
    if (done)
        done(ud);
}

static void conn_unref(struct exo_http_conn *c)
{
    if (--c->refs > 0)
        return;
    exo_buf_free(&c->in);
    exo_free(c);
}

static void on_conn_handle_closed(uv_handle_t *h)
{
    struct exo_http_conn *c = h->data;
    if (--c->handles_open > 0)
        return;
    struct exo_http_server *srv = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->n_conns--;
    c->srv = NULL;
    struct exo_http_request *orphan = c->orphan;
    if (orphan) {
        c->orphan = NULL;
        orphan->orphan_of = NULL;
        if (orphan->close_cb)
            orphan->close_cb(orphan, orphan->close_ud);
    }
    conn_unref(c);
    srv_maybe_done(srv);
}

/* Close now: in-flight requests are detached (their close callbacks come from the handle-close
 * callback), everything else the connection holds goes with it. */
static void conn_close(struct exo_http_conn *c)
{
    if (c->phase == PHASE_CLOSED)
        return;
    c->phase = PHASE_CLOSED;
    struct exo_http_request *req = c->req;
    c->req = NULL;
    if (req && req->dispatched) {
        req->conn = NULL;
        req->orphan_of = c;
        c->orphan = req;
    } else {
        req_free(req);
    }
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
    if (c->has_tcp)
        uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
}

static void on_timer(uv_timer_t *t);

static void timer_set(struct exo_http_conn *c, enum timer_kind kind, uint64_t ms, bool restart)
{
    if (c->timer_kind == kind && !restart)
        return;
    c->timer_kind = kind;
    if (kind == TIMER_NONE)
        uv_timer_stop(&c->timer);
    else
        uv_timer_start(&c->timer, on_timer, ms, 0);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct exo_http_conn *c = h->data;
    *buf = uv_buf_init(c->srv->read_buf, sizeof(c->srv->read_buf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void set_reading(struct exo_http_conn *c, bool want)
{
    if (!c->has_tcp || want == c->reading)
        return;
    if (!want) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    } else if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) {
        c->reading = true;
    } else {
        conn_close(c);
    }
}

/* Timers and reading for the phase the connection is now in. */
static void conn_arm(struct exo_http_conn *c)
{
    if (c->phase >= PHASE_DRAIN)
        return;
    const struct exo_http_config *cfg = &c->srv->cfg;
    switch (c->phase) {
    case PHASE_HEAD:
        if (c->msg_begun || c->n_requests == 0)
            timer_set(c, TIMER_HEADER, cfg->header_timeout_ms, false);
        else
            timer_set(c, TIMER_IDLE, cfg->idle_timeout_ms, false);
        break;
    case PHASE_BODY:
        timer_set(c, TIMER_BODY, cfg->header_timeout_ms, true);
        break;
    default:
        timer_set(c, TIMER_NONE, 0, false);
        break;
    }
    set_reading(c, c->phase != PHASE_ACTIVE || c->in.len - c->in_off < IN_HIGH);
}

static void on_shutdown(uv_shutdown_t *sd, int status)
{
    struct exo_http_conn *c = sd->data;
    if (c->phase != PHASE_DRAIN)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    timer_set(c, TIMER_LINGER, LINGER_MS, true);
    set_reading(c, true);
}

/* No more requests on this connection: let queued output go, then close. The flush is bounded
 * by the idle timeout, the linger after it by LINGER_MS. */
static void conn_drain(struct exo_http_conn *c)
{
    if (c->phase >= PHASE_DRAIN)
        return;
    c->phase = PHASE_DRAIN;
    if (!c->has_tcp) {
        conn_close(c);
        return;
    }
    timer_set(c, TIMER_LINGER, c->srv->cfg.idle_timeout_ms, true);
    c->shutdown.data = c;
    if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_shutdown) != 0)
        conn_close(c);
}

/* An error answered without a request object (the head could not be parsed, or timed out), and
 * the end of the connection. */
static void conn_fail(struct exo_http_conn *c, int status)
{
    struct exo_buf b;
    exo_buf_init(&b, 0);
    put_error_response(&b, status, !c->srv->cfg.disable_cors);
    count_status(c->srv, status);
    conn_send(c, &b);
    conn_drain(c);
}

static void on_timer(uv_timer_t *t)
{
    struct exo_http_conn *c = t->data;
    enum timer_kind kind = c->timer_kind;
    c->timer_kind = TIMER_NONE;
    if ((kind == TIMER_HEADER && c->msg_begun) || kind == TIMER_BODY) {
        c->srv->stats.timeouts++;
        conn_fail(c, 408);
    } else {
        conn_close(c);
    }
}

static struct exo_http_conn *conn_new(struct exo_http_server *srv)
{
    struct exo_http_conn *c = exo_calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->srv = srv;
    c->refs = 1;
    exo_buf_init(&c->in, IN_MAX);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    uv_timer_init(srv->loop, &c->timer);
    c->timer.data = c;
    c->handles_open = 1;
    c->next = srv->conns;
    if (c->next)
        c->next->prev = c;
    srv->conns = c;
    srv->n_conns++;
    srv->stats.connections_total++;
    return c;
}

/* Parser callbacks: they only collect bytes and raise events; decisions are made in process(). */

static int refuse(struct exo_http_conn *c, int status)
{
    c->fail_status = status;
    return -1;
}

/* Map a buffer error to the status that answers it. */
static int refuse_buf(struct exo_http_conn *c, int err, int too_big_status)
{
    return refuse(c, err == EXO_ETOOBIG ? too_big_status : 500);
}

static int on_message_begin(http_parser *p)
{
    struct exo_http_conn *c = p->data;
    assert(!c->req);
    c->msg_begun = true;
    c->req = req_new(c);
    return c->req ? 0 : refuse(c, 500);
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct exo_http_conn *c = p->data;
    exo_buf_put(&c->req->target, at, len);
    return c->req->target.err ? refuse_buf(c, c->req->target.err, 414) : 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct exo_http_conn *c = p->data;
    struct exo_http_request *req = c->req;
    if (req->headers_done)
        return 0; /* trailers of a chunked body are not kept */
    req->url_done = true;
    if (req->last_cb != HCB_FIELD) {
        if (req->n_headers == MAX_HEADERS)
            return refuse(c, 431);
        if (req->last_cb == HCB_VALUE)
            exo_buf_put(&req->headers, "", 1);
        req->name_off[req->n_headers++] = (uint32_t)req->headers.len;
        req->last_cb = HCB_FIELD;
    }
    exo_buf_put(&req->headers, at, len);
    return req->headers.err ? refuse_buf(c, req->headers.err, 431) : 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct exo_http_conn *c = p->data;
    struct exo_http_request *req = c->req;
    if (req->headers_done)
        return 0;
    if (req->n_headers == 0)
        return refuse(c, 400);
    if (req->last_cb != HCB_VALUE) {
        exo_buf_put(&req->headers, "", 1);
        req->value_off[req->n_headers - 1] = (uint32_t)req->headers.len;
        req->last_cb = HCB_VALUE;
    }
    exo_buf_put(&req->headers, at, len);
    return req->headers.err ? refuse_buf(c, req->headers.err, 431) : 0;
}

static int on_headers_complete(http_parser *p)
{
    struct exo_http_conn *c = p->data;
    c->event = EVENT_HEADERS;
    http_parser_pause(p, 1);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct exo_http_conn *c = p->data;
    struct exo_http_request *req = c->req;
    exo_buf_put(&req->body, at, len);
    return req->body.err ? refuse_buf(c, req->body.err, 413) : 0;
}

static int on_message_complete(http_parser *p)
{
    struct exo_http_conn *c = p->data;
    c->event = EVENT_MESSAGE;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* Request flow. ------------------------------------------------------------------------------ */

/* The response has ended: release req and go on with the connection's next request. */
static void finish(struct exo_http_request *req)
{
    struct exo_http_conn *c = req->conn;
    if (!c) {
        if (req->orphan_of)
            req->orphan_of->orphan = NULL;
        req_free(req);
        return;
    }
    c->req = NULL;
    bool keep = req->keep_alive && !c->srv->stopping;
    req_free(req);
    if (!keep) {
        conn_drain(c);
        return;
    }
    c->phase = PHASE_HEAD;
    c->msg_begun = false;
    c->head_bytes = 0;
    if (!c->in_process)
        process(c);
}

static void reply_reject(struct exo_http_request *req)
{
    char allow[96];
    if (req->reject_status == 405) {
        allow_list(req->allow, allow, sizeof(allow));
        exo_http_add_header(req, "Allow", allow);
    } else if (req->reject_status == 401) {
        exo_http_add_header(req, "WWW-Authenticate", "Bearer");
    }
    exo_http_respond_error(req, req->reject_status, status_message(req->reject_status));
}

/* A CORS preflight or a plain OPTIONS: which methods the path takes. */
static void reply_options(struct exo_http_request *req)
{
    char allow[96];
    allow_list(req->allow, allow, sizeof(allow));
    exo_http_add_header(req, "Allow", allow);
    if (!req->conn->srv->cfg.disable_cors && exo_http_request_header(req, "Origin")) {
        const char *asked = exo_http_request_header(req, "Access-Control-Request-Headers");
        bool echo = asked && asked[0] &&
                    strspn(asked, "abcdefghijklmnopqrstuvwxyz"
                                  "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                  "0123456789-_, ") == strlen(asked);
        exo_http_add_header(req, "Access-Control-Allow-Methods", allow);
        exo_http_add_header(req, "Access-Control-Allow-Headers",
                            echo ? asked : "Authorization, Content-Type");
        exo_http_add_header(req, "Access-Control-Max-Age", "600");
    }
    exo_http_respond(req, 204, NULL, NULL, 0);
}

/* The head is complete: decide whether the request is served, and tell the client to send the
 * body (100 Continue) only if it is. A refused request with a body on the way is answered now
 * and the connection closed, rather than reading a body nobody wants. */
static void headers_done(struct exo_http_conn *c)
{
    struct exo_http_server *srv = c->srv;
    struct exo_http_request *req = c->req;
    http_parser *p = &c->parser;
    c->phase = PHASE_BODY;
    req->url_done = true;
    req->headers_done = true;
    /* http-parser reports a value (maybe empty) after every name, so this ends the last one. */
    exo_buf_put(&req->headers, "", 1);
    if (req->headers.err) {
        conn_fail(c, req->headers.err == EXO_ETOOBIG ? 431 : 500);
        return;
    }
    /* The parser drops the whitespace before a value but keeps what follows it, which is not
     * part of the value either (RFC 9110, 5.5). */
    for (unsigned i = 0; i < req->n_headers; i++) {
        char *v = (char *)req->headers.data + req->value_off[i];
        size_t n = strlen(v);
        while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
            v[--n] = '\0';
    }
    req->method = method_from_parser(p->method);
    req->head_only = req->method == EXO_HTTP_HEAD;
    req->http10 = p->http_minor == 0;
    req->keep_alive = http_should_keep_alive(p) && !p->upgrade;
    bool chunked = p->flags & F_CHUNKED;
    bool has_body = chunked || (p->content_length != UINT64_MAX && p->content_length > 0);

    int status = 0;
    if (p->http_major != 1)
        status = 505;
    else if (!req->method)
        status = 501;
    else
        status = parse_target(req);
    if (!status)
        status = route_check(srv, req);
    if (!status && !chunked && has_body && p->content_length > req->body.max)
        status = 413;
    const char *expect = exo_http_request_header(req, "Expect");
    if (!status && expect && strcasecmp(expect, "100-continue") != 0)
        status = 417;
    if (status) {
        req->reject_status = status;
        if (has_body) {
            req->keep_alive = false;
            req->dispatched = true;
            reply_reject(req);
        }
        return;
    }
    if (expect && has_body && !req->http10) {
        struct exo_buf b;
        exo_buf_init(&b, 0);
        exo_buf_put(&b, "HTTP/1.1 100 Continue\r\n\r\n", 25);
        conn_send(c, &b);
    }
}

static void dispatch(struct exo_http_conn *c)
{
    struct exo_http_request *req = c->req;
    c->phase = PHASE_ACTIVE;
    c->n_requests++;
    c->msg_begun = false;
    req->dispatched = true;
    if (req->reject_status)
        reply_reject(req);
    else if (req->method == EXO_HTTP_OPTIONS)
        reply_options(req);
    else
        req->handler(req, req->handler_ud);
}

static void parse_failed(struct exo_http_conn *c, enum http_errno err)
{
    int status = c->fail_status;
    c->fail_status = 0;
    if (!status)
        status = err == HPE_INVALID_METHOD ? 501 : err == HPE_HEADER_OVERFLOW ? 431 : 400;
    if (status != 413 && status != 500)
        c->srv->stats.parse_errors++;
    conn_fail(c, status);
}

/* Feed buffered input to the parser until it is used up or a request is in flight. Re-entry
 * (a handler that answers at once) only marks the work; the outer call does it. */
static void process(struct exo_http_conn *c)
{
    if (c->phase == PHASE_CLOSED)
        return;
    struct exo_http_server *srv = c->srv;
    c->in_process = true;
    while ((c->phase == PHASE_HEAD || c->phase == PHASE_BODY) && c->in_off < c->in.len) {
        size_t feed = c->in.len - c->in_off;
        bool head = c->phase == PHASE_HEAD;
        if (head && feed > srv->cfg.max_header_bytes - c->head_bytes)
            feed = srv->cfg.max_header_bytes - c->head_bytes;
        c->event = EVENT_NONE;
        size_t n = http_parser_execute(&c->parser, &parser_settings,
                                       (const char *)c->in.data + c->in_off, feed);
        c->in_off += n;
        if (head)
            c->head_bytes += n;
        enum http_errno err = HTTP_PARSER_ERRNO(&c->parser);
        if (err == HPE_PAUSED) {
            http_parser_pause(&c->parser, 0);
            if (c->event == EVENT_HEADERS)
                headers_done(c);
            else
                dispatch(c);
        } else if (err != HPE_OK) {
            parse_failed(c, err);
        } else if (head && c->phase == PHASE_HEAD && c->head_bytes >= srv->cfg.max_header_bytes) {
            srv->stats.parse_errors++;
            conn_fail(c, !c->req ? 400 : c->req->url_done ? 431 : 414);
        }
    }
    c->in_process = false;
    if (c->phase == PHASE_CLOSED)
        return;
    if (c->in_off == c->in.len) {
        c->in.len = c->in_off = 0;
    } else if (c->in_off > 0) {
        memmove(c->in.data, c->in.data + c->in_off, c->in.len - c->in_off);
        c->in.len -= c->in_off;
        c->in_off = 0;
    }
    conn_arm(c);
}

static int conn_input(struct exo_http_conn *c, const void *data, size_t len)
{
    exo_buf_put(&c->in, data, len);
    if (c->in.err) {
        /* Reading stops at IN_HIGH, so only a failed allocation gets here. */
        conn_close(c);
        return EXO_ENOMEM;
    }
    process(c);
    return 0;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct exo_http_conn *c = s->data;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    if (nread == 0)
        return;
    c->srv->stats.bytes_in += (uint64_t)nread;
    if (c->phase == PHASE_DRAIN)
        return;
    conn_input(c, buf->base, (size_t)nread);
}

/* Accepting. --------------------------------------------------------------------------------- */

static void on_reject_closed(uv_handle_t *h)
{
    struct reject *r = h->data;
    struct exo_http_server *srv = r->srv;
    exo_free(r);
    srv->pending--;
    srv_maybe_done(srv);
}

/* At the connection cap: accept, answer 503 with whatever fits in the socket buffer right away,
 * and close. false when even that could not be allocated. */
static bool reject_connection(struct exo_http_server *srv)
{
    struct reject *r = exo_malloc(sizeof(*r));
    if (!r)
        return false;
    srv->stats.connections_rejected++;
    r->srv = srv;
    uv_tcp_init(srv->loop, &r->tcp);
    r->tcp.data = r;
    srv->pending++;
    if (uv_accept((uv_stream_t *)&srv->listener, (uv_stream_t *)&r->tcp) == 0) {
        struct exo_buf b;
        exo_buf_init(&b, 0);
        put_error_response(&b, 503, !srv->cfg.disable_cors);
        if (!b.err) {
            uv_buf_t ub = uv_buf_init((char *)b.data, (unsigned)b.len);
            uv_try_write((uv_stream_t *)&r->tcp, &ub, 1);
        }
        exo_buf_free(&b);
    }
    uv_close((uv_handle_t *)&r->tcp, on_reject_closed);
    return true;
}

static void on_retry(uv_timer_t *t);

/* Every pending connection must be taken with uv_accept: until it is, libuv stops watching the
 * listener. When not even a reject record can be allocated, the timer tries again later. */
static void on_connection(uv_stream_t *listener, int status)
{
    struct exo_http_server *srv = listener->data;
    if (status < 0) {
        srv->stats.connections_rejected++;
        return;
    }
    struct exo_http_conn *c = NULL;
    if (srv->n_conns < srv->cfg.max_connections)
        c = conn_new(srv);
    if (!c) {
        if (!reject_connection(srv))
            uv_timer_start(&srv->retry, on_retry, 100, 0);
        return;
    }
    uv_tcp_init(srv->loop, &c->tcp);
    c->tcp.data = c;
    c->has_tcp = true;
    c->handles_open++;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0)
        describe_addr(&ss, c->remote, sizeof(c->remote), &c->loopback);
    uv_tcp_nodelay(&c->tcp, 1);
    conn_arm(c);
}

/* The listening socket is made here rather than by uv_tcp_bind so that every failure is known
 * before a libuv handle exists, and start can fail without leaving anything behind. */
static int bind_listener(const char *addr, uint16_t port, int *ret_fd, uint16_t *ret_port)
{
    struct sockaddr_storage ss;
    if (parse_addr(addr, port, &ss) != 0)
        return EXO_EINVAL;
    bool v6 = ss.ss_family == AF_INET6;
    socklen_t sl = v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return exo_error_from_errno(errno);
    int one = 1, zero = 0, rc = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (v6) /* "::" takes IPv4 clients too */
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    if (bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, LISTEN_BACKLOG) != 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
        rc = exo_error_from_errno(errno);
        close(fd);
        return rc;
    }
    *ret_port =
        ntohs(v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
    *ret_fd = fd;
    return 0;
}

static void on_retry(uv_timer_t *t)
{
    struct exo_http_server *srv = t->data;
    on_connection((uv_stream_t *)&srv->listener, 0);
}

static void on_server_handle_closed(uv_handle_t *h)
{
    struct exo_http_server *srv = h->data;
    srv->pending--;
    srv_maybe_done(srv);
}

/* Public API: server lifecycle. -------------------------------------------------------------- */

int exo_http_server_start(uv_loop_t *loop, const struct exo_http_config *cfg,
                          struct exo_http_server **ret_srv)
{
    if (!loop || !cfg || !ret_srv)
        return EXO_EINVAL;
    int fd = -1, rc = 0;
    struct exo_http_server *srv = exo_calloc(1, sizeof(*srv));
    if (!srv)
        return EXO_ENOMEM;
    srv->loop = loop;
    srv->cfg = *cfg;
    struct exo_http_config *c = &srv->cfg;
    c->listen_addr = NULL;
    c->max_header_bytes = c->max_header_bytes ? c->max_header_bytes : DEFAULT_HEADER_BYTES;
    c->max_url_bytes = c->max_url_bytes ? c->max_url_bytes : DEFAULT_URL_BYTES;
    if (c->max_url_bytes > MAX_URL_BYTES)
        c->max_url_bytes = MAX_URL_BYTES;
    c->max_body_bytes = c->max_body_bytes ? c->max_body_bytes : DEFAULT_BODY_BYTES;
    c->max_connections = c->max_connections ? c->max_connections : DEFAULT_CONNECTIONS;
    c->header_timeout_ms = c->header_timeout_ms ? c->header_timeout_ms : DEFAULT_HEADER_MS;
    c->idle_timeout_ms = c->idle_timeout_ms ? c->idle_timeout_ms : DEFAULT_IDLE_MS;
    c->max_queued_bytes = c->max_queued_bytes ? c->max_queued_bytes : DEFAULT_QUEUED_BYTES;
    c->api_token = NULL;
    if (cfg->api_token && cfg->api_token[0]) {
        if (!valid_field_value(cfg->api_token)) {
            rc = EXO_EINVAL;
            goto out;
        }
        srv->token = exo_strdup(cfg->api_token);
        if (!srv->token) {
            rc = EXO_ENOMEM;
            goto out;
        }
        srv->token_len = strlen(srv->token);
        c->api_token = srv->token;
    }

    if (cfg->listen_addr) {
        rc = bind_listener(cfg->listen_addr, cfg->port, &fd, &srv->port);
        if (rc)
            goto out;
    }
    uv_tcp_init(loop, &srv->listener);
    srv->listener.data = srv;
    uv_timer_init(loop, &srv->retry);
    srv->retry.data = srv;
    if (fd >= 0) {
        rc = uv_tcp_open(&srv->listener, fd);
        if (rc)
            close(fd); /* not taken by the handle */
        else
            rc = uv_listen((uv_stream_t *)&srv->listener, LISTEN_BACKLOG, on_connection);
        if (rc) {
            /* The handle exists now, and a handle can only be released through the loop. */
            rc = exo_error_from_errno(rc);
            srv->stopping = true;
            srv->pending = 2;
            uv_close((uv_handle_t *)&srv->listener, on_server_handle_closed);
            uv_close((uv_handle_t *)&srv->retry, on_server_handle_closed);
            return rc;
        }
    }
    *ret_srv = srv;
    return 0;

out:
    exo_free(srv->token);
    exo_free(srv);
    return rc;
}

void exo_http_server_stop(struct exo_http_server *srv, exo_http_done_cb done, void *ud)
{
    if (!srv || srv->stopping)
        return;
    srv->stopping = true;
    srv->done = done;
    srv->done_ud = ud;
    srv->pending += 2;
    uv_close((uv_handle_t *)&srv->listener, on_server_handle_closed);
    uv_close((uv_handle_t *)&srv->retry, on_server_handle_closed);
    for (struct exo_http_conn *c = srv->conns; c; c = c->next)
        conn_close(c);
}

uint16_t exo_http_server_port(const struct exo_http_server *srv)
{
    return srv->port;
}

void exo_http_server_stats(const struct exo_http_server *srv, struct exo_http_stats *ret_stats)
{
    *ret_stats = srv->stats;
    ret_stats->connections_open = srv->n_conns;
}

int exo_http_stats_prom(const struct exo_http_stats *st, struct exo_prom *prom)
{
    static const char *const classes[] = {"2xx", "3xx", "4xx", "5xx"};
    const uint64_t by_class[] = {st->responses_2xx, st->responses_3xx, st->responses_4xx,
                                 st->responses_5xx};
    exo_prom_family(prom, "exo_http_connections_open", EXO_PROM_GAUGE,
                    "HTTP connections open now.");
    exo_prom_sample_u64(prom, NULL, 0, st->connections_open);
    exo_prom_family(prom, "exo_http_connections_total", EXO_PROM_COUNTER,
                    "HTTP connections accepted.");
    exo_prom_sample_u64(prom, NULL, 0, st->connections_total);
    exo_prom_family(prom, "exo_http_connections_rejected_total", EXO_PROM_COUNTER,
                    "HTTP connections turned away at the connection cap.");
    exo_prom_sample_u64(prom, NULL, 0, st->connections_rejected);
    exo_prom_family(prom, "exo_http_responses_total", EXO_PROM_COUNTER,
                    "HTTP responses by status class.");
    for (size_t i = 0; i < 4; i++) {
        struct exo_prom_label l = {"code", classes[i]};
        exo_prom_sample_u64(prom, &l, 1, by_class[i]);
    }
    exo_prom_family(prom, "exo_http_received_bytes_total", EXO_PROM_COUNTER,
                    "Bytes read from HTTP clients.");
    exo_prom_sample_u64(prom, NULL, 0, st->bytes_in);
    exo_prom_family(prom, "exo_http_sent_bytes_total", EXO_PROM_COUNTER,
                    "Bytes written to HTTP clients.");
    exo_prom_sample_u64(prom, NULL, 0, st->bytes_out);
    exo_prom_family(prom, "exo_http_parse_errors_total", EXO_PROM_COUNTER,
                    "Malformed or oversized HTTP request heads.");
    exo_prom_sample_u64(prom, NULL, 0, st->parse_errors);
    exo_prom_family(prom, "exo_http_timeouts_total", EXO_PROM_COUNTER,
                    "HTTP requests that did not arrive in time (408).");
    return exo_prom_sample_u64(prom, NULL, 0, st->timeouts);
}

/* Public API: routing. ----------------------------------------------------------------------- */

int exo_http_route(struct exo_http_server *srv, unsigned methods, const char *path, unsigned flags,
                   exo_http_handler_cb handler, void *ud)
{
    if (!srv || !path || path[0] != '/' || !handler || !methods || (methods & ~ALL_METHODS) ||
        (methods & EXO_HTTP_OPTIONS) || (flags & ~ALL_ROUTE_FLAGS))
        return EXO_EINVAL;
    for (size_t i = 0; i < srv->n_routes; i++) {
        const struct route *r = &srv->routes[i];
        if ((r->flags & EXO_HTTP_ROUTE_PREFIX) == (flags & EXO_HTTP_ROUTE_PREFIX) &&
            strcmp(r->path, path) == 0 && (r->methods & methods))
            return EXO_EEXIST;
    }
    struct route *grown = exo_realloc(srv->routes, (srv->n_routes + 1) * sizeof(*grown));
    if (!grown)
        return EXO_ENOMEM;
    srv->routes = grown;
    char *copy = exo_strdup(path);
    if (!copy)
        return EXO_ENOMEM;
    srv->routes[srv->n_routes++] = (struct route){.path = copy,
                                                  .path_len = strlen(copy),
                                                  .methods = methods,
                                                  .flags = flags,
                                                  .handler = handler,
                                                  .ud = ud};
    return 0;
}

int exo_http_route_body_max(struct exo_http_server *srv, const char *path, size_t max)
{
    if (!srv || !path)
        return EXO_EINVAL;
    int rc = EXO_ENOENT;
    for (size_t i = 0; i < srv->n_routes; i++) {
        if (strcmp(srv->routes[i].path, path) == 0) {
            srv->routes[i].body_max = max;
            rc = 0;
        }
    }
    return rc;
}

/* Public API: requests. ---------------------------------------------------------------------- */

enum exo_http_method exo_http_request_method(const struct exo_http_request *req)
{
    return req->method;
}

const char *exo_http_method_name(enum exo_http_method method)
{
    for (size_t i = 0; i < sizeof(method_names) / sizeof(method_names[0]); i++)
        if (method_names[i].method == method)
            return method_names[i].name;
    return "UNKNOWN";
}

const char *exo_http_request_path(const struct exo_http_request *req)
{
    return req->strings ? req->strings : "";
}

const char *exo_http_request_query(const struct exo_http_request *req)
{
    return req->query;
}

int exo_http_request_query_param(const struct exo_http_request *req, const char *name, char *buf,
                                 size_t buf_len)
{
    const char *q = req->query;
    while (*q) {
        size_t pair = strcspn(q, "&");
        size_t key = strcspn(q, "=");
        if (key > pair)
            key = pair;
        char decoded[256];
        if (pct_decode(q, key, true, decoded, sizeof(decoded)) == 0 && strcmp(decoded, name) == 0) {
            const char *v = key < pair ? q + key + 1 : q + pair;
            return pct_decode(v, (size_t)(q + pair - v), true, buf, buf_len);
        }
        q += pair;
        if (*q)
            q++;
    }
    return EXO_ENOENT;
}

const char *exo_http_request_header(const struct exo_http_request *req, const char *name)
{
    for (unsigned i = 0; i < req->n_headers; i++) {
        const char *n = (const char *)req->headers.data + req->name_off[i];
        if (strcasecmp(n, name) == 0)
            return (const char *)req->headers.data + req->value_off[i];
    }
    return NULL;
}

const void *exo_http_request_body(const struct exo_http_request *req, size_t *ret_len)
{
    *ret_len = req->body.len;
    return req->body.data ? (const void *)req->body.data : "";
}

const char *exo_http_request_remote(const struct exo_http_request *req)
{
    return req->remote;
}

bool exo_http_request_is_loopback(const struct exo_http_request *req)
{
    return req->loopback;
}

bool exo_http_request_closed(const struct exo_http_request *req)
{
    return !req->conn;
}

int exo_http_request_on_close(struct exo_http_request *req, exo_http_close_cb cb, void *ud)
{
    if (!req->conn)
        return EXO_ECLOSED;
    req->close_cb = cb;
    req->close_ud = ud;
    return 0;
}

/* Public API: responses. --------------------------------------------------------------------- */

static bool is_framing_header(const char *name)
{
    return strcasecmp(name, "Content-Length") == 0 || strcasecmp(name, "Transfer-Encoding") == 0 ||
           strcasecmp(name, "Connection") == 0;
}

int exo_http_add_header(struct exo_http_request *req, const char *name, const char *value)
{
    if (!req || !name || !value || !name[0] || req->resp != RESP_NONE || is_framing_header(name) ||
        !valid_field_value(value))
        return EXO_EINVAL;
    for (const char *q = name; *q; q++)
        if (!is_tchar((unsigned char)*q))
            return EXO_EINVAL;
    size_t mark = req->extra.len;
    exo_buf_printf(&req->extra, "%s: %s\r\n", name, value);
    int rc = req->extra.err;
    if (rc) {
        req->extra.len = mark;
        req->extra.err = 0;
    }
    return rc;
}

/* Send the head (and, for a one-shot response, the body). EXO_EINVAL leaves everything as it
 * was; EXO_ECLOSED means the client has gone. */
static int start_response(struct exo_http_request *req, int status, const char *content_type,
                          const void *body, size_t len, bool stream)
{
    if (status < 200 || status > 599 || req->resp != RESP_NONE || (len && !body) ||
        (content_type && !valid_field_value(content_type)))
        return EXO_EINVAL;
    struct exo_http_conn *c = req->conn;
    if (!c)
        return EXO_ECLOSED;
    struct exo_http_server *srv = c->srv;
    bool bodiless = status == 204 || status == 304;
    struct head h = {.status = status,
                     .content_type = content_type,
                     .framing = bodiless ? FRAME_NONE : FRAME_LENGTH,
                     .length = len,
                     .keep_alive = req->keep_alive && !srv->stopping,
                     .http10 = req->http10,
                     .cors = !srv->cfg.disable_cors,
                     .extra = &req->extra};
    if (stream && !bodiless) {
        h.framing = req->http10 ? FRAME_TO_CLOSE : FRAME_CHUNKED;
        if (req->http10)
            h.keep_alive = false;
    }
    req->keep_alive = h.keep_alive;
    req->resp = stream ? RESP_STREAMING : RESP_DONE;
    req->body_allowed = stream && !bodiless && !req->head_only;
    req->chunked = req->body_allowed && h.framing == FRAME_CHUNKED;
    count_status(srv, status);

    struct exo_buf b;
    exo_buf_init(&b, 0);
    put_head(&b, &h);
    if (!stream && !bodiless && !req->head_only)
        exo_buf_put(&b, body, len);
    return conn_send(c, &b);
}

int exo_http_respond(struct exo_http_request *req, int status, const char *content_type,
                     const void *body, size_t len)
{
    if (!req)
        return EXO_EINVAL;
    int rc = start_response(req, status, content_type, body, len, false);
    if (rc == EXO_EINVAL)
        return rc;
    finish(req);
    return rc;
}

int exo_http_respond_json_str(struct exo_http_request *req, int status, const char *json)
{
    if (!json)
        return EXO_EINVAL;
    return exo_http_respond(req, status, "application/json", json, strlen(json));
}

int exo_http_respond_json(struct exo_http_request *req, int status, const struct cJSON *json)
{
    if (!req || !json)
        return EXO_EINVAL;
    char *text = cJSON_PrintUnformatted(json);
    if (!text)
        return exo_http_respond_error(req, 500, "out of memory");
    int rc = exo_http_respond_json_str(req, status, text);
    cJSON_free(text);
    return rc;
}

int exo_http_respond_error(struct exo_http_request *req, int status, const char *message)
{
    if (!message)
        return EXO_EINVAL;
    struct exo_buf b;
    exo_buf_init(&b, 0);
    put_error_body(&b, status, message);
    int rc = b.err ? exo_http_respond(req, 500, NULL, NULL, 0)
                   : exo_http_respond(req, status, "application/json", b.data, b.len);
    exo_buf_free(&b);
    return rc;
}

int exo_http_begin(struct exo_http_request *req, int status, const char *content_type)
{
    if (!req)
        return EXO_EINVAL;
    return start_response(req, status, content_type, NULL, 0, true);
}

int exo_http_write(struct exo_http_request *req, const void *data, size_t len)
{
    if (!req || (len && !data))
        return EXO_EINVAL;
    struct exo_http_conn *c = req->conn;
    if (!c)
        return EXO_ECLOSED;
    if (req->resp != RESP_STREAMING)
        return EXO_EINVAL;
    if (!req->body_allowed || len == 0)
        return 0;
    /* libuv writes at once what the socket takes; its queue holds only what the client has not
     * made room for yet, which is what the cap is about. */
    size_t queued = c->has_tcp ? uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) : 0;
    if (queued && queued + len > c->srv->cfg.max_queued_bytes) {
        conn_close(c);
        return EXO_ECLOSED;
    }
    struct exo_buf b;
    exo_buf_init(&b, 0);
    if (req->chunked)
        exo_buf_printf(&b, "%zx\r\n", len);
    exo_buf_put(&b, data, len);
    if (req->chunked)
        exo_buf_put(&b, "\r\n", 2);
    return conn_send(c, &b);
}

int exo_http_end(struct exo_http_request *req)
{
    if (!req)
        return EXO_EINVAL;
    if (req->conn && req->resp == RESP_NONE)
        return exo_http_respond_error(req, 500, "the handler sent no response");
    int rc = 0;
    if (!req->conn) {
        rc = EXO_ECLOSED;
    } else if (req->chunked) {
        struct exo_buf b;
        exo_buf_init(&b, 0);
        exo_buf_put(&b, "0\r\n\r\n", 5);
        rc = conn_send(req->conn, &b);
    }
    finish(req);
    return rc;
}

int exo_http_sse_begin(struct exo_http_request *req)
{
    int rc = exo_http_add_header(req, "Cache-Control", "no-cache");
    if (rc)
        return rc;
    return exo_http_begin(req, 200, "text/event-stream");
}

int exo_http_sse_send(struct exo_http_request *req, const char *event, const char *id,
                      const char *data)
{
    if (!req || (event && strpbrk(event, "\r\n")) || (id && strpbrk(id, "\r\n")))
        return EXO_EINVAL;
    if (!req->conn)
        return EXO_ECLOSED;
    struct exo_buf b;
    exo_buf_init(&b, 0);
    if (event)
        exo_buf_printf(&b, "event: %s\n", event);
    if (id)
        exo_buf_printf(&b, "id: %s\n", id);
    /* Each line of data becomes a data: field; the client joins them with \n again. */
    for (const char *line = data; line;) {
        size_t n = strcspn(line, "\r\n");
        exo_buf_put(&b, "data: ", 6);
        exo_buf_put(&b, line, n);
        exo_buf_put(&b, "\n", 1);
        if (!line[n])
            break;
        line += n + (line[n] == '\r' && line[n + 1] == '\n' ? 2 : 1);
    }
    exo_buf_put(&b, "\n", 1);
    int rc = b.err ? b.err : exo_http_write(req, b.data, b.len);
    exo_buf_free(&b);
    return rc;
}

/* Public API: socket-less connections. ------------------------------------------------------- */

int exo_http_conn_open(struct exo_http_server *srv, const char *remote_ip, struct exo_buf *out,
                       struct exo_http_conn **ret_conn)
{
    struct sockaddr_storage ss;
    if (!srv || !remote_ip || !out || !ret_conn || parse_addr(remote_ip, 0, &ss) != 0)
        return EXO_EINVAL;
    if (srv->stopping)
        return EXO_ECLOSED;
    if (srv->n_conns >= srv->cfg.max_connections)
        return EXO_EBUSY;
    struct exo_http_conn *c = conn_new(srv);
    if (!c)
        return EXO_ENOMEM;
    c->refs++;
    c->sink = out;
    describe_addr(&ss, c->remote, sizeof(c->remote), &c->loopback);
    conn_arm(c);
    *ret_conn = c;
    return 0;
}

int exo_http_conn_feed(struct exo_http_conn *conn, const void *data, size_t len)
{
    if (!conn || (len && !data))
        return EXO_EINVAL;
    if (conn->phase == PHASE_CLOSED)
        return EXO_ECLOSED;
    if (len > IN_MAX - conn->in.len)
        return EXO_EAGAIN;
    conn->srv->stats.bytes_in += len;
    return conn_input(conn, data, len);
}

bool exo_http_conn_closed(const struct exo_http_conn *conn)
{
    return conn->phase == PHASE_CLOSED;
}

void exo_http_conn_close(struct exo_http_conn *conn)
{
    if (!conn)
        return;
    conn_close(conn);
    conn_unref(conn);
}
