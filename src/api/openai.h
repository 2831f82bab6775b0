/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The OpenAI-compatible routes: POST /v1/chat/completions, POST /v1/completions, GET /v1/models
 * and GET /v1/models/{id}. Requests are decoded into a typed struct under hard caps, answered
 * from the runner (streamed as Server-Sent Events or as one JSON body), and every failure is an
 * OpenAI-shaped error: {"error":{"message","type","param","code"}} with the status OpenAI uses.
 *
 * Everything here runs on the loop thread that owns the HTTP server and the runner.
 */
#ifndef EXO_API_OPENAI_H
#define EXO_API_OPENAI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "core/buf.h"
#include "core/error.h"
#include "engine/chat.h"

struct cJSON;
struct exo_http_server;
struct exo_runner;

/* Hard caps on a request body's contents (the HTTP layer caps the body's size). */
#define EXO_OPENAI_MAX_MESSAGES  1024
#define EXO_OPENAI_MAX_PARTS     64 /* content parts in one message */
#define EXO_OPENAI_MAX_STOP      4  /* as OpenAI allows */
#define EXO_OPENAI_MAX_STOP_LEN  256
#define EXO_OPENAI_MAX_MODEL_LEN 256
#define EXO_OPENAI_MAX_TOKENS    (1 << 24)
#define EXO_OPENAI_BODY_MAX      (4u << 20) /* body cap of the generation routes */

enum exo_openai_kind {
    EXO_OPENAI_CHAT,       /* /v1/chat/completions */
    EXO_OPENAI_COMPLETION, /* /v1/completions */
};

/* A decoded request. Strings are borrowed from the request's own storage and live until
 * exo_openai_request_free. */
struct exo_openai_request {
    enum exo_openai_kind kind;
    const char *model;                 /* NULL when not given */
    struct exo_chat_message *messages; /* chat: n_messages >= 1; roles are system, user or
                                        * assistant ("developer" is read as system) */
    size_t n_messages;
    const char *prompt; /* completion */
    bool stream;
    bool include_usage;       /* stream_options.include_usage */
    int32_t max_tokens;       /* max_completion_tokens, else max_tokens; -1 if
                               * neither (chat: until the context is full;
                               * completion: 16, OpenAI's default) */
    double temperature;       /* [0, 2], default 1 */
    double top_p;             /* [0, 1], default 1 */
    double presence_penalty;  /* [-2, 2], default 0 */
    double frequency_penalty; /* [-2, 2], default 0 */
    bool has_seed;
    uint64_t seed;
    const char *stop[EXO_OPENAI_MAX_STOP]; /* non-empty strings */
    size_t n_stop;

    struct cJSON *root; /* owned: the parsed body */
    char **owned;       /* owned: contents joined from parts, one slot per message */
};

/* Why a request was refused, in the shape OpenAI answers with. */
struct exo_openai_error {
    int status;           /* HTTP status */
    const char *type;     /* static: "invalid_request_error", "server_error", ... */
    const char *code;     /* static or NULL: "model_not_found", "context_length_exceeded", ... */
    char param[64];       /* the offending field ("messages[1].content"), or "" for none */
    struct exo_diag diag; /* the message */
};

/* Decode body (len bytes, borrowed; any bytes) as a request of the given kind into *ret (owned
 * by the caller afterwards: exo_openai_request_free, also after a failure). Returns 0, or
 * EXO_EFORMAT (not JSON, or a field of the wrong type), EXO_ERANGE (a value out of range),
 * EXO_ETOOBIG (over a cap), EXO_EUNSUPPORTED (a feature this server does not offer) or
 * EXO_ENOMEM, with err (which may be NULL) filled to answer the client. Never logs. */
int exo_openai_decode(enum exo_openai_kind kind, const char *body, size_t len,
                      struct exo_openai_request *ret, struct exo_openai_error *err);

/* Release what a request owns. Accepts NULL and requests that failed to decode. */
void exo_openai_request_free(struct exo_openai_request *req);

/* Append the error's JSON body to out (borrowed). */
void exo_openai_error_json(const struct exo_openai_error *err, struct exo_buf *out);

/* The id /v1/models shows for the model file at path (borrowed): its base name without
 * ".gguf", lowercased, with characters other than [a-z0-9._-] replaced by '-'. */
void exo_openai_model_id(const char *path, char *buf, size_t size);

/* Whether a request's `model` names the model at path: its id, its file name with or without
 * ".gguf", its general.name (name, may be NULL) or "default", compared ignoring case. All three
 * strings are borrowed; a NULL requested or path matches nothing. */
bool exo_openai_model_matches(const char *requested, const char *path, const char *name);

/* The routes. ---------------------------------------------------------------------------------- */

struct exo_openai;

/* Route the /v1 paths on srv (borrowed) to the model the runner (borrowed) serves; both must
 * outlive the routes object. *ret is owned by the caller and released by exo_openai_stop.
 * 0, EXO_EINVAL, EXO_ENOMEM or a routing error; after a failure some routes may already point at
 * the (freed) object, so the caller must stop the server without serving from it. */
int exo_openai_register(struct exo_http_server *srv, struct exo_runner *runner,
                        struct exo_openai **ret);

/* Other nodes' models, for requests this node cannot answer itself (set by the daemon; the
 * callbacks run on the loop). */
struct exo_openai_peers {
    /* Append /v1/models objects for the models other nodes serve, leaving out local_id ("" for
     * none), comma-separated, with a comma before the first when `comma` (the array has one). */
    void (*list)(void *ud, const char *local_id, bool comma, struct exo_buf *out);
    /* An alive node that serves `model`: its API's IP literal, port and a label for messages.
     * 0 or EXO_ENOENT. */
    int (*find)(void *ud, const char *model, char ip[64], uint16_t *port, char label[96]);
    void *ud;
};

/* Forward requests for a model that only other nodes serve (exo_forward on loop, borrowed);
 * peers is copied, its ud borrowed. NULL peers turns forwarding off. */
void exo_openai_set_peers(struct exo_openai *oa, uv_loop_t *loop,
                          const struct exo_openai_peers *peers);

/* Requests being answered now (their jobs queued or running). */
size_t exo_openai_in_flight(const struct exo_openai *oa);

/* Refuse new requests (503) and cancel the jobs of those in flight; once each has had its DONE
 * event and ended its response, call done(ud) from the loop (at once when nothing is in
 * flight). ud is borrowed. */
void exo_openai_stop(struct exo_openai *oa, void (*done)(void *ud), void *ud);

/* Free the routes object once stopped and drained, when the server no longer routes to it (it
 * has been stopped). Accepts NULL. */
void exo_openai_free(struct exo_openai *oa);

#endif
