/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for the DNS codec: any bytes are parsed as a message; whatever parses is written
 * again with the builder (with name compression) and parsed a second time, and must come back
 * field for field the same. Names are also printed and TXT/NSEC data walked, so the sanitizers
 * see any read that escapes the packet.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "net/dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void touch(const struct exo_dns_rr *rr)
{
    char text[4 * EXO_DNS_NAME_MAX + 1];
    exo_dns_name_to_text(&rr->name, text, sizeof(text));
    if (rr->type == EXO_DNS_TYPE_TXT) {
        size_t off = 0, len;
        const uint8_t *s;
        volatile uint8_t sink = 0;
        while (exo_dns_txt_next(rr->rd.raw.data, rr->rd.raw.len, &off, &s, &len))
            if (len)
                sink ^= s[len - 1];
        (void)sink;
    }
    if (rr->type == EXO_DNS_TYPE_NSEC)
        (void)exo_dns_nsec_has_type(rr, EXO_DNS_TYPE_SRV);
}

static bool same_name(const struct exo_dns_name *a, const struct exo_dns_name *b)
{
    return a->len == b->len && memcmp(a->wire, b->wire, a->len) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct exo_dns_msg a, b;
    struct exo_dns_builder out;
    const uint8_t *pkt;
    size_t len;

    if (exo_dns_parse(data, size, &a, NULL) != 0)
        return 0;
    size_t n_rr = (size_t)a.n_an + a.n_ns + a.n_ar;
    for (size_t i = 0; i < n_rr; i++)
        touch(&a.rr[i]);

    exo_dns_builder_init(&out, a.id, a.flags, EXO_DNS_PACKET_MAX);
    int rc = 0;
    for (size_t i = 0; i < a.n_qd && rc == 0; i++)
        rc = exo_dns_builder_question(&out, &a.qd[i]);
    for (size_t i = 0; i < n_rr && rc == 0; i++) {
        enum exo_dns_section s = i < a.n_an                    ? EXO_DNS_SECTION_ANSWER
                                 : i < (size_t)a.n_an + a.n_ns ? EXO_DNS_SECTION_AUTHORITY
                                                               : EXO_DNS_SECTION_ADDITIONAL;
        rc = exo_dns_builder_rr(&out, s, &a.rr[i]);
    }
    /* Expanded names may not fit back into the cap; anything else is a bug. */
    if (rc == EXO_ENOSPC)
        goto out;
    if (rc != 0 || exo_dns_builder_finish(&out, &pkt, &len) != 0)
        __builtin_trap();
    if (exo_dns_parse(pkt, len, &b, NULL) != 0)
        __builtin_trap();
    if (a.id != b.id || a.flags != b.flags || a.n_qd != b.n_qd || a.n_an != b.n_an ||
        a.n_ns != b.n_ns || a.n_ar != b.n_ar)
        __builtin_trap();
    for (size_t i = 0; i < a.n_qd; i++) {
        const struct exo_dns_question *x = &a.qd[i], *y = &b.qd[i];
        if (!same_name(&x->name, &y->name) || x->type != y->type || x->qclass != y->qclass ||
            x->unicast_response != y->unicast_response)
            __builtin_trap();
    }
    for (size_t i = 0; i < n_rr; i++) {
        const struct exo_dns_rr *x = &a.rr[i], *y = &b.rr[i];
        if (!same_name(&x->name, &y->name) || x->type != y->type || x->rrclass != y->rrclass ||
            x->cache_flush != y->cache_flush || x->ttl != y->ttl || exo_dns_rdata_cmp(x, y) != 0 ||
            !exo_dns_rr_same(x, y))
            __builtin_trap();
    }
    exo_dns_msg_free(&b);
out:
    exo_dns_builder_free(&out);
    exo_dns_msg_free(&a);
    return 0;
}
