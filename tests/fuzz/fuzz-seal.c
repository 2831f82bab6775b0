/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for the receiving side of sealing. The first byte picks what the rest is:
 *   0 mod 3: a sealed packet, opened twice (the second time it must be refused) with a keyring
 *            holding the cluster-derived key and one extra key;
 *   1 mod 3: a key file;
 *   2 mod 3: a script for the replay cache: each byte seals a message at a timestamp the byte
 *            chooses (within +-127 s of now) or re-opens one sealed earlier, against a cache of
 *            8 nonces, checking that no message is ever accepted twice.
 * Seeds include a valid packet sealed at FUZZ_NOW_MS for cluster "fuzz".
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/seal.h"

#define FUZZ_NOW_MS 1700000000000ull

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SLOTS 8

/* Byte b: high bit set re-opens message b % SLOTS; otherwise seal a new one into slot b % SLOTS
 * at now + (b - 64) seconds, and open it. */
static void replay_script(const uint8_t *in, size_t len)
{
    struct exo_seal_config cfg = {.cluster = "fuzz", .replay_entries = 8};
    struct exo_seal *seal = NULL;
    if (exo_seal_create(&cfg, &seal) < 0)
        return;
    uint8_t msgs[SLOTS][EXO_SEAL_OVERHEAD + 1];
    size_t lens[SLOTS] = {0};
    bool accepted[SLOTS] = {false};
    uint8_t out[16];
    size_t out_len;
    for (size_t i = 0; i < len && i < 4096; i++) {
        size_t slot = in[i] % SLOTS;
        if (!(in[i] & 0x80)) {
            int64_t dt_ms = ((int64_t)in[i] - 64) * 1000;
            if (exo_seal_seal(seal, &in[i], 1, (uint64_t)((int64_t)FUZZ_NOW_MS + dt_ms), msgs[slot],
                              sizeof(msgs[slot]), &lens[slot]) < 0)
                abort();
            accepted[slot] = false;
        }
        if (!lens[slot])
            continue;
        int rc = exo_seal_open(seal, msgs[slot], lens[slot], FUZZ_NOW_MS, out, sizeof(out),
                               &out_len, NULL);
        if (rc == 0 && accepted[slot])
            abort(); /* a replay got through */
        if (rc == 0)
            accepted[slot] = true;
    }
    exo_seal_free(seal);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const uint8_t *in = data + 1;
    size_t len = size - 1;
    if (data[0] % 3 == 2) {
        replay_script(in, len);
        return 0;
    }
    if (data[0] % 3 == 1) {
        uint8_t keys[EXO_SEAL_MAX_KEYS][EXO_SEAL_KEY_BYTES];
        size_t n = 0;
        struct exo_diag diag;
        exo_seal_keyfile_parse((const char *)in, len, keys, EXO_SEAL_MAX_KEYS, &n, &diag);
        return 0;
    }
    struct exo_seal_config cfg = {.cluster = "fuzz", .replay_entries = 8, .max_message = 1 << 16};
    struct exo_seal *seal = NULL;
    if (exo_seal_create(&cfg, &seal) < 0)
        return 0;
    uint8_t extra[EXO_SEAL_KEY_BYTES];
    memset(extra, 0x5a, sizeof(extra));
    exo_seal_add_key(seal, extra);
    static uint8_t out[1 << 16];
    size_t out_len = 0;
    int first = exo_seal_open(seal, in, len, FUZZ_NOW_MS, out, sizeof(out), &out_len, NULL);
    int second = exo_seal_open(seal, in, len, FUZZ_NOW_MS, out, sizeof(out), &out_len, NULL);
    if (first == 0 && second == 0)
        abort();
    exo_seal_free(seal);
    return 0;
}
