/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The GGUF reader on good files (every value type, v2 and v3, alignments), on every truncation of
 * a small file, on corrupt and hostile headers, under allocation failure, and (when EXO_MODEL
 * names it) on the real default model.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "engine/gguf.h"
#include "support/gguf-writer.h"

/* A small file using every metadata type and two tensors. */
static struct gguf_writer *sample_writer(uint32_t version, uint32_t alignment)
{
    struct gguf_writer *w = gguf_writer_new(version, alignment);
    gguf_writer_u8(w, "t.u8", 200);
    gguf_writer_i8(w, "t.i8", -100);
    gguf_writer_u16(w, "t.u16", 60000);
    gguf_writer_i16(w, "t.i16", -30000);
    gguf_writer_u32(w, "t.u32", 4000000000u);
    gguf_writer_i32(w, "t.i32", -2000000000);
    gguf_writer_u64(w, "t.u64", 1ull << 40);
    gguf_writer_i64(w, "t.i64", -(1ll << 40));
    gguf_writer_f32(w, "t.f32", 1.5f);
    gguf_writer_f64(w, "t.f64", -2.25);
    gguf_writer_bool(w, "t.bool", true);
    gguf_writer_str(w, "t.str", "h\xc3\xa9llo");
    const int32_t ints[] = {1, -2, 3};
    gguf_writer_arr(w, "t.arr_i32", EXO_GGUF_INT32, ints, 3);
    const char *strs[] = {"a", "", "\xf0\x9f\x98\x80"};
    gguf_writer_arr_str(w, "t.arr_str", strs, 3);
    float f32[64];
    for (int i = 0; i < 64; i++)
        f32[i] = (float)i;
    uint64_t ne_a[2] = {16, 4};
    gguf_writer_tensor(w, "a", EXO_DTYPE_F32, 2, ne_a, f32);
    uint8_t q8[34 * 2] = {0};
    uint64_t ne_b[1] = {64};
    gguf_writer_tensor(w, "b.q8", EXO_DTYPE_Q8_0, 1, ne_b, q8);
    return w;
}

static void sample_bytes(uint32_t version, uint32_t alignment, uint8_t **data, size_t *size)
{
    struct gguf_writer *w = sample_writer(version, alignment);
    gguf_writer_finish(w, data, size);
    gguf_writer_free(w);
}

static void check_sample(const struct exo_gguf *g)
{
    uint32_t u32;
    int32_t i32;
    uint64_t u64;
    float f;
    bool b;
    struct exo_gguf_str s;
    const struct exo_gguf_kv *kv;

    assert_int_equal(exo_gguf_get_u32(g, "t.u8", &u32), 0);
    assert_int_equal(u32, 200);
    assert_int_equal(exo_gguf_get_i32(g, "t.i8", &i32), 0);
    assert_int_equal(i32, -100);
    assert_int_equal(exo_gguf_get_u32(g, "t.u16", &u32), 0);
    assert_int_equal(u32, 60000);
    assert_int_equal(exo_gguf_get_i32(g, "t.i16", &i32), 0);
    assert_int_equal(i32, -30000);
    assert_int_equal(exo_gguf_get_u32(g, "t.u32", &u32), 0);
    assert_int_equal(u32, 4000000000u);
    assert_int_equal(exo_gguf_get_i32(g, "t.u32", &i32), EXO_EFORMAT); /* out of range */
    assert_int_equal(exo_gguf_get_i32(g, "t.i32", &i32), 0);
    assert_int_equal(i32, -2000000000);
    assert_int_equal(exo_gguf_get_u32(g, "t.i32", &u32), EXO_EFORMAT); /* negative */
    assert_int_equal(exo_gguf_get_u64(g, "t.u64", &u64), 0);
    assert_true(u64 == 1ull << 40);
    assert_int_equal(exo_gguf_get_u32(g, "t.u64", &u32), EXO_EFORMAT);
    kv = exo_gguf_find(g, "t.i64");
    assert_non_null(kv);
    assert_true(kv->v.i64 == -(1ll << 40));
    assert_int_equal(exo_gguf_get_f32(g, "t.f32", &f), 0);
    assert_true(f == 1.5f);
    assert_int_equal(exo_gguf_get_f32(g, "t.f64", &f), 0);
    assert_true(f == -2.25f);
    assert_int_equal(exo_gguf_get_bool(g, "t.bool", &b), 0);
    assert_true(b);
    assert_int_equal(exo_gguf_get_str(g, "t.str", &s), 0);
    assert_int_equal(s.len, 6);
    assert_memory_equal(s.ptr, "h\xc3\xa9llo", 6);
    assert_int_equal(exo_gguf_get_str(g, "t.u8", &s), EXO_EFORMAT);
    assert_int_equal(exo_gguf_get_str(g, "missing", &s), EXO_ENOENT);

    assert_int_equal(exo_gguf_get_arr(g, "t.arr_i32", EXO_GGUF_INT32, &kv), 0);
    assert_int_equal(kv->v.arr.count, 3);
    int32_t ints[3];
    memcpy(ints, kv->v.arr.data, sizeof(ints));
    assert_int_equal(ints[1], -2);
    assert_int_equal(exo_gguf_get_arr(g, "t.arr_i32", EXO_GGUF_FLOAT32, &kv), EXO_EFORMAT);
    assert_int_equal(exo_gguf_get_arr(g, "t.arr_str", EXO_GGUF_STRING, &kv), 0);
    assert_int_equal(kv->v.arr.count, 3);
    assert_int_equal(kv->v.arr.strs[1].len, 0);
    assert_int_equal(kv->v.arr.strs[2].len, 4);
    assert_memory_equal(kv->v.arr.strs[2].ptr, "\xf0\x9f\x98\x80", 4);

    assert_int_equal(exo_gguf_tensor_count(g), 2);
    const struct exo_gguf_tensor *t = exo_gguf_find_tensor(g, "a");
    assert_non_null(t);
    assert_int_equal(t->n_dims, 2);
    assert_int_equal(t->ne[0], 16);
    assert_int_equal(t->ne[1], 4);
    assert_int_equal(t->ne[2], 1);
    assert_int_equal(t->type, EXO_DTYPE_F32);
    assert_int_equal(t->size, 256);
    float v;
    memcpy(&v, (const char *)t->data + 4 * 37, 4);
    assert_true(v == 37.0f);
    assert_int_equal((uintptr_t)((const uint8_t *)t->data - (const uint8_t *)exo_gguf_mapping(g, NULL)) %
                         exo_gguf_alignment(g),
                     0);
    t = exo_gguf_find_tensor(g, "b.q8");
    assert_non_null(t);
    assert_int_equal(t->size, 68);
    assert_null(exo_gguf_find_tensor(g, "c"));
}

static void test_gguf_reads_every_type(void **state)
{
    uint32_t versions[] = {2, 3};
    uint32_t alignments[] = {32, 1, 64, 4096};
    for (int v = 0; v < 2; v++) {
        for (int a = 0; a < 4; a++) {
            uint8_t *data;
            size_t size;
            struct exo_gguf *g = NULL;
            struct exo_diag diag = {{0}};
            sample_bytes(versions[v], alignments[a], &data, &size);
            int rc = exo_gguf_open_memory(data, size, "sample.gguf", &g, &diag);
            if (rc != 0)
                fail_msg("open failed: %s", diag.msg);
            assert_int_equal(exo_gguf_version(g), versions[v]);
            assert_int_equal(exo_gguf_alignment(g), alignments[a]);
            check_sample(g);
            exo_gguf_close(g);
            free(data);
        }
    }
}

static void test_gguf_reads_file_from_disk(void **state)
{
    char path[512];
    const char *tmp = getenv("EXO_TEST_TMP");
    snprintf(path, sizeof(path), "%s/test-gguf-sample.gguf", tmp ? tmp : "/tmp");
    struct gguf_writer *w = sample_writer(3, 32);
    assert_int_equal(gguf_writer_save(w, path), 0);
    gguf_writer_free(w);
    struct exo_gguf *g = NULL;
    struct exo_diag diag = {{0}};
    assert_int_equal(exo_gguf_open(path, &g, &diag), 0);
    assert_string_equal(exo_gguf_path(g), path);
    check_sample(g);
    exo_gguf_close(g);
    remove(path);

    assert_int_equal(exo_gguf_open("/nonexistent/model.gguf", &g, &diag), EXO_ENOENT);
    assert_non_null(strstr(diag.msg, "/nonexistent/model.gguf"));
    assert_int_equal(exo_gguf_open("/", &g, &diag), EXO_EINVAL);
    exo_gguf_close(NULL);
}

/* Every prefix of a valid file that cuts into its tensors is rejected with a message, never a
 * crash; cutting only the final padding is harmless. */
static void test_gguf_rejects_every_truncation(void **state)
{
    uint8_t *data;
    size_t size;
    sample_bytes(3, 32, &data, &size);
    struct exo_gguf *whole = NULL;
    assert_int_equal(exo_gguf_open_memory(data, size, "whole.gguf", &whole, NULL), 0);
    const struct exo_gguf_tensor *last = exo_gguf_find_tensor(whole, "b.q8");
    size_t data_end = exo_gguf_data_offset(whole) + last->offset + last->size;
    exo_gguf_close(whole);
    for (size_t n = 0; n < size; n++) {
        struct exo_gguf *g = NULL;
        struct exo_diag diag = {{0}};
        /* A copy of exactly n bytes, so ASan catches any read past the end. */
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, data, n);
        int rc = exo_gguf_open_memory(copy, n, "cut.gguf", &g, &diag);
        if (n >= data_end) {
            assert_int_equal(rc, 0);
            exo_gguf_close(g);
            free(copy);
            continue;
        }
        if (rc == 0)
            fail_msg("prefix of %zu/%zu bytes was accepted", n, size);
        assert_true(rc == EXO_ETRUNCATED || rc == EXO_EFORMAT);
        assert_non_null(strstr(diag.msg, "cut.gguf"));
        free(copy);
    }
    free(data);
}

static uint8_t *header_only(uint32_t version, uint64_t n_tensors, uint64_t n_kv, size_t *size)
{
    uint8_t *d = calloc(1, 64);
    memcpy(d, "GGUF", 4);
    memcpy(d + 4, &version, 4);
    memcpy(d + 8, &n_tensors, 8);
    memcpy(d + 16, &n_kv, 8);
    *size = 24;
    return d;
}

static void expect_reject(const uint8_t *data, size_t size, int code, const char *needle)
{
    struct exo_gguf *g = NULL;
    struct exo_diag diag = {{0}};
    int rc = exo_gguf_open_memory(data, size, "bad.gguf", &g, &diag);
    if (rc != code || !strstr(diag.msg, needle))
        fail_msg("expected %s with \"%s\", got %s: %s", exo_errname(code), needle, exo_errname(rc),
                 diag.msg);
    assert_null(g);
}

static void test_gguf_rejects_bad_headers(void **state)
{
    size_t size;
    uint8_t *d = header_only(3, 0, 0, &size);
    struct exo_gguf *g = NULL;
    assert_int_equal(exo_gguf_open_memory(d, size, "empty.gguf", &g, NULL), 0);
    assert_int_equal(exo_gguf_tensor_count(g), 0);
    exo_gguf_close(g);

    expect_reject(d, 0, EXO_ETRUNCATED, "empty");
    memcpy(d, "GGUG", 4);
    expect_reject(d, size, EXO_EFORMAT, "not a GGUF file");
    free(d);

    d = header_only(1, 0, 0, &size);
    expect_reject(d, size, EXO_EUNSUPPORTED, "version 1");
    free(d);
    d = header_only(3u << 24, 0, 0, &size);
    expect_reject(d, size, EXO_EUNSUPPORTED, "big-endian");
    free(d);
    d = header_only(3, 0, UINT64_MAX, &size);
    expect_reject(d, size, EXO_ETOOBIG, "metadata entries");
    free(d);
    d = header_only(3, 1000, 0, &size);
    expect_reject(d, size, EXO_ETRUNCATED, "1000 tensors");
    free(d);
    d = header_only(3, UINT64_MAX, 0, &size);
    expect_reject(d, size, EXO_ETOOBIG, "tensors");
    free(d);
}

/* Build a file, then let `mutate` corrupt one field found by searching for a marker. */
static void expect_reject_writer(struct gguf_writer *w, int code, const char *needle)
{
    uint8_t *data;
    size_t size;
    gguf_writer_finish(w, &data, &size);
    gguf_writer_free(w);
    expect_reject(data, size, code, needle);
    free(data);
}

static uint8_t *find(uint8_t *data, size_t size, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= size; i++)
        if (memcmp(data + i, needle, n) == 0)
            return data + i;
    fail_msg("marker %s not found", needle);
    return NULL;
}

static void test_gguf_rejects_hostile_metadata(void **state)
{
    struct gguf_writer *w = gguf_writer_new(3, 32);
    gguf_writer_u32(w, "dup", 1);
    gguf_writer_u32(w, "dup", 2);
    expect_reject_writer(w, EXO_EFORMAT, "duplicate metadata key 'dup'");

    w = gguf_writer_new(3, 32);
    gguf_writer_u32(w, "general.alignment", 3);
    expect_reject_writer(w, EXO_EFORMAT, "general.alignment");

    /* A string whose length runs past the end. */
    uint8_t *data;
    size_t size;
    w = gguf_writer_new(3, 32);
    gguf_writer_str(w, "s", "MARKER");
    gguf_writer_finish(w, &data, &size);
    gguf_writer_free(w);
    uint64_t huge = 1ull << 50;
    memcpy(find(data, size, "MARKER") - 8, &huge, 8);
    expect_reject(data, size, EXO_ETOOBIG, "metadata 's'");
    uint64_t past = 1000;
    memcpy(find(data, size, "MARKER") - 8, &past, 8);
    expect_reject(data, size, EXO_ETRUNCATED, "offset");
    free(data);

    /* A value type out of range, a bool that is not 0/1, a NUL inside a key. */
    w = gguf_writer_new(3, 32);
    gguf_writer_bool(w, "KEYB", true);
    gguf_writer_finish(w, &data, &size);
    gguf_writer_free(w);
    uint8_t *k = find(data, size, "KEYB");
    k[4 + 4] = 7;
    expect_reject(data, size, EXO_EFORMAT, "bool");
    uint32_t bad_type = 99;
    memcpy(k + 4, &bad_type, 4);
    expect_reject(data, size, EXO_EFORMAT, "not a GGUF value type");
    k[1] = 0;
    expect_reject(data, size, EXO_EFORMAT, "NUL");
    free(data);

    /* An array claiming more elements than the file has, and one nested too deeply. */
    w = gguf_writer_new(3, 32);
    const uint32_t vals[2] = {1, 2};
    gguf_writer_arr(w, "ARRK", EXO_GGUF_UINT32, vals, 2);
    gguf_writer_finish(w, &data, &size);
    gguf_writer_free(w);
    uint8_t *a = find(data, size, "ARRK") + 4 + 4 + 4; /* key, value type, element type */
    uint64_t count = 1u << 20;
    memcpy(a, &count, 8);
    expect_reject(data, size, EXO_ETRUNCATED, "array data");
    count = UINT64_MAX;
    memcpy(a, &count, 8);
    expect_reject(data, size, EXO_ETOOBIG, "elements");
    free(data);

    /* ARRAY of ARRAY of ... deeper than the reader allows. */
    struct exo_buf b;
    exo_buf_init(&b, 0);
    exo_buf_put(&b, "GGUF", 4);
    exo_buf_put_u32(&b, 3);
    exo_buf_put_u64(&b, 0);
    exo_buf_put_u64(&b, 1);
    exo_buf_put_u64(&b, 1);
    exo_buf_put(&b, "n", 1);
    exo_buf_put_u32(&b, EXO_GGUF_ARRAY);
    for (int depth = 0; depth < 8; depth++) {
        exo_buf_put_u32(&b, EXO_GGUF_ARRAY);
        exo_buf_put_u64(&b, 1);
    }
    for (int i = 0; i < 32; i++)
        exo_buf_put_u8(&b, 0);
    expect_reject(b.data, b.len, EXO_EFORMAT, "nested too deeply");
    exo_buf_free(&b);
}

static void test_gguf_rejects_hostile_tensors(void **state)
{
    float f32[16] = {0};
    uint64_t ne[2] = {16, 1};
    uint8_t *data;
    size_t size;

    struct gguf_writer *w = gguf_writer_new(3, 32);
    gguf_writer_tensor(w, "t", EXO_DTYPE_F32, 1, ne, f32);
    gguf_writer_tensor(w, "t", EXO_DTYPE_F32, 1, ne, f32);
    expect_reject_writer(w, EXO_EFORMAT, "duplicate tensor name 't'");

    /* Patch fields of one tensor info: name "TNSR", then n_dims, ne[0], type, offset. */
    w = gguf_writer_new(3, 32);
    gguf_writer_tensor(w, "TNSR", EXO_DTYPE_F32, 1, ne, f32);
    gguf_writer_tensor(w, "second", EXO_DTYPE_F32, 1, ne, f32);
    gguf_writer_finish(w, &data, &size);
    gguf_writer_free(w);
    uint8_t *info = find(data, size, "TNSR") + 4;
    uint8_t *saved = malloc(size);
    memcpy(saved, data, size);

    uint32_t dims = 5;
    memcpy(info, &dims, 4);
    expect_reject(data, size, EXO_EFORMAT, "tensor 0 (TNSR): 5 dimensions");
    memcpy(data, saved, size);

    uint64_t zero = 0;
    memcpy(info + 4, &zero, 8);
    expect_reject(data, size, EXO_EFORMAT, "dimension 0 is 0");
    uint64_t big = 1ull << 40;
    memcpy(info + 4, &big, 8);
    expect_reject(data, size, EXO_ETRUNCATED, "ends past the end");
    big = 1ull << 62;
    memcpy(info + 4, &big, 8);
    expect_reject(data, size, EXO_EFORMAT, "size overflows");
    memcpy(data, saved, size);

    uint32_t type = 4; /* a removed ggml type */
    memcpy(info + 12, &type, 4);
    expect_reject(data, size, EXO_EFORMAT, "unknown type 4");
    type = EXO_DTYPE_Q4_0; /* 16 elements is not a whole q4_0 block */
    memcpy(info + 12, &type, 4);
    expect_reject(data, size, EXO_EFORMAT, "not a multiple of the q4_0 block size");
    memcpy(data, saved, size);

    uint64_t off = 8;
    memcpy(info + 16, &off, 8);
    expect_reject(data, size, EXO_EFORMAT, "not a multiple of the alignment");
    off = 1ull << 40;
    memcpy(info + 16, &off, 8);
    expect_reject(data, size, EXO_ETRUNCATED, "ends past the end of the file");
    off = 64; /* the second tensor's offset: the two overlap */
    memcpy(info + 16, &off, 8);
    expect_reject(data, size, EXO_EFORMAT, "overlap");
    free(saved);
    free(data);
}

/* Every allocation the reader makes may fail; each failure is reported and nothing leaks. */
static void test_gguf_survives_allocation_failures(void **state)
{
    uint8_t *data;
    size_t size;
    sample_bytes(3, 32, &data, &size);
    int failures = 0;
    for (long n = 0; n < 200; n++) {
        struct exo_gguf *g = NULL;
        exo_alloc_fail_after(n);
        int rc = exo_gguf_open_memory(data, size, "sample.gguf", &g, NULL);
        exo_alloc_fail_after(-1);
        if (rc == 0) {
            check_sample(g);
            exo_gguf_close(g);
            break;
        }
        assert_int_equal(rc, EXO_ENOMEM);
        failures++;
    }
    assert_true(failures > 3);
    free(data);
}

/* The real default model, when the test runner names it (make test does). */
static void test_gguf_reads_default_model(void **state)
{
    const char *path = getenv("EXO_MODEL");
    if (!path || !*path) {
        skip();
        return;
    }
    struct exo_gguf *g = NULL;
    struct exo_diag diag = {{0}};
    int rc = exo_gguf_open(path, &g, &diag);
    if (rc != 0)
        fail_msg("%s", diag.msg);
    struct exo_gguf_str arch;
    assert_int_equal(exo_gguf_get_str(g, "general.architecture", &arch), 0);
    assert_int_equal(arch.len, 5);
    assert_memory_equal(arch.ptr, "llama", 5);
    uint32_t n;
    assert_int_equal(exo_gguf_get_u32(g, "llama.block_count", &n), 0);
    assert_int_equal(n, 30);
    assert_int_equal(exo_gguf_tensor_count(g), 272);
    const struct exo_gguf_kv *tokens;
    assert_int_equal(exo_gguf_get_arr(g, "tokenizer.ggml.tokens", EXO_GGUF_STRING, &tokens), 0);
    assert_int_equal(tokens->v.arr.count, 49152);
    const struct exo_gguf_tensor *t = exo_gguf_find_tensor(g, "token_embd.weight");
    assert_non_null(t);
    assert_int_equal(t->type, EXO_DTYPE_Q8_0);
    assert_int_equal(t->ne[0], 576);
    assert_int_equal(t->ne[1], 49152);
    exo_gguf_close(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gguf_reads_every_type),
        cmocka_unit_test(test_gguf_reads_file_from_disk),
        cmocka_unit_test(test_gguf_rejects_every_truncation),
        cmocka_unit_test(test_gguf_rejects_bad_headers),
        cmocka_unit_test(test_gguf_rejects_hostile_metadata),
        cmocka_unit_test(test_gguf_rejects_hostile_tensors),
        cmocka_unit_test(test_gguf_survives_allocation_failures),
        cmocka_unit_test(test_gguf_reads_default_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
