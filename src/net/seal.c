/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Packet sealing and the keyring (the format and the rules are in seal.h).
 *
 * The replay cache pairs an open-addressing hash set of nonces with a min-heap ordered by the
 * sender's timestamp. Expiry pops the heap while its top has left the window; when the cache is
 * full the top is evicted early and `floor_ms` remembers its timestamp, so that nothing at or
 * below it is accepted again. Only authenticated packets are inserted, so a forger cannot fill it.
 */
#include "net/seal.h"

#include <sodium.h>
#include <string.h>

#include "core/alloc.h"

#define DEFAULT_WINDOW_MS 60000u
#define DEFAULT_REPLAY    8192u
#define MAX_LABEL         255
#define TS_BYTES          8
#define TAG_BYTES         crypto_aead_xchacha20poly1305_ietf_ABYTES
#define NONCE_BYTES       crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define OFF_VERSION       4
#define OFF_KEY_ID        5
#define OFF_CLUSTER       9
#define OFF_NONCE         13
#define KEYFILE_LINE_MAX  128

_Static_assert(OFF_NONCE + NONCE_BYTES == EXO_SEAL_HEADER_BYTES, "header layout");
_Static_assert(EXO_SEAL_OVERHEAD == EXO_SEAL_HEADER_BYTES + TS_BYTES + TAG_BYTES, "overhead");
_Static_assert(crypto_aead_xchacha20poly1305_ietf_KEYBYTES == EXO_SEAL_KEY_BYTES, "key size");

static const uint8_t magic[4] = {'E', 'X', 'O', 'G'};

/* Domain-separation keys for the three BLAKE2b uses (each 16..64 bytes, as keyed BLAKE2b wants). */
static const char derive_domain[] = "exo seal: cluster-derived key v1";
static const char key_id_domain[] = "exo seal: key fingerprint v1";
static const char tag_domain[] = "exo seal: cluster label tag v1";

struct seal_key {
    uint8_t key[EXO_SEAL_KEY_BYTES];
    uint8_t id[EXO_SEAL_KEY_ID_BYTES];
};

struct replay_entry {
    uint64_t k0, k1; /* the first 16 nonce bytes: random, so they hash well as they are */
    uint64_t ts_ms;
};

struct replay_cache {
    struct replay_entry *entries; /* [cap], slots in use are those referenced by the heap */
    uint32_t *heap;               /* [cap] entry indices, min-heap on ts_ms */
    uint32_t *free_list;          /* [cap] unused entry indices */
    uint32_t *slots;              /* [nslots] entry index + 1, 0 = empty */
    uint32_t cap, count, nfree, nslots;
    uint64_t floor_ms; /* nothing at or below this is accepted once something was evicted */
    bool evicted;
};

struct exo_seal {
    struct seal_key keys[EXO_SEAL_MAX_KEYS]; /* keys[0] is primary */
    size_t nkeys;
    bool derived;
    uint8_t label[MAX_LABEL];
    size_t label_len;
    uint8_t cluster_tag[4];
    uint32_t window_ms;
    size_t max_message;
    struct replay_cache replay;
    struct exo_seal_stats stats;
};

static void hash16(const char *domain, const void *in, size_t len, uint8_t out[16])
{
    crypto_generichash(out, 16, in, len, (const unsigned char *)domain, strlen(domain));
}

static uint64_t load64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void store64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* ---- replay cache ---- */

static int replay_init(struct replay_cache *rc, size_t cap)
{
    memset(rc, 0, sizeof(*rc));
    if (cap == 0 || cap > (1u << 24))
        return EXO_EINVAL;
    rc->cap = (uint32_t)cap;
    rc->nslots = 16;
    while (rc->nslots < 2 * rc->cap)
        rc->nslots *= 2;
    rc->entries = exo_calloc(cap, sizeof(*rc->entries));
    rc->heap = exo_calloc(cap, sizeof(*rc->heap));
    rc->free_list = exo_calloc(cap, sizeof(*rc->free_list));
    rc->slots = exo_calloc(rc->nslots, sizeof(*rc->slots));
    if (!rc->entries || !rc->heap || !rc->free_list || !rc->slots)
        return EXO_ENOMEM;
    for (uint32_t i = 0; i < rc->cap; i++)
        rc->free_list[i] = rc->cap - 1 - i;
    rc->nfree = rc->cap;
    return 0;
}

static void replay_free(struct replay_cache *rc)
{
    exo_free(rc->entries);
    exo_free(rc->heap);
    exo_free(rc->free_list);
    exo_free(rc->slots);
    memset(rc, 0, sizeof(*rc));
}

static uint32_t slot_home(const struct replay_cache *rc, uint64_t k0)
{
    return (uint32_t)(k0 ^ (k0 >> 29)) & (rc->nslots - 1);
}

static bool replay_contains(const struct replay_cache *rc, uint64_t k0, uint64_t k1)
{
    uint32_t mask = rc->nslots - 1;
    for (uint32_t i = slot_home(rc, k0);; i = (i + 1) & mask) {
        uint32_t v = rc->slots[i];
        if (v == 0)
            return false;
        const struct replay_entry *e = &rc->entries[v - 1];
        if (e->k0 == k0 && e->k1 == k1)
            return true;
    }
}

/* Remove entry idx from the hash set, shifting later members of its probe run back so that
 * lookups never stop early at the hole. */
static void slot_remove(struct replay_cache *rc, uint32_t idx)
{
    uint32_t mask = rc->nslots - 1;
    uint32_t i = slot_home(rc, rc->entries[idx].k0);
    while (rc->slots[i] != idx + 1)
        i = (i + 1) & mask;
    for (uint32_t j = (i + 1) & mask; rc->slots[j] != 0; j = (j + 1) & mask) {
        uint32_t home = slot_home(rc, rc->entries[rc->slots[j] - 1].k0);
        bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (stays)
            continue;
        rc->slots[i] = rc->slots[j];
        i = j;
    }
    rc->slots[i] = 0;
}

static bool heap_less(const struct replay_cache *rc, uint32_t a, uint32_t b)
{
    return rc->entries[rc->heap[a]].ts_ms < rc->entries[rc->heap[b]].ts_ms;
}

static void heap_swap(struct replay_cache *rc, uint32_t a, uint32_t b)
{
    uint32_t t = rc->heap[a];
    rc->heap[a] = rc->heap[b];
    rc->heap[b] = t;
}

static void replay_pop(struct replay_cache *rc)
{
    uint32_t idx = rc->heap[0];
    slot_remove(rc, idx);
    rc->free_list[rc->nfree++] = idx;
    rc->heap[0] = rc->heap[--rc->count];
    for (uint32_t i = 0;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < rc->count && heap_less(rc, l, m))
            m = l;
        if (r < rc->count && heap_less(rc, r, m))
            m = r;
        if (m == i)
            break;
        heap_swap(rc, i, m);
        i = m;
    }
}

static void replay_expire(struct replay_cache *rc, uint64_t now_ms, uint32_t window_ms)
{
    while (rc->count && rc->entries[rc->heap[0]].ts_ms + window_ms < now_ms)
        replay_pop(rc);
}

static void replay_insert(struct replay_cache *rc, uint64_t k0, uint64_t k1, uint64_t ts_ms)
{
    if (rc->count == rc->cap) {
        uint64_t ts = rc->entries[rc->heap[0]].ts_ms;
        if (!rc->evicted || ts > rc->floor_ms)
            rc->floor_ms = ts;
        rc->evicted = true;
        replay_pop(rc);
    }
    uint32_t idx = rc->free_list[--rc->nfree];
    rc->entries[idx] = (struct replay_entry){k0, k1, ts_ms};
    uint32_t mask = rc->nslots - 1, i = slot_home(rc, k0);
    while (rc->slots[i] != 0)
        i = (i + 1) & mask;
    rc->slots[i] = idx + 1;
    uint32_t pos = rc->count++;
    rc->heap[pos] = idx;
    while (pos > 0) {
        uint32_t parent = (pos - 1) / 2;
        if (!heap_less(rc, pos, parent))
            break;
        heap_swap(rc, pos, parent);
        pos = parent;
    }
}

/* ---- keyring ---- */

void exo_seal_key_id(const uint8_t key[EXO_SEAL_KEY_BYTES], uint8_t ret_id[EXO_SEAL_KEY_ID_BYTES])
{
    uint8_t h[16];
    hash16(key_id_domain, key, EXO_SEAL_KEY_BYTES, h);
    memcpy(ret_id, h, EXO_SEAL_KEY_ID_BYTES);
}

static int find_key(const struct exo_seal *seal, const uint8_t *id)
{
    for (size_t i = 0; i < seal->nkeys; i++)
        if (memcmp(seal->keys[i].id, id, EXO_SEAL_KEY_ID_BYTES) == 0)
            return (int)i;
    return -1;
}

static void clear_keys(struct exo_seal *seal)
{
    sodium_memzero(seal->keys, sizeof(seal->keys));
    seal->nkeys = 0;
}

int exo_seal_create(const struct exo_seal_config *cfg, struct exo_seal **ret_seal)
{
    int rc = EXO_EINVAL;
    struct exo_seal *seal = NULL;
    if (!cfg || !cfg->cluster || strlen(cfg->cluster) > MAX_LABEL || !ret_seal)
        goto out;
    rc = EXO_EINTERNAL;
    if (sodium_init() < 0)
        goto out;
    rc = EXO_ENOMEM;
    seal = exo_calloc(1, sizeof(*seal));
    if (!seal)
        goto out;
    seal->label_len = strlen(cfg->cluster);
    memcpy(seal->label, cfg->cluster, seal->label_len);
    uint8_t h[16];
    hash16(tag_domain, seal->label, seal->label_len, h);
    memcpy(seal->cluster_tag, h, sizeof(seal->cluster_tag));
    seal->window_ms = cfg->window_ms ? cfg->window_ms : DEFAULT_WINDOW_MS;
    seal->max_message = cfg->max_message ? cfg->max_message : EXO_SEAL_MAX_MESSAGE;
    rc = replay_init(&seal->replay, cfg->replay_entries ? cfg->replay_entries : DEFAULT_REPLAY);
    if (rc < 0)
        goto out;
    /* The derived key: a keyed BLAKE2b of the label, so every node of the cluster agrees. */
    crypto_generichash(seal->keys[0].key, EXO_SEAL_KEY_BYTES, seal->label, seal->label_len,
                       (const unsigned char *)derive_domain, strlen(derive_domain));
    exo_seal_key_id(seal->keys[0].key, seal->keys[0].id);
    seal->nkeys = 1;
    seal->derived = true;
    *ret_seal = seal;
    seal = NULL;
    rc = 0;
out:
    exo_seal_free(seal);
    return rc;
}

void exo_seal_free(struct exo_seal *seal)
{
    if (!seal)
        return;
    replay_free(&seal->replay);
    sodium_memzero(seal, sizeof(*seal));
    exo_free(seal);
}

int exo_seal_set_keys(struct exo_seal *seal, const uint8_t (*keys)[EXO_SEAL_KEY_BYTES], size_t n)
{
    if (n == 0 || n > EXO_SEAL_MAX_KEYS)
        return EXO_EINVAL;
    struct seal_key next[EXO_SEAL_MAX_KEYS];
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        memcpy(next[i].key, keys[i], EXO_SEAL_KEY_BYTES);
        exo_seal_key_id(keys[i], next[i].id);
        for (size_t j = 0; j < i; j++)
            if (memcmp(next[i].id, next[j].id, EXO_SEAL_KEY_ID_BYTES) == 0)
                rc = EXO_EEXIST;
    }
    if (rc == 0) {
        clear_keys(seal);
        memcpy(seal->keys, next, n * sizeof(next[0]));
        seal->nkeys = n;
        seal->derived = false;
    }
    sodium_memzero(next, sizeof(next));
    return rc;
}

int exo_seal_load_keyfile(struct exo_seal *seal, const char *text, size_t len,
                          struct exo_diag *diag)
{
    uint8_t keys[EXO_SEAL_MAX_KEYS][EXO_SEAL_KEY_BYTES];
    size_t n = 0;
    int rc = exo_seal_keyfile_parse(text, len, keys, EXO_SEAL_MAX_KEYS, &n, diag);
    if (rc == 0) {
        rc = exo_seal_set_keys(seal, (const uint8_t(*)[EXO_SEAL_KEY_BYTES])keys, n);
        if (rc < 0)
            exo_diag_set(diag, rc, "key file: two keys share a fingerprint");
    }
    sodium_memzero(keys, sizeof(keys));
    return rc;
}

int exo_seal_add_key(struct exo_seal *seal, const uint8_t key[EXO_SEAL_KEY_BYTES])
{
    uint8_t id[EXO_SEAL_KEY_ID_BYTES];
    exo_seal_key_id(key, id);
    if (find_key(seal, id) >= 0)
        return EXO_EEXIST;
    if (seal->nkeys == EXO_SEAL_MAX_KEYS)
        return EXO_ENOSPC;
    struct seal_key *k = &seal->keys[seal->nkeys++];
    memcpy(k->key, key, EXO_SEAL_KEY_BYTES);
    memcpy(k->id, id, sizeof(id));
    return 0;
}

int exo_seal_use_key(struct exo_seal *seal, const uint8_t key[EXO_SEAL_KEY_BYTES])
{
    uint8_t id[EXO_SEAL_KEY_ID_BYTES];
    exo_seal_key_id(key, id);
    int i = find_key(seal, id);
    if (i < 0) {
        int rc = exo_seal_add_key(seal, key);
        if (rc < 0)
            return rc;
        i = (int)seal->nkeys - 1;
    }
    struct seal_key t = seal->keys[0];
    seal->keys[0] = seal->keys[i];
    seal->keys[i] = t;
    sodium_memzero(&t, sizeof(t));
    seal->derived = false;
    return 0;
}

int exo_seal_remove_key(struct exo_seal *seal, const uint8_t key[EXO_SEAL_KEY_BYTES])
{
    uint8_t id[EXO_SEAL_KEY_ID_BYTES];
    exo_seal_key_id(key, id);
    int i = find_key(seal, id);
    if (i < 0)
        return EXO_ENOENT;
    if (i == 0)
        return EXO_EBUSY;
    memmove(&seal->keys[i], &seal->keys[i + 1],
            (seal->nkeys - (size_t)i - 1) * sizeof(seal->keys[0]));
    seal->nkeys--;
    sodium_memzero(&seal->keys[seal->nkeys], sizeof(seal->keys[0]));
    return 0;
}

bool exo_seal_is_derived(const struct exo_seal *seal)
{
    return seal->derived;
}

void exo_seal_primary_id(const struct exo_seal *seal, uint8_t ret_id[EXO_SEAL_KEY_ID_BYTES])
{
    memcpy(ret_id, seal->keys[0].id, EXO_SEAL_KEY_ID_BYTES);
}

/* ---- sealing ---- */

/* Additional data: the header, then the cluster label. */
static void make_ad(const struct exo_seal *seal, const uint8_t *header, uint8_t *ad)
{
    memcpy(ad, header, EXO_SEAL_HEADER_BYTES);
    memcpy(ad + EXO_SEAL_HEADER_BYTES, seal->label, seal->label_len);
}

int exo_seal_seal(struct exo_seal *seal, const void *payload, size_t len, uint64_t now_ms,
                  uint8_t *out, size_t out_cap, size_t *ret_len)
{
    if (len > seal->max_message - EXO_SEAL_OVERHEAD || len + EXO_SEAL_OVERHEAD > out_cap)
        return EXO_ETOOBIG;
    const struct seal_key *k = &seal->keys[0];
    memcpy(out, magic, sizeof(magic));
    out[OFF_VERSION] = EXO_SEAL_VERSION;
    memcpy(out + OFF_KEY_ID, k->id, EXO_SEAL_KEY_ID_BYTES);
    memcpy(out + OFF_CLUSTER, seal->cluster_tag, sizeof(seal->cluster_tag));
    randombytes_buf(out + OFF_NONCE, NONCE_BYTES);
    uint8_t *body = out + EXO_SEAL_HEADER_BYTES;
    store64(body, now_ms);
    /* memmove: the caller may have built the payload in place just after the header. */
    if (len)
        memmove(body + TS_BYTES, payload, len);
    uint8_t ad[EXO_SEAL_HEADER_BYTES + MAX_LABEL];
    make_ad(seal, out, ad);
    unsigned long long clen = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(body, &clen, body, TS_BYTES + len, ad,
                                               EXO_SEAL_HEADER_BYTES + seal->label_len, NULL,
                                               out + OFF_NONCE, k->key);
    *ret_len = EXO_SEAL_HEADER_BYTES + (size_t)clen;
    seal->stats.sealed++;
    return 0;
}

static int drop(struct exo_seal *seal, enum exo_seal_drop reason, int code,
                enum exo_seal_drop *ret_reason)
{
    seal->stats.dropped[reason]++;
    if (ret_reason)
        *ret_reason = reason;
    return code;
}

int exo_seal_open(struct exo_seal *seal, const uint8_t *msg, size_t len, uint64_t now_ms,
                  uint8_t *out, size_t out_cap, size_t *ret_len, enum exo_seal_drop *ret_reason)
{
    if (len > seal->max_message)
        return drop(seal, EXO_SEAL_DROP_TOO_BIG, EXO_ETOOBIG, ret_reason);
    if (len < EXO_SEAL_OVERHEAD)
        return drop(seal, EXO_SEAL_DROP_TRUNCATED, EXO_ETRUNCATED, ret_reason);
    if (memcmp(msg, magic, sizeof(magic)) != 0)
        return drop(seal, EXO_SEAL_DROP_BAD_MAGIC, EXO_EFORMAT, ret_reason);
    if (msg[OFF_VERSION] != EXO_SEAL_VERSION)
        return drop(seal, EXO_SEAL_DROP_BAD_VERSION, EXO_EUNSUPPORTED, ret_reason);
    if (memcmp(msg + OFF_CLUSTER, seal->cluster_tag, sizeof(seal->cluster_tag)) != 0)
        return drop(seal, EXO_SEAL_DROP_WRONG_CLUSTER, EXO_EPROTO, ret_reason);
    int ki = find_key(seal, msg + OFF_KEY_ID);
    if (ki < 0)
        return drop(seal, EXO_SEAL_DROP_UNKNOWN_KEY, EXO_ENOENT, ret_reason);
    size_t clen = len - EXO_SEAL_HEADER_BYTES;
    if (out_cap < clen - TAG_BYTES)
        return drop(seal, EXO_SEAL_DROP_TOO_BIG, EXO_ETOOBIG, ret_reason);
    uint8_t ad[EXO_SEAL_HEADER_BYTES + MAX_LABEL];
    make_ad(seal, msg, ad);
    unsigned long long plen = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(
            out, &plen, NULL, msg + EXO_SEAL_HEADER_BYTES, clen, ad,
            EXO_SEAL_HEADER_BYTES + seal->label_len, msg + OFF_NONCE, seal->keys[ki].key) != 0)
        return drop(seal, EXO_SEAL_DROP_AUTH, EXO_EAUTH, ret_reason);
    uint64_t ts = load64(out);
    struct replay_cache *rc = &seal->replay;
    replay_expire(rc, now_ms, seal->window_ms);
    bool too_old = ts + seal->window_ms < now_ms || (rc->evicted && ts <= rc->floor_ms);
    if (too_old || ts > now_ms + seal->window_ms)
        return drop(seal, EXO_SEAL_DROP_STALE, EXO_EREPLAY, ret_reason);
    uint64_t k0 = load64(msg + OFF_NONCE), k1 = load64(msg + OFF_NONCE + 8);
    if (replay_contains(rc, k0, k1))
        return drop(seal, EXO_SEAL_DROP_REPLAYED, EXO_EREPLAY, ret_reason);
    replay_insert(rc, k0, k1, ts);
    size_t n = (size_t)plen - TS_BYTES;
    memmove(out, out + TS_BYTES, n);
    *ret_len = n;
    seal->stats.opened++;
    return 0;
}

void exo_seal_get_stats(const struct exo_seal *seal, struct exo_seal_stats *ret_stats)
{
    *ret_stats = seal->stats;
}

const char *exo_seal_drop_name(enum exo_seal_drop reason)
{
    static const char *const names[EXO_SEAL_DROP__COUNT] = {
        [EXO_SEAL_DROP_TRUNCATED] = "truncated",
        [EXO_SEAL_DROP_BAD_MAGIC] = "bad_magic",
        [EXO_SEAL_DROP_BAD_VERSION] = "bad_version",
        [EXO_SEAL_DROP_WRONG_CLUSTER] = "wrong_cluster",
        [EXO_SEAL_DROP_UNKNOWN_KEY] = "unknown_key",
        [EXO_SEAL_DROP_AUTH] = "auth_failed",
        [EXO_SEAL_DROP_STALE] = "stale",
        [EXO_SEAL_DROP_REPLAYED] = "replayed",
        [EXO_SEAL_DROP_TOO_BIG] = "too_big",
    };
    if ((unsigned)reason >= EXO_SEAL_DROP__COUNT)
        return "unknown";
    return names[reason];
}

/* ---- key files ---- */

static bool is_b64(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/' || c == '=';
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* Decode one non-comment line into key; `lineno` only feeds the message. */
static int parse_key_line(const char *p, size_t n, unsigned lineno, uint8_t *key,
                          struct exo_diag *diag)
{
    if (n > KEYFILE_LINE_MAX)
        return exo_diag_set(diag, EXO_EFORMAT, "key file line %u: %zu characters, a key has 44",
                            lineno, n);
    for (size_t i = 0; i < n; i++)
        if (!is_b64(p[i]))
            return exo_diag_set(diag, EXO_EFORMAT,
                                "key file line %u: byte 0x%02x at column %zu is not base64", lineno,
                                (unsigned char)p[i], i + 1);
    uint8_t bin[KEYFILE_LINE_MAX];
    size_t bin_len = 0;
    const char *end = NULL;
    int rc = 0;
    if (sodium_base642bin(bin, sizeof(bin), p, n, NULL, &bin_len, &end,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        end != p + n)
        rc = exo_diag_set(diag, EXO_EFORMAT, "key file line %u: not valid base64", lineno);
    else if (bin_len != EXO_SEAL_KEY_BYTES)
        rc = exo_diag_set(diag, EXO_EFORMAT,
                          "key file line %u: decodes to %zu bytes, a key is %d bytes", lineno,
                          bin_len, EXO_SEAL_KEY_BYTES);
    else if (sodium_is_zero(bin, EXO_SEAL_KEY_BYTES))
        rc = exo_diag_set(diag, EXO_EFORMAT, "key file line %u: the key is all zeros", lineno);
    else
        memcpy(key, bin, EXO_SEAL_KEY_BYTES);
    sodium_memzero(bin, sizeof(bin));
    return rc;
}

int exo_seal_keyfile_parse(const char *text, size_t len, uint8_t (*ret_keys)[EXO_SEAL_KEY_BYTES],
                           size_t max, size_t *ret_n, struct exo_diag *diag)
{
    if (len > EXO_SEAL_KEYFILE_MAX)
        return exo_diag_set(diag, EXO_ETOOBIG, "key file is %zu bytes, at most %d expected", len,
                            EXO_SEAL_KEYFILE_MAX);
    size_t n = 0;
    unsigned lineno = 0;
    int rc = 0;
    for (size_t pos = 0; pos < len && rc == 0;) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        const char *p = text + pos;
        size_t m = end - pos;
        pos = end + 1;
        lineno++;
        while (m && is_blank(p[m - 1]))
            m--;
        while (m && is_blank(*p)) {
            p++;
            m--;
        }
        if (m == 0 || *p == '#')
            continue;
        if (n == max) {
            rc = exo_diag_set(diag, EXO_ETOOBIG, "key file line %u: more than %zu keys", lineno,
                              max);
            break;
        }
        rc = parse_key_line(p, m, lineno, ret_keys[n], diag);
        for (size_t j = 0; rc == 0 && j < n; j++)
            if (sodium_memcmp(ret_keys[j], ret_keys[n], EXO_SEAL_KEY_BYTES) == 0)
                rc = exo_diag_set(diag, EXO_EEXIST, "key file line %u: repeats key %zu", lineno,
                                  j + 1);
        if (rc == 0)
            n++;
    }
    if (rc == 0 && n == 0)
        rc = exo_diag_set(diag, EXO_EFORMAT, "key file holds no key");
    if (rc < 0) {
        sodium_memzero(ret_keys, max * EXO_SEAL_KEY_BYTES);
        return rc;
    }
    *ret_n = n;
    return 0;
}

int exo_seal_keygen(char **ret_text)
{
    static const char head[] = "# exo cluster key: keep it secret. Pass it to every node with "
                               "--cluster-key.\n# The first key seals; every key listed opens.\n";
    if (sodium_init() < 0)
        return EXO_EINTERNAL;
    size_t b64_len = sodium_base64_ENCODED_LEN(EXO_SEAL_KEY_BYTES, sodium_base64_VARIANT_ORIGINAL);
    size_t total = sizeof(head) - 1 + b64_len; /* b64_len counts a NUL; it becomes the newline */
    char *text = exo_malloc(total + 1);
    if (!text)
        return EXO_ENOMEM;
    uint8_t key[EXO_SEAL_KEY_BYTES];
    randombytes_buf(key, sizeof(key));
    memcpy(text, head, sizeof(head) - 1);
    sodium_bin2base64(text + sizeof(head) - 1, b64_len, key, sizeof(key),
                      sodium_base64_VARIANT_ORIGINAL);
    sodium_memzero(key, sizeof(key));
    text[total - 1] = '\n';
    text[total] = '\0';
    *ret_text = text;
    return 0;
}
