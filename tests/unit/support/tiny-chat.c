/* SPDX-License-Identifier: Apache-2.0 */
/* A tiny model with a chat vocabulary (see tiny-chat.h). */
#include "support/tiny-chat.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "engine/tokenizer-int.h"
#include "support/gguf-writer.h"
#include "support/tiny-model.h"

/* Merges make a few common words single tokens, so encoding does more than split bytes. */
static const char *const merges[] = {"t h", "th e", "\xc4\xa0 th", "\xc4\xa0th e", "e r",
                                     "i n", "o n",  "a n",         "an d",         "\xc4\xa0 a"};
static const char *const merged[] = {"th",
                                     "the",
                                     "\xc4\xa0th",
                                     "\xc4\xa0the",
                                     "er",
                                     "in",
                                     "on",
                                     "an",
                                     "and",
                                     "\xc4\xa0"
                                     "a"};

void tiny_chat_model_save(const char *path)
{
    struct tiny_config cfg;
    tiny_config_default(&cfg, "llama");
    cfg.n_vocab = TINY_CHAT_VOCAB;
    struct gguf_writer *w = tiny_model_writer(&cfg);

    static char bytes[256][3];
    static char fillers[TINY_CHAT_VOCAB][12];
    const char *tokens[TINY_CHAT_VOCAB];
    int32_t types[TINY_CHAT_VOCAB];
    size_t n_merged = sizeof(merged) / sizeof(merged[0]);
    for (unsigned b = 0; b < 256; b++) {
        bytes[b][exo_tok_bpe_byte_char((uint8_t)b, bytes[b])] = '\0';
        tokens[b] = bytes[b];
        types[b] = EXO_TOK_TYPE_NORMAL;
    }
    tokens[TINY_CHAT_IM_START] = "<|im_start|>";
    tokens[TINY_CHAT_IM_END] = "<|im_end|>";
    tokens[TINY_CHAT_EOT] = "<|endoftext|>";
    for (int t = TINY_CHAT_IM_START; t <= TINY_CHAT_EOT; t++)
        types[t] = EXO_TOK_TYPE_CONTROL;
    for (int t = TINY_CHAT_EOT + 1; t < TINY_CHAT_VOCAB; t++) {
        size_t i = (size_t)(t - TINY_CHAT_EOT - 1);
        if (i < n_merged) {
            tokens[t] = merged[i];
        } else {
            snprintf(fillers[t], sizeof(fillers[t]), "w%d", t);
            tokens[t] = fillers[t];
        }
        types[t] = EXO_TOK_TYPE_NORMAL;
    }
    gguf_writer_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_writer_str(w, "tokenizer.ggml.pre", "gpt-2");
    gguf_writer_arr_str(w, "tokenizer.ggml.tokens", tokens, TINY_CHAT_VOCAB);
    gguf_writer_arr(w, "tokenizer.ggml.token_type", EXO_GGUF_INT32, types, TINY_CHAT_VOCAB);
    gguf_writer_arr_str(w, "tokenizer.ggml.merges", merges, sizeof(merges) / sizeof(merges[0]));
    gguf_writer_u32(w, "tokenizer.ggml.bos_token_id", TINY_CHAT_EOT);
    gguf_writer_u32(w, "tokenizer.ggml.eos_token_id", TINY_CHAT_EOT);
    gguf_writer_str(w, "tokenizer.chat_template", "chatml");
    if (gguf_writer_save(w, path) != 0) {
        fprintf(stderr, "tiny-chat: cannot write %s\n", path);
        abort();
    }
    gguf_writer_free(w);
}

void tiny_chat_model_path(const char *stem, char *buf, size_t size)
{
    const char *dir = getenv("EXO_TEST_TMP");
    snprintf(buf, size, "%s/%s-%d.gguf", dir && *dir ? dir : "/tmp", stem, (int)getpid());
}
