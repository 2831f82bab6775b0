/* SPDX-License-Identifier: Apache-2.0 */
/* Packet sealing: round trips, every refusal reason, key rotation and key files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/alloc.h"
#include "core/error.h"
#include "net/seal.h"

#define T0 1700000000000ull

static struct exo_seal *make(const char *cluster, size_t replay)
{
    struct exo_seal_config cfg = {.cluster = cluster, .replay_entries = replay};
    struct exo_seal *s = NULL;
    assert_int_equal(exo_seal_create(&cfg, &s), 0);
    return s;
}

static void fill_key(uint8_t key[EXO_SEAL_KEY_BYTES], uint8_t v)
{
    for (int i = 0; i < EXO_SEAL_KEY_BYTES; i++)
        key[i] = (uint8_t)(v + i);
}

static size_t seal_text(struct exo_seal *s, const char *text, uint64_t now, uint8_t *out)
{
    size_t n = 0;
    assert_int_equal(exo_seal_seal(s, text, strlen(text), now, out, 2048, &n), 0);
    assert_int_equal(n, strlen(text) + EXO_SEAL_OVERHEAD);
    return n;
}

static int open_msg(struct exo_seal *s, const uint8_t *msg, size_t n, uint64_t now,
                    enum exo_seal_drop *reason)
{
    uint8_t out[2048];
    size_t len = 0;
    return exo_seal_open(s, msg, n, now, out, sizeof(out), &len, reason);
}

static void test_seal_roundtrip(void **state)
{
    struct exo_seal *a = make("lab", 0), *b = make("lab", 0);
    assert_true(exo_seal_is_derived(a));
    uint8_t msg[2048], out[2048];
    size_t n = seal_text(a, "hello, cluster", T0, msg);
    size_t len = 0;
    assert_int_equal(exo_seal_open(b, msg, n, T0 + 5, out, sizeof(out), &len, NULL), 0);
    assert_int_equal(len, 14);
    assert_memory_equal(out, "hello, cluster", 14);
    /* An empty payload is legal (a keepalive frame). */
    assert_int_equal(exo_seal_seal(a, "", 0, T0, msg, sizeof(msg), &n), 0);
    assert_int_equal(exo_seal_open(b, msg, n, T0, out, sizeof(out), &len, NULL), 0);
    assert_int_equal(len, 0);
    struct exo_seal_stats st;
    exo_seal_get_stats(b, &st);
    assert_int_equal(st.opened, 2);
    exo_seal_free(a);
    exo_seal_free(b);
    exo_seal_free(NULL);
}

static void test_seal_wrong_key(void **state)
{
    struct exo_seal *a = make("lab", 0), *b = make("lab", 0);
    uint8_t k1[EXO_SEAL_KEY_BYTES], k2[EXO_SEAL_KEY_BYTES];
    fill_key(k1, 1);
    fill_key(k2, 2);
    assert_int_equal(exo_seal_set_keys(a, (const uint8_t(*)[EXO_SEAL_KEY_BYTES]) & k1, 1), 0);
    assert_int_equal(exo_seal_set_keys(b, (const uint8_t(*)[EXO_SEAL_KEY_BYTES]) & k2, 1), 0);
    assert_false(exo_seal_is_derived(a));
    uint8_t msg[2048];
    size_t n = seal_text(a, "secret", T0, msg);
    enum exo_seal_drop why = EXO_SEAL_DROP__COUNT;
    assert_int_equal(open_msg(b, msg, n, T0, &why), EXO_ENOENT);
    assert_int_equal(why, EXO_SEAL_DROP_UNKNOWN_KEY);
    /* Claim b's key id: the tag check must then fail. */
    uint8_t id[EXO_SEAL_KEY_ID_BYTES];
    exo_seal_primary_id(b, id);
    memcpy(msg + 5, id, sizeof(id));
    assert_int_equal(open_msg(b, msg, n, T0, &why), EXO_EAUTH);
    assert_int_equal(why, EXO_SEAL_DROP_AUTH);
    struct exo_seal_stats st;
    exo_seal_get_stats(b, &st);
    assert_int_equal(st.dropped[EXO_SEAL_DROP_UNKNOWN_KEY], 1);
    assert_int_equal(st.dropped[EXO_SEAL_DROP_AUTH], 1);
    assert_int_equal(st.opened, 0);
    exo_seal_free(a);
    exo_seal_free(b);
}

static void test_seal_wrong_cluster(void **state)
{
    /* Same key, other label: counted as the wrong cluster, not as a forgery. */
    struct exo_seal *a = make("lab", 0), *b = make("home", 0);
    uint8_t k[EXO_SEAL_KEY_BYTES];
    fill_key(k, 9);
    assert_int_equal(exo_seal_set_keys(a, (const uint8_t(*)[EXO_SEAL_KEY_BYTES]) & k, 1), 0);
    assert_int_equal(exo_seal_set_keys(b, (const uint8_t(*)[EXO_SEAL_KEY_BYTES]) & k, 1), 0);
    uint8_t msg[2048];
    size_t n = seal_text(a, "x", T0, msg);
    enum exo_seal_drop why;
    assert_int_equal(open_msg(b, msg, n, T0, &why), EXO_EPROTO);
    assert_int_equal(why, EXO_SEAL_DROP_WRONG_CLUSTER);
    assert_string_equal(exo_seal_drop_name(why), "wrong_cluster");
    exo_seal_free(a);
    exo_seal_free(b);
}

static void test_seal_tampered(void **state)
{
    struct exo_seal *a = make("lab", 0), *b = make("lab", 0);
    uint8_t msg[2048];
    size_t n = seal_text(a, "tamper with me", T0, msg);
    static const struct {
        size_t off;
        int code;
        enum exo_seal_drop why;
    } cases[] = {
        {0, EXO_EFORMAT, EXO_SEAL_DROP_BAD_MAGIC},
        {4, EXO_EUNSUPPORTED, EXO_SEAL_DROP_BAD_VERSION},
        {5, EXO_ENOENT, EXO_SEAL_DROP_UNKNOWN_KEY},
        {9, EXO_EPROTO, EXO_SEAL_DROP_WRONG_CLUSTER},
        {13, EXO_EAUTH, EXO_SEAL_DROP_AUTH},                    /* nonce */
        {EXO_SEAL_HEADER_BYTES, EXO_EAUTH, EXO_SEAL_DROP_AUTH}, /* timestamp */
        {EXO_SEAL_HEADER_BYTES + 10, EXO_EAUTH, EXO_SEAL_DROP_AUTH},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t copy[2048];
        memcpy(copy, msg, n);
        copy[cases[i].off] ^= 0x40;
        enum exo_seal_drop why;
        assert_int_equal(open_msg(b, copy, n, T0, &why), cases[i].code);
        assert_int_equal(why, cases[i].why);
    }
    /* The last byte of the tag. */
    msg[n - 1] ^= 1;
    assert_int_equal(open_msg(b, msg, n, T0, NULL), EXO_EAUTH);
    msg[n - 1] ^= 1;
    /* Every truncation is refused without reading past the end. */
    for (size_t cut = 0; cut < n; cut++)
        assert_true(open_msg(b, msg, cut, T0, NULL) < 0);
    assert_int_equal(open_msg(b, msg, n, T0, NULL), 0);
    exo_seal_free(a);
    exo_seal_free(b);
}

static void test_seal_too_big(void **state)
{
    struct exo_seal_config cfg = {.cluster = "lab", .max_message = 200};
    struct exo_seal *s = NULL;
    assert_int_equal(exo_seal_create(&cfg, &s), 0);
    uint8_t payload[300] = {0}, msg[512];
    size_t n = 0;
    assert_int_equal(exo_seal_seal(s, payload, 200, T0, msg, sizeof(msg), &n), EXO_ETOOBIG);
    assert_int_equal(exo_seal_seal(s, payload, 100, T0, msg, 120, &n), EXO_ETOOBIG);
    assert_int_equal(exo_seal_seal(s, payload, 100, T0, msg, sizeof(msg), &n), 0);
    enum exo_seal_drop why;
    assert_int_equal(open_msg(s, msg, 201, T0, &why), EXO_ETOOBIG);
    assert_int_equal(why, EXO_SEAL_DROP_TOO_BIG);
    /* An output buffer too small for the payload is refused, not overrun. */
    uint8_t small[50];
    size_t len;
    assert_int_equal(exo_seal_open(s, msg, n, T0, small, sizeof(small), &len, &why), EXO_ETOOBIG);
    exo_seal_free(s);
}

static void test_seal_stale(void **state)
{
    struct exo_seal *a = make("lab", 0), *b = make("lab", 0);
    uint8_t msg[2048];
    size_t n = seal_text(a, "old news", T0, msg);
    enum exo_seal_drop why;
    assert_int_equal(open_msg(b, msg, n, T0 + 60001, &why), EXO_EREPLAY);
    assert_int_equal(why, EXO_SEAL_DROP_STALE);
    assert_int_equal(open_msg(b, msg, n, T0 - 60001, &why), EXO_EREPLAY);
    assert_int_equal(why, EXO_SEAL_DROP_STALE);
    /* Inside the window either way it is fine. */
    assert_int_equal(open_msg(b, msg, n, T0 + 59999, NULL), 0);
    exo_seal_free(a);
    exo_seal_free(b);
}

static void test_seal_replay(void **state)
{
    struct exo_seal *a = make("lab", 0), *b = make("lab", 0);
    uint8_t msg[2048];
    size_t n = seal_text(a, "once", T0, msg);
    enum exo_seal_drop why;
    assert_int_equal(open_msg(b, msg, n, T0, NULL), 0);
    assert_int_equal(open_msg(b, msg, n, T0 + 1000, &why), EXO_EREPLAY);
    assert_int_equal(why, EXO_SEAL_DROP_REPLAYED);
    /* After the window the nonce is forgotten, but the timestamp is then stale. */
    assert_int_equal(open_msg(b, msg, n, T0 + 120000, &why), EXO_EREPLAY);
    assert_int_equal(why, EXO_SEAL_DROP_STALE);
    exo_seal_free(a);
    exo_seal_free(b);
}

static void test_seal_replay_cache_full(void **state)
{
    /* A cache of 4 entries under a flood of 64: no replay may ever get through. */
    struct exo_seal *a = make("lab", 0), *b = make("lab", 4);
    uint8_t msgs[64][128];
    size_t lens[64];
    for (int i = 0; i < 64; i++) {
        lens[i] = seal_text(a, "flood", T0 + (uint64_t)i, msgs[i]);
        assert_int_equal(open_msg(b, msgs[i], lens[i], T0 + 64, NULL), 0);
    }
    for (int i = 0; i < 64; i++)
        assert_int_equal(open_msg(b, msgs[i], lens[i], T0 + 64, NULL), EXO_EREPLAY);
    /* New traffic still flows. */
    uint8_t msg[128];
    size_t n = seal_text(a, "fresh", T0 + 100, msg);
    assert_int_equal(open_msg(b, msg, n, T0 + 100, NULL), 0);
    exo_seal_free(a);
    exo_seal_free(b);
}

static void test_seal_key_rotation(void **state)
{
    struct exo_seal *a = make("lab", 0), *b = make("lab", 0), *c = make("lab", 0);
    uint8_t k1[EXO_SEAL_KEY_BYTES], k2[EXO_SEAL_KEY_BYTES];
    fill_key(k1, 1);
    fill_key(k2, 2);
    const uint8_t(*pk1)[EXO_SEAL_KEY_BYTES] = (const uint8_t(*)[EXO_SEAL_KEY_BYTES]) & k1;
    assert_int_equal(exo_seal_set_keys(a, pk1, 1), 0);
    assert_int_equal(exo_seal_set_keys(b, pk1, 1), 0);
    assert_int_equal(exo_seal_set_keys(c, pk1, 1), 0);
    uint8_t old_msg[256], new_msg[256];
    size_t old_n = seal_text(a, "before", T0, old_msg);

    /* Step 1: everyone learns k2. Step 2: a makes it primary. */
    assert_int_equal(exo_seal_add_key(b, k2), 0);
    assert_int_equal(exo_seal_add_key(b, k2), EXO_EEXIST);
    assert_int_equal(exo_seal_use_key(a, k2), 0);
    size_t new_n = seal_text(a, "after", T0, new_msg);
    uint8_t id2[EXO_SEAL_KEY_ID_BYTES], pid[EXO_SEAL_KEY_ID_BYTES];
    exo_seal_key_id(k2, id2);
    exo_seal_primary_id(a, pid);
    assert_memory_equal(id2, pid, sizeof(pid));
    assert_memory_equal(new_msg + 5, id2, sizeof(id2));

    assert_int_equal(open_msg(b, old_msg, old_n, T0, NULL), 0); /* old key still opens */
    assert_int_equal(open_msg(b, new_msg, new_n, T0, NULL), 0); /* new primary seals */
    assert_int_equal(open_msg(c, new_msg, new_n, T0, NULL), EXO_ENOENT);

    /* Step 3: retire k1. The primary cannot be removed. */
    assert_int_equal(exo_seal_remove_key(a, k2), EXO_EBUSY);
    assert_int_equal(exo_seal_remove_key(a, k1), 0);
    assert_int_equal(exo_seal_remove_key(a, k1), EXO_ENOENT);
    size_t again_n = seal_text(b, "b still on k1", T0, old_msg);
    assert_int_equal(open_msg(a, old_msg, again_n, T0, NULL), EXO_ENOENT);
    exo_seal_free(a);
    exo_seal_free(b);
    exo_seal_free(c);
}

static void test_seal_keyring_limits(void **state)
{
    struct exo_seal *s = make("lab", 0);
    uint8_t k[EXO_SEAL_KEY_BYTES];
    for (int i = 0; i < EXO_SEAL_MAX_KEYS - 1; i++) {
        fill_key(k, (uint8_t)(10 + i));
        assert_int_equal(exo_seal_add_key(s, k), 0);
    }
    fill_key(k, 200);
    assert_int_equal(exo_seal_add_key(s, k), EXO_ENOSPC);
    assert_int_equal(exo_seal_set_keys(s, NULL, 0), EXO_EINVAL);
    uint8_t dup[2][EXO_SEAL_KEY_BYTES];
    fill_key(dup[0], 5);
    fill_key(dup[1], 5);
    assert_int_equal(exo_seal_set_keys(s, (const uint8_t(*)[EXO_SEAL_KEY_BYTES])dup, 2),
                     EXO_EEXIST);
    exo_seal_free(s);

    struct exo_seal_config bad = {.cluster = NULL};
    struct exo_seal *t = NULL;
    assert_int_equal(exo_seal_create(&bad, &t), EXO_EINVAL);
    char label[300];
    memset(label, 'x', sizeof(label) - 1);
    label[sizeof(label) - 1] = 0;
    bad.cluster = label;
    assert_int_equal(exo_seal_create(&bad, &t), EXO_EINVAL);
}

static void test_seal_create_nomem(void **state)
{
    struct exo_seal_config cfg = {.cluster = "lab"};
    for (long n = 0; n < 10; n++) {
        struct exo_seal *s = NULL;
        exo_alloc_fail_after(n);
        int rc = exo_seal_create(&cfg, &s);
        exo_alloc_fail_after(-1);
        if (rc == 0) {
            exo_seal_free(s);
            return;
        }
        assert_int_equal(rc, EXO_ENOMEM);
    }
    fail_msg("create never succeeded");
}

static void test_seal_keyfile_good(void **state)
{
    uint8_t k1[EXO_SEAL_KEY_BYTES], k2[EXO_SEAL_KEY_BYTES];
    fill_key(k1, 1);
    fill_key(k2, 2);
    /* base64 of the two keys, written out by hand so the test pins the format. */
    const char *text = "# cluster key\r\n"
                       "\n"
                       "  AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=  \r\n"
                       "# old key, still accepted\n"
                       "AgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4fICE=";
    uint8_t keys[4][EXO_SEAL_KEY_BYTES];
    size_t n = 0;
    struct exo_diag diag = {{0}};
    assert_int_equal(exo_seal_keyfile_parse(text, strlen(text), keys, 4, &n, &diag), 0);
    assert_int_equal(n, 2);
    assert_memory_equal(keys[0], k1, sizeof(k1));
    assert_memory_equal(keys[1], k2, sizeof(k2));

    struct exo_seal *s = make("lab", 0);
    assert_int_equal(exo_seal_load_keyfile(s, text, strlen(text), &diag), 0);
    uint8_t id[EXO_SEAL_KEY_ID_BYTES], want[EXO_SEAL_KEY_ID_BYTES];
    exo_seal_primary_id(s, id);
    exo_seal_key_id(k1, want);
    assert_memory_equal(id, want, sizeof(id));
    assert_false(exo_seal_is_derived(s));
    exo_seal_free(s);
}

static void test_seal_keyfile_bad(void **state)
{
    char big[EXO_SEAL_KEYFILE_MAX + 2];
    memset(big, '#', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    char many[1024] = "";
    for (int i = 0; i < 3; i++)
        strcat(many, i == 0 ? "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=\n"
                            : (i == 1 ? "AgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4fICE=\n"
                                      : "AwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISI=\n"));
    static const char nul_text[] = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eH\0yA=\n";
    struct {
        const char *text;
        size_t len;
        int code;
        const char *needle;
    } cases[] = {
        {"", 0, EXO_EFORMAT, "no key"},
        {"# only a comment\n\n", 18, EXO_EFORMAT, "no key"},
        {"AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA!\n", 45, EXO_EFORMAT, "line 1"},
        {"AQIDBAUGBwgJCgsMDQ4PEA==\n", 25, EXO_EFORMAT, "16 bytes"},
        {"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", 45, EXO_EFORMAT, "all zeros"},
        {"AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="
         "\nAQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=",
         89, EXO_EEXIST, "line 2"},
        {"AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA", 43, EXO_EFORMAT, "line 1"},
        {nul_text, sizeof(nul_text) - 1, EXO_EFORMAT, "0x00"},
        {big, sizeof(big) - 1, EXO_ETOOBIG, "bytes"},
        {many, strlen(many), EXO_ETOOBIG, "more than 2 keys"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t keys[2][EXO_SEAL_KEY_BYTES];
        size_t n = 99;
        struct exo_diag diag = {{0}};
        int rc = exo_seal_keyfile_parse(cases[i].text, cases[i].len, keys, 2, &n, &diag);
        if (rc != cases[i].code || !strstr(diag.msg, cases[i].needle))
            fail_msg("case %zu: rc %d (%s), diag '%s'", i, rc, exo_errname(rc), diag.msg);
        assert_int_equal(n, 99);
    }
    /* A failed load leaves the keyring as it was. */
    struct exo_seal *s = make("lab", 0);
    assert_true(exo_seal_load_keyfile(s, "junk", 4, NULL) < 0);
    assert_true(exo_seal_is_derived(s));
    exo_seal_free(s);
}

static void test_seal_keygen(void **state)
{
    char *text = NULL;
    assert_int_equal(exo_seal_keygen(&text), 0);
    assert_non_null(strstr(text, "# exo cluster key"));
    uint8_t keys[2][EXO_SEAL_KEY_BYTES];
    size_t n = 0;
    struct exo_diag diag;
    assert_int_equal(exo_seal_keyfile_parse(text, strlen(text), keys, 2, &n, &diag), 0);
    assert_int_equal(n, 1);
    char *other = NULL;
    assert_int_equal(exo_seal_keygen(&other), 0);
    assert_string_not_equal(text, other);
    exo_free(text);
    exo_free(other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seal_roundtrip),     cmocka_unit_test(test_seal_wrong_key),
        cmocka_unit_test(test_seal_wrong_cluster), cmocka_unit_test(test_seal_tampered),
        cmocka_unit_test(test_seal_too_big),       cmocka_unit_test(test_seal_stale),
        cmocka_unit_test(test_seal_replay),        cmocka_unit_test(test_seal_replay_cache_full),
        cmocka_unit_test(test_seal_key_rotation),  cmocka_unit_test(test_seal_keyring_limits),
        cmocka_unit_test(test_seal_create_nomem),  cmocka_unit_test(test_seal_keyfile_good),
        cmocka_unit_test(test_seal_keyfile_bad),   cmocka_unit_test(test_seal_keygen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
