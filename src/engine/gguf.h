/* SPDX-License-Identifier: Apache-2.0 */
/*
 * GGUF reader (versions 2 and 3) over a read-only mmap of the file.
 *
 * exo_gguf_open() parses and validates everything before returning: every count, string length,
 * array length, tensor dimension, type, offset and size is checked against the file size and
 * against hard caps, so after a successful open every pointer handed out is inside the mapping.
 * A bad file gives a negative EXO_E* code and a diag sentence naming the file, the field and the
 * byte offset ("model.gguf: tensor 12 (blk.0.attn_q.weight): data range 1024+4096 ends past the
 * end of the file (4000 bytes) at offset 812").
 *
 * Strings in a GGUF file are not NUL-terminated; struct exo_gguf_str carries the length. Keys and
 * tensor names are also copied NUL-terminated for convenience (`.name`).
 */
#ifndef EXO_ENGINE_GGUF_H
#define EXO_ENGINE_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "exo/dtype.h"

enum exo_gguf_type {
    EXO_GGUF_UINT8 = 0,
    EXO_GGUF_INT8 = 1,
    EXO_GGUF_UINT16 = 2,
    EXO_GGUF_INT16 = 3,
    EXO_GGUF_UINT32 = 4,
    EXO_GGUF_INT32 = 5,
    EXO_GGUF_FLOAT32 = 6,
    EXO_GGUF_BOOL = 7,
    EXO_GGUF_STRING = 8,
    EXO_GGUF_ARRAY = 9,
    EXO_GGUF_UINT64 = 10,
    EXO_GGUF_INT64 = 11,
    EXO_GGUF_FLOAT64 = 12,
    EXO_GGUF_TYPE_COUNT
};

/* Hard caps: anything larger is rejected as hostile rather than allocated. */
#define EXO_GGUF_MAX_KV 65536
#define EXO_GGUF_MAX_TENSORS 1048576
#define EXO_GGUF_MAX_KEY_LEN 65535
#define EXO_GGUF_MAX_STRING_LEN (64u << 20)
#define EXO_GGUF_MAX_ARRAY_LEN (64u << 20)
#define EXO_GGUF_MAX_DIMS 4
#define EXO_GGUF_DEFAULT_ALIGNMENT 32

struct exo_gguf_str {
    const char *ptr; /* into the mapping, not NUL-terminated */
    uint64_t len;
};

struct exo_gguf_kv {
    const char *key;         /* NUL-terminated copy, owned by the exo_gguf */
    enum exo_gguf_type type;
    uint64_t file_offset;    /* where the key's record starts, for messages */
    union {
        uint64_t u64;        /* UINT8..UINT64 (zero-extended) and BOOL (0 or 1) */
        int64_t i64;         /* INT8..INT64 (sign-extended) */
        double f64;          /* FLOAT32, FLOAT64 */
        struct exo_gguf_str str;
        struct {
            enum exo_gguf_type elem_type;
            uint64_t count;
            /* Numeric and bool elements: packed little-endian values in the mapping.
             * STRING elements: `strs` (count entries, owned by the exo_gguf); data is NULL.
             * Nested ARRAY elements are validated but not exposed: data and strs are NULL. */
            const void *data;
            const struct exo_gguf_str *strs;
        } arr;
    } v;
};

struct exo_gguf_tensor {
    const char *name;        /* NUL-terminated copy, owned by the exo_gguf */
    uint32_t n_dims;
    uint64_t ne[EXO_GGUF_MAX_DIMS]; /* ne[0] innermost; unused dimensions are 1 */
    uint32_t type;           /* enum exo_dtype value as stored (may be unsupported) */
    uint64_t offset;         /* from the start of the data section, as stored */
    uint64_t size;           /* bytes, from type and shape */
    const void *data;        /* into the mapping */
};

struct exo_gguf;

/* Map and validate the file at path. *ret is owned by the caller (exo_gguf_close). */
int exo_gguf_open(const char *path, struct exo_gguf **ret, struct exo_diag *diag);

/* Validate a GGUF image in memory; data is borrowed and must outlive *ret. `name` is used in
 * messages. For tests and the fuzz target. */
int exo_gguf_open_memory(const void *data, size_t size, const char *name, struct exo_gguf **ret,
                         struct exo_diag *diag);

void exo_gguf_close(struct exo_gguf *g);

uint32_t exo_gguf_version(const struct exo_gguf *g);
const char *exo_gguf_path(const struct exo_gguf *g);
/* The whole mapping (for backends that map weights in place) and the data section. */
const void *exo_gguf_mapping(const struct exo_gguf *g, size_t *ret_size);
uint64_t exo_gguf_data_offset(const struct exo_gguf *g);
uint32_t exo_gguf_alignment(const struct exo_gguf *g);

size_t exo_gguf_kv_count(const struct exo_gguf *g);
const struct exo_gguf_kv *exo_gguf_kv_at(const struct exo_gguf *g, size_t i);
/* NULL when absent. Lookup is by exact key. */
const struct exo_gguf_kv *exo_gguf_find(const struct exo_gguf *g, const char *key);

/* Typed getters: 0 on success; EXO_ENOENT when absent (ret untouched); EXO_EFORMAT when the
 * stored type does not fit (e.g. a string where a number is wanted, or a negative value for an
 * unsigned getter, or a value out of the target's range). Integer getters accept any integer type
 * whose value fits; float getters accept FLOAT32/FLOAT64 and integers. */
int exo_gguf_get_u32(const struct exo_gguf *g, const char *key, uint32_t *ret);
int exo_gguf_get_i32(const struct exo_gguf *g, const char *key, int32_t *ret);
int exo_gguf_get_u64(const struct exo_gguf *g, const char *key, uint64_t *ret);
int exo_gguf_get_f32(const struct exo_gguf *g, const char *key, float *ret);
int exo_gguf_get_bool(const struct exo_gguf *g, const char *key, bool *ret);
/* Borrowed pointer into the mapping (not NUL-terminated) and its length. */
int exo_gguf_get_str(const struct exo_gguf *g, const char *key, struct exo_gguf_str *ret);
/* An array with elements of elem_type; EXO_EFORMAT if the key is not such an array. */
int exo_gguf_get_arr(const struct exo_gguf *g, const char *key, enum exo_gguf_type elem_type,
                     const struct exo_gguf_kv **ret);

size_t exo_gguf_tensor_count(const struct exo_gguf *g);
const struct exo_gguf_tensor *exo_gguf_tensor_at(const struct exo_gguf *g, size_t i);
const struct exo_gguf_tensor *exo_gguf_find_tensor(const struct exo_gguf *g, const char *name);

const char *exo_gguf_type_name(enum exo_gguf_type type);

#endif
