/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The blocking client of http-client.h. One connection per call with "Connection: close", so
 * a response may also end with the connection; a non-blocking socket and poll() keep every step
 * (connect, send, receive) inside the one deadline.
 */
#include "api/http-client.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <http_parser.h>

#include "core/clock.h"
#include "core/error.h"

#define DEFAULT_BODY_CAP (64u * 1024 * 1024)

struct response {
    struct exo_buf *body; /* borrowed */
    size_t cap;
    int status;
    bool complete;
    bool too_big;
};

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct response *r = p->data;
    if (len > r->cap - r->body->len) {
        r->too_big = true;
        return -1;
    }
    exo_buf_put(r->body, at, len);
    return r->body->err ? -1 : 0;
}

static int on_message_complete(http_parser *p)
{
    struct response *r = p->data;
    /* An interim response (100 Continue) is followed by the real one. */
    if (p->status_code / 100 == 1) {
        exo_buf_reset(r->body);
        return 0;
    }
    r->status = (int)p->status_code;
    r->complete = true;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* Wait until fd is ready for events or the deadline passes. */
static int wait_fd(int fd, short events, uint64_t deadline_ns)
{
    for (;;) {
        uint64_t now = exo_clock_ns();
        if (now >= deadline_ns)
            return EXO_ETIMEOUT;
        uint64_t left_ms = (deadline_ns - now + 999999) / 1000000;
        struct pollfd pfd = {.fd = fd, .events = events};
        int n = poll(&pfd, 1, left_ms > 60000 ? 60000 : (int)left_ms);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return exo_error_from_errno(errno);
    }
}

static int connect_one(const struct addrinfo *ai, uint64_t deadline_ns, int *ret_fd)
{
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return exo_error_from_errno(errno);
    int rc = 0;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        if (errno != EINPROGRESS) {
            rc = exo_error_from_errno(errno);
            goto out;
        }
        rc = wait_fd(fd, POLLOUT, deadline_ns);
        if (rc)
            goto out;
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        if (err)
            rc = exo_error_from_errno(err);
    }
out:
    if (rc) {
        close(fd);
        return rc;
    }
    *ret_fd = fd;
    return 0;
}

static int connect_host(const char *host, uint16_t port, uint64_t deadline_ns, int *ret_fd)
{
    char service[8];
    snprintf(service, sizeof(service), "%u", port);
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *list = NULL;
    int gai = getaddrinfo(host, service, &hints, &list);
    if (gai != 0)
        return gai == EAI_NONAME || gai == EAI_NODATA ? EXO_ENOENT : EXO_EIO;
    int rc = EXO_ENOENT;
    for (const struct addrinfo *ai = list; ai; ai = ai->ai_next) {
        rc = connect_one(ai, deadline_ns, ret_fd);
        if (rc == 0 || rc == EXO_ETIMEOUT)
            break;
    }
    freeaddrinfo(list);
    return rc;
}

static int send_all(int fd, const uint8_t *data, size_t len, uint64_t deadline_ns)
{
    while (len) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n > 0) {
            data += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return exo_error_from_errno(errno);
        int rc = wait_fd(fd, POLLOUT, deadline_ns);
        if (rc)
            return rc;
    }
    return 0;
}

static int receive(int fd, struct response *r, uint64_t deadline_ns)
{
    http_parser parser;
    http_parser_init(&parser, HTTP_RESPONSE);
    parser.data = r;
    char chunk[16384];
    for (;;) {
        ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR)
                return exo_error_from_errno(errno);
            int rc = wait_fd(fd, POLLIN, deadline_ns);
            if (rc)
                return rc;
            continue;
        }
        /* n == 0 tells the parser about the end of the stream, which completes a response
         * delimited by closing and is an error anywhere else. */
        http_parser_execute(&parser, &settings, chunk, (size_t)n);
        if (r->complete)
            return 0;
        if (HTTP_PARSER_ERRNO(&parser) != HPE_OK)
            return r->too_big ? EXO_ETOOBIG : r->body->err ? r->body->err : EXO_EPROTO;
        if (n == 0)
            return EXO_EPROTO;
    }
}

/* Request-target and token bytes that could not break the request apart. */
static bool safe_text(const char *s, bool allow_space)
{
    for (const unsigned char *q = (const unsigned char *)s; *q; q++)
        if (*q < 0x20 || *q == 0x7f || (*q == ' ' && !allow_space))
            return false;
    return true;
}

int exo_http_get(const char *host, uint16_t port, const char *path, const char *token,
                 int timeout_ms, struct exo_buf *body, int *status)
{
    if (!host || !host[0] || !safe_text(host, false) || !path || path[0] != '/' ||
        !safe_text(path, false) || (token && !safe_text(token, true)) || timeout_ms <= 0 || !body ||
        !status)
        return EXO_EINVAL;
    uint64_t deadline = exo_clock_ns() + (uint64_t)timeout_ms * 1000000u;
    int fd = -1;
    struct exo_buf req;
    exo_buf_init(&req, 0);
    exo_buf_reset(body);
    struct response r = {.body = body,
                         .cap = body->max < DEFAULT_BODY_CAP ? body->max : DEFAULT_BODY_CAP};

    int rc = connect_host(host, port, deadline, &fd);
    if (rc)
        goto out;
    bool v6 = strchr(host, ':') != NULL;
    exo_buf_printf(&req, "GET %s HTTP/1.1\r\nHost: %s%s%s:%u\r\n", path, v6 ? "[" : "", host,
                   v6 ? "]" : "", port);
    if (token)
        exo_buf_printf(&req, "Authorization: Bearer %s\r\n", token);
    exo_buf_printf(&req, "User-Agent: exo/%s\r\nAccept: */*\r\nConnection: close\r\n\r\n",
                   EXO_VERSION);
    rc = req.err;
    if (rc)
        goto out;
    rc = send_all(fd, req.data, req.len, deadline);
    if (rc)
        goto out;
    rc = receive(fd, &r, deadline);
    if (rc == 0)
        *status = r.status;
out:
    if (fd >= 0)
        close(fd);
    exo_buf_free(&req);
    return rc;
}
