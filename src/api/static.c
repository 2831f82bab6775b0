/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Static files from memory (see static.h): lookup, content types, conditional GET.
 *
 * Threads: everything runs on the loop thread; the files are constant data, so nothing is
 * locked or copied.
 */
#include "api/static.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "api/http.h"
#include "core/error.h"

#define ASSET_PREFIX "/assets/"

/* The page may load only its own files and talk only to its own origin; scripts and styles
 * from attributes or other sites are refused, which closes the usual injection paths. */
#define PAGE_POLICY                                                                  \
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; " \
    "frame-ancestors 'none'"

static const struct {
    const char *ext;
    const char *type;
} types[] = {
    {"html", "text/html; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"json", "application/json"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"ico", "image/x-icon"},
    {"txt", "text/plain; charset=utf-8"},
};

const char *exo_static_content_type(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');
    if (dot)
        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
            if (strcasecmp(dot + 1, types[i].ext) == 0)
                return types[i].type;
    return "application/octet-stream";
}

const struct exo_static_asset *exo_static_find(const struct exo_static_set *set, const char *path)
{
    for (size_t i = 0; i < set->n; i++)
        if (strcmp(set->assets[i].path, path) == 0)
            return &set->assets[i];
    return NULL;
}

/* Whether If-None-Match (a comma-separated list, or "*") names etag. The comparison is weak, as
 * RFC 9110 13.1.2 asks: W/"x" matches "x". */
static bool etag_matches(const char *list, const char *etag)
{
    size_t etag_len = strlen(etag);
    const char *p = list;
    while (*p) {
        p += strspn(p, " \t,");
        size_t len = strcspn(p, ",");
        size_t end = len;
        while (end > 0 && (p[end - 1] == ' ' || p[end - 1] == '\t'))
            end--;
        const char *tag = p;
        if (end >= 2 && strncmp(tag, "W/", 2) == 0) {
            tag += 2;
            end -= 2;
        }
        if ((end == 1 && tag[0] == '*') || (end == etag_len && memcmp(tag, etag, end) == 0))
            return true;
        p += len;
    }
    return false;
}

static void serve(struct exo_http_request *req, const struct exo_static_asset *a)
{
    bool page = strcmp(a->path, "index.html") == 0;
    /* Headers are small and fixed; the only failure is out of memory, and then the file goes
     * out without them, which browsers handle (they just do not cache it). */
    exo_http_add_header(req, "ETag", a->etag);
    exo_http_add_header(req, "Cache-Control", "no-cache");
    exo_http_add_header(req, "X-Content-Type-Options", "nosniff");
    if (page)
        exo_http_add_header(req, "Content-Security-Policy", PAGE_POLICY);
    const char *inm = exo_http_request_header(req, "If-None-Match");
    if (inm && etag_matches(inm, a->etag)) {
        exo_http_respond(req, 304, NULL, NULL, 0);
        return;
    }
    exo_http_respond(req, 200, exo_static_content_type(a->path), a->data, a->size);
}

static void h_index(struct exo_http_request *req, void *ud)
{
    const struct exo_static_set *set = ud;
    serve(req, exo_static_find(set, "index.html"));
}

static void h_asset(struct exo_http_request *req, void *ud)
{
    const struct exo_static_set *set = ud;
    const char *name = exo_http_request_path(req) + strlen(ASSET_PREFIX);
    const struct exo_static_asset *a = exo_static_find(set, name);
    if (a)
        serve(req, a);
    else
        exo_http_respond_error(req, 404, "no such file in the dashboard");
}

int exo_static_register(struct exo_http_server *srv, const struct exo_static_set *set)
{
    if (!srv || !set || !exo_static_find(set, "index.html"))
        return EXO_EINVAL;
    /* The handlers only read the set; ud is not const because handlers in general own state. */
    void *ud = (void *)set;
    int rc = exo_http_route(srv, EXO_HTTP_GET, "/", EXO_HTTP_ROUTE_PUBLIC, h_index, ud);
    if (rc == 0)
        rc = exo_http_route(srv, EXO_HTTP_GET, ASSET_PREFIX,
                            EXO_HTTP_ROUTE_PUBLIC | EXO_HTTP_ROUTE_PREFIX, h_asset, ud);
    return rc;
}
