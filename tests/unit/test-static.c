/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Static files (src/api/static.c): content types, routes, ETag and 304, HEAD, the token rule,
 * and the dashboard embedded from web/. Requests go through socket-less connections
 * (exo_http_conn_*) to a server on a loop in the test thread; the handlers answer at once, and
 * every wait for output is bounded by a count of loop turns.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>
#include <uv.h>

#include "api/http.h"
#include "api/static.h"
#include "core/buf.h"
#include "core/error.h"

static const unsigned char page[] = "<!doctype html><p>hi</p>\n";
static const unsigned char script[] = "console.log(1);\n";
static const unsigned char style[] = "p{color:red}\n";

static const struct exo_static_asset test_assets[] = {
    {"app.js", script, sizeof(script) - 1, "\"js1\""},
    {"index.html", page, sizeof(page) - 1, "\"page1\""},
    {"sub/x.css", style, sizeof(style) - 1, "\"css1\""},
};
static const struct exo_static_set test_set = {test_assets, 3};

struct fx {
    uv_loop_t loop;
    struct exo_http_server *srv;
    struct exo_http_conn *conn;
    struct exo_buf out;
    bool stopped;
};

static void fx_start(struct fx *fx, const char *token, const struct exo_static_set *set)
{
    memset(fx, 0, sizeof(*fx));
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    struct exo_http_config cfg = {.api_token = token};
    assert_int_equal(exo_http_server_start(&fx->loop, &cfg, &fx->srv), 0);
    assert_int_equal(exo_static_register(fx->srv, set), 0);
    exo_buf_init(&fx->out, 0);
    assert_int_equal(exo_http_conn_open(fx->srv, "127.0.0.1", &fx->out, &fx->conn), 0);
}

static void on_stopped(void *ud)
{
    ((struct fx *)ud)->stopped = true;
}

static void fx_stop(struct fx *fx)
{
    exo_http_conn_close(fx->conn);
    exo_http_server_stop(fx->srv, on_stopped, fx);
    for (int i = 0; i < 1000 && !fx->stopped; i++)
        uv_run(&fx->loop, UV_RUN_NOWAIT);
    assert_true(fx->stopped);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    exo_buf_free(&fx->out);
}

/* Send one request and return the whole response text (NUL-terminated, in fx->out). */
static const char *request(struct fx *fx, const char *method, const char *path, const char *headers)
{
    char req[1024];
    snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: x\r\n%s\r\n", method, path,
             headers ? headers : "");
    exo_buf_reset(&fx->out);
    assert_int_equal(exo_http_conn_feed(fx->conn, req, strlen(req)), 0);
    for (int i = 0; i < 100 && !fx->out.len; i++)
        uv_run(&fx->loop, UV_RUN_NOWAIT);
    exo_buf_put(&fx->out, "", 1);
    fx->out.len--;
    assert_true(fx->out.len > 0);
    return (const char *)fx->out.data;
}

static int status_of(const char *resp)
{
    return atoi(resp + strlen("HTTP/1.1 "));
}

/* The value of header name in resp, copied into buf; NULL when absent. */
static const char *header(const char *resp, const char *name, char *buf, size_t cap)
{
    const char *end = strstr(resp, "\r\n\r\n");
    size_t n = strlen(name);
    for (const char *line = strstr(resp, "\r\n"); line && line < end;
         line = strstr(line + 2, "\r\n")) {
        if (strncasecmp(line + 2, name, n) == 0 && line[2 + n] == ':') {
            const char *v = line + 2 + n + 1;
            v += strspn(v, " ");
            snprintf(buf, cap, "%.*s", (int)strcspn(v, "\r"), v);
            return buf;
        }
    }
    return NULL;
}

static const char *body_of(const char *resp)
{
    const char *end = strstr(resp, "\r\n\r\n");
    assert_non_null(end);
    return end + 4;
}

static void test_static_content_type(void **state)
{
    assert_string_equal(exo_static_content_type("index.html"), "text/html; charset=utf-8");
    assert_string_equal(exo_static_content_type("app.js"), "text/javascript; charset=utf-8");
    assert_string_equal(exo_static_content_type("a/b/style.CSS"), "text/css; charset=utf-8");
    assert_string_equal(exo_static_content_type("logo.svg"), "image/svg+xml");
    assert_string_equal(exo_static_content_type("README"), "application/octet-stream");
    assert_string_equal(exo_static_content_type("v1.2/README"), "application/octet-stream");
    assert_string_equal(exo_static_content_type("archive.tar.gz"), "application/octet-stream");
    assert_string_equal(exo_static_content_type("dot."), "application/octet-stream");
}

static void test_static_find_and_register(void **state)
{
    assert_ptr_equal(exo_static_find(&test_set, "sub/x.css"), &test_assets[2]);
    assert_null(exo_static_find(&test_set, "sub"));
    assert_null(exo_static_find(&test_set, "x.css"));

    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct exo_http_server *srv = NULL;
    struct exo_http_config cfg = {0};
    assert_int_equal(exo_http_server_start(&loop, &cfg, &srv), 0);
    const struct exo_static_set no_index = {test_assets, 1};
    assert_int_equal(exo_static_register(srv, &no_index), EXO_EINVAL);
    assert_int_equal(exo_static_register(NULL, &test_set), EXO_EINVAL);
    assert_int_equal(exo_static_register(srv, &test_set), 0);
    assert_int_equal(exo_static_register(srv, &test_set), EXO_EEXIST);
    exo_http_server_stop(srv, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_static_routes(void **state)
{
    struct fx fx;
    char buf[256];
    fx_start(&fx, NULL, &test_set);

    const char *r = request(&fx, "GET", "/", NULL);
    assert_int_equal(status_of(r), 200);
    assert_string_equal(header(r, "Content-Type", buf, sizeof(buf)), "text/html; charset=utf-8");
    assert_string_equal(header(r, "ETag", buf, sizeof(buf)), "\"page1\"");
    assert_string_equal(header(r, "Cache-Control", buf, sizeof(buf)), "no-cache");
    assert_string_equal(header(r, "X-Content-Type-Options", buf, sizeof(buf)), "nosniff");
    assert_non_null(header(r, "Content-Security-Policy", buf, sizeof(buf)));
    assert_string_equal(body_of(r), (const char *)page);

    r = request(&fx, "GET", "/assets/app.js", NULL);
    assert_int_equal(status_of(r), 200);
    assert_string_equal(header(r, "Content-Type", buf, sizeof(buf)),
                        "text/javascript; charset=utf-8");
    assert_null(header(r, "Content-Security-Policy", buf, sizeof(buf)));
    assert_string_equal(body_of(r), (const char *)script);

    r = request(&fx, "GET", "/assets/sub/x.css", NULL);
    assert_int_equal(status_of(r), 200);
    assert_string_equal(header(r, "Content-Type", buf, sizeof(buf)), "text/css; charset=utf-8");
    assert_string_equal(body_of(r), (const char *)style);

    /* Percent-encoded names are decoded before the lookup. */
    r = request(&fx, "GET", "/assets/app%2Ejs", NULL);
    assert_int_equal(status_of(r), 200);

    r = request(&fx, "GET", "/assets/missing.js", NULL);
    assert_int_equal(status_of(r), 404);
    assert_non_null(strstr(body_of(r), "\"error\""));
    r = request(&fx, "GET", "/assets/", NULL);
    assert_int_equal(status_of(r), 404);
    r = request(&fx, "GET", "/assets/sub/../app.js", NULL);
    assert_int_equal(status_of(r), 400);
    r = request(&fx, "GET", "/index.html", NULL);
    assert_int_equal(status_of(r), 404);
    r = request(&fx, "POST", "/", "Content-Length: 0\r\n");
    assert_int_equal(status_of(r), 405);
    fx_stop(&fx);
}

static void test_static_conditional(void **state)
{
    struct fx fx;
    char buf[256];
    fx_start(&fx, NULL, &test_set);
    static const char *const hits[] = {
        "If-None-Match: \"js1\"\r\n",
        "If-None-Match: \"old\", \"js1\"\r\n",
        "If-None-Match: \"old\",\"js1\" \r\n",
        "If-None-Match: W/\"js1\"\r\n",
        "If-None-Match: *\r\n",
    };
    for (size_t i = 0; i < sizeof(hits) / sizeof(hits[0]); i++) {
        const char *r = request(&fx, "GET", "/assets/app.js", hits[i]);
        assert_int_equal(status_of(r), 304);
        assert_string_equal(header(r, "ETag", buf, sizeof(buf)), "\"js1\"");
        assert_string_equal(header(r, "Cache-Control", buf, sizeof(buf)), "no-cache");
        assert_string_equal(body_of(r), "");
    }
    static const char *const misses[] = {
        "If-None-Match: \"js\"\r\n", "If-None-Match: \"js1x\"\r\n", "If-None-Match: js1\r\n",
        "If-None-Match: \r\n",       "If-None-Match: ,,, \r\n",     "If-None-Match: \"page1\"\r\n",
    };
    for (size_t i = 0; i < sizeof(misses) / sizeof(misses[0]); i++) {
        const char *r = request(&fx, "GET", "/assets/app.js", misses[i]);
        assert_int_equal(status_of(r), 200);
        assert_string_equal(body_of(r), (const char *)script);
    }
    fx_stop(&fx);
}

static void test_static_head(void **state)
{
    struct fx fx;
    char buf[256];
    fx_start(&fx, NULL, &test_set);
    const char *r = request(&fx, "HEAD", "/", NULL);
    assert_int_equal(status_of(r), 200);
    assert_int_equal(atoi(header(r, "Content-Length", buf, sizeof(buf))), sizeof(page) - 1);
    assert_string_equal(header(r, "ETag", buf, sizeof(buf)), "\"page1\"");
    assert_string_equal(body_of(r), "");
    r = request(&fx, "HEAD", "/assets/app.js", "If-None-Match: \"js1\"\r\n");
    assert_int_equal(status_of(r), 304);
    fx_stop(&fx);
}

/* A browser cannot send the bearer token when it navigates: the files need none. */
static void test_static_public_with_token(void **state)
{
    struct fx fx;
    fx_start(&fx, "s3cret", &test_set);
    assert_int_equal(status_of(request(&fx, "GET", "/", NULL)), 200);
    assert_int_equal(status_of(request(&fx, "GET", "/assets/app.js", NULL)), 200);
    fx_stop(&fx);
}

/* The dashboard built from web/: its page and every file the page names are there, each with a
 * known type and a quoted ETag. */
static void test_static_embedded_dashboard(void **state)
{
    const struct exo_static_asset *index = exo_static_find(&exo_static_web, "index.html");
    assert_non_null(index);
    for (size_t i = 0; i < exo_static_web.n; i++) {
        const struct exo_static_asset *a = &exo_static_web.assets[i];
        assert_string_not_equal(exo_static_content_type(a->path), "application/octet-stream");
        size_t n = strlen(a->etag);
        assert_true(n > 2 && a->etag[0] == '"' && a->etag[n - 1] == '"');
        assert_true(a->size > 0);
    }
    char *html = strndup((const char *)index->data, index->size);
    assert_non_null(html);
    int refs = 0;
    for (const char *p = strstr(html, "/assets/"); p; p = strstr(p + 1, "/assets/")) {
        char name[128];
        size_t len = strcspn(p + 8, "\"'?# >");
        assert_true(len < sizeof(name));
        snprintf(name, sizeof(name), "%.*s", (int)len, p + 8);
        if (!exo_static_find(&exo_static_web, name))
            fail_msg("index.html names /assets/%s, which is not embedded", name);
        refs++;
    }
    free(html);
    assert_true(refs >= 2); /* the script and the style sheet at least */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_static_content_type),
        cmocka_unit_test(test_static_find_and_register),
        cmocka_unit_test(test_static_routes),
        cmocka_unit_test(test_static_conditional),
        cmocka_unit_test(test_static_head),
        cmocka_unit_test(test_static_public_with_token),
        cmocka_unit_test(test_static_embedded_dashboard),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
