/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Text to token ids and back, for the vocabularies llama.cpp's GGUF converter writes:
 *
 *   tokenizer.ggml.model = "gpt2"   byte-level BPE: merges ranked by order, the GPT-2 byte <->
 *                                   unicode mapping, and the pre-tokenizer regexes that
 *                                   tokenizer.ggml.pre names (default, gpt-2, smollm, llama3,
 *                                   qwen2 and their aliases)
 *   tokenizer.ggml.model = "llama"  SentencePiece BPE: scores, byte fallback <0xXX>, U+2581 for
 *                                   spaces, add_space_prefix
 *
 * The goal is to produce exactly the ids llama.cpp produces for the same file and text (the
 * oracle in tests/data/oracle/ checks it); docs/internals/tokenizer.md lists where and why we
 * differ (only on malformed UTF-8 and broken vocabularies).
 *
 * A tokenizer is immutable after creation: encode and the detokenizer may run on any number of
 * threads at once. It copies what it needs, so the exo_gguf may be closed afterwards. Pointers
 * passed to these functions are borrowed for the call unless a comment says otherwise.
 */
#ifndef EXO_ENGINE_TOKENIZER_H
#define EXO_ENGINE_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"
#include "engine/gguf.h"

/* Hard caps on what a GGUF vocabulary may hold and on one encode call. The largest real
 * vocabularies have about 262k tokens and 300k merges. */
#define EXO_TOKENIZER_MAX_VOCAB     (1u << 21)
#define EXO_TOKENIZER_MAX_MERGES    (1u << 22)
#define EXO_TOKENIZER_MAX_TOKEN_LEN (16u << 10)
#define EXO_TOKENIZER_MAX_TEXT      (64u << 20)

/* The tokenizer models this file implements, for messages. */
#define EXO_TOKENIZER_SUPPORTED_MODELS "gpt2 (byte-level BPE), llama (SentencePiece BPE)"

struct exo_tokenizer;

/* Build the tokenizer that g's tokenizer.ggml.* metadata describes. g is borrowed and may be
 * closed once this returns; *ret is owned by the caller (exo_tokenizer_free). A malformed or
 * hostile vocabulary gives EXO_EFORMAT / EXO_ERANGE / EXO_ETOOBIG, an unknown model or
 * pre-tokenizer EXO_EUNSUPPORTED, each with a sentence in diag (which may be NULL). */
int exo_tokenizer_from_gguf(const struct exo_gguf *g, struct exo_tokenizer **ret,
                            struct exo_diag *diag);
void exo_tokenizer_free(struct exo_tokenizer *t);

int32_t exo_tokenizer_vocab_size(const struct exo_tokenizer *t);

/* "gpt2" or "llama", and the pre-tokenizer name as the file gave it ("default" when absent);
 * static or owned by t. */
const char *exo_tokenizer_model(const struct exo_tokenizer *t);
const char *exo_tokenizer_pre(const struct exo_tokenizer *t);

/* Tokens for text (len bytes, any bytes allowed; text may be NULL when len is 0).
 * add_special: BOS (and EOS) as the model's metadata says (tokenizer.ggml.add_bos_token /
 * add_eos_token, with llama.cpp's defaults when absent). parse_special: text like
 * "<|im_start|>" becomes the control token instead of being split; user-defined tokens are
 * always matched whole, as in llama.cpp. *ret_tokens is owned by the caller (exo_free) and is
 * set (possibly to an empty array) only on success. EXO_ETOOBIG when len exceeds
 * EXO_TOKENIZER_MAX_TEXT. */
int exo_tokenizer_encode(const struct exo_tokenizer *t, const char *text, size_t len,
                         bool add_special, bool parse_special, int32_t **ret_tokens, size_t *ret_n);

int32_t exo_tokenizer_bos(const struct exo_tokenizer *t); /* -1 if none */
int32_t exo_tokenizer_eos(const struct exo_tokenizer *t);
int32_t exo_tokenizer_eot(const struct exo_tokenizer *t);
/* Whether encode with add_special prepends BOS / appends EOS. */
bool exo_tokenizer_adds_bos(const struct exo_tokenizer *t);
bool exo_tokenizer_adds_eos(const struct exo_tokenizer *t);

/* End of generation: eos, eot, eom, the FIM repo/separator/pad tokens and the end-of-turn tokens
 * of known templates (<|im_end|>, <|eot_id|>, <|end|>, <end_of_turn>, ...), like llama.cpp's EOG
 * set. False for ids out of range. */
bool exo_tokenizer_is_eog(const struct exo_tokenizer *t, int32_t tok);

/* Exact token text (as stored in the vocabulary, e.g. "Ġthe" for byte-level BPE) -> id, or -1.
 * piece is borrowed. */
int32_t exo_tokenizer_find(const struct exo_tokenizer *t, const char *piece, size_t len);

/* The bytes tok stands for, what the detokenizer emits for it with render_special (llama.cpp's
 * token_to_piece with special = true): borrowed from t, not NUL-terminated, not necessarily
 * valid UTF-8 on its own; NULL when tok is out of range. */
const char *exo_tokenizer_piece(const struct exo_tokenizer *t, int32_t tok, size_t *ret_len);

/* The vocabulary text of tok (borrowed from t, not NUL-terminated), or NULL when out of range. */
const char *exo_tokenizer_token_text(const struct exo_tokenizer *t, int32_t tok, size_t *ret_len);

/*
 * Streaming detokenizer: appends the bytes of each token to out. The output only ever contains
 * complete, valid UTF-8: a character split across tokens is held back in `pending` until it is
 * complete, and invalid sequences become U+FFFD (one per maximal invalid subpart, as Unicode
 * recommends). Control and unknown tokens render as their text only when render_special;
 * user-defined tokens always do (as llama.cpp's token_to_piece). exo_detok_flush ends the
 * stream: a held-back partial character becomes U+FFFD.
 *
 * out is borrowed; both return 0, EXO_ERANGE for a token id out of range (nothing appended), or
 * out's error (EXO_ENOMEM / EXO_ETOOBIG).
 */
struct exo_detok {
    uint8_t pending[8];
    uint8_t n_pending;
    bool render_special;
};

void exo_detok_init(struct exo_detok *d, bool render_special);
int exo_detok_push(const struct exo_tokenizer *t, struct exo_detok *d, int32_t tok,
                   struct exo_buf *out);
int exo_detok_flush(struct exo_detok *d, struct exo_buf *out);

#endif
