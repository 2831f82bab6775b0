/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Pass a request received by this node's API on to another node's API and stream the answer
 * back as it comes: the same method, target and body, the client's Authorization header, and a
 * hop marker (EXO_FORWARD_HEADER) so that a forwarded request is never forwarded again. A client
 * that leaves cancels the upstream request; an upstream that cannot be reached or goes quiet
 * gets the client an OpenAI-shaped 502 or 504 (or, once the answer has begun, a cut stream).
 */
#ifndef EXO_API_FORWARD_H
#define EXO_API_FORWARD_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

struct exo_http_request;

#define EXO_FORWARD_HEADER "X-Exo-Forwarded"

/* Whether req came from another node (and must be answered here). */
bool exo_forward_is_forwarded(const struct exo_http_request *req);

/* Answer req (borrowed until its response ends, which this does) from ip:port (an IP literal,
 * copied) as described above; label names the peer in errors and logs; head_timeout_ms bounds
 * the wait for the answer to begin (0: 30 s, for a peer that may queue the request first).
 * Returns 0 once the response is in hand, or an error after which req is still the caller's
 * (EXO_EINVAL, EXO_ENOMEM, or a connect error reported at once). */
int exo_forward(uv_loop_t *loop, struct exo_http_request *req, const char *ip, uint16_t port,
                const char *label, int head_timeout_ms);

#endif
