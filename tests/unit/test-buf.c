/* SPDX-License-Identifier: Apache-2.0 */
/* The byte codecs: round trips, caps, and hostile varints. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/error.h"

static void test_buf_roundtrip(void **state)
{
    struct exo_buf b;
    exo_buf_init(&b, 0);
    exo_buf_put_u8(&b, 0xab);
    exo_buf_put_u16(&b, 0x1234);
    exo_buf_put_u32(&b, 0xdeadbeef);
    exo_buf_put_u64(&b, 0x0123456789abcdefull);
    exo_buf_put_u16be(&b, 0x5678);
    exo_buf_put_u32be(&b, 0xcafef00d);
    uint64_t vals[] = {0, 1, 127, 128, 300, 1ull << 35, UINT64_MAX};
    for (size_t i = 0; i < 7; i++)
        exo_buf_put_varint(&b, vals[i]);
    exo_buf_put_str(&b, "hello");
    assert_int_equal(b.err, 0);

    struct exo_reader r;
    exo_reader_init(&r, b.data, b.len);
    assert_int_equal(exo_reader_u8(&r), 0xab);
    assert_int_equal(exo_reader_u16(&r), 0x1234);
    assert_int_equal(exo_reader_u32(&r), 0xdeadbeef);
    assert_true(exo_reader_u64(&r) == 0x0123456789abcdefull);
    assert_int_equal(exo_reader_u16be(&r), 0x5678);
    assert_int_equal(exo_reader_u32be(&r), 0xcafef00d);
    for (size_t i = 0; i < 7; i++)
        assert_true(exo_reader_varint(&r) == vals[i]);
    size_t len = 0;
    const uint8_t *s = exo_reader_bytes(&r, 16, &len);
    assert_non_null(s);
    assert_int_equal(len, 5);
    assert_memory_equal(s, "hello", 5);
    assert_int_equal(exo_reader_left(&r), 0);
    assert_int_equal(r.err, 0);
    exo_reader_u8(&r);
    assert_int_equal(r.err, EXO_ETRUNCATED);
    exo_buf_free(&b);
}

static void test_buf_cap(void **state)
{
    struct exo_buf b;
    exo_buf_init(&b, 8);
    exo_buf_put(&b, "12345678", 8);
    assert_int_equal(b.err, 0);
    exo_buf_put_u8(&b, 1);
    assert_int_equal(b.err, EXO_ETOOBIG);
    assert_int_equal(b.len, 8);
    exo_buf_free(&b);
}

static void test_buf_hostile_varint(void **state)
{
    /* Eleven continuation bytes, and a tenth byte that overflows 64 bits. */
    uint8_t endless[11];
    memset(endless, 0xff, sizeof(endless));
    struct exo_reader r;
    exo_reader_init(&r, endless, sizeof(endless));
    exo_reader_varint(&r);
    assert_int_equal(r.err, EXO_EFORMAT);

    uint8_t overflow[10] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02};
    exo_reader_init(&r, overflow, sizeof(overflow));
    exo_reader_varint(&r);
    assert_int_equal(r.err, EXO_EFORMAT);

    uint8_t truncated[2] = {0x80, 0x80};
    exo_reader_init(&r, truncated, sizeof(truncated));
    exo_reader_varint(&r);
    assert_int_equal(r.err, EXO_ETRUNCATED);

    /* A length prefix larger than the cap is refused before any bytes are taken. */
    uint8_t big[3] = {0x80, 0x01, 'x'};
    size_t len = 0;
    exo_reader_init(&r, big, sizeof(big));
    assert_null(exo_reader_bytes(&r, 64, &len));
    assert_int_equal(r.err, EXO_ETOOBIG);
}

static void test_buf_printf_and_alloc_failure(void **state)
{
    struct exo_buf b;
    exo_buf_init(&b, 0);
    exo_buf_printf(&b, "%s-%d", "x", 42);
    assert_string_equal((char *)b.data, "x-42");
    char long_text[600];
    memset(long_text, 'a', sizeof(long_text) - 1);
    long_text[sizeof(long_text) - 1] = 0;
    exo_buf_printf(&b, "%s", long_text);
    assert_int_equal(b.len, 4 + 599);
    exo_buf_free(&b);

    exo_buf_init(&b, 0);
    exo_alloc_fail_after(0);
    exo_buf_put_u8(&b, 1);
    exo_alloc_fail_after(-1);
    assert_int_equal(b.err, EXO_ENOMEM);
    exo_buf_free(&b);
}

static void test_error_table(void **state)
{
    assert_string_equal(exo_strerror(0), "success");
    assert_string_equal(exo_strerror(EXO_ENOMEM), "out of memory");
    assert_string_equal(exo_errname(EXO_ETRUNCATED), "EXO_ETRUNCATED");
    assert_string_equal(exo_strerror(12345), "unknown error");
    assert_string_equal(exo_strerror(EXO_E__LAST), "unknown error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_roundtrip),
        cmocka_unit_test(test_buf_cap),
        cmocka_unit_test(test_buf_hostile_varint),
        cmocka_unit_test(test_buf_printf_and_alloc_failure),
        cmocka_unit_test(test_error_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
