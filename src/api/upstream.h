/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One HTTP/1.1 request to another node's API, on a libuv loop, with the response handed over as
 * it arrives: the head, then each piece of the body. The daemon uses it to pass a request on to
 * the node that serves the model (streaming tokens through as they come) and to pull data that
 * only another node has; exo_http_get (http-client.h) runs it on a private loop for the CLI.
 *
 * Every function must be called on the loop's thread. The address is an IP literal (members
 * advertise addresses, not names). The request says "Connection: close", so a response may also
 * end with the connection. Timeouts bound the connection and response head, each silence within
 * the body, and (optionally) the whole exchange.
 */
#ifndef EXO_API_UPSTREAM_H
#define EXO_API_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct exo_upstream;

/* Everything is borrowed for the call to exo_upstream_start only. */
struct exo_upstream_request {
    const char *ip; /* IPv4 or IPv6 literal */
    uint16_t port;
    const char *method;       /* "GET", "POST", ... */
    const char *target;       /* path and query, starting with '/' */
    const char *token;        /* sent as "Authorization: Bearer <token>"; NULL for none */
    const char *headers;      /* more header lines, each ending in "\r\n"; NULL for none */
    const char *content_type; /* of body; NULL when there is none */
    const void *body;
    size_t body_len;
    int head_timeout_ms;  /* connect and the response head [10000] */
    int idle_timeout_ms;  /* the longest silence within the body [60000] */
    int total_timeout_ms; /* the whole exchange; 0: no limit */
};

struct exo_upstream_handler {
    /* The final response's status and Content-Type ("" when absent); once, before any body. */
    void (*on_head)(void *ud, int status, const char *content_type);
    /* A piece of the body (borrowed for the call; de-chunked). Return 0 to go on, or an error
     * code to stop: on_done then gets that code. */
    int (*on_body)(void *ud, const void *data, size_t len);
    /* The end: 0 after a complete response, or EXO_ETIMEOUT, EXO_EPROTO (malformed or cut
     * response), a connection error, or on_body's code. Exactly once, unless canceled first. */
    void (*on_done)(void *ud, int rc);
};

/* Start the request; h and ud are kept until on_done or exo_upstream_cancel. *ret belongs to
 * the loop: it stays valid until on_done returns or exo_upstream_cancel is called. 0, EXO_EINVAL
 * (not an IP literal, or a target/token/header with bytes that could split the request),
 * EXO_ENOMEM, or a connect error the system reports at once; no callback comes after an error
 * here. */
int exo_upstream_start(uv_loop_t *loop, const struct exo_upstream_request *rq,
                       const struct exo_upstream_handler *h, void *ud, struct exo_upstream **ret);

/* The response parser without a connection, for tests and fuzzing: data (len bytes, borrowed)
 * arrives in pieces of `piece` bytes (0: all at once) and then the connection ends; h gets the
 * same calls a request would, on_done included. 0, or EXO_EINVAL / EXO_ENOMEM with no call. */
int exo_upstream_parse(const void *data, size_t len, size_t piece,
                       const struct exo_upstream_handler *h, void *ud);

/* Drop the request: no callback comes after this; the connection closes on the loop. Accepts
 * NULL; must not be called from or after on_done. */
void exo_upstream_cancel(struct exo_upstream *u);

#endif
