/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Sealing of every gossip UDP packet and TCP frame, and the cluster keyring.
 *
 * A sealed message is (byte offsets):
 *
 *     0   4  magic "EXOG"
 *     4   1  version (1)
 *     5   4  key id: the first 4 bytes of a BLAKE2b fingerprint of the key that sealed it
 *     9   4  cluster tag: the first 4 bytes of a BLAKE2b hash of the cluster label
 *    13  24  nonce (random; XChaCha20's 192-bit nonces make random choice safe)
 *    37   n  XChaCha20-Poly1305 ciphertext of (u64 LE sender wall-clock ms | payload), 16-byte tag
 *
 * The additional data is the 37-byte header followed by the cluster label, so the version, the key
 * id, the tag and the label are all authenticated. The cluster tag exists only so that a packet
 * from another cluster is counted as "wrong cluster" rather than as a forgery; it is public anyway
 * (mDNS advertises the cluster name).
 *
 * Keyring: one primary key seals, every key opens (the key id picks it), so a cluster rotates keys
 * by adding the new key everywhere, then making it primary everywhere, then removing the old one.
 * Without a key file the only key is derived from the cluster label: that gives integrity against
 * accidents and stray traffic, not secrecy.
 *
 * Replay protection: the sender's timestamp must be within +-window of ours (60 s by default) and
 * the nonce must not have been seen inside that window. Seen nonces live in a bounded cache; when a
 * flood fills it, the oldest entries are evicted and the window's lower edge moves up past them,
 * so a replay is still refused (a legitimate packet that old is refused too, which is the price of
 * a bounded cache). Every refusal is counted by reason.
 *
 * Threads: an exo_seal is used by one thread (the loop thread). Time is a parameter so that the
 * simulation can run it on a virtual clock.
 */
#ifndef EXO_NET_SEAL_H
#define EXO_NET_SEAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define EXO_SEAL_VERSION      1
#define EXO_SEAL_KEY_BYTES    32
#define EXO_SEAL_KEY_ID_BYTES 4
#define EXO_SEAL_MAX_KEYS     16
#define EXO_SEAL_HEADER_BYTES 37
/* Header, timestamp and authentication tag: what sealing adds to a payload. */
#define EXO_SEAL_OVERHEAD (EXO_SEAL_HEADER_BYTES + 8 + 16)
/* The largest sealed message accepted by default (push-pull frames of a full cluster fit). */
#define EXO_SEAL_MAX_MESSAGE (8u << 20)
/* Key files are a few lines; anything larger is not one. */
#define EXO_SEAL_KEYFILE_MAX 4096

/* Why an incoming message was refused; each reason has its own counter. */
enum exo_seal_drop {
    EXO_SEAL_DROP_TRUNCATED = 0, /* shorter than header and tag */
    EXO_SEAL_DROP_BAD_MAGIC,
    EXO_SEAL_DROP_BAD_VERSION,
    EXO_SEAL_DROP_WRONG_CLUSTER,
    EXO_SEAL_DROP_UNKNOWN_KEY,
    EXO_SEAL_DROP_AUTH,
    EXO_SEAL_DROP_STALE,
    EXO_SEAL_DROP_REPLAYED,
    EXO_SEAL_DROP_TOO_BIG,
    EXO_SEAL_DROP__COUNT
};

struct exo_seal_stats {
    uint64_t sealed;
    uint64_t opened;
    uint64_t dropped[EXO_SEAL_DROP__COUNT];
};

struct exo_seal_config {
    const char *cluster;   /* cluster label, borrowed for the call; required, at most 255 bytes */
    uint32_t window_ms;    /* accepted clock difference either way; 0 means 60000 */
    size_t replay_entries; /* nonces remembered; 0 means 8192 */
    size_t max_message;    /* largest sealed message accepted; 0 means EXO_SEAL_MAX_MESSAGE */
};

struct exo_seal;

/* A sealer whose keyring holds only the key derived from cfg->cluster. *ret_seal is owned by the
 * caller (exo_seal_free). EXO_EINVAL for a missing or overlong label. */
int exo_seal_create(const struct exo_seal_config *cfg, struct exo_seal **ret_seal);
void exo_seal_free(struct exo_seal *seal);

/* Replace the keyring with keys[0..n) (borrowed, copied); keys[0] becomes primary. n >= 1. */
int exo_seal_set_keys(struct exo_seal *seal, const uint8_t (*keys)[EXO_SEAL_KEY_BYTES], size_t n);

/* Parse a key file (see exo_seal_keyfile_parse) and make its keys the keyring. The text is
 * borrowed. On failure the keyring is unchanged and diag says why. */
int exo_seal_load_keyfile(struct exo_seal *seal, const char *text, size_t len,
                          struct exo_diag *diag);

/* Add a key that opens but does not seal (EXO_EEXIST if present, EXO_ENOSPC if the ring is full).
 */
int exo_seal_add_key(struct exo_seal *seal, const uint8_t key[EXO_SEAL_KEY_BYTES]);
/* Make key the primary, adding it first if needed. */
int exo_seal_use_key(struct exo_seal *seal, const uint8_t key[EXO_SEAL_KEY_BYTES]);
/* Remove a secondary key (EXO_EBUSY for the primary, EXO_ENOENT if absent). */
int exo_seal_remove_key(struct exo_seal *seal, const uint8_t key[EXO_SEAL_KEY_BYTES]);

/* True while the keyring is the one derived from the cluster label (no secrecy). */
bool exo_seal_is_derived(const struct exo_seal *seal);
/* The fingerprint of a key, as carried in the header (mDNS advertises the primary's). */
void exo_seal_key_id(const uint8_t key[EXO_SEAL_KEY_BYTES], uint8_t ret_id[EXO_SEAL_KEY_ID_BYTES]);
void exo_seal_primary_id(const struct exo_seal *seal, uint8_t ret_id[EXO_SEAL_KEY_ID_BYTES]);

/* Seal payload[0..len) (borrowed) sent at now_ms (wall clock) into out[0..out_cap) (borrowed);
 * *ret_len = len + EXO_SEAL_OVERHEAD. EXO_ETOOBIG when it would exceed out_cap or max_message. */
int exo_seal_seal(struct exo_seal *seal, const void *payload, size_t len, uint64_t now_ms,
                  uint8_t *out, size_t out_cap, size_t *ret_len);

/* Open msg[0..len) (borrowed) received at now_ms into out[0..out_cap) (borrowed), which needs
 * len - EXO_SEAL_OVERHEAD bytes. Returns 0 and the payload length, or a negative code with the
 * reason counted and, when ret_reason is not NULL, stored there: EXO_ETRUNCATED, EXO_EFORMAT
 * (magic), EXO_EUNSUPPORTED (version), EXO_EPROTO (cluster), EXO_ENOENT (key id), EXO_EAUTH,
 * EXO_EREPLAY (stale or replayed), EXO_ETOOBIG. */
int exo_seal_open(struct exo_seal *seal, const uint8_t *msg, size_t len, uint64_t now_ms,
                  uint8_t *out, size_t out_cap, size_t *ret_len, enum exo_seal_drop *ret_reason);

void exo_seal_get_stats(const struct exo_seal *seal, struct exo_seal_stats *ret_stats);
/* Short snake_case name of a reason ("auth_failed"), for logs and metric labels. Never NULL. */
const char *exo_seal_drop_name(enum exo_seal_drop reason);

/*
 * Key files, as `exo keygen` writes them: UTF-8 text, at most EXO_SEAL_KEYFILE_MAX bytes, one key
 * per line in standard base64 (44 characters for 32 bytes), blank lines and lines starting with
 * '#' ignored, the first key primary, at most EXO_SEAL_MAX_KEYS keys, no duplicates.
 * Keys go to ret_keys[0..max) (borrowed; the caller zeroes them after use). diag names the line.
 */
int exo_seal_keyfile_parse(const char *text, size_t len, uint8_t (*ret_keys)[EXO_SEAL_KEY_BYTES],
                           size_t max, size_t *ret_n, struct exo_diag *diag);

/* A new key file with one fresh random key. *ret_text is NUL-terminated and owned by the caller,
 * who frees it with exo_free (after zeroing it: it is a secret). */
int exo_seal_keygen(char **ret_text);

#endif
