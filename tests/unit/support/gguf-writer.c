/* SPDX-License-Identifier: Apache-2.0 */
/* The test suite's GGUF writer (see gguf-writer.h). */
#include "support/gguf-writer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"

struct pending_tensor {
    char *name;
    uint32_t type;
    uint32_t n_dims;
    uint64_t ne[4];
    uint8_t *data;
    size_t size;
};

struct gguf_writer {
    uint32_t version;
    uint32_t alignment;
    struct exo_buf kv; /* encoded metadata records */
    uint64_t n_kv;
    struct pending_tensor *tensors;
    size_t n_tensors;
};

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "gguf_writer: %s\n", what);
        abort();
    }
}

static void put_gstr(struct exo_buf *b, const char *s)
{
    exo_buf_put_u64(b, strlen(s));
    exo_buf_put(b, s, strlen(s));
}

static void key(struct gguf_writer *w, const char *k, enum exo_gguf_type type)
{
    put_gstr(&w->kv, k);
    exo_buf_put_u32(&w->kv, type);
    w->n_kv++;
}

struct gguf_writer *gguf_writer_new(uint32_t version, uint32_t alignment)
{
    struct gguf_writer *w = calloc(1, sizeof(*w));
    check(w != NULL, "out of memory");
    w->version = version;
    w->alignment = alignment;
    exo_buf_init(&w->kv, 0);
    if (alignment != 32)
        gguf_writer_u32(w, "general.alignment", alignment);
    return w;
}

void gguf_writer_free(struct gguf_writer *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n_tensors; i++) {
        free(w->tensors[i].name);
        free(w->tensors[i].data);
    }
    free(w->tensors);
    exo_buf_free(&w->kv);
    free(w);
}

#define SCALAR_WRITER(fn, ctype, gtype, put)                                                       \
    void fn(struct gguf_writer *w, const char *k, ctype v)                                         \
    {                                                                                              \
        key(w, k, gtype);                                                                          \
        put;                                                                                       \
    }

SCALAR_WRITER(gguf_writer_u8, uint8_t, EXO_GGUF_UINT8, exo_buf_put_u8(&w->kv, v))
SCALAR_WRITER(gguf_writer_i8, int8_t, EXO_GGUF_INT8, exo_buf_put_u8(&w->kv, (uint8_t)v))
SCALAR_WRITER(gguf_writer_u16, uint16_t, EXO_GGUF_UINT16, exo_buf_put_u16(&w->kv, v))
SCALAR_WRITER(gguf_writer_i16, int16_t, EXO_GGUF_INT16, exo_buf_put_u16(&w->kv, (uint16_t)v))
SCALAR_WRITER(gguf_writer_u32, uint32_t, EXO_GGUF_UINT32, exo_buf_put_u32(&w->kv, v))
SCALAR_WRITER(gguf_writer_i32, int32_t, EXO_GGUF_INT32, exo_buf_put_u32(&w->kv, (uint32_t)v))
SCALAR_WRITER(gguf_writer_u64, uint64_t, EXO_GGUF_UINT64, exo_buf_put_u64(&w->kv, v))
SCALAR_WRITER(gguf_writer_i64, int64_t, EXO_GGUF_INT64, exo_buf_put_u64(&w->kv, (uint64_t)v))
SCALAR_WRITER(gguf_writer_f32, float, EXO_GGUF_FLOAT32, exo_buf_put(&w->kv, &v, 4))
SCALAR_WRITER(gguf_writer_f64, double, EXO_GGUF_FLOAT64, exo_buf_put(&w->kv, &v, 8))
SCALAR_WRITER(gguf_writer_bool, bool, EXO_GGUF_BOOL, exo_buf_put_u8(&w->kv, v ? 1 : 0))
SCALAR_WRITER(gguf_writer_str, const char *, EXO_GGUF_STRING, put_gstr(&w->kv, v))

static size_t elem_size(enum exo_gguf_type t)
{
    static const size_t sizes[EXO_GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return sizes[t];
}

void gguf_writer_arr(struct gguf_writer *w, const char *k, enum exo_gguf_type elem_type,
                     const void *data, size_t count)
{
    check(elem_size(elem_type) != 0, "gguf_writer_arr takes scalar element types");
    key(w, k, EXO_GGUF_ARRAY);
    exo_buf_put_u32(&w->kv, elem_type);
    exo_buf_put_u64(&w->kv, count);
    exo_buf_put(&w->kv, data, count * elem_size(elem_type));
}

void gguf_writer_arr_str(struct gguf_writer *w, const char *k, const char *const *strs,
                         size_t count)
{
    key(w, k, EXO_GGUF_ARRAY);
    exo_buf_put_u32(&w->kv, EXO_GGUF_STRING);
    exo_buf_put_u64(&w->kv, count);
    for (size_t i = 0; i < count; i++)
        put_gstr(&w->kv, strs[i]);
}

void gguf_writer_tensor(struct gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                        const uint64_t *ne, const void *data)
{
    const struct exo_dtype_info *info = exo_dtype_info(type);
    check(info != NULL && n_dims >= 1 && n_dims <= 4, "bad tensor");
    struct pending_tensor t = {.name = strdup(name), .type = type, .n_dims = n_dims};
    uint64_t rows = 1;
    for (uint32_t d = 0; d < 4; d++) {
        t.ne[d] = d < n_dims ? ne[d] : 1;
        if (d > 0)
            rows *= t.ne[d];
    }
    check(t.ne[0] % info->block_elems == 0, "row length not a multiple of the block size");
    t.size = exo_dtype_row_bytes(type, t.ne[0]) * rows;
    t.data = malloc(t.size ? t.size : 1);
    check(t.name && t.data, "out of memory");
    memcpy(t.data, data, t.size);
    w->tensors = realloc(w->tensors, (w->n_tensors + 1) * sizeof(*w->tensors));
    check(w->tensors != NULL, "out of memory");
    w->tensors[w->n_tensors++] = t;
}

static void pad(struct exo_buf *b, uint32_t alignment)
{
    while (b->len % alignment)
        exo_buf_put_u8(b, 0);
}

void gguf_writer_finish(struct gguf_writer *w, uint8_t **ret_data, size_t *ret_size)
{
    struct exo_buf out;
    exo_buf_init(&out, 0);
    exo_buf_put(&out, "GGUF", 4);
    exo_buf_put_u32(&out, w->version);
    exo_buf_put_u64(&out, w->n_tensors);
    exo_buf_put_u64(&out, w->n_kv);
    exo_buf_put(&out, w->kv.data, w->kv.len);
    uint64_t offset = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        const struct pending_tensor *t = &w->tensors[i];
        put_gstr(&out, t->name);
        exo_buf_put_u32(&out, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++)
            exo_buf_put_u64(&out, t->ne[d]);
        exo_buf_put_u32(&out, t->type);
        exo_buf_put_u64(&out, offset);
        offset += (t->size + w->alignment - 1) / w->alignment * w->alignment;
    }
    pad(&out, w->alignment);
    for (size_t i = 0; i < w->n_tensors; i++) {
        exo_buf_put(&out, w->tensors[i].data, w->tensors[i].size);
        pad(&out, w->alignment);
    }
    check(out.err == 0, "out of memory");
    *ret_data = malloc(out.len ? out.len : 1);
    check(*ret_data != NULL, "out of memory");
    memcpy(*ret_data, out.data, out.len);
    *ret_size = out.len;
    exo_buf_free(&out);
}

int gguf_writer_save(struct gguf_writer *w, const char *path)
{
    uint8_t *data;
    size_t size;
    gguf_writer_finish(w, &data, &size);
    FILE *f = fopen(path, "wb");
    int rc = f && fwrite(data, 1, size, f) == size ? 0 : -1;
    if (f && fclose(f) != 0)
        rc = -1;
    free(data);
    return rc;
}
