/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Prometheus text format 0.0.4 (see prom.h). The escaping rules differ by place: HELP text
 * escapes backslash and newline, label values also escape the double quote, and metric and label
 * names are never escaped but validated, since a bad name cannot be written at all.
 */
#include "api/prom.h"

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

static const char *const type_names[] = {
    [EXO_PROM_COUNTER] = "counter",
    [EXO_PROM_GAUGE] = "gauge",
    [EXO_PROM_UNTYPED] = "untyped",
};

static bool is_name_start(char ch, bool colon_ok)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' ||
           (colon_ok && ch == ':');
}

static bool valid_name(const char *s, bool colon_ok)
{
    if (!s || !is_name_start(s[0], colon_ok))
        return false;
    for (const char *q = s + 1; *q; q++)
        if (!is_name_start(*q, colon_ok) && !(*q >= '0' && *q <= '9'))
            return false;
    return true;
}

/* Append s with backslash and newline escaped, and the double quote too when quote is set. */
static void put_escaped(struct exo_buf *b, const char *s, bool quote)
{
    const char *run = s;
    for (const char *q = s;; q++) {
        const char *esc = NULL;
        if (*q == '\\')
            esc = "\\\\";
        else if (*q == '\n')
            esc = "\\n";
        else if (*q == '"' && quote)
            esc = "\\\"";
        else if (*q)
            continue;
        exo_buf_put(b, run, (size_t)(q - run));
        if (!esc)
            return;
        exo_buf_put(b, esc, 2);
        run = q + 1;
    }
}

/* Record the first error; every call after it fails the same way. */
static int fail(struct exo_prom *p, int code)
{
    if (!p->err)
        p->err = code;
    return p->err;
}

/* Bring the writer's error up to date with the output buffer's after a write, and take back a
 * partly written line so that the output never ends in the middle of one. */
static int settle(struct exo_prom *p, size_t mark)
{
    if (!p->out->err)
        return 0;
    p->out->len = mark;
    return fail(p, p->out->err);
}

void exo_prom_init(struct exo_prom *p, struct exo_buf *out)
{
    p->out = out;
    exo_buf_init(&p->names, 0);
    p->family = SIZE_MAX;
    p->type = EXO_PROM_UNTYPED;
    p->err = 0;
}

void exo_prom_free(struct exo_prom *p)
{
    if (!p)
        return;
    exo_buf_free(&p->names);
    p->family = SIZE_MAX;
}

static bool family_seen(const struct exo_prom *p, const char *name)
{
    size_t off = 0;
    while (off < p->names.len) {
        const char *seen = (const char *)p->names.data + off;
        if (strcmp(seen, name) == 0)
            return true;
        off += strlen(seen) + 1;
    }
    return false;
}

int exo_prom_family(struct exo_prom *p, const char *name, enum exo_prom_type type, const char *help)
{
    if (p->err)
        return p->err;
    if (!valid_name(name, true) || (unsigned)type > EXO_PROM_UNTYPED || !help)
        return fail(p, EXO_EINVAL);
    if (family_seen(p, name))
        return fail(p, EXO_EEXIST);
    size_t off = p->names.len;
    exo_buf_put(&p->names, name, strlen(name) + 1);
    if (p->names.err)
        return fail(p, p->names.err);

    size_t mark = p->out->len;
    exo_buf_printf(p->out, "# HELP %s ", name);
    put_escaped(p->out, help, false);
    exo_buf_printf(p->out, "\n# TYPE %s %s\n", name, type_names[type]);
    int rc = settle(p, mark);
    if (rc)
        return rc;
    p->family = off;
    p->type = type;
    return 0;
}

/* Name and labels of a sample, up to the space before the value. */
static int put_series(struct exo_prom *p, const struct exo_prom_label *labels, size_t n)
{
    if (p->family == SIZE_MAX || (n && !labels))
        return fail(p, EXO_EINVAL);
    for (size_t i = 0; i < n; i++) {
        const char *ln = labels[i].name;
        if (!valid_name(ln, false) || (ln[0] == '_' && ln[1] == '_') || !labels[i].value)
            return fail(p, EXO_EINVAL);
    }
    const char *family = (const char *)p->names.data + p->family;
    exo_buf_put(p->out, family, strlen(family));
    for (size_t i = 0; i < n; i++) {
        exo_buf_printf(p->out, "%c%s=\"", i ? ',' : '{', labels[i].name);
        put_escaped(p->out, labels[i].value, true);
        exo_buf_put(p->out, "\"", 1);
    }
    if (n)
        exo_buf_put(p->out, "}", 1);
    exo_buf_put(p->out, " ", 1);
    return 0;
}

int exo_prom_sample(struct exo_prom *p, const struct exo_prom_label *labels, size_t n_labels,
                    double value)
{
    if (p->err)
        return p->err;
    if (p->type == EXO_PROM_COUNTER && value < 0)
        return fail(p, EXO_ERANGE);
    size_t mark = p->out->len;
    int rc = put_series(p, labels, n_labels);
    if (rc)
        return rc;
    if (isnan(value)) {
        exo_buf_put(p->out, "NaN\n", 4);
    } else if (isinf(value)) {
        exo_buf_printf(p->out, "%cInf\n", value > 0 ? '+' : '-');
    } else {
        /* The shortest of %.15g and %.17g that reads back as the same double. */
        char text[32];
        snprintf(text, sizeof(text), "%.15g", value);
        if (strtod(text, NULL) != value)
            snprintf(text, sizeof(text), "%.17g", value);
        exo_buf_printf(p->out, "%s\n", text);
    }
    return settle(p, mark);
}

int exo_prom_sample_u64(struct exo_prom *p, const struct exo_prom_label *labels, size_t n_labels,
                        uint64_t value)
{
    if (p->err)
        return p->err;
    size_t mark = p->out->len;
    int rc = put_series(p, labels, n_labels);
    if (rc)
        return rc;
    exo_buf_printf(p->out, "%" PRIu64 "\n", value);
    return settle(p, mark);
}
