/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for the receiving side of sealing: the first byte picks the decoder, the rest is
 * the input. Even first bytes open the rest as a sealed packet (twice, so the replay path runs
 * too) with a keyring holding the cluster-derived key and one extra key; odd first bytes parse the
 * rest as a key file. Seeds include a valid packet sealed at FUZZ_NOW_MS for cluster "fuzz".
 */
#include <stdint.h>
#include <string.h>

#include "net/seal.h"

#define FUZZ_NOW_MS 1700000000000ull

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const uint8_t *in = data + 1;
    size_t len = size - 1;
    if (data[0] & 1) {
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
    for (int i = 0; i < 2; i++)
        exo_seal_open(seal, in, len, FUZZ_NOW_MS, out, sizeof(out), &out_len, NULL);
    exo_seal_free(seal);
    return 0;
}
