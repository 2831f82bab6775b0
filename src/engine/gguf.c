/* SPDX-License-Identifier: Apache-2.0 */
/*
 * GGUF reader. The file is mapped read-only and parsed front to back with a bounds-checked
 * exo_reader; nothing is trusted until checked against the bytes that remain and the caps in
 * gguf.h, so a hostile file costs at most its own size in work and a bounded amount of memory.
 *
 * Layout (all little-endian; GGUF v2 and v3 share it, v1 used 32-bit counts and is refused):
 *
 *   offset  size  field
 *   0       4     magic "GGUF"
 *   4       4     version (2 or 3)
 *   8       8     tensor_count
 *   16      8     kv_count
 *   24      ...   kv_count records:  key (u64 length + bytes), value type (u32), value
 *   ...     ...   tensor_count infos: name (u64 length + bytes), n_dims (u32), ne[n_dims] (u64),
 *                                     type (u32), offset (u64, from the data section)
 *   ...     pad   zero padding up to `general.alignment` (u32, default 32)
 *   ...     ...   data section: each tensor at its offset, offsets multiples of the alignment
 *
 * Values: u8 i8 u16 i16 u32 i32 f32 bool(u8) string(u64 length + bytes) array(u32 element type,
 * u64 count, elements) u64 i64 f64. Arrays may nest; nested ones are checked but not exposed.
 */
#include "engine/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/buf.h"

#define GGUF_MAGIC      "GGUF"
#define MAX_ARRAY_DEPTH 4
#define MAX_TENSOR_NAME 255

struct exo_gguf {
    char *path;          /* owned */
    const uint8_t *base; /* the mapping, or borrowed memory */
    size_t size;
    bool mapped; /* base came from mmap and is unmapped on close */
    uint32_t version;
    uint32_t alignment;
    uint64_t data_offset;

    struct exo_gguf_kv *kvs; /* owned, kv_count entries */
    size_t n_kv;
    struct exo_gguf_tensor *tensors; /* owned, tensor_count entries */
    size_t n_tensors;
    /* Open-addressing indexes (power-of-two sizes) from name to record, so lookups and the
     * duplicate checks stay linear in the number of records even for hostile files. */
    uint32_t *kv_index; /* owned; entry = record index + 1, 0 = empty */
    size_t kv_index_size;
    uint32_t *tensor_index; /* owned; as kv_index */
    size_t tensor_index_size;
    /* Owned allocations hanging off kvs and tensors: NUL-terminated names and string-array
     * indexes. Kept in one list so that close frees them without walking every record. */
    void **allocs;
    size_t n_allocs, cap_allocs;
};

static const char *const type_names[EXO_GGUF_TYPE_COUNT] = {
    "uint8", "int8",   "uint16", "int16",  "uint32", "int32",   "float32",
    "bool",  "string", "array",  "uint64", "int64",  "float64",
};

const char *exo_gguf_type_name(enum exo_gguf_type type)
{
    return (unsigned)type < EXO_GGUF_TYPE_COUNT ? type_names[type] : "invalid";
}

/* Size of one scalar element, 0 for strings and arrays (variable length). */
static size_t scalar_size(enum exo_gguf_type type)
{
    switch (type) {
    case EXO_GGUF_UINT8:
    case EXO_GGUF_INT8:
    case EXO_GGUF_BOOL:
        return 1;
    case EXO_GGUF_UINT16:
    case EXO_GGUF_INT16:
        return 2;
    case EXO_GGUF_UINT32:
    case EXO_GGUF_INT32:
    case EXO_GGUF_FLOAT32:
        return 4;
    case EXO_GGUF_UINT64:
    case EXO_GGUF_INT64:
    case EXO_GGUF_FLOAT64:
        return 8;
    default:
        return 0;
    }
}

/* Parsing state: the reader plus what messages need. */
struct parser {
    struct exo_gguf *g;
    struct exo_reader r;
    struct exo_diag *diag;
    const char *name; /* file name for messages */
    char ctx[128];    /* the record being parsed, e.g. "metadata 'general.name': " */
};

/* Fill the diag with "<file>: <record>: <message>" and return code. */
__attribute__((format(printf, 3, 4))) static int failf(struct parser *p, int code, const char *fmt,
                                                       ...)
{
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return exo_diag_set(p->diag, code, "%s: %s%s", p->name, p->ctx, msg);
}

/* Report a reader failure for `field` read at `offset`. */
static int fail_read(struct parser *p, const char *field, size_t offset)
{
    if (p->r.err == EXO_ETRUNCATED)
        return failf(p, EXO_ETRUNCATED,
                     "file is truncated: %s at offset %zu runs past the end of the file (%zu "
                     "bytes)",
                     field, offset, p->r.len);
    return failf(p, p->r.err ? p->r.err : EXO_EFORMAT, "bad %s at offset %zu", field, offset);
}

static uint32_t hash_name(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

/* An index able to hold n names at most half full. */
static int index_create(size_t n, uint32_t **ret, size_t *ret_size)
{
    size_t size = 16;
    while (size < 2 * n)
        size *= 2;
    *ret = exo_calloc(size, sizeof(uint32_t));
    if (!*ret)
        return EXO_ENOMEM;
    *ret_size = size;
    return 0;
}

/* The slot holding `name`, or the empty slot where it would go. name_at(i) names record i. */
static uint32_t *index_slot(uint32_t *index, size_t size, const char *name,
                            const char *(*name_at)(const struct exo_gguf *, uint32_t),
                            const struct exo_gguf *g)
{
    size_t mask = size - 1;
    for (size_t i = hash_name(name) & mask;; i = (i + 1) & mask) {
        if (index[i] == 0 || strcmp(name_at(g, index[i] - 1), name) == 0)
            return &index[i];
    }
}

static const char *kv_name(const struct exo_gguf *g, uint32_t i)
{
    return g->kvs[i].key;
}

static const char *tensor_name(const struct exo_gguf *g, uint32_t i)
{
    return g->tensors[i].name;
}

static int keep_alloc(struct exo_gguf *g, void *ptr)
{
    if (g->n_allocs == g->cap_allocs) {
        size_t cap = g->cap_allocs ? g->cap_allocs * 2 : 64;
        void **a = exo_realloc(g->allocs, exo_mul_size(cap, sizeof(*a)));
        if (!a)
            return EXO_ENOMEM;
        g->allocs = a;
        g->cap_allocs = cap;
    }
    g->allocs[g->n_allocs++] = ptr;
    return 0;
}

/* A length-prefixed string of at most max bytes, borrowed from the file. */
static int read_str(struct parser *p, uint64_t max, const char *field, struct exo_gguf_str *ret)
{
    size_t at = p->r.off;
    uint64_t len = exo_reader_u64(&p->r);
    if (p->r.err)
        return fail_read(p, field, at);
    if (len > max) {
        return failf(p, EXO_ETOOBIG, "%s at offset %zu claims %llu bytes (limit %llu)", field, at,
                     (unsigned long long)len, (unsigned long long)max);
    }
    const uint8_t *s = exo_reader_take(&p->r, (size_t)len);
    if (!s)
        return fail_read(p, field, at);
    ret->ptr = (const char *)s;
    ret->len = len;
    return 0;
}

/* A NUL-terminated copy of a string that may not contain NUL bytes, owned by the gguf. */
static int copy_name(struct parser *p, const struct exo_gguf_str *s, const char *field, size_t at,
                     const char **ret)
{
    if (memchr(s->ptr, '\0', (size_t)s->len))
        return failf(p, EXO_EFORMAT, "%s at offset %zu", field, at);
    char *copy = exo_strndup(s->ptr, (size_t)s->len);
    if (!copy)
        return EXO_ENOMEM;
    if (keep_alloc(p->g, copy) != 0) {
        exo_free(copy);
        return EXO_ENOMEM;
    }
    *ret = copy;
    return 0;
}

static int read_type(struct parser *p, const char *field, enum exo_gguf_type *ret)
{
    size_t at = p->r.off;
    uint32_t t = exo_reader_u32(&p->r);
    if (p->r.err)
        return fail_read(p, field, at);
    if (t >= EXO_GGUF_TYPE_COUNT) {
        return failf(p, EXO_EFORMAT, "%s at offset %zu is %u, not a GGUF value type (0-12)", field,
                     at, t);
    }
    *ret = (enum exo_gguf_type)t;
    return 0;
}

static int read_value(struct parser *p, enum exo_gguf_type type, int depth, struct exo_gguf_kv *kv);

/* Check (and, at depth 0, index) an array value. */
static int read_array(struct parser *p, int depth, struct exo_gguf_kv *kv)
{
    enum exo_gguf_type elem = EXO_GGUF_UINT8;
    int rc = read_type(p, "array element type", &elem);
    if (rc < 0)
        return rc;
    size_t at = p->r.off;
    uint64_t count = exo_reader_u64(&p->r);
    if (p->r.err)
        return fail_read(p, "array length", at);
    if (count > EXO_GGUF_MAX_ARRAY_LEN) {
        return failf(p, EXO_ETOOBIG, "array at offset %zu claims %llu elements (limit %u)", at,
                     (unsigned long long)count, EXO_GGUF_MAX_ARRAY_LEN);
    }
    if (elem == EXO_GGUF_ARRAY && depth + 1 >= MAX_ARRAY_DEPTH)
        return failf(p, EXO_EFORMAT, "arrays nested too deeply at offset %zu", at);

    if (kv) {
        kv->v.arr.elem_type = elem;
        kv->v.arr.count = count;
        kv->v.arr.data = NULL;
        kv->v.arr.strs = NULL;
    }
    size_t esize = scalar_size(elem);
    if (esize) {
        /* count <= 64 Mi and esize <= 8, so the product cannot overflow. */
        const uint8_t *data = exo_reader_take(&p->r, (size_t)count * esize);
        if (!data)
            return fail_read(p, "array data", at);
        if (elem == EXO_GGUF_BOOL) {
            for (uint64_t i = 0; i < count; i++)
                if (data[i] > 1)
                    return failf(p, EXO_EFORMAT, "bool array element not 0 or 1 at offset %zu", at);
        }
        if (kv)
            kv->v.arr.data = data;
        return 0;
    }
    if (elem == EXO_GGUF_STRING) {
        struct exo_gguf_str *strs = NULL;
        /* Each string needs at least its 8-byte length, which bounds the index size by the file
         * size before anything is allocated. */
        if (count > exo_reader_left(&p->r) / 8)
            return fail_read(p, "string array", at);
        if (kv && count) {
            strs = exo_malloc(exo_mul_size((size_t)count, sizeof(*strs)));
            if (!strs || keep_alloc(p->g, strs) != 0) {
                exo_free(strs);
                return EXO_ENOMEM;
            }
            kv->v.arr.strs = strs;
        }
        for (uint64_t i = 0; i < count; i++) {
            struct exo_gguf_str s;
            rc = read_str(p, EXO_GGUF_MAX_STRING_LEN, "array string", &s);
            if (rc < 0)
                return rc;
            if (strs)
                strs[i] = s;
        }
        return 0;
    }
    /* Nested arrays: every element is itself an array value. */
    if (count > exo_reader_left(&p->r) / 12)
        return fail_read(p, "nested array", at);
    for (uint64_t i = 0; i < count; i++) {
        rc = read_value(p, elem, depth + 1, NULL);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Read one value of `type`; kv (when not NULL) receives it. */
static int read_value(struct parser *p, enum exo_gguf_type type, int depth, struct exo_gguf_kv *kv)
{
    struct exo_gguf_kv scratch;
    struct exo_gguf_kv *out = kv ? kv : &scratch;
    size_t at = p->r.off;

    switch (type) {
    case EXO_GGUF_UINT8:
        out->v.u64 = exo_reader_u8(&p->r);
        break;
    case EXO_GGUF_INT8:
        out->v.i64 = (int8_t)exo_reader_u8(&p->r);
        break;
    case EXO_GGUF_UINT16:
        out->v.u64 = exo_reader_u16(&p->r);
        break;
    case EXO_GGUF_INT16:
        out->v.i64 = (int16_t)exo_reader_u16(&p->r);
        break;
    case EXO_GGUF_UINT32:
        out->v.u64 = exo_reader_u32(&p->r);
        break;
    case EXO_GGUF_INT32:
        out->v.i64 = (int32_t)exo_reader_u32(&p->r);
        break;
    case EXO_GGUF_UINT64:
        out->v.u64 = exo_reader_u64(&p->r);
        break;
    case EXO_GGUF_INT64:
        out->v.i64 = (int64_t)exo_reader_u64(&p->r);
        break;
    case EXO_GGUF_FLOAT32: {
        uint32_t bits = exo_reader_u32(&p->r);
        float f;
        memcpy(&f, &bits, sizeof(f));
        out->v.f64 = f;
        break;
    }
    case EXO_GGUF_FLOAT64: {
        uint64_t bits = exo_reader_u64(&p->r);
        memcpy(&out->v.f64, &bits, sizeof(double));
        break;
    }
    case EXO_GGUF_BOOL: {
        uint8_t b = exo_reader_u8(&p->r);
        if (!p->r.err && b > 1)
            return failf(p, EXO_EFORMAT, "bool value not 0 or 1 at offset %zu", at);
        out->v.u64 = b;
        break;
    }
    case EXO_GGUF_STRING:
        return read_str(p, EXO_GGUF_MAX_STRING_LEN, "string value", &out->v.str);
    case EXO_GGUF_ARRAY:
        return read_array(p, depth, kv);
    default:
        return failf(p, EXO_EFORMAT, "unknown value type at offset %zu", at);
    }
    return p->r.err ? fail_read(p, exo_gguf_type_name(type), at) : 0;
}

static int parse_kvs(struct parser *p, uint64_t n_kv)
{
    struct exo_gguf *g = p->g;
    /* A record is at least a key length, a type and a one-byte value. */
    if (n_kv > EXO_GGUF_MAX_KV || n_kv > exo_reader_left(&p->r) / 13) {
        return failf(p, n_kv > EXO_GGUF_MAX_KV ? EXO_ETOOBIG : EXO_ETRUNCATED,
                     "header claims %llu metadata entries, more than the file (%zu "
                     "bytes) can hold or the limit (%u) at offset 16",
                     (unsigned long long)n_kv, p->r.len, EXO_GGUF_MAX_KV);
    }
    g->kvs = exo_calloc(n_kv ? (size_t)n_kv : 1, sizeof(*g->kvs));
    if (!g->kvs || index_create((size_t)n_kv, &g->kv_index, &g->kv_index_size) != 0)
        return EXO_ENOMEM;
    for (uint64_t i = 0; i < n_kv; i++) {
        struct exo_gguf_kv *kv = &g->kvs[i];
        struct exo_gguf_str key = {NULL, 0};
        size_t at = p->r.off;
        int rc = read_str(p, EXO_GGUF_MAX_KEY_LEN, "metadata key", &key);
        if (rc < 0)
            return rc;
        if (key.len == 0)
            return failf(p, EXO_EFORMAT, "empty metadata key at offset %zu", at);
        rc = copy_name(p, &key, "metadata key containing a NUL byte", at, &kv->key);
        if (rc < 0)
            return rc;
        kv->file_offset = at;
        uint32_t *slot = index_slot(g->kv_index, g->kv_index_size, kv->key, kv_name, g);
        if (*slot)
            return failf(p, EXO_EFORMAT, "duplicate metadata key '%s' at offset %zu", kv->key, at);
        snprintf(p->ctx, sizeof(p->ctx), "metadata '%.80s': ", kv->key);
        rc = read_type(p, "value type", &kv->type);
        if (rc < 0)
            return rc;
        rc = read_value(p, kv->type, 0, kv);
        if (rc < 0)
            return rc;
        p->ctx[0] = '\0';
        *slot = (uint32_t)i + 1;
        g->n_kv++;
    }
    return 0;
}

static int parse_alignment(struct parser *p)
{
    const struct exo_gguf_kv *kv = exo_gguf_find(p->g, "general.alignment");
    p->g->alignment = EXO_GGUF_DEFAULT_ALIGNMENT;
    if (!kv)
        return 0;
    if (kv->type != EXO_GGUF_UINT32 || kv->v.u64 == 0 || (kv->v.u64 & (kv->v.u64 - 1)) ||
        kv->v.u64 > (1u << 20)) {
        return failf(p, EXO_EFORMAT,
                     "general.alignment at offset %llu must be a uint32 power of two "
                     "up to 1 MiB",
                     (unsigned long long)kv->file_offset);
    }
    p->g->alignment = (uint32_t)kv->v.u64;
    return 0;
}

static int parse_tensor_info(struct parser *p, uint64_t index, struct exo_gguf_tensor *t)
{
    struct exo_gguf_str name = {NULL, 0};
    size_t at = p->r.off;
    int rc = read_str(p, MAX_TENSOR_NAME, "tensor name", &name);
    if (rc < 0)
        return rc;
    rc = copy_name(p, &name, "tensor name containing a NUL byte", at, &t->name);
    if (rc < 0)
        return rc;
    uint32_t *slot =
        index_slot(p->g->tensor_index, p->g->tensor_index_size, t->name, tensor_name, p->g);
    if (*slot)
        return failf(p, EXO_EFORMAT, "duplicate tensor name '%s' at offset %zu", t->name, at);
    snprintf(p->ctx, sizeof(p->ctx), "tensor %llu (%.64s): ", (unsigned long long)index, t->name);

    size_t dims_at = p->r.off;
    t->n_dims = exo_reader_u32(&p->r);
    if (p->r.err)
        return fail_read(p, "tensor dimension count", dims_at);
    if (t->n_dims == 0 || t->n_dims > EXO_GGUF_MAX_DIMS) {
        return failf(p, EXO_EFORMAT, "%u dimensions at offset %zu (1 to %d allowed)", t->n_dims,
                     dims_at, EXO_GGUF_MAX_DIMS);
    }
    uint64_t elems = 1;
    for (uint32_t d = 0; d < EXO_GGUF_MAX_DIMS; d++) {
        size_t ne_at = p->r.off;
        t->ne[d] = d < t->n_dims ? exo_reader_u64(&p->r) : 1;
        if (p->r.err)
            return fail_read(p, "tensor shape", ne_at);
        if (t->ne[d] == 0 || t->ne[d] > INT64_MAX ||
            __builtin_mul_overflow(elems, t->ne[d], &elems) || elems > INT64_MAX) {
            return failf(p, EXO_EFORMAT,
                         "dimension %u is %llu at offset %zu: zero "
                         "or too large",
                         d, (unsigned long long)t->ne[d], ne_at);
        }
    }

    size_t type_at = p->r.off;
    t->type = exo_reader_u32(&p->r);
    if (p->r.err)
        return fail_read(p, "tensor type", type_at);
    const struct exo_dtype_info *info = exo_dtype_info(t->type);
    if (!info) {
        return failf(p, EXO_EFORMAT, "unknown type %u at offset %zu", t->type, type_at);
    }
    if (t->ne[0] % info->block_elems) {
        return failf(p, EXO_EFORMAT,
                     "row length %llu is not a multiple of the %s "
                     "block size %u (offset %zu)",
                     (unsigned long long)t->ne[0], info->name, info->block_elems, dims_at);
    }
    /* elems <= INT64_MAX and block_bytes <= 292, but the byte count may still overflow. */
    if (__builtin_mul_overflow(elems / info->block_elems, (uint64_t)info->block_bytes, &t->size))
        return failf(p, EXO_EFORMAT, "tensor size overflows at offset %zu", dims_at);

    size_t off_at = p->r.off;
    t->offset = exo_reader_u64(&p->r);
    if (p->r.err)
        return fail_read(p, "tensor offset", off_at);
    if (t->offset % p->g->alignment) {
        return failf(p, EXO_EFORMAT,
                     "data offset %llu at offset %zu is not a "
                     "multiple of the alignment %u",
                     (unsigned long long)t->offset, off_at, p->g->alignment);
    }
    p->ctx[0] = '\0';
    *slot = (uint32_t)index + 1;
    return 0;
}

static int compare_by_offset(const void *a, const void *b)
{
    const struct exo_gguf_tensor *const *x = a;
    const struct exo_gguf_tensor *const *y = b;
    return (*x)->offset < (*y)->offset ? -1 : (*x)->offset > (*y)->offset;
}

/* Place every tensor in the data section: inside the file and not overlapping another. */
static int place_tensors(struct parser *p)
{
    struct exo_gguf *g = p->g;
    uint64_t data_size = g->size - g->data_offset;
    int rc = 0;
    for (size_t i = 0; i < g->n_tensors; i++) {
        struct exo_gguf_tensor *t = &g->tensors[i];
        if (t->offset > data_size || t->size > data_size - t->offset) {
            return failf(p, EXO_ETRUNCATED,
                         "tensor %zu (%s): data %llu+%llu bytes ends past the end of "
                         "the file (data section of %llu bytes at offset %llu)",
                         i, t->name, (unsigned long long)t->offset, (unsigned long long)t->size,
                         (unsigned long long)data_size, (unsigned long long)g->data_offset);
        }
        t->data = g->base + g->data_offset + t->offset;
    }
    if (g->n_tensors < 2)
        return 0;
    const struct exo_gguf_tensor **order = exo_malloc(exo_mul_size(g->n_tensors, sizeof(*order)));
    if (!order)
        return EXO_ENOMEM;
    for (size_t i = 0; i < g->n_tensors; i++)
        order[i] = &g->tensors[i];
    qsort(order, g->n_tensors, sizeof(*order), compare_by_offset);
    for (size_t i = 1; i < g->n_tensors; i++) {
        if (order[i - 1]->offset + order[i - 1]->size > order[i]->offset) {
            rc = failf(p, EXO_EFORMAT,
                       "tensors %s and %s overlap in the data section (offsets %llu "
                       "and %llu)",
                       order[i - 1]->name, order[i]->name, (unsigned long long)order[i - 1]->offset,
                       (unsigned long long)order[i]->offset);
            break;
        }
    }
    exo_free(order);
    return rc;
}

static int parse(struct parser *p)
{
    struct exo_gguf *g = p->g;
    struct exo_reader *r = &p->r;

    if (g->size == 0)
        return failf(p, EXO_ETRUNCATED, "file is empty");
    const uint8_t *magic = exo_reader_take(r, 4);
    if (!magic)
        return fail_read(p, "magic", 0);
    if (memcmp(magic, GGUF_MAGIC, 4) != 0) {
        return failf(p, EXO_EFORMAT, "not a GGUF file (magic at offset 0 is not \"GGUF\")");
    }
    g->version = exo_reader_u32(r);
    if (r->err)
        return fail_read(p, "version", 4);
    if (g->version != 2 && g->version != 3) {
        const char *why = g->version == 1              ? " (version 1 is obsolete: re-convert)"
                          : (g->version & 0xffff) == 0 ? " (a big-endian file?)"
                                                       : "";
        return failf(p, EXO_EUNSUPPORTED,
                     "GGUF version %u at offset 4 is not supported (2 and 3 are)%s", g->version,
                     why);
    }
    uint64_t n_tensors = exo_reader_u64(r);
    uint64_t n_kv = exo_reader_u64(r);
    if (r->err)
        return fail_read(p, "header counts", 8);

    int rc = parse_kvs(p, n_kv);
    if (rc < 0)
        return rc;
    rc = parse_alignment(p);
    if (rc < 0)
        return rc;

    /* A tensor info is at least 8 + 1 + 4 + 8 + 4 + 8 bytes. */
    if (n_tensors > EXO_GGUF_MAX_TENSORS || n_tensors > exo_reader_left(r) / 33) {
        return failf(p, n_tensors > EXO_GGUF_MAX_TENSORS ? EXO_ETOOBIG : EXO_ETRUNCATED,
                     "header claims %llu tensors (at offset 8), more than the file "
                     "can hold or the limit (%u)",
                     (unsigned long long)n_tensors, EXO_GGUF_MAX_TENSORS);
    }
    g->tensors = exo_calloc(n_tensors ? (size_t)n_tensors : 1, sizeof(*g->tensors));
    if (!g->tensors ||
        index_create((size_t)n_tensors, &g->tensor_index, &g->tensor_index_size) != 0)
        return EXO_ENOMEM;
    for (uint64_t i = 0; i < n_tensors; i++) {
        rc = parse_tensor_info(p, i, &g->tensors[i]);
        if (rc < 0)
            return rc;
        g->n_tensors++;
    }

    uint64_t end = r->off;
    uint64_t data = (end + g->alignment - 1) / g->alignment * g->alignment;
    if (data > g->size) {
        if (n_tensors)
            return failf(p, EXO_ETRUNCATED,
                         "file is truncated: the data section should start at offset "
                         "%llu but the file has %zu bytes",
                         (unsigned long long)data, g->size);
        data = g->size; /* metadata-only files may omit the final padding */
    }
    g->data_offset = data;
    return place_tensors(p);
}

static int open_common(struct exo_gguf *g, const char *name, struct exo_diag *diag)
{
    struct parser p = {.g = g, .diag = diag, .name = name};
    exo_reader_init(&p.r, g->base, g->size);
    return parse(&p);
}

int exo_gguf_open_memory(const void *data, size_t size, const char *name, struct exo_gguf **ret,
                         struct exo_diag *diag)
{
    struct exo_gguf *g = exo_calloc(1, sizeof(*g));
    if (!g)
        return EXO_ENOMEM;
    g->base = data;
    g->size = data ? size : 0;
    g->path = exo_strdup(name ? name : "<memory>");
    int rc = g->path ? open_common(g, g->path, diag) : EXO_ENOMEM;
    if (rc < 0) {
        exo_gguf_close(g);
        return rc;
    }
    *ret = g;
    return 0;
}

int exo_gguf_open(const char *path, struct exo_gguf **ret, struct exo_diag *diag)
{
    struct exo_gguf *g = NULL;
    struct stat st;
    int rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = exo_error_from_errno(errno);
        return exo_diag_set(diag, rc, "%s: cannot open: %s", path, strerror(errno));
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = exo_diag_set(diag, EXO_EINVAL, "%s: not a regular file", path);
        goto out;
    }
    g = exo_calloc(1, sizeof(*g));
    if (!g || !(g->path = exo_strdup(path))) {
        rc = EXO_ENOMEM;
        goto out;
    }
    g->size = (size_t)st.st_size;
    if (g->size > 0) {
        void *m = mmap(NULL, g->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            rc = exo_diag_set(diag, exo_error_from_errno(errno), "%s: cannot map %zu bytes: %s",
                              path, g->size, strerror(errno));
            goto out;
        }
        g->base = m;
        g->mapped = true;
    }
    rc = open_common(g, path, diag);
out:
    close(fd);
    if (rc < 0) {
        exo_gguf_close(g);
        return rc;
    }
    *ret = g;
    return 0;
}

void exo_gguf_close(struct exo_gguf *g)
{
    if (!g)
        return;
    if (g->mapped)
        munmap((void *)g->base, g->size);
    for (size_t i = 0; i < g->n_allocs; i++)
        exo_free(g->allocs[i]);
    exo_free(g->allocs);
    exo_free(g->kvs);
    exo_free(g->tensors);
    exo_free(g->kv_index);
    exo_free(g->tensor_index);
    exo_free(g->path);
    exo_free(g);
}

uint32_t exo_gguf_version(const struct exo_gguf *g)
{
    return g->version;
}

const char *exo_gguf_path(const struct exo_gguf *g)
{
    return g->path;
}

const void *exo_gguf_mapping(const struct exo_gguf *g, size_t *ret_size)
{
    if (ret_size)
        *ret_size = g->size;
    return g->base;
}

uint64_t exo_gguf_data_offset(const struct exo_gguf *g)
{
    return g->data_offset;
}

uint32_t exo_gguf_alignment(const struct exo_gguf *g)
{
    return g->alignment;
}

size_t exo_gguf_kv_count(const struct exo_gguf *g)
{
    return g->n_kv;
}

const struct exo_gguf_kv *exo_gguf_kv_at(const struct exo_gguf *g, size_t i)
{
    return i < g->n_kv ? &g->kvs[i] : NULL;
}

const struct exo_gguf_kv *exo_gguf_find(const struct exo_gguf *g, const char *key)
{
    if (!g->kv_index)
        return NULL;
    uint32_t slot = *index_slot(g->kv_index, g->kv_index_size, key, kv_name, g);
    return slot ? &g->kvs[slot - 1] : NULL;
}

static bool is_unsigned(enum exo_gguf_type t)
{
    return t == EXO_GGUF_UINT8 || t == EXO_GGUF_UINT16 || t == EXO_GGUF_UINT32 ||
           t == EXO_GGUF_UINT64;
}

static bool is_signed(enum exo_gguf_type t)
{
    return t == EXO_GGUF_INT8 || t == EXO_GGUF_INT16 || t == EXO_GGUF_INT32 || t == EXO_GGUF_INT64;
}

/* Any integer value as a signed 128-bit-safe pair: fits reports whether it is in [lo, hi]. */
static int get_int(const struct exo_gguf *g, const char *key, int64_t lo, uint64_t hi,
                   uint64_t *ret_u, int64_t *ret_i)
{
    const struct exo_gguf_kv *kv = exo_gguf_find(g, key);
    if (!kv)
        return EXO_ENOENT;
    if (is_unsigned(kv->type)) {
        if (kv->v.u64 > hi)
            return EXO_EFORMAT;
        *ret_u = kv->v.u64;
        *ret_i = (int64_t)kv->v.u64;
        return 0;
    }
    if (is_signed(kv->type)) {
        if (kv->v.i64 < lo || (kv->v.i64 >= 0 && (uint64_t)kv->v.i64 > hi))
            return EXO_EFORMAT;
        *ret_u = (uint64_t)kv->v.i64;
        *ret_i = kv->v.i64;
        return 0;
    }
    return EXO_EFORMAT;
}

int exo_gguf_get_u32(const struct exo_gguf *g, const char *key, uint32_t *ret)
{
    uint64_t u;
    int64_t i;
    int rc = get_int(g, key, 0, UINT32_MAX, &u, &i);
    if (rc == 0)
        *ret = (uint32_t)u;
    return rc;
}

int exo_gguf_get_i32(const struct exo_gguf *g, const char *key, int32_t *ret)
{
    uint64_t u;
    int64_t i;
    int rc = get_int(g, key, INT32_MIN, INT32_MAX, &u, &i);
    if (rc == 0)
        *ret = (int32_t)i;
    return rc;
}

int exo_gguf_get_u64(const struct exo_gguf *g, const char *key, uint64_t *ret)
{
    uint64_t u;
    int64_t i;
    int rc = get_int(g, key, 0, UINT64_MAX, &u, &i);
    if (rc == 0)
        *ret = u;
    return rc;
}

int exo_gguf_get_f32(const struct exo_gguf *g, const char *key, float *ret)
{
    const struct exo_gguf_kv *kv = exo_gguf_find(g, key);
    if (!kv)
        return EXO_ENOENT;
    if (kv->type == EXO_GGUF_FLOAT32 || kv->type == EXO_GGUF_FLOAT64)
        *ret = (float)kv->v.f64;
    else if (is_unsigned(kv->type))
        *ret = (float)kv->v.u64;
    else if (is_signed(kv->type))
        *ret = (float)kv->v.i64;
    else
        return EXO_EFORMAT;
    return 0;
}

int exo_gguf_get_bool(const struct exo_gguf *g, const char *key, bool *ret)
{
    const struct exo_gguf_kv *kv = exo_gguf_find(g, key);
    if (!kv)
        return EXO_ENOENT;
    if (kv->type != EXO_GGUF_BOOL)
        return EXO_EFORMAT;
    *ret = kv->v.u64 != 0;
    return 0;
}

int exo_gguf_get_str(const struct exo_gguf *g, const char *key, struct exo_gguf_str *ret)
{
    const struct exo_gguf_kv *kv = exo_gguf_find(g, key);
    if (!kv)
        return EXO_ENOENT;
    if (kv->type != EXO_GGUF_STRING)
        return EXO_EFORMAT;
    *ret = kv->v.str;
    return 0;
}

int exo_gguf_get_arr(const struct exo_gguf *g, const char *key, enum exo_gguf_type elem_type,
                     const struct exo_gguf_kv **ret)
{
    const struct exo_gguf_kv *kv = exo_gguf_find(g, key);
    if (!kv)
        return EXO_ENOENT;
    if (kv->type != EXO_GGUF_ARRAY || kv->v.arr.elem_type != elem_type)
        return EXO_EFORMAT;
    *ret = kv;
    return 0;
}

size_t exo_gguf_tensor_count(const struct exo_gguf *g)
{
    return g->n_tensors;
}

const struct exo_gguf_tensor *exo_gguf_tensor_at(const struct exo_gguf *g, size_t i)
{
    return i < g->n_tensors ? &g->tensors[i] : NULL;
}

const struct exo_gguf_tensor *exo_gguf_find_tensor(const struct exo_gguf *g, const char *name)
{
    if (!g->tensor_index)
        return NULL;
    uint32_t slot = *index_slot(g->tensor_index, g->tensor_index_size, name, tensor_name, g);
    return slot ? &g->tensors[slot - 1] : NULL;
}
