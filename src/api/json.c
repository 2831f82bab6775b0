/* SPDX-License-Identifier: Apache-2.0 */
/* JSON string literals written by hand (see json.h). */
#include "api/json.h"

#include <stdint.h>

/* What a lead byte promises: the sequence length and the range of the second byte. The ranges
 * are the well-formed table of Unicode 15, section 3.9: no overlong forms, no surrogates, nothing
 * above U+10FFFF. 0 for bytes that cannot start a multi-byte sequence. */
static size_t lead(uint8_t c, uint8_t *lo, uint8_t *hi)
{
    *lo = 0x80;
    *hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf)
        return 2;
    if (c >= 0xe0 && c <= 0xef) {
        if (c == 0xe0)
            *lo = 0xa0;
        else if (c == 0xed)
            *hi = 0x9f;
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (c == 0xf0)
            *lo = 0x90;
        else if (c == 0xf4)
            *hi = 0x8f;
        return 4;
    }
    return 0;
}

/* How many bytes at s (len > 0) form a well-formed character (*ret_valid) or, when they do not,
 * the maximal invalid subpart that one U+FFFD replaces: the lead byte and the continuation bytes
 * that could still have completed it. */
static size_t utf8_step(const uint8_t *s, size_t len, int *ret_valid)
{
    uint8_t lo, hi;
    *ret_valid = 1;
    if (s[0] < 0x80)
        return 1;
    size_t need = lead(s[0], &lo, &hi);
    size_t n = 1;
    if (need && n < len && s[1] >= lo && s[1] <= hi)
        for (n = 2; n < need && n < len && s[n] >= 0x80 && s[n] <= 0xbf; n++)
            ;
    *ret_valid = need && n == need;
    return n;
}

void exo_json_put_string(struct exo_buf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *p = (const uint8_t *)s;
    exo_buf_put_u8(b, '"');
    size_t run = 0; /* bytes at p that are copied as they are */
    while (run < len) {
        uint8_t c = p[run];
        int valid;
        size_t n = utf8_step(p + run, len - run, &valid);
        if (valid && (n > 1 || (c >= 0x20 && c != '"' && c != '\\'))) {
            run += n;
            continue;
        }
        exo_buf_put(b, p, run);
        p += run;
        len -= run;
        run = 0;
        if (!valid) {
            exo_buf_put(b, "\xef\xbf\xbd", 3);
            p += n;
            len -= n;
            continue;
        }
        char esc[6] = {'\\', (char)c, 0, 0, 0, 0};
        size_t esc_len = 2;
        if (c == '\n')
            esc[1] = 'n';
        else if (c == '\r')
            esc[1] = 'r';
        else if (c == '\t')
            esc[1] = 't';
        else if (c < 0x20) {
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            esc_len = 6;
        }
        exo_buf_put(b, esc, esc_len);
        p++;
        len--;
    }
    exo_buf_put(b, p, run);
    exo_buf_put_u8(b, '"');
}
