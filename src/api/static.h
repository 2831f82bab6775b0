/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Static files served from memory: the dashboard (web/), embedded into the binary at build time
 * by cmake/ExoEmbed.cmake. Routes:
 *   GET /            index.html
 *   GET /assets/P    the file P of the set (any other path under /assets/ is a 404)
 * Every answer carries a Content-Type from the file's extension, a strong ETag from its SHA-256
 * and Cache-Control: no-cache (browsers keep the files and revalidate: a 304 when If-None-Match
 * names the current ETag). HEAD gets the same headers without the body.
 *
 * The routes are public (no API token): a browser cannot send a bearer token when it navigates,
 * and the files are the same for everyone. The page asks for the token before it calls the API.
 *
 * Every function runs on the loop thread that owns the server.
 */
#ifndef EXO_API_STATIC_H
#define EXO_API_STATIC_H

#include <stddef.h>

struct exo_http_server;

struct exo_static_asset {
    const char *path;          /* relative to the set's root: "index.html", "app.js" */
    const unsigned char *data; /* size bytes */
    size_t size;
    const char *etag; /* quoted: "\"0123abcd\"" */
};

struct exo_static_set {
    const struct exo_static_asset *assets;
    size_t n;
};

/* The dashboard, generated from web/ at build time. */
extern const struct exo_static_set exo_static_web;

/* Route GET / and /assets/ on srv to the files of set (borrowed: it must outlive srv). The set
 * must hold index.html. 0, EXO_EINVAL, or exo_http_route's error. */
int exo_static_register(struct exo_http_server *srv, const struct exo_static_set *set);

/* The file called path in set (borrowed), or NULL. */
const struct exo_static_asset *exo_static_find(const struct exo_static_set *set, const char *path);

/* The Content-Type for path's extension; application/octet-stream when it is unknown. */
const char *exo_static_content_type(const char *path);

#endif
