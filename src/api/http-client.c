/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The blocking client of http-client.h: the name is resolved with getaddrinfo, then each address
 * is tried in turn with an upstream request (upstream.h) run on a private loop, all within the
 * one deadline.
 */
#include "api/http-client.h"

#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "api/upstream.h"
#include "core/clock.h"
#include "core/error.h"

#define DEFAULT_BODY_CAP (64u * 1024 * 1024)

struct response {
    struct exo_buf *body; /* borrowed */
    size_t cap;
    int status;
    bool head_seen;
    int rc;
};

static void on_head(void *ud, int status, const char *content_type)
{
    struct response *r = ud;
    (void)content_type;
    r->status = status;
    r->head_seen = true;
}

static int on_body(void *ud, const void *data, size_t len)
{
    struct response *r = ud;
    if (len > r->cap - r->body->len)
        return EXO_ETOOBIG;
    exo_buf_put(r->body, data, len);
    return r->body->err;
}

static void on_done(void *ud, int rc)
{
    struct response *r = ud;
    r->rc = rc;
}

static const struct exo_upstream_handler handler = {on_head, on_body, on_done};

/* One address: 0 with r filled, or the error. */
static int get_from(const struct sockaddr *sa, uint16_t port, const char *path, const char *token,
                    int timeout_ms, struct response *r)
{
    char ip[64];
    int err = sa->sa_family == AF_INET6
                  ? uv_ip6_name((const struct sockaddr_in6 *)sa, ip, sizeof(ip))
                  : uv_ip4_name((const struct sockaddr_in *)sa, ip, sizeof(ip));
    if (err)
        return EXO_EINVAL;
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0)
        return EXO_ENOMEM;
    struct exo_upstream_request rq = {
        .ip = ip,
        .port = port,
        .method = "GET",
        .target = path,
        .token = token,
        .headers = "User-Agent: exo/" EXO_VERSION "\r\nAccept: */*\r\n",
        .head_timeout_ms = timeout_ms,
        .idle_timeout_ms = timeout_ms,
        .total_timeout_ms = timeout_ms,
    };
    struct exo_upstream *u;
    exo_buf_reset(r->body);
    r->head_seen = false;
    r->rc = EXO_EINTERNAL;
    int rc = exo_upstream_start(&loop, &rq, &handler, r, &u);
    uv_run(&loop, UV_RUN_DEFAULT); /* also closes what a failed start left */
    uv_loop_close(&loop);
    return rc ? rc : r->rc;
}

int exo_http_get(const char *host, uint16_t port, const char *path, const char *token,
                 int timeout_ms, struct exo_buf *body, int *status)
{
    if (!host || !host[0] || !path || path[0] != '/' || timeout_ms <= 0 || !body || !status)
        return EXO_EINVAL;
    for (const unsigned char *q = (const unsigned char *)host; *q; q++)
        if (*q <= 0x20 || *q == 0x7f)
            return EXO_EINVAL;
    uint64_t deadline = exo_clock_ns() + (uint64_t)timeout_ms * 1000000u;
    char service[8];
    snprintf(service, sizeof(service), "%u", port);
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *list = NULL;
    int gai = getaddrinfo(host, service, &hints, &list);
    if (gai != 0)
        return gai == EAI_NONAME || gai == EAI_NODATA ? EXO_ENOENT : EXO_EIO;
    struct response r = {.body = body,
                         .cap = body->max && body->max < DEFAULT_BODY_CAP ? body->max
                                                                          : DEFAULT_BODY_CAP};
    int rc = EXO_ENOENT;
    for (const struct addrinfo *ai = list; ai; ai = ai->ai_next) {
        uint64_t now = exo_clock_ns();
        if (now >= deadline) {
            rc = EXO_ETIMEOUT;
            break;
        }
        rc = get_from(ai->ai_addr, port, path, token, (int)((deadline - now + 999999) / 1000000),
                      &r);
        /* Another address is worth a try only when this one could not be reached. */
        if (rc == 0 || rc == EXO_ETIMEOUT || rc == EXO_EINVAL || r.head_seen)
            break;
    }
    freeaddrinfo(list);
    if (rc == 0)
        *status = r.status;
    return rc;
}
