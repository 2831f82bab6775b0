/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A tiny random model that a session can serve: the weights of tiny-model.h plus a byte-level BPE
 * vocabulary (the 256 byte tokens, a few merges, ChatML's control tokens) and a ChatML template,
 * so runner and API tests can tokenize, format conversations and generate without the real
 * model. Its text is noise, but the same seed and prompt always give the same noise.
 */
#ifndef EXO_TEST_TINY_CHAT_H
#define EXO_TEST_TINY_CHAT_H

#include <stddef.h>
#include <stdint.h>

/* Token ids of the specials (the model's vocabulary has TINY_CHAT_VOCAB tokens). */
enum {
    TINY_CHAT_IM_START = 256,
    TINY_CHAT_IM_END = 257,
    TINY_CHAT_EOT = 258,
    TINY_CHAT_VOCAB = 320,
};

/* Write the model to path; aborts on failure (the test controls every input). */
void tiny_chat_model_save(const char *path);

/* A path for it under $EXO_TEST_TMP (or /tmp), unique to this process: buf gets
 * "<dir>/<stem>-<pid>.gguf". */
void tiny_chat_model_path(const char *stem, char *buf, size_t size);

#endif
