/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The DNS codec: exact bytes of a known query, round trips of every record type through the
 * builder and the parser, name compression, the builder's size cap, and hostile packets
 * (pointer loops, forward and self pointers, pointers into the header, long labels and names,
 * lying counts, truncated and inconsistent rdata, every truncation of a good packet).
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
#include "net/dns.h"

static struct exo_dns_name name_of(const char *text)
{
    struct exo_dns_name n;
    assert_int_equal(exo_dns_name_from_text(&n, text), 0);
    return n;
}

static int parse(const uint8_t *pkt, size_t len, struct exo_dns_msg *msg, struct exo_diag *diag)
{
    memset(diag, 0, sizeof(*diag));
    return exo_dns_parse(pkt, len, msg, diag);
}

/* Parse bytes that must be rejected with code, and with a diag mentioning `needle`. */
static void expect_reject(const uint8_t *pkt, size_t len, int code, const char *needle)
{
    struct exo_dns_msg msg;
    struct exo_diag diag;
    int rc = parse(pkt, len, &msg, &diag);
    if (rc != code || !strstr(diag.msg, needle)) {
        print_error("want %s with \"%s\", got %s: %s\n", exo_errname(code), needle, exo_errname(rc),
                    diag.msg);
        fail();
    }
}

static void test_dns_query_exact_bytes(void **state)
{
    static const uint8_t want[] = {0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
                                   0x00, 0x00, 0x00, 4,    '_',  'e',  'x',  'o',  4,
                                   '_',  'u',  'd',  'p',  5,    'l',  'o',  'c',  'a',
                                   'l',  0,    0x00, 0x0c, 0x80, 0x01};
    struct exo_dns_builder b;
    struct exo_dns_question q = {.name = name_of("_exo._udp.local"),
                                 .type = EXO_DNS_TYPE_PTR,
                                 .qclass = EXO_DNS_CLASS_IN,
                                 .unicast_response = true};
    const uint8_t *data;
    size_t len;

    exo_dns_builder_init(&b, 0, 0, 1400);
    assert_int_equal(exo_dns_builder_question(&b, &q), 0);
    assert_int_equal(exo_dns_builder_finish(&b, &data, &len), 0);
    assert_int_equal(len, sizeof(want));
    assert_memory_equal(data, want, sizeof(want));

    struct exo_dns_msg msg;
    struct exo_diag diag;
    assert_int_equal(parse(data, len, &msg, &diag), 0);
    assert_int_equal(msg.n_qd, 1);
    assert_true(msg.qd[0].unicast_response);
    assert_int_equal(msg.qd[0].qclass, EXO_DNS_CLASS_IN);
    assert_int_equal(msg.qd[0].type, EXO_DNS_TYPE_PTR);
    assert_true(exo_dns_name_eq(&msg.qd[0].name, &q.name));
    exo_dns_msg_free(&msg);
    exo_dns_builder_free(&b);
    (void)state;
}

/* One record of every type the codec knows, plus an opaque one. */
static size_t sample_records(struct exo_dns_rr *rr, uint8_t *txt, uint8_t *bm)
{
    static const char *const strs[] = {"id=00112233", "v=1", ""};
    static const uint16_t types[] = {EXO_DNS_TYPE_TXT, EXO_DNS_TYPE_SRV};
    static const uint8_t opaque[] = {1, 2, 3, 0xc0, 0x0c};
    size_t txt_len;
    memset(rr, 0, 7 * sizeof(*rr));
    for (int i = 0; i < 7; i++) {
        rr[i].rrclass = EXO_DNS_CLASS_IN;
        rr[i].ttl = 120;
        rr[i].name = name_of("Node A._exo._udp.local");
    }
    rr[0].name = name_of("_exo._udp.local");
    rr[0].type = EXO_DNS_TYPE_PTR;
    rr[0].ttl = 4500;
    rr[0].rd.ptr = name_of("Node A._exo._udp.local");
    rr[1].type = EXO_DNS_TYPE_SRV;
    rr[1].cache_flush = true;
    rr[1].rd.srv.priority = 1;
    rr[1].rd.srv.weight = 2;
    rr[1].rd.srv.port = 52416;
    rr[1].rd.srv.target = name_of("host-1.local");
    assert_int_equal(exo_dns_txt_encode(strs, 3, txt, 64, &txt_len), 0);
    rr[2].type = EXO_DNS_TYPE_TXT;
    rr[2].cache_flush = true;
    rr[2].rd.raw.data = txt;
    rr[2].rd.raw.len = (uint16_t)txt_len;
    rr[3].name = name_of("host-1.local");
    rr[3].type = EXO_DNS_TYPE_A;
    memcpy(rr[3].rd.a, (uint8_t[]){198, 18, 0, 1}, 4);
    rr[4].name = name_of("host-1.local");
    rr[4].type = EXO_DNS_TYPE_AAAA;
    for (int i = 0; i < 16; i++)
        rr[4].rd.aaaa[i] = (uint8_t)(0xfe - i);
    rr[5].type = EXO_DNS_TYPE_NSEC;
    rr[5].rd.nsec.next = rr[5].name;
    rr[5].rd.nsec.bitmaps = bm;
    rr[5].rd.nsec.bitmaps_len = (uint16_t)exo_dns_nsec_bitmap(types, 2, bm);
    rr[6].type = 99;
    rr[6].rrclass = 3;
    rr[6].ttl = 0xffffffffu;
    rr[6].rd.raw.data = opaque;
    rr[6].rd.raw.len = sizeof(opaque);
    return 7;
}

static void assert_rr_equal(const struct exo_dns_rr *a, const struct exo_dns_rr *b)
{
    assert_int_equal(a->name.len, b->name.len);
    assert_memory_equal(a->name.wire, b->name.wire, a->name.len);
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->rrclass, b->rrclass);
    assert_int_equal(a->cache_flush, b->cache_flush);
    assert_int_equal(a->ttl, b->ttl);
    assert_int_equal(exo_dns_rdata_cmp(a, b), 0);
}

static void test_dns_round_trip_every_type(void **state)
{
    struct exo_dns_rr rr[7];
    uint8_t txt[64], bm[34];
    size_t n = sample_records(rr, txt, bm);
    struct exo_dns_question q = {
        .name = name_of("_exo._udp.local"), .type = EXO_DNS_TYPE_ANY, .qclass = EXO_DNS_CLASS_ANY};
    static const enum exo_dns_section sect[] = {
        EXO_DNS_SECTION_ANSWER,    EXO_DNS_SECTION_ANSWER,     EXO_DNS_SECTION_ANSWER,
        EXO_DNS_SECTION_AUTHORITY, EXO_DNS_SECTION_ADDITIONAL, EXO_DNS_SECTION_ADDITIONAL,
        EXO_DNS_SECTION_ADDITIONAL};
    struct exo_dns_builder b;
    const uint8_t *data;
    size_t len;

    exo_dns_builder_init(&b, 0x1234, EXO_DNS_FLAG_QR | EXO_DNS_FLAG_AA, 1400);
    assert_int_equal(exo_dns_builder_question(&b, &q), 0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(exo_dns_builder_rr(&b, sect[i], &rr[i]), 0);
    assert_int_equal(exo_dns_builder_entries(&b), 8);
    assert_int_equal(exo_dns_builder_finish(&b, &data, &len), 0);

    struct exo_dns_msg msg;
    struct exo_diag diag;
    assert_int_equal(parse(data, len, &msg, &diag), 0);
    assert_int_equal(msg.id, 0x1234);
    assert_int_equal(msg.flags, EXO_DNS_FLAG_QR | EXO_DNS_FLAG_AA);
    assert_int_equal(msg.n_qd, 1);
    assert_int_equal(msg.n_an, 3);
    assert_int_equal(msg.n_ns, 1);
    assert_int_equal(msg.n_ar, 3);
    assert_false(msg.qd[0].unicast_response);
    assert_int_equal(msg.qd[0].qclass, EXO_DNS_CLASS_ANY);
    for (size_t i = 0; i < n; i++)
        assert_rr_equal(&msg.rr[i], &rr[i]);
    assert_ptr_equal(exo_dns_msg_rr(&msg, EXO_DNS_SECTION_AUTHORITY, 0), &msg.rr[3]);
    assert_ptr_equal(exo_dns_msg_rr(&msg, EXO_DNS_SECTION_ADDITIONAL, 2), &msg.rr[6]);
    assert_int_equal(msg.rr[1].rd.srv.port, 52416);
    assert_true(exo_dns_nsec_has_type(&msg.rr[5], EXO_DNS_TYPE_SRV));
    assert_true(exo_dns_nsec_has_type(&msg.rr[5], EXO_DNS_TYPE_TXT));
    assert_false(exo_dns_nsec_has_type(&msg.rr[5], EXO_DNS_TYPE_A));
    assert_false(exo_dns_nsec_has_type(&msg.rr[5], 300));

    size_t off = 0, slen;
    const uint8_t *s;
    assert_true(exo_dns_txt_next(msg.rr[2].rd.raw.data, msg.rr[2].rd.raw.len, &off, &s, &slen));
    assert_int_equal(slen, 11);
    assert_memory_equal(s, "id=00112233", 11);
    assert_true(exo_dns_txt_next(msg.rr[2].rd.raw.data, msg.rr[2].rd.raw.len, &off, &s, &slen));
    assert_true(exo_dns_txt_next(msg.rr[2].rd.raw.data, msg.rr[2].rd.raw.len, &off, &s, &slen));
    assert_int_equal(slen, 0);
    assert_false(exo_dns_txt_next(msg.rr[2].rd.raw.data, msg.rr[2].rd.raw.len, &off, &s, &slen));
    exo_dns_msg_free(&msg);
    exo_dns_builder_free(&b);
    (void)state;
}

static void test_dns_compression(void **state)
{
    struct exo_dns_builder b;
    struct exo_dns_rr rr;
    const uint8_t *data;
    size_t len;

    memset(&rr, 0, sizeof(rr));
    rr.name = name_of("_exo._udp.local");
    rr.type = EXO_DNS_TYPE_PTR;
    rr.rrclass = EXO_DNS_CLASS_IN;
    rr.rd.ptr = name_of("a._exo._udp.local");
    exo_dns_builder_init(&b, 0, EXO_DNS_FLAG_QR, 1400);
    assert_int_equal(exo_dns_builder_rr(&b, EXO_DNS_SECTION_ANSWER, &rr), 0);
    assert_int_equal(exo_dns_builder_finish(&b, &data, &len), 0);
    /* header 12 + name 17 + fixed 10 + rdata: label "a" (2) and a pointer to offset 12 (2). */
    assert_int_equal(len, 12 + 17 + 10 + 4);
    assert_int_equal(data[len - 2], 0xc0);
    assert_int_equal(data[len - 1], 12);

    /* A second record whose name is the first PTR target compresses to one pointer. */
    rr.name = rr.rd.ptr;
    rr.type = EXO_DNS_TYPE_A;
    memset(rr.rd.a, 7, 4);
    assert_int_equal(exo_dns_builder_rr(&b, EXO_DNS_SECTION_ANSWER, &rr), 0);
    assert_int_equal(exo_dns_builder_finish(&b, &data, &len), 0);
    assert_int_equal(len, 43 + 2 + 10 + 4);
    assert_int_equal(data[43], 0xc0);
    assert_int_equal(data[44], 12 + 17 + 10); /* the "a" label inside the PTR rdata */

    /* Names differing only in case are not merged, so case survives the trip. */
    rr.name = name_of("A._EXO._udp.local");
    assert_int_equal(exo_dns_builder_rr(&b, EXO_DNS_SECTION_ANSWER, &rr), 0);
    assert_int_equal(exo_dns_builder_finish(&b, &data, &len), 0);
    struct exo_dns_msg msg;
    struct exo_diag diag;
    assert_int_equal(parse(data, len, &msg, &diag), 0);
    assert_int_equal(msg.n_an, 3);
    assert_memory_equal(msg.rr[2].name.wire, "\001A\004_EXO\004_udp\005local", 18);
    assert_true(exo_dns_name_eq(&msg.rr[2].name, &msg.rr[1].name));
    exo_dns_msg_free(&msg);
    exo_dns_builder_free(&b);
    (void)state;
}

static void test_dns_builder_cap(void **state)
{
    struct exo_dns_builder b;
    struct exo_dns_rr rr;
    const uint8_t *data;
    size_t len, added = 0;

    memset(&rr, 0, sizeof(rr));
    rr.type = EXO_DNS_TYPE_A;
    rr.rrclass = EXO_DNS_CLASS_IN;
    exo_dns_builder_init(&b, 0, EXO_DNS_FLAG_QR, 200);
    for (int i = 0; i < 100; i++) {
        char text[32];
        snprintf(text, sizeof(text), "h%d.local", i);
        rr.name = name_of(text);
        int rc = exo_dns_builder_rr(&b, EXO_DNS_SECTION_ANSWER, &rr);
        if (rc == EXO_ENOSPC)
            break;
        assert_int_equal(rc, 0);
        added++;
    }
    assert_true(added > 3 && added < 100);
    assert_int_equal(exo_dns_builder_finish(&b, &data, &len), 0);
    assert_true(len <= 200);
    struct exo_dns_msg msg;
    struct exo_diag diag;
    assert_int_equal(parse(data, len, &msg, &diag), 0);
    assert_int_equal(msg.n_an, added);
    exo_dns_msg_free(&msg);

    /* Out of section order, malformed TXT and NSEC are refused. */
    struct exo_dns_question q = {.name = name_of("x.local"), .type = 1, .qclass = 1};
    assert_int_equal(exo_dns_builder_question(&b, &q), EXO_EINVAL);
    assert_int_equal(exo_dns_builder_rr(&b, EXO_DNS_SECTION_QUESTION, &rr), EXO_EINVAL);
    static const uint8_t bad_txt[] = {5, 'a'};
    rr.type = EXO_DNS_TYPE_TXT;
    rr.rd.raw.data = bad_txt;
    rr.rd.raw.len = sizeof(bad_txt);
    assert_int_equal(exo_dns_builder_rr(&b, EXO_DNS_SECTION_ADDITIONAL, &rr), EXO_EINVAL);
    static const uint8_t bad_bm[] = {0, 33};
    rr.type = EXO_DNS_TYPE_NSEC;
    rr.rd.nsec.next = rr.name;
    rr.rd.nsec.bitmaps = bad_bm;
    rr.rd.nsec.bitmaps_len = sizeof(bad_bm);
    assert_int_equal(exo_dns_builder_rr(&b, EXO_DNS_SECTION_ADDITIONAL, &rr), EXO_EINVAL);

    /* Reset starts a new message in the same buffer. */
    exo_dns_builder_reset(&b, 7, 0);
    assert_int_equal(exo_dns_builder_entries(&b), 0);
    assert_int_equal(exo_dns_builder_question(&b, &q), 0);
    exo_dns_builder_add_flags(&b, EXO_DNS_FLAG_TC);
    assert_int_equal(exo_dns_builder_finish(&b, &data, &len), 0);
    assert_int_equal(parse(data, len, &msg, &diag), 0);
    assert_int_equal(msg.id, 7);
    assert_int_equal(msg.flags, EXO_DNS_FLAG_TC);
    exo_dns_msg_free(&msg);
    exo_dns_builder_free(&b);
    exo_dns_builder_free(NULL);
    (void)state;
}

static void test_dns_names(void **state)
{
    struct exo_dns_name n, parent, child;
    char text[300];
    const uint8_t *label;
    size_t llen;

    assert_int_equal(exo_dns_name_from_text(&n, "a..b"), EXO_EINVAL);
    assert_int_equal(exo_dns_name_from_text(&n, ""), 0); /* the root */
    assert_int_equal(n.len, 1);
    assert_int_equal(exo_dns_name_from_text(&n, "."), 0);
    assert_int_equal(n.len, 1);
    memset(text, 'x', 64);
    text[64] = '\0';
    assert_int_equal(exo_dns_name_from_text(&n, text), EXO_EINVAL);
    /* 4 labels of 63 bytes: 256 wire bytes, one too many. */
    for (int i = 0; i < 4; i++) {
        memset(text + 64 * i, 'y', 63);
        text[64 * i + 63] = i < 3 ? '.' : '\0';
    }
    assert_int_equal(exo_dns_name_from_text(&n, text), EXO_EINVAL);
    text[64 * 3 + 61] = '\0'; /* 255 bytes exactly */
    assert_int_equal(exo_dns_name_from_text(&n, text), 0);
    assert_int_equal(n.len, 255);

    parent = name_of("_exo._udp.local.");
    assert_int_equal(exo_dns_name_prepend(&child, "My node.1\\", 10, &parent), 0);
    assert_true(exo_dns_name_is_child(&child, &parent, &label, &llen));
    assert_int_equal(llen, 10);
    assert_memory_equal(label, "My node.1\\", 10);
    assert_false(exo_dns_name_is_child(&parent, &child, NULL, NULL));
    assert_false(exo_dns_name_is_child(&parent, &parent, NULL, NULL));
    assert_true(exo_dns_name_eq(&parent, &(struct exo_dns_name){0}) == false);
    size_t need = exo_dns_name_to_text(&child, text, sizeof(text));
    assert_string_equal(text, "My\\032node\\.1\\\\._exo._udp.local");
    assert_int_equal(need, strlen(text));
    assert_int_equal(exo_dns_name_to_text(&child, text, 5), need);
    assert_string_equal(text, "My\\0");
    exo_dns_name_init(&n);
    exo_dns_name_to_text(&n, text, sizeof(text));
    assert_string_equal(text, ".");
    /* Prepending in place, and past the length limit. */
    assert_int_equal(exo_dns_name_prepend(&parent, "x", 1, &parent), 0);
    assert_string_equal((exo_dns_name_to_text(&parent, text, sizeof(text)), text),
                        "x._exo._udp.local");
    assert_int_equal(exo_dns_name_prepend(&parent, "", 0, &parent), EXO_EINVAL);
    n = name_of("a");
    for (int i = 0; i < 10; i++)
        exo_dns_name_prepend(&n, text, 40, &n);
    assert_true(n.len <= EXO_DNS_NAME_MAX);
    assert_int_equal(exo_dns_name_prepend(&n, text, 40, &n), EXO_ERANGE);
    assert_true(exo_dns_name_eq(&(struct exo_dns_name){0}, &(struct exo_dns_name){0}));
    assert_true(exo_dns_name_eq(&child, &child));
    struct exo_dns_name up = name_of("HOST.Local"), low = name_of("host.local");
    assert_true(exo_dns_name_eq(&up, &low));
    (void)state;
}

static void test_dns_rdata_order(void **state)
{
    struct exo_dns_rr a, b;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    a.type = b.type = EXO_DNS_TYPE_A;
    a.rrclass = b.rrclass = EXO_DNS_CLASS_IN;
    memcpy(a.rd.a, (uint8_t[]){10, 0, 0, 1}, 4);
    memcpy(b.rd.a, (uint8_t[]){10, 0, 0, 2}, 4);
    assert_true(exo_dns_rdata_cmp(&a, &b) < 0);
    assert_true(exo_dns_rdata_cmp(&b, &a) > 0);
    b.cache_flush = true; /* the top bit is not part of the class */
    memcpy(b.rd.a, a.rd.a, 4);
    assert_int_equal(exo_dns_rdata_cmp(&a, &b), 0);
    b.type = EXO_DNS_TYPE_AAAA;
    assert_true(exo_dns_rdata_cmp(&a, &b) < 0);
    /* A longer TXT that starts like a shorter one sorts later. */
    static const uint8_t t1[] = {1, 'a'}, t2[] = {1, 'a', 1, 'b'};
    a.type = b.type = EXO_DNS_TYPE_TXT;
    a.rd.raw.data = t1;
    a.rd.raw.len = 2;
    b.rd.raw.data = t2;
    b.rd.raw.len = 4;
    assert_true(exo_dns_rdata_cmp(&a, &b) < 0);
    /* SRV compares the port before the target. */
    a.type = b.type = EXO_DNS_TYPE_SRV;
    memset(&a.rd, 0, sizeof(a.rd));
    memset(&b.rd, 0, sizeof(b.rd));
    a.rd.srv.port = 1;
    a.rd.srv.target = name_of("z.local");
    b.rd.srv.port = 2;
    b.rd.srv.target = name_of("a.local");
    assert_true(exo_dns_rdata_cmp(&a, &b) < 0);

    uint8_t out[8];
    size_t len;
    const char *strs[] = {"abc"};
    assert_int_equal(exo_dns_txt_encode(NULL, 0, out, sizeof(out), &len), 0);
    assert_int_equal(len, 1);
    assert_int_equal(exo_dns_txt_encode(strs, 1, out, 3, &len), EXO_ENOSPC);
    char big[300];
    memset(big, 'k', 299);
    big[299] = '\0';
    const char *bigs[] = {big};
    assert_int_equal(exo_dns_txt_encode(bigs, 1, out, sizeof(out), &len), EXO_ERANGE);
    uint16_t bad = 300;
    assert_int_equal(exo_dns_nsec_bitmap(&bad, 1, (uint8_t[34]){0}), 0);
    (void)state;
}

/* ---- Hostile input ---- */

/* A header with the given counts, followed by body. */
static size_t packet(uint8_t *out, uint16_t qd, uint16_t an, const uint8_t *body, size_t len)
{
    uint8_t hdr[12] = {
        0, 0, 0x84, 0, (uint8_t)(qd >> 8), (uint8_t)qd, (uint8_t)(an >> 8), (uint8_t)an,
        0, 0, 0,    0};
    memcpy(out, hdr, 12);
    if (len)
        memcpy(out + 12, body, len);
    return 12 + len;
}

static void test_dns_rejects_short_and_empty(void **state)
{
    uint8_t pkt[64];
    expect_reject(NULL, 0, EXO_ETRUNCATED, "header");
    expect_reject(pkt, 0, EXO_ETRUNCATED, "0 bytes");
    expect_reject(pkt, 11, EXO_ETRUNCATED, "11 bytes");
    /* A bare header is a valid empty message. */
    size_t len = packet(pkt, 0, 0, NULL, 0);
    struct exo_dns_msg msg;
    struct exo_diag diag;
    assert_int_equal(parse(pkt, len, &msg, &diag), 0);
    assert_int_equal(msg.n_qd + msg.n_an, 0);
    exo_dns_msg_free(&msg);
    exo_dns_msg_free(NULL);
    uint8_t *huge = calloc(1, EXO_DNS_PACKET_MAX + 1);
    expect_reject(huge, EXO_DNS_PACKET_MAX + 1, EXO_ETOOBIG, "9001 bytes");
    free(huge);
    (void)state;
}

static void test_dns_rejects_lying_counts(void **state)
{
    uint8_t pkt[64];
    static const uint8_t q[] = {0, 0, 1, 0, 1};
    size_t len = packet(pkt, 2, 0, q, sizeof(q));
    expect_reject(pkt, len, EXO_ETRUNCATED, "at least 10 bytes");
    len = packet(pkt, 1, 65535, q, sizeof(q));
    expect_reject(pkt, len, EXO_ETOOBIG, "entries");
    len = packet(pkt, 0, 200, q, sizeof(q));
    expect_reject(pkt, len, EXO_ETRUNCATED, "counts");
    (void)state;
}

static void test_dns_rejects_pointer_to_itself(void **state)
{
    uint8_t pkt[64];
    static const uint8_t body[] = {0xc0, 12, 0, 1, 0, 1};
    size_t len = packet(pkt, 1, 0, body, sizeof(body));
    expect_reject(pkt, len, EXO_EFORMAT, "to itself");
    (void)state;
}

static void test_dns_rejects_forward_pointer(void **state)
{
    uint8_t pkt[64];
    static const uint8_t body[] = {0xc0, 18, 0, 1, 0, 1, 1, 'a', 0};
    size_t len = packet(pkt, 1, 0, body, sizeof(body));
    expect_reject(pkt, len, EXO_EFORMAT, "points forward to byte 18");
    (void)state;
}

static void test_dns_rejects_pointer_loop(void **state)
{
    uint8_t pkt[64];
    /* Question 1 is "a" + pointer to itself's start: a loop through a label. */
    static const uint8_t body[] = {1, 'a', 0xc0, 12, 0, 1, 0, 1};
    size_t len = packet(pkt, 1, 0, body, sizeof(body));
    expect_reject(pkt, len, EXO_EFORMAT, "loops back to byte 12");
    /* Two names pointing at each other: the second jumps back to the first, whose pointer
     * jumps forward again. */
    static const uint8_t body2[] = {1, 'a', 0xc0, 20, 0, 1, 0, 1, 1, 'b', 0xc0, 12, 0, 1, 0, 1};
    len = packet(pkt, 2, 0, body2, sizeof(body2));
    expect_reject(pkt, len, EXO_EFORMAT, "question 1 name");
    (void)state;
}

static void test_dns_rejects_pointer_into_header(void **state)
{
    uint8_t pkt[64];
    static const uint8_t body[] = {0xc0, 2, 0, 1, 0, 1};
    size_t len = packet(pkt, 1, 0, body, sizeof(body));
    expect_reject(pkt, len, EXO_EFORMAT, "into the header");
    (void)state;
}

static void test_dns_rejects_pointer_chain(void **state)
{
    /* Answer 1 is "x" with opaque rdata holding 70 pointers, each to the one before it (the
     * first to "x"). Answer 2's name points at the last of them: every jump goes backward, but
     * there are more than EXO_DNS_MAX_POINTERS of them. */
    uint8_t pkt[256];
    size_t p = 0;
    static const uint8_t hdr[12] = {0, 0, 0x84, 0, 0, 0, 0, 2, 0, 0, 0, 0};
    memcpy(pkt, hdr, 12);
    p = 12;
    memcpy(pkt + p, (uint8_t[]){1, 'x', 0, 0, 99, 0, 1, 0, 0, 0, 1, 0, 140}, 13);
    p += 13;
    size_t chain = p;
    for (int i = 0; i < 70; i++) {
        size_t target = i == 0 ? 12 : chain + 2 * (size_t)(i - 1);
        pkt[p++] = (uint8_t)(0xc0 | target >> 8);
        pkt[p++] = (uint8_t)target;
    }
    size_t last = p - 2;
    pkt[p++] = (uint8_t)(0xc0 | last >> 8);
    pkt[p++] = (uint8_t)last;
    memcpy(pkt + p, (uint8_t[]){0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4}, 14);
    p += 14;
    expect_reject(pkt, p, EXO_EFORMAT, "answer 2 name: more than 64 compression pointers");

    /* The same with a chain of 60 is fine. */
    p = 12;
    memcpy(pkt + p, (uint8_t[]){1, 'x', 0, 0, 99, 0, 1, 0, 0, 0, 1, 0, 120}, 13);
    p += 13;
    for (int i = 0; i < 60; i++) {
        size_t target = i == 0 ? 12 : chain + 2 * (size_t)(i - 1);
        pkt[p++] = (uint8_t)(0xc0 | target >> 8);
        pkt[p++] = (uint8_t)target;
    }
    last = p - 2;
    pkt[p++] = (uint8_t)(0xc0 | last >> 8);
    pkt[p++] = (uint8_t)last;
    memcpy(pkt + p, (uint8_t[]){0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4}, 14);
    p += 14;
    struct exo_dns_msg msg;
    struct exo_diag diag;
    assert_int_equal(parse(pkt, p, &msg, &diag), 0);
    assert_memory_equal(msg.rr[1].name.wire, "\001x", 3);
    exo_dns_msg_free(&msg);
    (void)state;
}

static void test_dns_rejects_long_label_and_name(void **state)
{
    uint8_t pkt[600];
    uint8_t body[600];
    /* 0x40 and 0x80 length bytes are the reserved label types: a "label" of 64 or more. */
    static const uint8_t l64[] = {0x40, 'a', 0, 0, 1, 0, 1};
    size_t len = packet(pkt, 1, 0, l64, sizeof(l64));
    expect_reject(pkt, len, EXO_EFORMAT, "reserved label type 0x40");
    static const uint8_t l80[] = {0x80, 0, 1, 0, 1};
    len = packet(pkt, 1, 0, l80, sizeof(l80));
    expect_reject(pkt, len, EXO_EFORMAT, "reserved label type 0x80");

    /* Five 63-byte labels in place: 321 bytes of name. */
    size_t o = 0;
    for (int i = 0; i < 5; i++) {
        body[o++] = 63;
        memset(body + o, 'n', 63);
        o += 63;
    }
    body[o++] = 0;
    memcpy(body + o, (uint8_t[]){0, 1, 0, 1}, 4);
    o += 4;
    len = packet(pkt, 1, 0, body, o);
    expect_reject(pkt, len, EXO_EFORMAT, "longer than 255");

    /* Under the limit in place, over it through a pointer: q1 = 3 x 63-byte labels (193 bytes),
     * q2 = a 63-byte label + pointer to q1 (257 bytes expanded). */
    o = 0;
    for (int i = 0; i < 3; i++) {
        body[o++] = 63;
        memset(body + o, 'm', 63);
        o += 63;
    }
    body[o++] = 0;
    memcpy(body + o, (uint8_t[]){0, 1, 0, 1}, 4);
    o += 4;
    body[o++] = 63;
    memset(body + o, 'k', 63);
    o += 63;
    body[o++] = 0xc0;
    body[o++] = 12;
    memcpy(body + o, (uint8_t[]){0, 1, 0, 1}, 4);
    o += 4;
    len = packet(pkt, 2, 0, body, o);
    expect_reject(pkt, len, EXO_EFORMAT, "question 2 name: name longer than 255");
    (void)state;
}

static void test_dns_rejects_bad_rdata(void **state)
{
    uint8_t pkt[128];
    struct {
        uint8_t body[40];
        size_t len;
        int code;
        const char *needle;
    } cases[] = {
        /* A with 5 bytes of rdata */
        {{0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 5, 1, 2, 3, 4, 5}, 16, EXO_EFORMAT, "not 4"},
        /* rdlength past the end */
        {{0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 9, 1, 2, 3, 4}, 15, EXO_ETRUNCATED, "run past the end"},
        /* fixed fields cut short */
        {{3, 'a', 'b', 'c', 0, 0, 1, 0, 1, 0, 0}, 11, EXO_ETRUNCATED, "needs 10 bytes at byte 17"},
        /* TXT string longer than the rdata */
        {{0, 0, 16, 0, 1, 0, 0, 0, 1, 0, 3, 5, 'a', 'b'}, 14, EXO_EFORMAT, "TXT rdata"},
        /* SRV too short for a target */
        {{0, 0, 33, 0, 1, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 80}, 17, EXO_EFORMAT, "only 6 bytes"},
        /* PTR with a byte left over after its name */
        {{0, 0, 12, 0, 1, 0, 0, 0, 1, 0, 4, 1, 'a', 0, 9}, 15, EXO_EFORMAT, "left over"},
        /* PTR whose name runs past its rdata */
        {{0, 0, 12, 0, 1, 0, 0, 0, 1, 0, 2, 1, 'a', 0}, 14, EXO_ETRUNCATED, "PTR target"},
        /* NSEC windows out of order */
        {{0, 0, 47, 0, 1, 0, 0, 0, 1, 0, 7, 0, 1, 1, 0x40, 0, 1, 0x40},
         18,
         EXO_EFORMAT,
         "out of order"},
        /* NSEC bitmap length 0 */
        {{0, 0, 47, 0, 1, 0, 0, 0, 1, 0, 3, 0, 0, 0}, 14, EXO_EFORMAT, "not 1 to 32"},
        /* NSEC bitmap past the rdata */
        {{0, 0, 47, 0, 1, 0, 0, 0, 1, 0, 4, 0, 0, 2, 0x40}, 15, EXO_EFORMAT, "runs past"},
        /* NSEC window header cut short */
        {{0, 0, 47, 0, 1, 0, 0, 0, 1, 0, 2, 0, 0}, 13, EXO_EFORMAT, "cut short"},
        /* PTR target ending in a pointer whose second byte is past the rdata */
        {{0, 0, 12, 0, 1, 0, 0, 0, 1, 0, 3, 1, 'a', 0xc0, 12},
         15,
         EXO_ETRUNCATED,
         "pointer at byte 25 is cut short"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len = packet(pkt, 0, 1, cases[i].body, cases[i].len);
        expect_reject(pkt, len, cases[i].code, cases[i].needle);
    }
    (void)state;
}

/* Every proper prefix of a good packet is rejected cleanly; the diag names a byte offset. */
static void test_dns_every_truncation(void **state)
{
    struct exo_dns_rr rr[7];
    uint8_t txt[64], bm[34];
    size_t n = sample_records(rr, txt, bm);
    struct exo_dns_builder b;
    const uint8_t *data;
    size_t len;

    exo_dns_builder_init(&b, 0, EXO_DNS_FLAG_QR, 1400);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(exo_dns_builder_rr(&b, EXO_DNS_SECTION_ANSWER, &rr[i]), 0);
    assert_int_equal(exo_dns_builder_finish(&b, &data, &len), 0);
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *copy = malloc(cut ? cut : 1);
        memcpy(copy, data, cut);
        struct exo_dns_msg msg;
        struct exo_diag diag;
        int rc = parse(copy, cut, &msg, &diag);
        assert_true(rc == EXO_ETRUNCATED || rc == EXO_EFORMAT);
        assert_non_null(strstr(diag.msg, "dns: "));
        free(copy);
    }
    exo_dns_builder_free(&b);
    (void)state;
}

static void test_dns_out_of_memory(void **state)
{
    uint8_t pkt[64];
    static const uint8_t q[] = {0, 0, 1, 0, 1};
    size_t len = packet(pkt, 1, 0, q, sizeof(q));
    struct exo_dns_msg msg;
    struct exo_diag diag;
    exo_alloc_fail_after(0);
    int rc = parse(pkt, len, &msg, &diag);
    exo_alloc_fail_after(-1);
    assert_int_equal(rc, EXO_ENOMEM);
    (void)state;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dns_query_exact_bytes),
        cmocka_unit_test(test_dns_round_trip_every_type),
        cmocka_unit_test(test_dns_compression),
        cmocka_unit_test(test_dns_builder_cap),
        cmocka_unit_test(test_dns_names),
        cmocka_unit_test(test_dns_rdata_order),
        cmocka_unit_test(test_dns_rejects_short_and_empty),
        cmocka_unit_test(test_dns_rejects_lying_counts),
        cmocka_unit_test(test_dns_rejects_pointer_to_itself),
        cmocka_unit_test(test_dns_rejects_forward_pointer),
        cmocka_unit_test(test_dns_rejects_pointer_loop),
        cmocka_unit_test(test_dns_rejects_pointer_into_header),
        cmocka_unit_test(test_dns_rejects_pointer_chain),
        cmocka_unit_test(test_dns_rejects_long_label_and_name),
        cmocka_unit_test(test_dns_rejects_bad_rdata),
        cmocka_unit_test(test_dns_every_truncation),
        cmocka_unit_test(test_dns_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
