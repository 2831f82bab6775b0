/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Writing JSON text by hand where building a cJSON tree per message would cost more than the
 * message (one SSE chunk per generated token) or where the text must be valid whatever the input
 * (error messages that quote what a client sent).
 */
#ifndef EXO_API_JSON_H
#define EXO_API_JSON_H

#include <stddef.h>

#include "core/buf.h"

/* Append s (len bytes, borrowed; NULs allowed) to b as a JSON string literal with its quotes.
 * Quotes, backslashes and control characters are escaped, and bytes that are not valid UTF-8
 * become U+FFFD, one per maximal invalid subpart, so the result is always valid JSON. */
void exo_json_put_string(struct exo_buf *b, const char *s, size_t len);

#endif
