/* SPDX-License-Identifier: Apache-2.0 */
#include "core/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"

void exo_buf_init(struct exo_buf *b, size_t max)
{
    memset(b, 0, sizeof(*b));
    b->max = max ? max : SIZE_MAX;
}

void exo_buf_free(struct exo_buf *b)
{
    if (!b)
        return;
    exo_free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void exo_buf_reset(struct exo_buf *b)
{
    b->len = 0;
    b->err = 0;
}

int exo_buf_reserve(struct exo_buf *b, size_t extra)
{
    if (b->err)
        return b->err;
    if (extra > b->max - b->len)
        return b->err = EXO_ETOOBIG;
    /* One spare byte keeps a NUL after printf'd text. */
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    uint8_t *p = exo_realloc(b->data, cap);
    if (!p)
        return b->err = EXO_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

void exo_buf_put(struct exo_buf *b, const void *data, size_t len)
{
    if (exo_buf_reserve(b, len) != 0)
        return;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = 0;
}

void exo_buf_put_u8(struct exo_buf *b, uint8_t v)
{
    exo_buf_put(b, &v, 1);
}

void exo_buf_put_u16(struct exo_buf *b, uint16_t v)
{
    uint8_t t[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    exo_buf_put(b, t, 2);
}

void exo_buf_put_u32(struct exo_buf *b, uint32_t v)
{
    uint8_t t[4];
    for (int i = 0; i < 4; i++)
        t[i] = (uint8_t)(v >> (8 * i));
    exo_buf_put(b, t, 4);
}

void exo_buf_put_u64(struct exo_buf *b, uint64_t v)
{
    uint8_t t[8];
    for (int i = 0; i < 8; i++)
        t[i] = (uint8_t)(v >> (8 * i));
    exo_buf_put(b, t, 8);
}

void exo_buf_put_u16be(struct exo_buf *b, uint16_t v)
{
    uint8_t t[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    exo_buf_put(b, t, 2);
}

void exo_buf_put_u32be(struct exo_buf *b, uint32_t v)
{
    uint8_t t[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    exo_buf_put(b, t, 4);
}

void exo_buf_put_varint(struct exo_buf *b, uint64_t v)
{
    uint8_t t[10];
    size_t n = 0;
    do {
        uint8_t byte = v & 0x7f;
        v >>= 7;
        t[n++] = byte | (v ? 0x80 : 0);
    } while (v);
    exo_buf_put(b, t, n);
}

void exo_buf_put_bytes(struct exo_buf *b, const void *data, size_t len)
{
    exo_buf_put_varint(b, len);
    exo_buf_put(b, data, len);
}

void exo_buf_put_str(struct exo_buf *b, const char *s)
{
    exo_buf_put_bytes(b, s, strlen(s));
}

void exo_buf_printf(struct exo_buf *b, const char *fmt, ...)
{
    va_list ap;
    char small[256];
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(small)) {
        exo_buf_put(b, small, (size_t)n);
        return;
    }
    if (exo_buf_reserve(b, (size_t)n) != 0)
        return;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void exo_reader_init(struct exo_reader *r, const void *data, size_t len)
{
    r->data = data;
    r->len = data ? len : 0;
    r->off = 0;
    r->err = 0;
}

size_t exo_reader_left(const struct exo_reader *r)
{
    return r->err ? 0 : r->len - r->off;
}

const uint8_t *exo_reader_take(struct exo_reader *r, size_t n)
{
    if (r->err)
        return NULL;
    if (n > r->len - r->off) {
        r->err = EXO_ETRUNCATED;
        return NULL;
    }
    const uint8_t *p = r->data + r->off;
    r->off += n;
    return p;
}

int exo_reader_skip(struct exo_reader *r, size_t n)
{
    return exo_reader_take(r, n) ? 0 : r->err;
}

uint8_t exo_reader_u8(struct exo_reader *r)
{
    const uint8_t *p = exo_reader_take(r, 1);
    return p ? p[0] : 0;
}

uint16_t exo_reader_u16(struct exo_reader *r)
{
    const uint8_t *p = exo_reader_take(r, 2);
    return p ? (uint16_t)(p[0] | p[1] << 8) : 0;
}

uint32_t exo_reader_u32(struct exo_reader *r)
{
    const uint8_t *p = exo_reader_take(r, 4);
    if (!p)
        return 0;
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint64_t exo_reader_u64(struct exo_reader *r)
{
    uint64_t lo = exo_reader_u32(r);
    uint64_t hi = exo_reader_u32(r);
    return lo | hi << 32;
}

uint16_t exo_reader_u16be(struct exo_reader *r)
{
    const uint8_t *p = exo_reader_take(r, 2);
    return p ? (uint16_t)(p[0] << 8 | p[1]) : 0;
}

uint32_t exo_reader_u32be(struct exo_reader *r)
{
    const uint8_t *p = exo_reader_take(r, 4);
    if (!p)
        return 0;
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

uint64_t exo_reader_varint(struct exo_reader *r)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        const uint8_t *p = exo_reader_take(r, 1);
        if (!p)
            return 0;
        if (shift == 63 && (*p & 0x7e)) {
            r->err = EXO_EFORMAT; /* more than 64 bits */
            return 0;
        }
        v |= (uint64_t)(*p & 0x7f) << shift;
        if (!(*p & 0x80))
            return v;
    }
    r->err = EXO_EFORMAT;
    return 0;
}

const uint8_t *exo_reader_bytes(struct exo_reader *r, size_t max, size_t *ret_len)
{
    uint64_t n = exo_reader_varint(r);
    if (r->err)
        return NULL;
    if (n > max) {
        r->err = EXO_ETOOBIG;
        return NULL;
    }
    const uint8_t *p = exo_reader_take(r, (size_t)n);
    if (p)
        *ret_len = (size_t)n;
    return p;
}
