/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for the GGUF reader: any bytes are opened as a GGUF image; when the reader accepts
 * them, every metadata value and the first and last byte of every tensor are touched so the
 * sanitizers see any pointer that escaped the input.
 */
#include <stddef.h>
#include <stdint.h>

#include "engine/gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct exo_gguf *g = NULL;
    struct exo_diag diag;
    if (exo_gguf_open_memory(data, size, "fuzz.gguf", &g, &diag) != 0)
        return 0;
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < exo_gguf_kv_count(g); i++) {
        const struct exo_gguf_kv *kv = exo_gguf_kv_at(g, i);
        if (exo_gguf_find(g, kv->key) != kv)
            __builtin_trap(); /* keys are unique, so lookup finds this very record */
        if (kv->type == EXO_GGUF_STRING && kv->v.str.len)
            sink ^= (uint8_t)kv->v.str.ptr[kv->v.str.len - 1];
        if (kv->type == EXO_GGUF_ARRAY && kv->v.arr.strs) {
            for (uint64_t j = 0; j < kv->v.arr.count; j++)
                if (kv->v.arr.strs[j].len)
                    sink ^= (uint8_t)kv->v.arr.strs[j].ptr[kv->v.arr.strs[j].len - 1];
        }
    }
    for (size_t i = 0; i < exo_gguf_tensor_count(g); i++) {
        const struct exo_gguf_tensor *t = exo_gguf_tensor_at(g, i);
        const uint8_t *p = t->data;
        if (t->size)
            sink ^= p[0] ^ p[t->size - 1];
    }
    (void)sink;
    exo_gguf_close(g);
    return 0;
}
