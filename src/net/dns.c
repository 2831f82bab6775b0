/* SPDX-License-Identifier: Apache-2.0 */
/*
 * DNS message codec (see dns.h). Every byte of input is untrusted: counts are checked against
 * the bytes that remain before anything is allocated, each field is read through bounds checks,
 * and a failure names the section, the field and the byte offset.
 *
 * Message layout (RFC 1035 section 4.1; all integers big-endian):
 *
 *   offset  size  field
 *   0       2     id (0 in mDNS multicast messages)
 *   2       2     flags: QR(15) opcode(14-11) AA(10) TC(9) RD(8) RA(7) Z(6-4) rcode(3-0)
 *   4       2     question count
 *   6       2     answer count
 *   8       2     authority count
 *   10      2     additional count
 *   12      ...   questions: name, type (2), class (2; top bit = mDNS QU)
 *   ...     ...   records:   name, type (2), class (2; top bit = mDNS cache-flush), TTL (4),
 *                            rdlength (2), rdata (rdlength bytes)
 *
 * A name is a run of labels, each a length byte (1-63) and that many bytes, ended either by the
 * root label (a zero byte) or by a two-byte compression pointer (top bits 11, then a 14-bit
 * offset from the start of the message) to where the rest of the name was written before.
 * Length bytes with top bits 01 or 10 are reserved and rejected.
 *
 * Pointers are where DNS parsers have historically broken, so the reader enforces: a pointer
 * must point below the start of the name segment it ends (strictly backward, which rules out
 * pointers to themselves and every loop, because each jump lands lower than the last), never
 * into the header, and the bytes read after a jump must stay below the segment that jumped;
 * at most EXO_DNS_MAX_POINTERS jumps per name; at most 255 bytes of expanded name.
 *
 * Record data:
 *   A      4 bytes                     AAAA  16 bytes
 *   PTR    name                        SRV   priority (2), weight (2), port (2), target name
 *   TXT    strings: length byte + bytes, filling rdlength exactly
 *   NSEC   next name, then windows: window number (1), bitmap length (1-32), bitmap; windows
 *          strictly increasing
 * Names inside rdata may be compressed (RFC 6762 section 18.14) but their in-place bytes must end
 * inside the rdata, and the fields must fill rdlength exactly.
 */
#include "net/dns.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"

/* Smallest possible question (root name, type, class) and record (root name, type, class, TTL,
 * rdlength): what a header count must at least cost in bytes. */
#define MIN_QUESTION_SIZE 5
#define MIN_RR_SIZE       11

/* ---- Names ---- */

static uint8_t ascii_lower(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + ('a' - 'A')) : c;
}

void exo_dns_name_init(struct exo_dns_name *n)
{
    n->len = 1;
    n->wire[0] = 0;
}

int exo_dns_name_from_text(struct exo_dns_name *n, const char *text)
{
    struct exo_dns_name tmp;
    size_t pos = 0;
    const char *p = text;

    if (p[0] == '.' && p[1] == '\0') {
        exo_dns_name_init(n);
        return 0;
    }
    while (*p) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        if (len == 0 || len > EXO_DNS_LABEL_MAX || pos + 1 + len + 1 > EXO_DNS_NAME_MAX)
            return EXO_EINVAL;
        tmp.wire[pos] = (uint8_t)len;
        memcpy(tmp.wire + pos + 1, p, len);
        pos += 1 + len;
        p += len;
        if (*p == '.')
            p++;
    }
    tmp.wire[pos++] = 0;
    tmp.len = (uint8_t)pos;
    *n = tmp;
    return 0;
}

int exo_dns_name_prepend(struct exo_dns_name *ret, const void *label, size_t len,
                         const struct exo_dns_name *parent)
{
    if (len == 0 || len > EXO_DNS_LABEL_MAX)
        return EXO_EINVAL;
    if (1 + len + parent->len > EXO_DNS_NAME_MAX)
        return EXO_ERANGE;
    /* memmove first: ret may be parent. */
    uint8_t plen = parent->len;
    memmove(ret->wire + 1 + len, parent->wire, plen);
    ret->wire[0] = (uint8_t)len;
    memcpy(ret->wire + 1, label, len);
    ret->len = (uint8_t)(1 + len + plen);
    return 0;
}

/* Compare wire names ignoring ASCII case. Length bytes are below 'A', so folding them is a no-op
 * and the whole wire form can be compared byte by byte. */
static bool wire_eq(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    if (alen != blen)
        return false;
    for (size_t i = 0; i < alen; i++)
        if (ascii_lower(a[i]) != ascii_lower(b[i]))
            return false;
    return true;
}

bool exo_dns_name_eq(const struct exo_dns_name *a, const struct exo_dns_name *b)
{
    return wire_eq(a->wire, a->len, b->wire, b->len);
}

bool exo_dns_name_is_child(const struct exo_dns_name *n, const struct exo_dns_name *parent,
                           const uint8_t **ret_label, size_t *ret_len)
{
    if (n->len < 2 || n->wire[0] == 0)
        return false;
    size_t first = 1 + (size_t)n->wire[0];
    if (first + parent->len != n->len)
        return false;
    if (!wire_eq(n->wire + first, parent->len, parent->wire, parent->len))
        return false;
    if (ret_label)
        *ret_label = n->wire + 1;
    if (ret_len)
        *ret_len = n->wire[0];
    return true;
}

size_t exo_dns_name_to_text(const struct exo_dns_name *n, char *buf, size_t size)
{
    size_t out = 0;
#define EMIT(c)                   \
    do {                          \
        if (out + 1 < size)       \
            buf[out] = (char)(c); \
        out++;                    \
    } while (0)
    size_t pos = 0;
    if (n->len <= 1)
        EMIT('.');
    while (pos < n->len && n->wire[pos] != 0) {
        size_t llen = n->wire[pos];
        if (pos)
            EMIT('.');
        for (size_t i = 0; i < llen && pos + 1 + i < n->len; i++) {
            uint8_t c = n->wire[pos + 1 + i];
            if (c == '.' || c == '\\') {
                EMIT('\\');
                EMIT(c);
            } else if (c < 0x21 || c > 0x7e) {
                EMIT('\\');
                EMIT('0' + c / 100);
                EMIT('0' + c / 10 % 10);
                EMIT('0' + c % 10);
            } else {
                EMIT(c);
            }
        }
        pos += 1 + llen;
    }
#undef EMIT
    if (size)
        buf[out < size ? out : size - 1] = '\0';
    return out;
}

/* ---- Record helpers ---- */

/* The uncompressed rdata of a record as up to three byte spans: fixed fields, a name, the rest. */
struct rdata_spans {
    uint8_t head[6];
    const uint8_t *p[3];
    size_t n[3];
};

static void rdata_spans(const struct exo_dns_rr *rr, struct rdata_spans *s)
{
    memset(s, 0, sizeof(*s));
    switch (rr->type) {
    case EXO_DNS_TYPE_A:
        s->p[0] = rr->rd.a;
        s->n[0] = 4;
        break;
    case EXO_DNS_TYPE_AAAA:
        s->p[0] = rr->rd.aaaa;
        s->n[0] = 16;
        break;
    case EXO_DNS_TYPE_PTR:
        s->p[1] = rr->rd.ptr.wire;
        s->n[1] = rr->rd.ptr.len;
        break;
    case EXO_DNS_TYPE_SRV:
        s->head[0] = (uint8_t)(rr->rd.srv.priority >> 8);
        s->head[1] = (uint8_t)rr->rd.srv.priority;
        s->head[2] = (uint8_t)(rr->rd.srv.weight >> 8);
        s->head[3] = (uint8_t)rr->rd.srv.weight;
        s->head[4] = (uint8_t)(rr->rd.srv.port >> 8);
        s->head[5] = (uint8_t)rr->rd.srv.port;
        s->p[0] = s->head;
        s->n[0] = 6;
        s->p[1] = rr->rd.srv.target.wire;
        s->n[1] = rr->rd.srv.target.len;
        break;
    case EXO_DNS_TYPE_NSEC:
        s->p[1] = rr->rd.nsec.next.wire;
        s->n[1] = rr->rd.nsec.next.len;
        s->p[2] = rr->rd.nsec.bitmaps;
        s->n[2] = rr->rd.nsec.bitmaps_len;
        break;
    default:
        s->p[2] = rr->rd.raw.data;
        s->n[2] = rr->rd.raw.len;
        break;
    }
}

/* Next byte of the spans at cursor (span, offset); false at the end. */
static bool spans_next(const struct rdata_spans *s, size_t *span, size_t *off, uint8_t *ret)
{
    while (*span < 3 && *off >= s->n[*span]) {
        (*span)++;
        *off = 0;
    }
    if (*span >= 3)
        return false;
    *ret = s->p[*span][(*off)++];
    return true;
}

int exo_dns_rdata_cmp(const struct exo_dns_rr *a, const struct exo_dns_rr *b)
{
    if (a->rrclass != b->rrclass)
        return a->rrclass < b->rrclass ? -1 : 1;
    if (a->type != b->type)
        return a->type < b->type ? -1 : 1;
    struct rdata_spans sa, sb;
    rdata_spans(a, &sa);
    rdata_spans(b, &sb);
    size_t ia = 0, oa = 0, ib = 0, ob = 0;
    for (;;) {
        uint8_t ca, cb;
        bool ha = spans_next(&sa, &ia, &oa, &ca);
        bool hb = spans_next(&sb, &ib, &ob, &cb);
        if (!ha || !hb)
            return ha - hb; /* the longer sorts later */
        if (ca != cb)
            return ca < cb ? -1 : 1;
    }
}

bool exo_dns_rr_same(const struct exo_dns_rr *a, const struct exo_dns_rr *b)
{
    return exo_dns_name_eq(&a->name, &b->name) && exo_dns_rdata_cmp(a, b) == 0;
}

bool exo_dns_nsec_has_type(const struct exo_dns_rr *nsec, uint16_t type)
{
    const uint8_t *p = nsec->rd.nsec.bitmaps;
    size_t len = nsec->rd.nsec.bitmaps_len, off = 0;
    while (off + 2 <= len) {
        unsigned window = p[off], blen = p[off + 1];
        if (off + 2 + blen > len)
            return false;
        if (window == (unsigned)(type >> 8)) {
            unsigned byte = (type & 0xffu) >> 3;
            return byte < blen && (p[off + 2 + byte] & (0x80u >> (type & 7u)));
        }
        off += 2 + blen;
    }
    return false;
}

size_t exo_dns_nsec_bitmap(const uint16_t *types, size_t n_types, uint8_t *out)
{
    size_t blen = 0;
    memset(out, 0, 34);
    for (size_t i = 0; i < n_types; i++) {
        if (types[i] >= 256)
            return 0;
        size_t byte = types[i] >> 3;
        out[2 + byte] |= (uint8_t)(0x80u >> (types[i] & 7u));
        if (byte + 1 > blen)
            blen = byte + 1;
    }
    if (blen == 0)
        return 0;
    out[0] = 0;
    out[1] = (uint8_t)blen;
    return 2 + blen;
}

bool exo_dns_txt_next(const uint8_t *data, size_t len, size_t *off, const uint8_t **ret_str,
                      size_t *ret_len)
{
    if (*off >= len)
        return false;
    size_t slen = data[*off];
    if (slen > len - *off - 1)
        return false;
    *ret_str = data + *off + 1;
    *ret_len = slen;
    *off += 1 + slen;
    return true;
}

int exo_dns_txt_encode(const char *const *strs, size_t n, uint8_t *out, size_t cap, size_t *ret_len)
{
    size_t off = 0;
    if (n == 0) {
        if (cap < 1)
            return EXO_ENOSPC;
        out[0] = 0;
        *ret_len = 1;
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(strs[i]);
        if (len > 255)
            return EXO_ERANGE;
        if (1 + len > cap - off)
            return EXO_ENOSPC;
        out[off] = (uint8_t)len;
        memcpy(out + off + 1, strs[i], len);
        off += 1 + len;
    }
    *ret_len = off;
    return 0;
}

/* ---- Parser ---- */

struct parse_ctx {
    const uint8_t *pkt;
    size_t len;
    struct exo_diag *diag;
    const char *where; /* "question", "answer", ... */
    unsigned index;    /* 1-based within the section */
};

static int fail(const struct parse_ctx *c, int code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(const struct parse_ctx *c, int code, const char *field, const char *fmt, ...)
{
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    if (c->index)
        return exo_diag_set(c->diag, code, "dns: %s %u %s: %s", c->where, c->index, field, what);
    return exo_diag_set(c->diag, code, "dns: %s %s: %s", c->where, field, what);
}

/* Read the name at *off, whose in-place bytes must end before `end`; on success *off is just
 * past those bytes. See the file comment for the pointer rules. */
static int read_name(const struct parse_ctx *c, size_t *off, size_t end, struct exo_dns_name *out,
                     const char *field)
{
    const uint8_t *pkt = c->pkt;
    size_t pos = *off, seg_start = *off, bound = end, after = 0;
    unsigned jumps = 0;
    size_t n = 0;

    for (;;) {
        if (pos >= bound)
            return fail(c, EXO_ETRUNCATED, field, "name runs past byte %zu (label at byte %zu)",
                        bound, pos);
        uint8_t b = pkt[pos];
        if ((b & 0xc0) == 0xc0) {
            if (pos + 1 >= bound)
                return fail(c, EXO_ETRUNCATED, field,
                            "compression pointer at byte %zu is cut short", pos);
            size_t target = (size_t)(b & 0x3f) << 8 | pkt[pos + 1];
            if (jumps == 0)
                after = pos + 2;
            if (++jumps > EXO_DNS_MAX_POINTERS)
                return fail(c, EXO_EFORMAT, field, "more than %d compression pointers at byte %zu",
                            EXO_DNS_MAX_POINTERS, pos);
            if (target >= pos)
                return fail(c, EXO_EFORMAT, field,
                            "compression pointer at byte %zu points %s byte %zu", pos,
                            target == pos ? "to itself at" : "forward to", target);
            if (target >= seg_start)
                return fail(c, EXO_EFORMAT, field,
                            "compression pointer at byte %zu loops back to byte %zu", pos, target);
            if (target < EXO_DNS_HEADER_SIZE)
                return fail(c, EXO_EFORMAT, field,
                            "compression pointer at byte %zu points into the header (byte %zu)",
                            pos, target);
            bound = seg_start;
            seg_start = pos = target;
            continue;
        }
        if (b & 0xc0)
            return fail(c, EXO_EFORMAT, field, "reserved label type 0x%02x at byte %zu", b, pos);
        if (b == 0) {
            out->wire[n++] = 0;
            pos++;
            break;
        }
        if (b > bound - pos - 1)
            return fail(c, EXO_ETRUNCATED, field,
                        "label of %u bytes at byte %zu runs past byte %zu", b, pos, bound);
        if (n + 1 + b + 1 > EXO_DNS_NAME_MAX)
            return fail(c, EXO_EFORMAT, field, "name longer than %d bytes at byte %zu",
                        EXO_DNS_NAME_MAX, pos);
        memcpy(out->wire + n, pkt + pos, 1 + (size_t)b);
        n += 1 + (size_t)b;
        pos += 1 + (size_t)b;
    }
    out->len = (uint8_t)n;
    *off = jumps ? after : pos;
    return 0;
}

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int parse_question(const struct parse_ctx *c, size_t *off, struct exo_dns_question *q)
{
    int rc = read_name(c, off, c->len, &q->name, "name");
    if (rc)
        return rc;
    if (c->len - *off < 4)
        return fail(c, EXO_ETRUNCATED, "type/class", "needs 4 bytes at byte %zu, %zu left", *off,
                    c->len - *off);
    q->type = be16(c->pkt + *off);
    uint16_t cls = be16(c->pkt + *off + 2);
    q->qclass = cls & ~EXO_DNS_CLASS_TOP_BIT;
    q->unicast_response = (cls & EXO_DNS_CLASS_TOP_BIT) != 0;
    *off += 4;
    return 0;
}

static int parse_txt(const struct parse_ctx *c, size_t off, size_t end)
{
    while (off < end) {
        size_t slen = c->pkt[off];
        if (slen > end - off - 1)
            return fail(c, EXO_EFORMAT, "TXT rdata",
                        "string of %zu bytes at byte %zu runs past the rdata end at byte %zu", slen,
                        off, end);
        off += 1 + slen;
    }
    return 0;
}

static int parse_nsec_bitmaps(const struct parse_ctx *c, size_t off, size_t end)
{
    int last_window = -1;
    while (off < end) {
        if (end - off < 2)
            return fail(c, EXO_EFORMAT, "NSEC bitmap", "window header cut short at byte %zu", off);
        unsigned window = c->pkt[off], blen = c->pkt[off + 1];
        if ((int)window <= last_window)
            return fail(c, EXO_EFORMAT, "NSEC bitmap", "window %u at byte %zu is out of order",
                        window, off);
        if (blen < 1 || blen > 32)
            return fail(c, EXO_EFORMAT, "NSEC bitmap",
                        "bitmap length %u at byte %zu is not 1 to 32", blen, off + 1);
        if (blen > end - off - 2)
            return fail(c, EXO_EFORMAT, "NSEC bitmap", "bitmap at byte %zu runs past byte %zu",
                        off + 2, end);
        last_window = (int)window;
        off += 2 + blen;
    }
    return 0;
}

static int parse_rdata(const struct parse_ctx *c, size_t off, size_t end, struct exo_dns_rr *rr)
{
    size_t rdlen = end - off;
    int rc = 0;

    switch (rr->type) {
    case EXO_DNS_TYPE_A:
    case EXO_DNS_TYPE_AAAA: {
        size_t want = rr->type == EXO_DNS_TYPE_A ? 4 : 16;
        if (rdlen != want)
            return fail(c, EXO_EFORMAT, "rdata", "%s rdata at byte %zu has %zu bytes, not %zu",
                        rr->type == EXO_DNS_TYPE_A ? "A" : "AAAA", off, rdlen, want);
        memcpy(rr->type == EXO_DNS_TYPE_A ? rr->rd.a : rr->rd.aaaa, c->pkt + off, want);
        return 0;
    }
    case EXO_DNS_TYPE_PTR:
        rc = read_name(c, &off, end, &rr->rd.ptr, "PTR target");
        break;
    case EXO_DNS_TYPE_SRV:
        if (rdlen < 7)
            return fail(c, EXO_EFORMAT, "rdata", "SRV rdata at byte %zu has only %zu bytes", off,
                        rdlen);
        rr->rd.srv.priority = be16(c->pkt + off);
        rr->rd.srv.weight = be16(c->pkt + off + 2);
        rr->rd.srv.port = be16(c->pkt + off + 4);
        off += 6;
        rc = read_name(c, &off, end, &rr->rd.srv.target, "SRV target");
        break;
    case EXO_DNS_TYPE_NSEC:
        rc = read_name(c, &off, end, &rr->rd.nsec.next, "NSEC next name");
        if (rc)
            return rc;
        rc = parse_nsec_bitmaps(c, off, end);
        rr->rd.nsec.bitmaps = c->pkt + off;
        rr->rd.nsec.bitmaps_len = (uint16_t)(end - off);
        off = end;
        break;
    case EXO_DNS_TYPE_TXT:
        rc = parse_txt(c, off, end);
        if (rc)
            return rc;
        rr->rd.raw.data = c->pkt + off;
        rr->rd.raw.len = (uint16_t)rdlen;
        off = end;
        break;
    default:
        rr->rd.raw.data = c->pkt + off;
        rr->rd.raw.len = (uint16_t)rdlen;
        off = end;
        break;
    }
    if (rc)
        return rc;
    if (off != end)
        return fail(c, EXO_EFORMAT, "rdata", "%zu bytes left over at byte %zu before its end",
                    end - off, off);
    return 0;
}

static int parse_rr(const struct parse_ctx *c, size_t *off, struct exo_dns_rr *rr)
{
    int rc = read_name(c, off, c->len, &rr->name, "name");
    if (rc)
        return rc;
    if (c->len - *off < 10)
        return fail(c, EXO_ETRUNCATED, "fixed fields", "needs 10 bytes at byte %zu, %zu left", *off,
                    c->len - *off);
    const uint8_t *p = c->pkt + *off;
    rr->type = be16(p);
    uint16_t cls = be16(p + 2);
    rr->rrclass = cls & ~EXO_DNS_CLASS_TOP_BIT;
    rr->cache_flush = (cls & EXO_DNS_CLASS_TOP_BIT) != 0;
    rr->ttl = be32(p + 4);
    size_t rdlen = be16(p + 8);
    *off += 10;
    if (rdlen > c->len - *off)
        return fail(c, EXO_ETRUNCATED, "rdlength",
                    "%zu bytes of rdata at byte %zu run past the end of the packet (%zu bytes)",
                    rdlen, *off, c->len);
    rc = parse_rdata(c, *off, *off + rdlen, rr);
    *off += rdlen;
    return rc;
}

static const char *const section_names[] = {"question", "answer", "authority", "additional"};

int exo_dns_parse(const uint8_t *pkt, size_t len, struct exo_dns_msg *ret, struct exo_diag *diag)
{
    struct parse_ctx c = {.pkt = pkt, .len = len, .diag = diag, .where = "header"};
    struct exo_dns_msg m;
    size_t off = EXO_DNS_HEADER_SIZE;
    int rc = 0;

    memset(&m, 0, sizeof(m));
    if (!pkt || len < EXO_DNS_HEADER_SIZE)
        return fail(&c, EXO_ETRUNCATED, "size", "%zu bytes, shorter than the 12-byte header",
                    pkt ? len : 0);
    if (len > EXO_DNS_PACKET_MAX)
        return fail(&c, EXO_ETOOBIG, "size", "%zu bytes, more than the %d allowed", len,
                    EXO_DNS_PACKET_MAX);
    m.id = be16(pkt);
    m.flags = be16(pkt + 2);
    m.n_qd = be16(pkt + 4);
    m.n_an = be16(pkt + 6);
    m.n_ns = be16(pkt + 8);
    m.n_ar = be16(pkt + 10);
    size_t n_rr = (size_t)m.n_an + m.n_ns + m.n_ar;
    if (m.n_qd + n_rr > EXO_DNS_MAX_ENTRIES)
        return fail(&c, EXO_ETOOBIG, "counts", "%zu entries, more than the %d allowed",
                    m.n_qd + n_rr, EXO_DNS_MAX_ENTRIES);
    size_t min_bytes = (size_t)m.n_qd * MIN_QUESTION_SIZE + n_rr * MIN_RR_SIZE;
    if (min_bytes > len - EXO_DNS_HEADER_SIZE)
        return fail(&c, EXO_ETRUNCATED, "counts",
                    "%u questions and %zu records need at least %zu bytes, %zu follow the header",
                    m.n_qd, n_rr, min_bytes, len - EXO_DNS_HEADER_SIZE);

    if (m.n_qd) {
        m.qd = exo_calloc(m.n_qd, sizeof(*m.qd));
        if (!m.qd) {
            rc = exo_diag_set(diag, EXO_ENOMEM, "dns: out of memory for %u questions", m.n_qd);
            goto out;
        }
    }
    if (n_rr) {
        m.rr = exo_calloc(n_rr, sizeof(*m.rr));
        if (!m.rr) {
            rc = exo_diag_set(diag, EXO_ENOMEM, "dns: out of memory for %zu records", n_rr);
            goto out;
        }
    }

    c.where = section_names[EXO_DNS_SECTION_QUESTION];
    for (unsigned i = 0; i < m.n_qd; i++) {
        c.index = i + 1;
        rc = parse_question(&c, &off, &m.qd[i]);
        if (rc)
            goto out;
    }
    const uint16_t counts[3] = {m.n_an, m.n_ns, m.n_ar};
    size_t k = 0;
    for (int s = 0; s < 3; s++) {
        c.where = section_names[s + 1];
        for (unsigned i = 0; i < counts[s]; i++, k++) {
            c.index = i + 1;
            rc = parse_rr(&c, &off, &m.rr[k]);
            if (rc)
                goto out;
        }
    }
    *ret = m;
    return 0;
out:
    exo_dns_msg_free(&m);
    return rc;
}

void exo_dns_msg_free(struct exo_dns_msg *msg)
{
    if (!msg)
        return;
    exo_free(msg->qd);
    exo_free(msg->rr);
    msg->qd = NULL;
    msg->rr = NULL;
    msg->n_qd = msg->n_an = msg->n_ns = msg->n_ar = 0;
}

const struct exo_dns_rr *exo_dns_msg_rr(const struct exo_dns_msg *msg, enum exo_dns_section s,
                                        size_t i)
{
    switch (s) {
    case EXO_DNS_SECTION_ANSWER:
        return &msg->rr[i];
    case EXO_DNS_SECTION_AUTHORITY:
        return &msg->rr[msg->n_an + i];
    case EXO_DNS_SECTION_ADDITIONAL:
        return &msg->rr[(size_t)msg->n_an + msg->n_ns + i];
    default:
        return NULL;
    }
}

/* ---- Builder ---- */

static void put_header(struct exo_dns_builder *b, uint16_t id, uint16_t flags)
{
    exo_buf_put_u16be(&b->buf, id);
    exo_buf_put_u16be(&b->buf, flags);
    for (int i = 0; i < 4; i++)
        exo_buf_put_u16be(&b->buf, 0);
}

void exo_dns_builder_init(struct exo_dns_builder *b, uint16_t id, uint16_t flags, size_t max)
{
    memset(b, 0, sizeof(*b));
    if (max > 65535)
        max = 65535;
    if (max < EXO_DNS_HEADER_SIZE)
        max = EXO_DNS_HEADER_SIZE;
    exo_buf_init(&b->buf, max);
    put_header(b, id, flags);
}

void exo_dns_builder_reset(struct exo_dns_builder *b, uint16_t id, uint16_t flags)
{
    exo_buf_reset(&b->buf);
    memset(b->count, 0, sizeof(b->count));
    b->section = EXO_DNS_SECTION_QUESTION;
    b->n_comp = 0;
    put_header(b, id, flags);
}

void exo_dns_builder_free(struct exo_dns_builder *b)
{
    if (b)
        exo_buf_free(&b->buf);
}

/* Offset of an earlier written name equal to the wire suffix s, or -1. Matching is exact, not
 * case-insensitive, so that every name reads back with the case it was given. The buffer holds
 * only what this builder wrote, so reading it back with the parser's rules cannot fail. */
static int find_suffix(const struct exo_dns_builder *b, const uint8_t *s, size_t slen)
{
    struct parse_ctx c = {.pkt = b->buf.data, .len = b->buf.len, .where = "builder"};
    for (size_t i = 0; i < b->n_comp; i++) {
        struct exo_dns_name n;
        size_t off = b->comp[i];
        if (read_name(&c, &off, b->buf.len, &n, "name") == 0 && n.len == slen &&
            memcmp(n.wire, s, slen) == 0)
            return b->comp[i];
    }
    return -1;
}

static void put_name(struct exo_dns_builder *b, const struct exo_dns_name *n)
{
    size_t pos = 0;
    while (pos < n->len && n->wire[pos] != 0) {
        int at = find_suffix(b, n->wire + pos, n->len - pos);
        if (at >= 0) {
            exo_buf_put_u16be(&b->buf, (uint16_t)(0xc000u | (unsigned)at));
            return;
        }
        /* Only offsets a 14-bit pointer can reach are remembered. */
        if (b->buf.len < 0x4000 && b->n_comp < EXO_DNS_COMPRESS_MAX && !b->buf.err)
            b->comp[b->n_comp++] = (uint16_t)b->buf.len;
        exo_buf_put(&b->buf, n->wire + pos, 1 + (size_t)n->wire[pos]);
        pos += 1 + (size_t)n->wire[pos];
    }
    exo_buf_put_u8(&b->buf, 0);
}

/* Undo a partial entry: back to len, forgetting suffixes written past it. An overflow of the
 * size cap is not sticky (the caller may start a new packet); running out of memory is. */
static int rollback(struct exo_dns_builder *b, size_t len)
{
    int err = b->buf.err;
    b->buf.len = len;
    while (b->n_comp && b->comp[b->n_comp - 1] >= len)
        b->n_comp--;
    if (err == EXO_ETOOBIG) {
        b->buf.err = 0;
        return EXO_ENOSPC;
    }
    return err;
}

static int enter_section(struct exo_dns_builder *b, enum exo_dns_section s)
{
    if (s < b->section)
        return EXO_EINVAL;
    b->section = s;
    return 0;
}

int exo_dns_builder_question(struct exo_dns_builder *b, const struct exo_dns_question *q)
{
    int rc = enter_section(b, EXO_DNS_SECTION_QUESTION);
    if (rc)
        return rc;
    if (b->buf.err)
        return b->buf.err;
    size_t start = b->buf.len;
    put_name(b, &q->name);
    exo_buf_put_u16be(&b->buf, q->type);
    exo_buf_put_u16be(&b->buf,
                      (uint16_t)(q->qclass | (q->unicast_response ? EXO_DNS_CLASS_TOP_BIT : 0)));
    if (b->buf.err)
        return rollback(b, start);
    b->count[EXO_DNS_SECTION_QUESTION]++;
    return 0;
}

static bool txt_valid(const uint8_t *p, size_t len)
{
    size_t off = 0;
    while (off < len) {
        if (p[off] > len - off - 1)
            return false;
        off += 1 + (size_t)p[off];
    }
    return true;
}

static void put_rdata(struct exo_dns_builder *b, const struct exo_dns_rr *rr)
{
    switch (rr->type) {
    case EXO_DNS_TYPE_A:
        exo_buf_put(&b->buf, rr->rd.a, 4);
        break;
    case EXO_DNS_TYPE_AAAA:
        exo_buf_put(&b->buf, rr->rd.aaaa, 16);
        break;
    case EXO_DNS_TYPE_PTR:
        put_name(b, &rr->rd.ptr);
        break;
    case EXO_DNS_TYPE_SRV:
        exo_buf_put_u16be(&b->buf, rr->rd.srv.priority);
        exo_buf_put_u16be(&b->buf, rr->rd.srv.weight);
        exo_buf_put_u16be(&b->buf, rr->rd.srv.port);
        put_name(b, &rr->rd.srv.target);
        break;
    case EXO_DNS_TYPE_NSEC:
        put_name(b, &rr->rd.nsec.next);
        exo_buf_put(&b->buf, rr->rd.nsec.bitmaps, rr->rd.nsec.bitmaps_len);
        break;
    default:
        exo_buf_put(&b->buf, rr->rd.raw.data, rr->rd.raw.len);
        break;
    }
}

int exo_dns_builder_rr(struct exo_dns_builder *b, enum exo_dns_section s,
                       const struct exo_dns_rr *rr)
{
    if (s == EXO_DNS_SECTION_QUESTION)
        return EXO_EINVAL;
    if (rr->type == EXO_DNS_TYPE_TXT && !txt_valid(rr->rd.raw.data, rr->rd.raw.len))
        return EXO_EINVAL;
    if (rr->type == EXO_DNS_TYPE_NSEC) {
        struct parse_ctx c = {
            .pkt = rr->rd.nsec.bitmaps, .len = rr->rd.nsec.bitmaps_len, .where = "builder"};
        if (parse_nsec_bitmaps(&c, 0, rr->rd.nsec.bitmaps_len) != 0)
            return EXO_EINVAL;
    }
    int rc = enter_section(b, s);
    if (rc)
        return rc;
    if (b->buf.err)
        return b->buf.err;
    size_t start = b->buf.len;
    put_name(b, &rr->name);
    exo_buf_put_u16be(&b->buf, rr->type);
    exo_buf_put_u16be(&b->buf,
                      (uint16_t)(rr->rrclass | (rr->cache_flush ? EXO_DNS_CLASS_TOP_BIT : 0)));
    exo_buf_put_u32be(&b->buf, rr->ttl);
    size_t rdlen_at = b->buf.len;
    exo_buf_put_u16be(&b->buf, 0);
    put_rdata(b, rr);
    if (b->buf.err)
        return rollback(b, start);
    size_t rdlen = b->buf.len - rdlen_at - 2;
    b->buf.data[rdlen_at] = (uint8_t)(rdlen >> 8);
    b->buf.data[rdlen_at + 1] = (uint8_t)rdlen;
    b->count[s]++;
    return 0;
}

size_t exo_dns_builder_entries(const struct exo_dns_builder *b)
{
    return (size_t)b->count[0] + b->count[1] + b->count[2] + b->count[3];
}

void exo_dns_builder_add_flags(struct exo_dns_builder *b, uint16_t flags)
{
    if (b->buf.len >= EXO_DNS_HEADER_SIZE) {
        b->buf.data[2] |= (uint8_t)(flags >> 8);
        b->buf.data[3] |= (uint8_t)flags;
    }
}

int exo_dns_builder_finish(struct exo_dns_builder *b, const uint8_t **ret_data, size_t *ret_len)
{
    if (b->buf.err)
        return b->buf.err;
    for (int i = 0; i < 4; i++) {
        b->buf.data[4 + 2 * i] = (uint8_t)(b->count[i] >> 8);
        b->buf.data[5 + 2 * i] = (uint8_t)b->count[i];
    }
    *ret_data = b->buf.data;
    *ret_len = b->buf.len;
    return 0;
}
