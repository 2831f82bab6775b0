/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A GGUF writer for tests: builds files in memory (metadata of every type, tensors of any type,
 * alignment padding) so the suite makes its own tiny models and its own hostile variants.
 * Errors are programmer errors here (the test controls every input), so functions abort on
 * misuse instead of returning codes.
 */
#ifndef EXO_TEST_GGUF_WRITER_H
#define EXO_TEST_GGUF_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/gguf.h"

struct gguf_writer;

/* version 2 or 3; alignment a power of two (writes general.alignment when not 32). */
struct gguf_writer *gguf_writer_new(uint32_t version, uint32_t alignment);
void gguf_writer_free(struct gguf_writer *w);

void gguf_writer_u8(struct gguf_writer *w, const char *key, uint8_t v);
void gguf_writer_i8(struct gguf_writer *w, const char *key, int8_t v);
void gguf_writer_u16(struct gguf_writer *w, const char *key, uint16_t v);
void gguf_writer_i16(struct gguf_writer *w, const char *key, int16_t v);
void gguf_writer_u32(struct gguf_writer *w, const char *key, uint32_t v);
void gguf_writer_i32(struct gguf_writer *w, const char *key, int32_t v);
void gguf_writer_u64(struct gguf_writer *w, const char *key, uint64_t v);
void gguf_writer_i64(struct gguf_writer *w, const char *key, int64_t v);
void gguf_writer_f32(struct gguf_writer *w, const char *key, float v);
void gguf_writer_f64(struct gguf_writer *w, const char *key, double v);
void gguf_writer_bool(struct gguf_writer *w, const char *key, bool v);
void gguf_writer_str(struct gguf_writer *w, const char *key, const char *v);
/* Arrays of scalars: elem_size bytes per element, stored as given (little-endian host). */
void gguf_writer_arr(struct gguf_writer *w, const char *key, enum exo_gguf_type elem_type,
                     const void *data, size_t count);
void gguf_writer_arr_str(struct gguf_writer *w, const char *key, const char *const *strs,
                         size_t count);

/* A tensor of `type` with n_dims dimensions ne[] (ne[0] innermost); data holds its bytes in the
 * type's block format (exo_dtype_row_bytes(type, ne[0]) * rows); copied. */
void gguf_writer_tensor(struct gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                        const uint64_t *ne, const void *data);

/* Serialise; *ret_data is owned by the caller (free()). */
void gguf_writer_finish(struct gguf_writer *w, uint8_t **ret_data, size_t *ret_size);
/* Serialise to a file; returns 0 or -1. */
int gguf_writer_save(struct gguf_writer *w, const char *path);

#endif
