/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals shared by tokenizer.c (loading, special tokens, detokenizer), tokenizer-bpe.c
 * (byte-level BPE and its pre-tokenizers) and tokenizer-spm.c (SentencePiece BPE).
 *
 * A tokenizer is built from a struct exo_tok_spec: the raw arrays and values of the
 * tokenizer.ggml.* metadata. exo_tokenizer_from_gguf fills one from a GGUF file; the fuzz target
 * fills one from static arrays, which is why the builder is visible here.
 */
#ifndef EXO_ENGINE_TOKENIZER_INT_H
#define EXO_ENGINE_TOKENIZER_INT_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "engine/tokenizer.h"

/* Token attributes, a bitmask as in llama.cpp (a token may be CONTROL and UNUSED). */
#define EXO_TOK_NORMAL  (1u << 0)
#define EXO_TOK_UNKNOWN (1u << 1)
#define EXO_TOK_CONTROL (1u << 2)
#define EXO_TOK_USER    (1u << 3)
#define EXO_TOK_UNUSED  (1u << 4)
#define EXO_TOK_BYTE    (1u << 5)

/* tokenizer.ggml.token_type values as the converter writes them. */
enum exo_tok_type {
    EXO_TOK_TYPE_NORMAL = 1,
    EXO_TOK_TYPE_UNKNOWN = 2,
    EXO_TOK_TYPE_CONTROL = 3,
    EXO_TOK_TYPE_USER_DEFINED = 4,
    EXO_TOK_TYPE_UNUSED = 5,
    EXO_TOK_TYPE_BYTE = 6,
};

enum exo_tok_kind {
    EXO_TOK_BPE, /* "gpt2" */
    EXO_TOK_SPM, /* "llama" */
};

/* Special token ids read from metadata (tokenizer.ggml.<name>_token_id). */
enum exo_tok_special {
    EXO_TOK_SP_BOS,
    EXO_TOK_SP_EOS,
    EXO_TOK_SP_EOT,
    EXO_TOK_SP_EOM,
    EXO_TOK_SP_UNK,
    EXO_TOK_SP_FIM_PAD,
    EXO_TOK_SP_FIM_REP,
    EXO_TOK_SP_FIM_SEP,
    EXO_TOK_SP_COUNT
};

/* The raw vocabulary description. Every pointer is borrowed for the duration of the build. */
struct exo_tok_spec {
    struct exo_gguf_str model; /* tokenizer.ggml.model */
    struct exo_gguf_str pre;   /* tokenizer.ggml.pre; ptr NULL when absent */
    const struct exo_gguf_str *tokens;
    uint64_t n_tokens;
    const void *scores; /* packed little-endian FLOAT32 or INT32; NULL when absent */
    enum exo_gguf_type scores_type;
    uint64_t n_scores;
    const void *types; /* packed little-endian INT32; NULL when absent */
    uint64_t n_types;
    const struct exo_gguf_str *merges; /* NULL when absent */
    uint64_t n_merges;
    int64_t special[EXO_TOK_SP_COUNT];         /* -1 when absent */
    int8_t add_bos, add_eos, add_space_prefix; /* -1 when absent, else 0 or 1 */
};

/* A spec with nothing set: every optional field absent. */
void exo_tok_spec_init(struct exo_tok_spec *spec);

/* Build a tokenizer from spec; *ret is owned by the caller (exo_tokenizer_free). */
int exo_tokenizer_from_spec(const struct exo_tok_spec *spec, struct exo_tokenizer **ret,
                            struct exo_diag *diag);

struct exo_tok_token {
    uint32_t text_off, text_len;   /* vocabulary text, in pool */
    uint32_t piece_off, piece_len; /* what the detokenizer emits, in pool */
    float score;
    uint32_t attr; /* EXO_TOK_* */
};

/* Open-addressing map from a 64-bit key to two 32-bit values; used for the BPE merge ranks
 * (key = left id << 32 | right id) and the special-token trie (key = node << 8 | byte). */
struct exo_tok_map_entry {
    uint64_t key; /* UINT64_MAX = empty */
    uint32_t a, b;
};

struct exo_tok_map {
    struct exo_tok_map_entry *slots; /* owned */
    size_t mask;                     /* size - 1; size is a power of two */
    size_t count;
};

/* The regexes of one pre-tokenizer, applied in order: each one splits every piece the previous
 * one produced into its matches and the gaps between them. */
#define EXO_TOK_MAX_REGEX 4

struct exo_tokenizer {
    enum exo_tok_kind kind;
    char *model_name; /* owned */
    char *pre_name;   /* owned */
    uint64_t seed;    /* hash seed, random per tokenizer against crafted collisions */

    uint32_t n_tokens;
    struct exo_tok_token *tokens; /* owned, n_tokens */
    char *pool;                   /* owned: token texts and pieces */
    uint32_t *text_index;         /* owned: id + 1 per slot, 0 = empty */
    size_t text_index_mask;
    uint32_t max_token_len;

    int32_t special[EXO_TOK_SP_COUNT]; /* -1 = none */
    bool add_bos, add_eos, add_space_prefix, ignore_merges;
    int32_t *eog; /* owned, sorted ids */
    uint32_t n_eog;

    /* Tokens matched whole in the text before any splitting (CONTROL, USER_DEFINED and UNKNOWN
     * attributes), in llama.cpp's order: longest text first, then lowest id. */
    int32_t *specials; /* owned */
    uint32_t n_specials;
    uint32_t n_user_specials; /* of those, matched even without parse_special */
    uint32_t *special_rank;   /* owned, n_tokens: position in specials, or UINT32_MAX */
    struct exo_tok_map trie;
    int32_t *trie_token; /* owned, per node: the special token ending there, or -1 */
    uint32_t n_trie_nodes;

    /* BPE */
    struct exo_tok_map merges;     /* (left, right) -> a = rank, b = merged token */
    int32_t byte_token[256];       /* token of the byte-level character of each byte, or -1 */
    int32_t byte_fallback[256][2]; /* what llama.cpp emits for a byte whose character is not
                                      a token (its UTF-8 bytes looked up one by one), -1 = none */
    pcre2_code *regex[EXO_TOK_MAX_REGEX];
    int n_regex;
    pcre2_general_context *re_alloc; /* routes PCRE2's allocations through exo_malloc */
    pcre2_match_context *re_match;   /* shared read-only by concurrent encodes */

    /* SPM */
    int32_t spm_byte[256]; /* <0xXX> (or the one-byte token) for byte fallback, -1 = none */
};

/* A growable array of token ids; the caller frees ids with exo_free. */
struct exo_tok_vec {
    int32_t *ids; /* owned */
    size_t n, cap;
};

int exo_tok_vec_push(struct exo_tok_vec *v, int32_t id);

/* Hash of len bytes at data (borrowed). */
uint64_t exo_tok_hash(uint64_t seed, const void *data, size_t len);
/* Exact vocabulary text (borrowed) -> id, or -1. */
int32_t exo_tok_lookup(const struct exo_tokenizer *t, const char *text, size_t len);
/* The text of token id, borrowed from t. */
static inline const char *exo_tok_text(const struct exo_tokenizer *t, int32_t id)
{
    return t->pool + t->tokens[id].text_off;
}

/* A map for up to `expected` keys; m is caller storage, its slots owned by it (map_free). */
int exo_tok_map_init(struct exo_tok_map *m, size_t expected);
void exo_tok_map_free(struct exo_tok_map *m);
/* The entry for key (borrowed from m), or NULL. */
const struct exo_tok_map_entry *exo_tok_map_get(const struct exo_tok_map *m, uint64_t seed,
                                                uint64_t key);
/* Insert unless present; *ret_inserted says which. The entry is borrowed from m. The map
 * never grows: init sizes it. */
struct exo_tok_map_entry *exo_tok_map_put(struct exo_tok_map *m, uint64_t seed, uint64_t key,
                                          bool *ret_inserted);

/* Byte-level BPE (tokenizer-bpe.c). init chooses the pre-tokenizer, compiles its regexes and
 * loads the merges (spec borrowed); encode appends the tokens of one text fragment (borrowed,
 * no special tokens in it) to out (borrowed). */
int exo_tok_bpe_init(struct exo_tokenizer *t, const struct exo_tok_spec *spec,
                     struct exo_diag *diag);
void exo_tok_bpe_fini(struct exo_tokenizer *t);
int exo_tok_bpe_encode(const struct exo_tokenizer *t, const char *text, size_t len,
                       struct exo_tok_vec *out);
/* The byte a byte-level BPE character (one code point) stands for, or -1; and the other way:
 * the UTF-8 of the character that stands for byte b (1 or 2 bytes written to out). */
int exo_tok_bpe_char_byte(uint32_t cp);
size_t exo_tok_bpe_byte_char(uint8_t b, char out[2]);

/* SentencePiece BPE (tokenizer-spm.c): encode one fragment (borrowed) onto out (borrowed);
 * space_prefix adds the leading space llama.cpp adds at the start and after special tokens. */
int exo_tok_spm_init(struct exo_tokenizer *t, struct exo_diag *diag);
int exo_tok_spm_encode(const struct exo_tokenizer *t, const char *text, size_t len,
                       bool space_prefix, struct exo_tok_vec *out);

/* A binary min-heap of merge candidates shared by both BPE flavours. Lower `key` pops first;
 * ties pop the leftmost symbol first, as llama.cpp's priority queues do. */
struct exo_tok_cand {
    uint64_t key;  /* BPE: rank; SPM: order-preserving transform of -score */
    int32_t left;  /* symbol index */
    int32_t right; /* symbol index */
    uint32_t len;  /* bytes of left + right when pushed, to detect stale entries */
    int32_t id;    /* the token left + right becomes */
};

struct exo_tok_heap {
    struct exo_tok_cand *items; /* owned */
    size_t n, cap;
};

/* push copies *c; pop copies the best candidate to *ret. free releases items (h is caller
 * storage). */
int exo_tok_heap_push(struct exo_tok_heap *h, const struct exo_tok_cand *c);
bool exo_tok_heap_pop(struct exo_tok_heap *h, struct exo_tok_cand *ret);
void exo_tok_heap_free(struct exo_tok_heap *h);

/* A symbol of the merge loops: a byte range of the fragment in a doubly linked list. */
struct exo_tok_sym {
    uint32_t start, len; /* len 0 = merged away */
    int32_t prev, next;  /* -1 at the ends */
    int32_t id;          /* token of the range, or -1 */
};

#endif
