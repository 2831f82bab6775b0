/* SPDX-License-Identifier: Apache-2.0 */
/* The text side of the error table in error.h. */
#include "core/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

struct error_entry {
    const char *name;
    const char *text;
};

static const struct error_entry error_table[] = {
#define EXO_ERROR_ENTRY(name, text) {"EXO_E" #name, text},
    EXO_ERROR_MAP(EXO_ERROR_ENTRY)
#undef EXO_ERROR_ENTRY
};

static const struct error_entry *lookup(int code)
{
    if (code <= EXO_E__FIRST || code >= EXO_E__LAST)
        return NULL;
    return &error_table[code - EXO_E__FIRST - 1];
}

const char *exo_strerror(int code)
{
    const struct error_entry *e = lookup(code);
    if (code == 0)
        return "success";
    return e ? e->text : "unknown error";
}

const char *exo_errname(int code)
{
    const struct error_entry *e = lookup(code);
    if (code == 0)
        return "EXO_OK";
    return e ? e->name : "EXO_E?";
}

int exo_error_from_errno(int errnum)
{
    switch (errnum < 0 ? -errnum : errnum) {
    case 0:
        return EXO_OK;
    case ENOMEM:
        return EXO_ENOMEM;
    case EINVAL:
        return EXO_EINVAL;
    case ENOENT:
        return EXO_ENOENT;
    case EEXIST:
        return EXO_EEXIST;
    case EAGAIN:
        return EXO_EAGAIN;
    case ETIMEDOUT:
        return EXO_ETIMEOUT;
    case ECANCELED:
        return EXO_ECANCELED;
    case EBUSY:
    case EADDRINUSE:
        return EXO_EBUSY;
    case EPIPE:
    case ECONNRESET:
    case ENOTCONN:
        return EXO_ECLOSED;
    case ENOSPC:
    case EDQUOT:
        return EXO_ENOSPC;
    case EACCES:
    case EPERM:
        return EXO_EPERM;
    case ENODEV:
    case ENXIO:
        return EXO_ENODEV;
    case EFBIG:
    case E2BIG:
    case EMSGSIZE:
        return EXO_ETOOBIG;
    case ENOTSUP:
        return EXO_EUNSUPPORTED;
    default:
        return EXO_EIO;
    }
}

int exo_diag_set(struct exo_diag *diag, int code, const char *fmt, ...)
{
    if (diag) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(diag->msg, sizeof(diag->msg), fmt, ap);
        va_end(ap);
    }
    return code;
}
