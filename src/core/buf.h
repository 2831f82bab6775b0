/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Byte codecs for every wire and file format: a growable output buffer with a hard cap, and a
 * bounds-checked reader over borrowed bytes. All multi-byte integers are little-endian unless a
 * function says "be" (DNS is big-endian). Varints are LEB128 (7 bits a byte, low group first).
 *
 * The reader is sticky: the first failed read records an error and every later read fails too, so
 * a decoder can read a whole record and check `r->err` once. `r->off` is the byte offset of the
 * next read, which is what error messages quote.
 */
#ifndef EXO_CORE_BUF_H
#define EXO_CORE_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct exo_buf {
    uint8_t *data; /* owned; exo_buf_free releases it */
    size_t len;
    size_t cap;
    size_t max;    /* hard cap on len; 0 means SIZE_MAX */
    int err;       /* first error (EXO_ENOMEM or EXO_ETOOBIG); appends after an error do nothing */
};

void exo_buf_init(struct exo_buf *b, size_t max);
void exo_buf_free(struct exo_buf *b);
void exo_buf_reset(struct exo_buf *b);
int exo_buf_reserve(struct exo_buf *b, size_t extra);
void exo_buf_put(struct exo_buf *b, const void *data, size_t len);
void exo_buf_put_u8(struct exo_buf *b, uint8_t v);
void exo_buf_put_u16(struct exo_buf *b, uint16_t v);
void exo_buf_put_u32(struct exo_buf *b, uint32_t v);
void exo_buf_put_u64(struct exo_buf *b, uint64_t v);
void exo_buf_put_u16be(struct exo_buf *b, uint16_t v);
void exo_buf_put_u32be(struct exo_buf *b, uint32_t v);
void exo_buf_put_varint(struct exo_buf *b, uint64_t v);
/* A varint length followed by the bytes. */
void exo_buf_put_bytes(struct exo_buf *b, const void *data, size_t len);
void exo_buf_put_str(struct exo_buf *b, const char *s);
/* printf into the buffer (no NUL is counted in len, but one is kept after the data). */
void exo_buf_printf(struct exo_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

struct exo_reader {
    const uint8_t *data; /* borrowed */
    size_t len;
    size_t off;
    int err; /* 0, or EXO_ETRUNCATED / EXO_EFORMAT / EXO_ERANGE after the first bad read */
};

void exo_reader_init(struct exo_reader *r, const void *data, size_t len);
size_t exo_reader_left(const struct exo_reader *r);
/* Pointer to the next n bytes (and advance), or NULL with r->err set. */
const uint8_t *exo_reader_take(struct exo_reader *r, size_t n);
int exo_reader_skip(struct exo_reader *r, size_t n);
uint8_t exo_reader_u8(struct exo_reader *r);
uint16_t exo_reader_u16(struct exo_reader *r);
uint32_t exo_reader_u32(struct exo_reader *r);
uint64_t exo_reader_u64(struct exo_reader *r);
uint16_t exo_reader_u16be(struct exo_reader *r);
uint32_t exo_reader_u32be(struct exo_reader *r);
/* At most 10 bytes; an overlong or unterminated varint sets EXO_EFORMAT. */
uint64_t exo_reader_varint(struct exo_reader *r);
/* A varint length (at most max) and that many bytes, borrowed from the input. */
const uint8_t *exo_reader_bytes(struct exo_reader *r, size_t max, size_t *ret_len);

#endif
