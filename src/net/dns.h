/* SPDX-License-Identifier: Apache-2.0 */
/*
 * DNS message codec (RFC 1035 wire format, with the mDNS conventions of RFC 6762): a parser that
 * takes any bytes and either returns a fully validated message or a negative code with a diag
 * naming the section, the field and the byte offset; and a builder that writes messages with
 * name compression into a capped buffer, one record at a time, so a caller can split a long list
 * of records over several packets.
 *
 * Names are kept in uncompressed wire form (length-prefixed labels ending in the root label) and
 * never as dotted text, because DNS-SD instance names are free-form UTF-8 that may contain dots,
 * spaces and backslashes. exo_dns_name_to_text() gives an escaped presentation form for logs.
 *
 * mDNS reuses the top bit of the class field: in a question it is the "unicast response
 * requested" (QU) bit, in a record the cache-flush bit. The codec splits it out of the class into
 * its own field, in both directions.
 *
 * Record data the codec understands (A, AAAA, PTR, SRV, TXT, NSEC) is checked field by field;
 * any other type is kept as opaque bytes. Opaque, TXT and NSEC bitmap bytes are borrowed from the
 * parsed packet (or, when building, from the caller) and are only valid while it is.
 */
#ifndef EXO_NET_DNS_H
#define EXO_NET_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"

/* Wire-format limits of RFC 1035 section 2.3.4. */
#define EXO_DNS_LABEL_MAX 63
#define EXO_DNS_NAME_MAX  255 /* bytes of the uncompressed wire form, root label included */

/* Hard caps on outside input. mDNS packets may be up to 9000 bytes (RFC 6762 section 17). */
#define EXO_DNS_PACKET_MAX   9000
#define EXO_DNS_MAX_ENTRIES  256 /* questions + records in one message */
#define EXO_DNS_MAX_POINTERS 64  /* compression pointers followed while reading one name */

#define EXO_DNS_HEADER_SIZE 12

/* Header flag bits (RFC 1035 section 4.1.1). */
#define EXO_DNS_FLAG_QR       0x8000u /* response */
#define EXO_DNS_FLAG_AA       0x0400u /* authoritative answer; set in every mDNS response */
#define EXO_DNS_FLAG_TC       0x0200u /* truncated; in mDNS queries: more known answers follow */
#define EXO_DNS_OPCODE(flags) (((flags) >> 11) & 0xfu)
#define EXO_DNS_RCODE(flags)  ((flags)&0xfu)

/* The mDNS top bit of the class field (RFC 6762 sections 5.4 and 10.2). */
#define EXO_DNS_CLASS_TOP_BIT 0x8000u

enum exo_dns_type {
    EXO_DNS_TYPE_A = 1,
    EXO_DNS_TYPE_PTR = 12,
    EXO_DNS_TYPE_TXT = 16,
    EXO_DNS_TYPE_AAAA = 28,
    EXO_DNS_TYPE_SRV = 33,
    EXO_DNS_TYPE_NSEC = 47,
    EXO_DNS_TYPE_ANY = 255,
};

enum exo_dns_class {
    EXO_DNS_CLASS_IN = 1,
    EXO_DNS_CLASS_ANY = 255,
};

enum exo_dns_section {
    EXO_DNS_SECTION_QUESTION = 0,
    EXO_DNS_SECTION_ANSWER,
    EXO_DNS_SECTION_AUTHORITY,
    EXO_DNS_SECTION_ADDITIONAL,
};

/* A name in uncompressed wire form: `len` bytes of labels, the last one the empty root label. */
struct exo_dns_name {
    uint8_t len; /* 1 (the root) to EXO_DNS_NAME_MAX */
    uint8_t wire[EXO_DNS_NAME_MAX];
};

struct exo_dns_question {
    struct exo_dns_name name;
    uint16_t type;
    uint16_t qclass;       /* without the QU bit */
    bool unicast_response; /* the QU bit */
};

struct exo_dns_rr {
    struct exo_dns_name name;
    uint16_t type;
    uint16_t rrclass; /* without the cache-flush bit */
    bool cache_flush;
    uint32_t ttl;
    union {
        uint8_t a[4];
        uint8_t aaaa[16];
        struct exo_dns_name ptr;
        struct {
            uint16_t priority, weight, port;
            struct exo_dns_name target;
        } srv;
        struct {
            struct exo_dns_name next;
            const uint8_t *bitmaps; /* borrowed: the type bitmap windows, validated */
            uint16_t bitmaps_len;
        } nsec;
        /* TXT (a sequence of length-prefixed strings, validated) and every other type. */
        struct {
            const uint8_t *data; /* borrowed */
            uint16_t len;
        } raw;
    } rd;
};

/* A parsed message. The arrays are owned by the message (exo_dns_msg_free); raw rdata, TXT and
 * NSEC bitmaps point into the packet, which the caller must keep while it uses them. */
struct exo_dns_msg {
    uint16_t id;
    uint16_t flags;
    uint16_t n_qd, n_an, n_ns, n_ar;
    struct exo_dns_question *qd; /* n_qd entries */
    struct exo_dns_rr *rr;       /* n_an answers, then n_ns authority, then n_ar additional */
};

/* ---- Names ---- */

/* Set n to the root name. */
void exo_dns_name_init(struct exo_dns_name *n);

/* Parse plain dotted text ("_exo._udp.local", trailing dot optional, no escapes). Labels are
 * split at every dot; an empty label, a label over 63 bytes or a name over 255 bytes gives
 * EXO_EINVAL. n is written only on success. */
int exo_dns_name_from_text(struct exo_dns_name *n, const char *text);

/* Put one label (any bytes but none empty, at most 63) in front of parent, into ret (which may be
 * parent itself). EXO_EINVAL or EXO_ERANGE when it would not be a valid name. */
int exo_dns_name_prepend(struct exo_dns_name *ret, const void *label, size_t len,
                         const struct exo_dns_name *parent);

/* Names compare equal ignoring ASCII case (RFC 1035 section 2.3.3). */
bool exo_dns_name_eq(const struct exo_dns_name *a, const struct exo_dns_name *b);

/* True when n is exactly one label below parent; *ret_label (borrowed from n) and *ret_len then
 * give that label. */
bool exo_dns_name_is_child(const struct exo_dns_name *n, const struct exo_dns_name *parent,
                           const uint8_t **ret_label, size_t *ret_len);

/* Presentation form into buf (always NUL-terminated when size > 0): labels joined by dots, with
 * '.' and '\\' escaped by a backslash and bytes outside printable ASCII as \DDD. Returns the
 * length the full text needs (like snprintf). */
size_t exo_dns_name_to_text(const struct exo_dns_name *n, char *buf, size_t size);

/* ---- Record helpers ---- */

/* Compare two records' class (without the top bit), type and raw uncompressed rdata as unsigned
 * byte strings, a longer string sorting after its prefix: the order of RFC 6762 section 8.2 used
 * to break probe ties. Returns <0, 0 or >0. Names are not compared. */
int exo_dns_rdata_cmp(const struct exo_dns_rr *a, const struct exo_dns_rr *b);

/* Same name (ignoring case), class, type and rdata. */
bool exo_dns_rr_same(const struct exo_dns_rr *a, const struct exo_dns_rr *b);

/* Whether an NSEC record's type bitmap lists type. */
bool exo_dns_nsec_has_type(const struct exo_dns_rr *nsec, uint16_t type);

/* Write the window-0 NSEC type bitmap for types (all below 256) into out (at least 34 bytes) and
 * return its length, or 0 when a type is 256 or more. */
size_t exo_dns_nsec_bitmap(const uint16_t *types, size_t n_types, uint8_t *out);

/* Walk the strings of TXT rdata: *off starts at 0; each call gives the next string (borrowed from
 * the rdata) and returns true, or false at the end. The rdata must have been validated (parsed,
 * or built by exo_dns_txt_encode). */
bool exo_dns_txt_next(const uint8_t *data, size_t len, size_t *off, const uint8_t **ret_str,
                      size_t *ret_len);

/* Encode strings as TXT rdata into out (cap bytes): each string at most 255 bytes. No strings
 * gives the single empty string RFC 6763 section 6.1 asks for. EXO_ERANGE when a string is too
 * long, EXO_ENOSPC when out is too small. */
int exo_dns_txt_encode(const char *const *strs, size_t n, uint8_t *out, size_t cap,
                       size_t *ret_len);

/* ---- Parser ---- */

/* Parse a whole message. On success *ret is filled (free it with exo_dns_msg_free) and 0 is
 * returned; otherwise a negative code (EXO_ETRUNCATED, EXO_EFORMAT, EXO_ETOOBIG, EXO_ENOMEM) and,
 * when diag is not NULL, a sentence such as "dns: answer 2 name: compression pointer at byte 40
 * points forward to byte 52". pkt is borrowed and must outlive *ret. Bytes after the last record
 * are ignored. */
int exo_dns_parse(const uint8_t *pkt, size_t len, struct exo_dns_msg *ret, struct exo_diag *diag);

/* Release the arrays of a parsed message; accepts NULL and a zeroed message. */
void exo_dns_msg_free(struct exo_dns_msg *msg);

/* The record of a section by index within that section (i < that section's count). Borrowed. */
const struct exo_dns_rr *exo_dns_msg_rr(const struct exo_dns_msg *msg, enum exo_dns_section s,
                                        size_t i);

/* ---- Builder ---- */

#define EXO_DNS_COMPRESS_MAX 128 /* name suffixes remembered for compression */

/* Writes one message. Entries must be added in section order (questions, answers, authority,
 * additional). Each add either writes the whole entry or nothing: when it would pass the size
 * cap it returns EXO_ENOSPC and leaves the message as it was, so the caller can finish this
 * packet and start another. */
struct exo_dns_builder {
    struct exo_buf buf; /* owned */
    uint16_t count[4];
    enum exo_dns_section section;
    uint16_t comp[EXO_DNS_COMPRESS_MAX]; /* offsets of name suffixes already written */
    size_t n_comp;
};

/* Start a message with this id and flags, at most max bytes (EXO_DNS_HEADER_SIZE..65535). */
void exo_dns_builder_init(struct exo_dns_builder *b, uint16_t id, uint16_t flags, size_t max);

/* Start over with a new header, keeping the buffer (and its cap). */
void exo_dns_builder_reset(struct exo_dns_builder *b, uint16_t id, uint16_t flags);

/* Release the buffer; accepts NULL. */
void exo_dns_builder_free(struct exo_dns_builder *b);

/* q and rr are borrowed for the call. 0, EXO_ENOSPC (does not fit; nothing written), EXO_EINVAL
 * (out of section order, or malformed TXT/NSEC rdata) or EXO_ENOMEM. */
int exo_dns_builder_question(struct exo_dns_builder *b, const struct exo_dns_question *q);
int exo_dns_builder_rr(struct exo_dns_builder *b, enum exo_dns_section s,
                       const struct exo_dns_rr *rr);

/* Entries written so far: questions plus records. */
size_t exo_dns_builder_entries(const struct exo_dns_builder *b);

/* OR extra bits into the header flags (for TC when a query's known answers continue). */
void exo_dns_builder_add_flags(struct exo_dns_builder *b, uint16_t flags);

/* Write the section counts into the header and give the message: *ret_data is borrowed from the
 * builder and valid until its next change. Returns the builder's error, if any. */
int exo_dns_builder_finish(struct exo_dns_builder *b, const uint8_t **ret_data, size_t *ret_len);

#endif
