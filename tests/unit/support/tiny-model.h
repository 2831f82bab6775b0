/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tiny random models for engine tests, written as real GGUF files: a few layers, a small
 * vocabulary, random weights quantized to a chosen type per tensor (every supported type appears
 * somewhere), plus a plain double-precision reference forward pass over the same dequantized
 * weights to compare the engine's logits with.
 */
#ifndef EXO_TEST_TINY_MODEL_H
#define EXO_TEST_TINY_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "support/gguf-writer.h"

struct tiny_config {
    const char *arch;   /* "llama" or "qwen2" */
    uint32_t n_vocab, n_embd, n_layer, n_head, n_head_kv, n_ff;
    float rope_base, norm_eps;
    bool tied_output;
    uint64_t seed;
    /* Weight types per layer (cycled): q, k, v, o, gate, up, down. */
    const uint32_t (*types)[7];
    size_t n_types;
    uint32_t embd_type, output_type;
};

/* A config with every supported type placed somewhere, for 2 layers of width 256. */
void tiny_config_default(struct tiny_config *cfg, const char *arch);

/* The model as a GGUF image in memory (free() the data). */
void tiny_model_build(const struct tiny_config *cfg, uint8_t **ret_data, size_t *ret_size);

/* The same writer before finishing, for tests that corrupt or extend the model. */
struct gguf_writer *tiny_model_writer(const struct tiny_config *cfg);

/* Reference logits [n_tokens, n_vocab] (row t after tokens[0..t]) computed in double from the
 * dequantized weights of the GGUF image; *ret owned by the caller (free()). */
void tiny_model_reference(const uint8_t *gguf, size_t size, const int32_t *tokens, int n_tokens,
                          double **ret);

#endif
