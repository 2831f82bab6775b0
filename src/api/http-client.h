/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A tiny blocking HTTP/1.1 client for CLI subcommands (`exo status` asking the local daemon). It
 * blocks the calling thread, so it must never run on the daemon's loop. The response is parsed
 * with http-parser; chunked and close-delimited bodies are supported and the body is capped by
 * the caller's buffer.
 */
#ifndef EXO_API_HTTP_CLIENT_H
#define EXO_API_HTTP_CLIENT_H

#include <stdint.h>

#include "core/buf.h"

/* GET http://host:port/path. host is a name or an IPv4/IPv6 literal, path starts with '/', token
 * (NULL for none) is sent as "Authorization: Bearer <token>"; all borrowed. The whole exchange
 * must finish within timeout_ms. body (caller's, initialised; its max caps the body, or 64 MiB
 * when it has none) is reset and receives the body; *status gets the HTTP status. Any complete
 * response is success, whatever its status. Returns 0, EXO_EINVAL, EXO_ENOENT (name not
 * resolved), EXO_ETIMEOUT, EXO_ETOOBIG (body over the cap), EXO_EPROTO (malformed or cut
 * response), EXO_ENOMEM, or the connect/send/receive error mapped from errno. */
int exo_http_get(const char *host, uint16_t port, const char *path, const char *token,
                 int timeout_ms, struct exo_buf *body, int *status);

#endif
