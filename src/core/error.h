/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Error codes shared by every module. Functions that can fail return 0 on success or one of the
 * negative EXO_E* codes below; the same X-macro table feeds exo_strerror() and exo_errname() so a
 * code can never lack its text. "Try again" (EXO_EAGAIN) is a normal result, not a failure.
 *
 * Parsers of outside bytes (GGUF, DNS, gossip, HTTP, JSON) do not log: they return a code and, when
 * the caller passes one, fill a struct exo_diag with a sentence that names the input, the field and
 * the byte offset. The caller decides whether and where to log it.
 */
#ifndef EXO_CORE_ERROR_H
#define EXO_CORE_ERROR_H

#include <stddef.h>

#define EXO_ERROR_MAP(X)                                                                           \
    X(NOMEM, "out of memory")                                                                      \
    X(INVAL, "invalid argument")                                                                   \
    X(IO, "input/output error")                                                                    \
    X(FORMAT, "malformed input")                                                                   \
    X(TRUNCATED, "input is truncated")                                                             \
    X(UNSUPPORTED, "not supported")                                                                \
    X(RANGE, "value out of range")                                                                 \
    X(NOENT, "not found")                                                                          \
    X(EXIST, "already exists")                                                                     \
    X(AGAIN, "try again")                                                                          \
    X(TOOBIG, "input exceeds a size limit")                                                        \
    X(AUTH, "authentication failed")                                                               \
    X(REPLAY, "replayed or stale message")                                                         \
    X(TIMEOUT, "timed out")                                                                        \
    X(CANCELED, "canceled")                                                                        \
    X(BUSY, "resource busy")                                                                       \
    X(CLOSED, "connection closed")                                                                 \
    X(PROTO, "protocol error")                                                                     \
    X(NODEV, "no such device")                                                                     \
    X(NOSPC, "no space left")                                                                      \
    X(PERM, "permission denied")                                                                   \
    X(ABI, "incompatible plugin ABI")                                                              \
    X(INTERNAL, "internal error")

enum exo_error {
    EXO_OK = 0,
    EXO_E__FIRST = -1000,
#define EXO_ERROR_ENUM(name, text) EXO_E##name,
    EXO_ERROR_MAP(EXO_ERROR_ENUM)
#undef EXO_ERROR_ENUM
        EXO_E__LAST
};

/* A sentence that explains a failure to a person. Borrowed storage of the caller; may be NULL. */
struct exo_diag {
    char msg[512];
};

/* Static text for a code ("out of memory"); unknown codes give "unknown error". Never NULL. */
const char *exo_strerror(int code);

/* The code's symbolic name ("EXO_ENOMEM"). Never NULL. */
const char *exo_errname(int code);

/* Map a negative errno value (as libuv and POSIX give) to the nearest EXO_E* code. */
int exo_error_from_errno(int errnum);

/* Fill diag (when not NULL) with a printf-style message and return code, so that a parser can
 * write `return exo_diag_set(diag, EXO_EFORMAT, "...", ...);`. */
int exo_diag_set(struct exo_diag *diag, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
