/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A writer for the Prometheus text exposition format 0.0.4, the body of /metrics. Each metric
 * family is opened once with exo_prom_family(), which writes its `# HELP` and `# TYPE` lines;
 * the samples that follow belong to that family until the next one is opened, which is the
 * grouping the format requires. A family name seen twice is refused (EXO_EEXIST), so two modules
 * cannot silently export the same family.
 *
 * Errors are sticky, like exo_buf's: the first one is kept in `err`, every later call returns it
 * and writes nothing, so a metrics handler can write all its families and check once at the end.
 * A refused call never leaves half a line in the output.
 */
#ifndef EXO_API_PROM_H
#define EXO_API_PROM_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

enum exo_prom_type {
    EXO_PROM_COUNTER,
    EXO_PROM_GAUGE,
    EXO_PROM_UNTYPED,
};

/* One label of a sample; both strings are borrowed for the duration of the call. The value may
 * hold any bytes but NUL (backslash, double quote and newline are escaped). */
struct exo_prom_label {
    const char *name;
    const char *value;
};

struct exo_prom {
    struct exo_buf *out;     /* borrowed: the text is appended here */
    struct exo_buf names;    /* owned: every family opened so far, each NUL-terminated */
    size_t family;           /* offset in names of the open family; SIZE_MAX before the first */
    enum exo_prom_type type; /* of the open family */
    int err;                 /* first error, or 0 */
};

/* Start writing to out (borrowed; must outlive the writer). */
void exo_prom_init(struct exo_prom *p, struct exo_buf *out);

/* Release what the writer owns (not the output buffer). Accepts NULL. */
void exo_prom_free(struct exo_prom *p);

/* Open a family: name must match [a-zA-Z_:][a-zA-Z0-9_:]* and not have been opened before
 * (EXO_EEXIST); help is any text (borrowed; backslash and newline are escaped). Returns 0,
 * EXO_EINVAL, EXO_EEXIST, or the output buffer's error. */
int exo_prom_family(struct exo_prom *p, const char *name, enum exo_prom_type type,
                    const char *help);

/* A sample of the open family (EXO_EINVAL when none is open). labels (borrowed, may be NULL when
 * n_labels is 0): names match [a-zA-Z_][a-zA-Z0-9_]* and do not start with "__". Counters refuse
 * negative values (EXO_ERANGE). NaN and the infinities are written as NaN, +Inf and -Inf. */
int exo_prom_sample(struct exo_prom *p, const struct exo_prom_label *labels, size_t n_labels,
                    double value);

/* The same with an exact integer value (a double cannot hold every counter above 2^53). */
int exo_prom_sample_u64(struct exo_prom *p, const struct exo_prom_label *labels, size_t n_labels,
                        uint64_t value);

#endif
