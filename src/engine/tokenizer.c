/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tokenizer: loading a vocabulary, special tokens, the encode driver and the streaming
 * detokenizer. The merge algorithms live in tokenizer-bpe.c and tokenizer-spm.c.
 *
 * Loading follows llama.cpp's llama_vocab::load so that the same file gives the same
 * tokenizer: the same default special ids per model type, the same add_bos/add_eos defaults, the
 * same end-of-generation set (found partly by token text, since converters do not record it),
 * and the same rule for which tokens are matched whole in the text (CONTROL, USER_DEFINED and
 * UNKNOWN attributes). Where llama.cpp would assert or throw on a bad file, we return an error.
 *
 * Special tokens are matched as llama.cpp's tokenizer_st_partition does: every special token in
 * turn, longest text first, claims its non-overlapping occurrences (leftmost first) in the text
 * not yet claimed. That is not the same as a leftmost-longest scan when special texts overlap, so
 * we keep its order. We find all occurrences in one pass over the text with a trie and then
 * replay them in that order, which keeps the cost linear in the text for real vocabularies.
 */
#include "engine/tokenizer-int.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/alloc.h"
#include "core/clock.h"

/* Candidates of the special-token pass per byte of text before we call the text hostile. Real
 * vocabularies nest a few special texts at most (Gemma's runs of spaces: about 30). */
#define MAX_CANDIDATES_PER_BYTE 64

/* ---- small shared containers ------------------------------------------------------------- */

int exo_tok_vec_push(struct exo_tok_vec *v, int32_t id)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        int32_t *ids = exo_realloc(v->ids, exo_mul_size(cap, sizeof(*ids)));
        if (!ids)
            return EXO_ENOMEM;
        v->ids = ids;
        v->cap = cap;
    }
    v->ids[v->n++] = id;
    return 0;
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

uint64_t exo_tok_hash(uint64_t seed, const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t h = seed ^ (len * 0x9e3779b97f4a7c15ull);
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = mix64(h ^ w) + 0x9e3779b97f4a7c15ull;
        p += 8;
        len -= 8;
    }
    uint64_t tail = 0;
    for (size_t i = 0; i < len; i++)
        tail |= (uint64_t)p[i] << (8 * i);
    return mix64(h ^ tail);
}

int exo_tok_map_init(struct exo_tok_map *m, size_t expected)
{
    size_t size = 16;
    while (size < 2 * expected)
        size *= 2;
    m->slots = exo_malloc(exo_mul_size(size, sizeof(*m->slots)));
    if (!m->slots)
        return EXO_ENOMEM;
    for (size_t i = 0; i < size; i++)
        m->slots[i].key = UINT64_MAX;
    m->mask = size - 1;
    m->count = 0;
    return 0;
}

void exo_tok_map_free(struct exo_tok_map *m)
{
    exo_free(m->slots);
    m->slots = NULL;
}

const struct exo_tok_map_entry *exo_tok_map_get(const struct exo_tok_map *m, uint64_t seed,
                                                uint64_t key)
{
    for (size_t i = mix64(key ^ seed) & m->mask;; i = (i + 1) & m->mask) {
        if (m->slots[i].key == key)
            return &m->slots[i];
        if (m->slots[i].key == UINT64_MAX)
            return NULL;
    }
}

struct exo_tok_map_entry *exo_tok_map_put(struct exo_tok_map *m, uint64_t seed, uint64_t key,
                                          bool *ret_inserted)
{
    for (size_t i = mix64(key ^ seed) & m->mask;; i = (i + 1) & m->mask) {
        if (m->slots[i].key == key) {
            *ret_inserted = false;
            return &m->slots[i];
        }
        if (m->slots[i].key == UINT64_MAX) {
            m->slots[i].key = key;
            m->count++;
            *ret_inserted = true;
            return &m->slots[i];
        }
    }
}

static bool cand_less(const struct exo_tok_cand *a, const struct exo_tok_cand *b)
{
    return a->key < b->key || (a->key == b->key && a->left < b->left);
}

int exo_tok_heap_push(struct exo_tok_heap *h, const struct exo_tok_cand *c)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        struct exo_tok_cand *items = exo_realloc(h->items, exo_mul_size(cap, sizeof(*items)));
        if (!items)
            return EXO_ENOMEM;
        h->items = items;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!cand_less(c, &h->items[parent]))
            break;
        h->items[i] = h->items[parent];
        i = parent;
    }
    h->items[i] = *c;
    return 0;
}

bool exo_tok_heap_pop(struct exo_tok_heap *h, struct exo_tok_cand *ret)
{
    if (h->n == 0)
        return false;
    *ret = h->items[0];
    struct exo_tok_cand last = h->items[--h->n];
    size_t i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= h->n)
            break;
        if (child + 1 < h->n && cand_less(&h->items[child + 1], &h->items[child]))
            child++;
        if (!cand_less(&h->items[child], &last))
            break;
        h->items[i] = h->items[child];
        i = child;
    }
    if (h->n > 0)
        h->items[i] = last;
    return true;
}

void exo_tok_heap_free(struct exo_tok_heap *h)
{
    exo_free(h->items);
    h->items = NULL;
    h->n = h->cap = 0;
}

int32_t exo_tok_lookup(const struct exo_tokenizer *t, const char *text, size_t len)
{
    if (len == 0 || len > t->max_token_len)
        return -1;
    const uint32_t *index = t->text_index;
    for (size_t i = exo_tok_hash(t->seed, text, len) & t->text_index_mask;;
         i = (i + 1) & t->text_index_mask) {
        if (index[i] == 0)
            return -1;
        const struct exo_tok_token *tok = &t->tokens[index[i] - 1];
        if (tok->text_len == len && memcmp(t->pool + tok->text_off, text, len) == 0)
            return (int32_t)(index[i] - 1);
    }
}

/* ---- loading ------------------------------------------------------------------------------ */

void exo_tok_spec_init(struct exo_tok_spec *spec)
{
    memset(spec, 0, sizeof(*spec));
    for (int i = 0; i < EXO_TOK_SP_COUNT; i++)
        spec->special[i] = -1;
    spec->add_bos = spec->add_eos = spec->add_space_prefix = -1;
}

static const char *const special_keys[EXO_TOK_SP_COUNT] = {
    [EXO_TOK_SP_BOS] = "tokenizer.ggml.bos_token_id",
    [EXO_TOK_SP_EOS] = "tokenizer.ggml.eos_token_id",
    [EXO_TOK_SP_EOT] = "tokenizer.ggml.eot_token_id",
    [EXO_TOK_SP_EOM] = "tokenizer.ggml.eom_token_id",
    [EXO_TOK_SP_UNK] = "tokenizer.ggml.unknown_token_id",
    [EXO_TOK_SP_FIM_PAD] = "tokenizer.ggml.fim_pad_token_id",
    [EXO_TOK_SP_FIM_REP] = "tokenizer.ggml.fim_rep_token_id",
    [EXO_TOK_SP_FIM_SEP] = "tokenizer.ggml.fim_sep_token_id",
};

/* DeepSeek's "<｜end▁of▁sentence｜>" (fullwidth bars, U+2581 for spaces). */
#define DEEPSEEK_END \
    "<\xef\xbd\x9c"  \
    "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"

/* Texts that mark a token as one of the special kinds when the metadata does not say, from
 * llama.cpp's loader (llama-vocab.cpp). The first match in id order wins. */
static const char *const eot_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",      "<|end_of_text|>",
    "<EOT>",      "_<EOT>",     "[EOT]",   DEEPSEEK_END,    "<end_of_utterance>",
};
static const char *const eom_texts[] = {"<|eom_id|>"};
static const char *const fim_pad_texts[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>",
                                            "[PAD]"};
static const char *const fim_rep_texts[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>",
                                            "<reponame>"};
static const char *const fim_sep_texts[] = {"<|file_sep|>"};
/* Every token with one of these texts ends generation. */
static const char *const eog_texts[] = {
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    DEEPSEEK_END,
    "[e~[",
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* The lowest id among the tokens whose text is in list, or -1. */
static int32_t first_with_text(const struct exo_tokenizer *t, const char *const *list, size_t n)
{
    int32_t best = -1;
    for (size_t i = 0; i < n; i++) {
        int32_t id = exo_tok_lookup(t, list[i], strlen(list[i]));
        if (id >= 0 && (best < 0 || id < best))
            best = id;
    }
    return best;
}

/* When metadata leaves special[which] unset, take the first token (by id) whose text is in
 * list, and make it a control token, as llama.cpp does. */
static void detect_special(struct exo_tokenizer *t, enum exo_tok_special which,
                           const char *const *list, size_t n)
{
    if (t->special[which] >= 0)
        return;
    int32_t id = first_with_text(t, list, n);
    if (id >= 0) {
        t->special[which] = id;
        t->tokens[id].attr |= EXO_TOK_CONTROL;
    }
}

static int int_cmp(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static void eog_remove(struct exo_tokenizer *t, int32_t id)
{
    for (uint32_t i = 0; i < t->n_eog; i++) {
        if (t->eog[i] == id) {
            memmove(&t->eog[i], &t->eog[i + 1], (t->n_eog - i - 1) * sizeof(*t->eog));
            t->n_eog--;
            return;
        }
    }
}

/* The token with this text if it is in the end-of-generation set, else -1. */
static int32_t eog_find_text(const struct exo_tokenizer *t, const char *text)
{
    int32_t id = exo_tok_lookup(t, text, strlen(text));
    for (uint32_t i = 0; id >= 0 && i < t->n_eog; i++)
        if (t->eog[i] == id)
            return id;
    return -1;
}

/* The end-of-generation set: FIM pad/repo/separator, every token with an end-of-turn text, and
 * eos/eot/eom; then llama.cpp's two exceptions for vocabularies where <|end|> or </s> do not end
 * generation. */
static int build_eog(struct exo_tokenizer *t)
{
    t->eog = exo_malloc((COUNT(eog_texts) + 6) * sizeof(*t->eog));
    if (!t->eog)
        return EXO_ENOMEM;
    const enum exo_tok_special first[] = {EXO_TOK_SP_FIM_PAD, EXO_TOK_SP_FIM_REP,
                                          EXO_TOK_SP_FIM_SEP};
    for (size_t i = 0; i < COUNT(first); i++)
        if (t->special[first[i]] >= 0)
            t->eog[t->n_eog++] = t->special[first[i]];
    for (size_t i = 0; i < COUNT(eog_texts); i++) {
        int32_t id = exo_tok_lookup(t, eog_texts[i], strlen(eog_texts[i]));
        if (id >= 0) {
            t->eog[t->n_eog++] = id;
            t->tokens[id].attr |= EXO_TOK_CONTROL;
        }
    }
    const enum exo_tok_special last[] = {EXO_TOK_SP_EOS, EXO_TOK_SP_EOT, EXO_TOK_SP_EOM};
    for (size_t i = 0; i < COUNT(last); i++)
        if (t->special[last[i]] >= 0)
            t->eog[t->n_eog++] = t->special[last[i]];
    qsort(t->eog, t->n_eog, sizeof(*t->eog), int_cmp);
    uint32_t n = 0;
    for (uint32_t i = 0; i < t->n_eog; i++)
        if (n == 0 || t->eog[n - 1] != t->eog[i])
            t->eog[n++] = t->eog[i];
    t->n_eog = n;

    int32_t end = eog_find_text(t, "<|end|>");
    bool call = eog_find_text(t, "<|call|>") >= 0 || eog_find_text(t, "<|calls|>") >= 0;
    if (end >= 0 && call &&
        (eog_find_text(t, "<|return|>") >= 0 || eog_find_text(t, "<|flush|>") >= 0)) {
        eog_remove(t, end);
        t->tokens[end].attr = EXO_TOK_USER;
    }
    int32_t s = eog_find_text(t, "</s>");
    if (s >= 0 && eog_find_text(t, "<|tool_response>") >= 0) {
        eog_remove(t, s);
        t->tokens[s].attr = EXO_TOK_NORMAL;
    }
    return 0;
}

static int special_cmp(const void *a, const void *b, void *arg)
{
    const struct exo_tokenizer *t = arg;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    uint32_t lx = t->tokens[x].text_len, ly = t->tokens[y].text_len;
    if (lx != ly)
        return lx > ly ? -1 : 1;
    return (x > y) - (x < y);
}

/* The tokens matched whole in the text, their priority and the trie that finds them. */
static int build_specials(struct exo_tokenizer *t)
{
    const uint32_t whole = EXO_TOK_CONTROL | EXO_TOK_USER | EXO_TOK_UNKNOWN;
    size_t total = 0;
    for (uint32_t id = 0; id < t->n_tokens; id++) {
        if (t->tokens[id].attr & whole) {
            t->n_specials++;
            total += t->tokens[id].text_len;
        }
    }
    t->specials = exo_malloc(exo_mul_size(t->n_specials + 1u, sizeof(*t->specials)));
    t->special_rank = exo_malloc(exo_mul_size(t->n_tokens, sizeof(*t->special_rank)));
    t->trie_token = exo_malloc(exo_mul_size(total + 1, sizeof(*t->trie_token)));
    if (!t->specials || !t->special_rank || !t->trie_token)
        return EXO_ENOMEM;
    int rc = exo_tok_map_init(&t->trie, total);
    if (rc != 0)
        return rc;

    uint32_t n = 0;
    for (uint32_t id = 0; id < t->n_tokens; id++) {
        uint32_t attr = t->tokens[id].attr;
        t->special_rank[id] = UINT32_MAX;
        if (attr & whole)
            t->specials[n++] = (int32_t)id;
        if ((attr & whole) && !(attr & (EXO_TOK_CONTROL | EXO_TOK_UNKNOWN)))
            t->n_user_specials++;
    }
    qsort_r(t->specials, n, sizeof(*t->specials), special_cmp, t);

    t->n_trie_nodes = 1;
    t->trie_token[0] = -1;
    for (uint32_t i = 0; i < n; i++) {
        int32_t id = t->specials[i];
        t->special_rank[id] = i;
        const uint8_t *text = (const uint8_t *)exo_tok_text(t, id);
        uint32_t node = 0;
        for (uint32_t k = 0; k < t->tokens[id].text_len; k++) {
            bool inserted;
            struct exo_tok_map_entry *e =
                exo_tok_map_put(&t->trie, t->seed, (uint64_t)node << 8 | text[k], &inserted);
            if (inserted) {
                e->a = t->n_trie_nodes;
                t->trie_token[t->n_trie_nodes++] = -1;
            }
            node = e->a;
        }
        t->trie_token[node] = id;
    }
    return 0;
}

/* UTF-8 length of the sequence starting with byte b, the way llama.cpp steps through text. */
static size_t utf8_len(uint8_t b)
{
    static const uint8_t lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lookup[b >> 4];
}

/* "<0xXX>" -> XX, or -1. */
static int byte_token_value(const char *s, size_t len)
{
    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>')
        return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* What the detokenizer emits for a token (llama.cpp's token_to_piece with special = true). */
static void make_piece(const struct exo_tokenizer *t, uint32_t id, struct exo_buf *pool)
{
    const struct exo_tok_token *tok = &t->tokens[id];
    /* A piece is never longer than its text, so after this reservation the pool does not move
     * and pointers into it stay valid while we append. */
    if (exo_buf_reserve(pool, tok->text_len) != 0)
        return;
    const char *text = (const char *)pool->data + tok->text_off;
    size_t len = tok->text_len;
    if (tok->attr & (EXO_TOK_CONTROL | EXO_TOK_UNKNOWN | EXO_TOK_USER)) {
        exo_buf_put(pool, text, len);
        return;
    }
    if (tok->attr & EXO_TOK_NORMAL) {
        for (size_t i = 0; i < len;) {
            const uint8_t *p = (const uint8_t *)text + i;
            size_t n = utf8_len(p[0]);
            if (n > len - i)
                n = len - i;
            if (t->kind == EXO_TOK_SPM) {
                if (n == 3 && memcmp(p, "\xe2\x96\x81", 3) == 0)
                    exo_buf_put_u8(pool, ' ');
                else
                    exo_buf_put(pool, p, n);
            } else {
                uint32_t cp = n == 1   ? p[0]
                              : n == 2 ? (uint32_t)(p[0] & 0x1f) << 6 | (p[1] & 0x3f)
                                       : UINT32_MAX;
                int b = cp == UINT32_MAX ? -1 : exo_tok_bpe_char_byte(cp);
                if (b >= 0)
                    exo_buf_put_u8(pool, (uint8_t)b);
                else
                    exo_buf_put(pool, p, n);
            }
            i += n;
        }
        return;
    }
    if (tok->attr & EXO_TOK_BYTE) {
        int b = byte_token_value(text, len);
        if (b >= 0)
            exo_buf_put_u8(pool, (uint8_t)b);
    }
}

static uint32_t attr_of_type(int32_t type)
{
    switch (type) {
    case EXO_TOK_TYPE_NORMAL:
        return EXO_TOK_NORMAL;
    case EXO_TOK_TYPE_UNKNOWN:
        return EXO_TOK_UNKNOWN;
    case EXO_TOK_TYPE_CONTROL:
        return EXO_TOK_CONTROL;
    case EXO_TOK_TYPE_USER_DEFINED:
        return EXO_TOK_USER;
    case EXO_TOK_TYPE_UNUSED:
        return EXO_TOK_UNUSED;
    case EXO_TOK_TYPE_BYTE:
        return EXO_TOK_BYTE;
    default:
        return 0; /* undefined: never emitted, never matched */
    }
}

static int32_t read_i32(const void *base, uint64_t i)
{
    int32_t v;
    memcpy(&v, (const uint8_t *)base + i * 4, 4);
    return v;
}

static float read_f32(const void *base, uint64_t i)
{
    float v;
    memcpy(&v, (const uint8_t *)base + i * 4, 4);
    return v;
}

/* Copy the token texts into the pool, index them and read scores and types. */
static int load_tokens(struct exo_tokenizer *t, const struct exo_tok_spec *spec,
                       struct exo_buf *pool, struct exo_diag *diag)
{
    if (spec->n_tokens == 0)
        return exo_diag_set(diag, EXO_EFORMAT, "tokenizer.ggml.tokens is empty");
    if (spec->n_tokens > EXO_TOKENIZER_MAX_VOCAB) {
        return exo_diag_set(diag, EXO_ETOOBIG, "tokenizer.ggml.tokens has %llu tokens (limit %u)",
                            (unsigned long long)spec->n_tokens, EXO_TOKENIZER_MAX_VOCAB);
    }
    if (spec->scores && spec->n_scores < spec->n_tokens) {
        return exo_diag_set(diag, EXO_EFORMAT,
                            "tokenizer.ggml.scores has %llu entries for %llu tokens",
                            (unsigned long long)spec->n_scores, (unsigned long long)spec->n_tokens);
    }
    if (spec->types && spec->n_types < spec->n_tokens) {
        return exo_diag_set(diag, EXO_EFORMAT,
                            "tokenizer.ggml.token_type has %llu entries for %llu tokens",
                            (unsigned long long)spec->n_types, (unsigned long long)spec->n_tokens);
    }
    t->n_tokens = (uint32_t)spec->n_tokens;
    t->tokens = exo_calloc(t->n_tokens, sizeof(*t->tokens));
    size_t index_size = 16;
    while (index_size < 2 * (size_t)t->n_tokens)
        index_size *= 2;
    t->text_index = exo_calloc(index_size, sizeof(*t->text_index));
    if (!t->tokens || !t->text_index)
        return EXO_ENOMEM;
    t->text_index_mask = index_size - 1;

    for (uint32_t id = 0; id < t->n_tokens; id++) {
        const struct exo_gguf_str *s = &spec->tokens[id];
        struct exo_tok_token *tok = &t->tokens[id];
        if (s->len > EXO_TOKENIZER_MAX_TOKEN_LEN) {
            return exo_diag_set(diag, EXO_ETOOBIG,
                                "tokenizer.ggml.tokens[%u] is %llu bytes long (limit %u)", id,
                                (unsigned long long)s->len, EXO_TOKENIZER_MAX_TOKEN_LEN);
        }
        /* llama.cpp reads token texts as C strings, so a NUL ends one early; an empty one gets
         * a placeholder name. */
        const char *nul = s->len ? memchr(s->ptr, '\0', (size_t)s->len) : NULL;
        size_t len = nul ? (size_t)(nul - s->ptr) : (size_t)s->len;
        tok->text_off = (uint32_t)pool->len;
        if (len == 0)
            exo_buf_printf(pool, "[EMPTY_%u]", id);
        else
            exo_buf_put(pool, s->ptr, len);
        if (pool->err)
            return pool->err == EXO_ETOOBIG
                       ? exo_diag_set(diag, EXO_ETOOBIG, "tokenizer.ggml.tokens: texts too large")
                       : pool->err;
        tok->text_len = (uint32_t)(pool->len - tok->text_off);
        if (tok->text_len > t->max_token_len)
            t->max_token_len = tok->text_len;
        if (spec->scores) {
            tok->score = spec->scores_type == EXO_GGUF_INT32 ? (float)read_i32(spec->scores, id)
                                                             : read_f32(spec->scores, id);
        }
        tok->attr = spec->types ? attr_of_type(read_i32(spec->types, id)) : EXO_TOK_NORMAL;
    }

    /* Index once all texts are in place (the pool moves while it grows). */
    for (uint32_t id = 0; id < t->n_tokens; id++) {
        const struct exo_tok_token *tok = &t->tokens[id];
        const char *text = (const char *)pool->data + tok->text_off;
        size_t i = exo_tok_hash(t->seed, text, tok->text_len) & t->text_index_mask;
        for (;; i = (i + 1) & t->text_index_mask) {
            uint32_t other = t->text_index[i];
            if (other == 0)
                break;
            const struct exo_tok_token *o = &t->tokens[other - 1];
            if (o->text_len == tok->text_len &&
                memcmp(pool->data + o->text_off, text, tok->text_len) == 0) {
                return exo_diag_set(diag, EXO_EFORMAT,
                                    "tokenizer.ggml.tokens: token %u repeats the text of token %u",
                                    id, other - 1);
            }
        }
        t->text_index[i] = id + 1;
    }
    return 0;
}

static int set_special_ids(struct exo_tokenizer *t, const struct exo_tok_spec *spec,
                           struct exo_diag *diag)
{
    for (int i = 0; i < EXO_TOK_SP_COUNT; i++)
        t->special[i] = -1;
    /* llama.cpp's defaults when the metadata is silent. */
    if (t->kind == EXO_TOK_SPM) {
        t->special[EXO_TOK_SP_BOS] = 1;
        t->special[EXO_TOK_SP_EOS] = 2;
        t->special[EXO_TOK_SP_UNK] = 0;
    } else {
        t->special[EXO_TOK_SP_BOS] = 11;
        t->special[EXO_TOK_SP_EOS] = 11;
    }
    for (int i = 0; i < EXO_TOK_SP_COUNT; i++) {
        if (t->special[i] >= (int64_t)t->n_tokens)
            t->special[i] = -1;
        if (spec->special[i] < 0)
            continue;
        if (spec->special[i] >= (int64_t)t->n_tokens) {
            return exo_diag_set(diag, EXO_ERANGE, "%s is %lld, outside the vocabulary (%u tokens)",
                                special_keys[i], (long long)spec->special[i], t->n_tokens);
        }
        t->special[i] = (int32_t)spec->special[i];
    }
    return 0;
}

static int set_flags(struct exo_tokenizer *t, const struct exo_tok_spec *spec,
                     struct exo_diag *diag)
{
    if (t->kind == EXO_TOK_SPM) {
        t->add_bos = true;
        t->add_space_prefix = true;
    }
    if (spec->add_space_prefix >= 0)
        t->add_space_prefix = spec->add_space_prefix;
    if (spec->add_bos >= 0)
        t->add_bos = spec->add_bos;
    if (spec->add_eos >= 0)
        t->add_eos = spec->add_eos;
    if (t->add_bos && t->special[EXO_TOK_SP_BOS] < 0) {
        return exo_diag_set(diag, EXO_EFORMAT,
                            "tokenizer.ggml.add_bos_token is true, but there is no BOS token");
    }
    if (t->add_eos && t->special[EXO_TOK_SP_EOS] < 0) {
        return exo_diag_set(diag, EXO_EFORMAT,
                            "tokenizer.ggml.add_eos_token is true, but there is no EOS token");
    }
    return 0;
}

static uint64_t random_seed(void)
{
    uint64_t seed;
    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed))
        seed = mix64(exo_clock_ns() ^ (uintptr_t)&seed);
    return seed;
}

int exo_tokenizer_from_spec(const struct exo_tok_spec *spec, struct exo_tokenizer **ret,
                            struct exo_diag *diag)
{
    struct exo_buf pool;
    exo_buf_init(&pool, UINT32_MAX);
    struct exo_tokenizer *t = exo_calloc(1, sizeof(*t));
    int rc = EXO_ENOMEM;
    if (!t)
        goto out;
    t->seed = random_seed();

    const struct exo_gguf_str *m = &spec->model;
    if (m->len == 4 && memcmp(m->ptr, "gpt2", 4) == 0) {
        t->kind = EXO_TOK_BPE;
    } else if (m->len == 5 && memcmp(m->ptr, "llama", 5) == 0) {
        t->kind = EXO_TOK_SPM;
    } else {
        rc = exo_diag_set(
            diag, EXO_EUNSUPPORTED, "tokenizer model '%.*s' is not supported (supported: %s)",
            (int)(m->len > 64 ? 64 : m->len), m->ptr ? m->ptr : "", EXO_TOKENIZER_SUPPORTED_MODELS);
        goto out;
    }
    t->model_name = exo_strdup(t->kind == EXO_TOK_BPE ? "gpt2" : "llama");
    if (!t->model_name)
        goto out;

    rc = load_tokens(t, spec, &pool, diag);
    if (rc != 0)
        goto out;
    t->pool = (char *)pool.data; /* the BPE/SPM setup looks tokens up */
    rc = t->kind == EXO_TOK_BPE ? exo_tok_bpe_init(t, spec, diag) : exo_tok_spm_init(t, diag);
    if (rc != 0)
        goto out;
    rc = set_special_ids(t, spec, diag);
    if (rc == 0)
        rc = set_flags(t, spec, diag);
    if (rc != 0)
        goto out;

    detect_special(t, EXO_TOK_SP_EOT, eot_texts, COUNT(eot_texts));
    detect_special(t, EXO_TOK_SP_EOM, eom_texts, COUNT(eom_texts));
    detect_special(t, EXO_TOK_SP_FIM_PAD, fim_pad_texts, COUNT(fim_pad_texts));
    detect_special(t, EXO_TOK_SP_FIM_REP, fim_rep_texts, COUNT(fim_rep_texts));
    detect_special(t, EXO_TOK_SP_FIM_SEP, fim_sep_texts, COUNT(fim_sep_texts));
    rc = build_eog(t);
    if (rc == 0)
        rc = build_specials(t);
    if (rc != 0)
        goto out;

    for (uint32_t id = 0; id < t->n_tokens; id++) {
        size_t off = pool.len;
        make_piece(t, id, &pool);
        if (pool.err) {
            rc = pool.err == EXO_ETOOBIG
                     ? exo_diag_set(diag, EXO_ETOOBIG, "tokenizer.ggml.tokens: texts too large")
                     : pool.err;
            goto out;
        }
        t->tokens[id].piece_off = (uint32_t)off;
        t->tokens[id].piece_len = (uint32_t)(pool.len - off);
    }
    t->pool = (char *)pool.data;
    pool.data = NULL;
    *ret = t;
    t = NULL;
    rc = 0;
out:
    if (t)
        t->pool = NULL; /* still owned by the buffer below */
    exo_buf_free(&pool);
    exo_tokenizer_free(t);
    return rc;
}

/* Read an optional u32 id; -1 when absent. */
static int get_id(const struct exo_gguf *g, const char *key, int64_t *ret, struct exo_diag *diag)
{
    uint32_t v;
    int rc = exo_gguf_get_u32(g, key, &v);
    if (rc == EXO_ENOENT)
        return 0;
    if (rc != 0)
        return exo_diag_set(diag, rc, "%s is not an unsigned 32-bit integer", key);
    *ret = v;
    return 0;
}

static int get_flag(const struct exo_gguf *g, const char *key, int8_t *ret, struct exo_diag *diag)
{
    bool v;
    int rc = exo_gguf_get_bool(g, key, &v);
    if (rc == EXO_ENOENT)
        return 0;
    if (rc != 0)
        return exo_diag_set(diag, rc, "%s is not a bool", key);
    *ret = v;
    return 0;
}

/* An optional array of one of two element types; a present key of another shape is an error. */
static int get_array(const struct exo_gguf *g, const char *key, enum exo_gguf_type want,
                     enum exo_gguf_type alt, const struct exo_gguf_kv **ret, struct exo_diag *diag)
{
    const struct exo_gguf_kv *kv = exo_gguf_find(g, key);
    *ret = NULL;
    if (!kv)
        return 0;
    if (kv->type != EXO_GGUF_ARRAY || (kv->v.arr.elem_type != want && kv->v.arr.elem_type != alt)) {
        return exo_diag_set(diag, EXO_EFORMAT, "%s is not an array of %s", key,
                            exo_gguf_type_name(want));
    }
    *ret = kv;
    return 0;
}

static int spec_from_gguf(const struct exo_gguf *g, struct exo_tok_spec *spec,
                          struct exo_diag *diag)
{
    exo_tok_spec_init(spec);
    int rc = exo_gguf_get_str(g, "tokenizer.ggml.model", &spec->model);
    if (rc != 0)
        return exo_diag_set(diag, EXO_EFORMAT, "tokenizer.ggml.model is %s",
                            rc == EXO_ENOENT ? "missing" : "not a string");
    rc = exo_gguf_get_str(g, "tokenizer.ggml.pre", &spec->pre);
    if (rc == EXO_EFORMAT)
        return exo_diag_set(diag, rc, "tokenizer.ggml.pre is not a string");

    const struct exo_gguf_kv *kv;
    rc = get_array(g, "tokenizer.ggml.tokens", EXO_GGUF_STRING, EXO_GGUF_STRING, &kv, diag);
    if (rc != 0)
        return rc;
    if (!kv)
        return exo_diag_set(diag, EXO_EFORMAT, "tokenizer.ggml.tokens is missing");
    spec->tokens = kv->v.arr.strs;
    spec->n_tokens = kv->v.arr.count;

    rc = get_array(g, "tokenizer.ggml.scores", EXO_GGUF_FLOAT32, EXO_GGUF_INT32, &kv, diag);
    if (rc != 0)
        return rc;
    if (kv) {
        spec->scores = kv->v.arr.data;
        spec->scores_type = kv->v.arr.elem_type;
        spec->n_scores = kv->v.arr.count;
    }
    rc = get_array(g, "tokenizer.ggml.token_type", EXO_GGUF_INT32, EXO_GGUF_INT32, &kv, diag);
    if (rc != 0)
        return rc;
    if (kv) {
        spec->types = kv->v.arr.data;
        spec->n_types = kv->v.arr.count;
    }
    rc = get_array(g, "tokenizer.ggml.merges", EXO_GGUF_STRING, EXO_GGUF_STRING, &kv, diag);
    if (rc != 0)
        return rc;
    if (kv) {
        spec->merges = kv->v.arr.strs;
        spec->n_merges = kv->v.arr.count;
    }
    for (int i = 0; i < EXO_TOK_SP_COUNT; i++) {
        rc = get_id(g, special_keys[i], &spec->special[i], diag);
        if (rc != 0)
            return rc;
    }
    rc = get_flag(g, "tokenizer.ggml.add_bos_token", &spec->add_bos, diag);
    if (rc == 0)
        rc = get_flag(g, "tokenizer.ggml.add_eos_token", &spec->add_eos, diag);
    if (rc == 0)
        rc = get_flag(g, "tokenizer.ggml.add_space_prefix", &spec->add_space_prefix, diag);
    return rc;
}

int exo_tokenizer_from_gguf(const struct exo_gguf *g, struct exo_tokenizer **ret,
                            struct exo_diag *diag)
{
    struct exo_tok_spec spec;
    struct exo_diag local;
    int rc = spec_from_gguf(g, &spec, &local);
    if (rc == 0)
        rc = exo_tokenizer_from_spec(&spec, ret, &local);
    if (rc != 0 && diag) {
        if (rc == EXO_ENOMEM)
            exo_diag_set(diag, rc, "%s: out of memory loading the tokenizer", exo_gguf_path(g));
        else
            exo_diag_set(diag, rc, "%s: %s", exo_gguf_path(g), local.msg);
    }
    return rc;
}

void exo_tokenizer_free(struct exo_tokenizer *t)
{
    if (!t)
        return;
    exo_tok_bpe_fini(t);
    exo_tok_map_free(&t->merges);
    exo_tok_map_free(&t->trie);
    exo_free(t->trie_token);
    exo_free(t->special_rank);
    exo_free(t->specials);
    exo_free(t->eog);
    exo_free(t->text_index);
    exo_free(t->tokens);
    exo_free(t->pool);
    exo_free(t->pre_name);
    exo_free(t->model_name);
    exo_free(t);
}

/* ---- encode ------------------------------------------------------------------------------- */

struct special_hit {
    uint32_t pos, len;
    int32_t id;
};

static int hit_cmp(const void *a, const void *b, void *arg)
{
    const struct exo_tokenizer *t = arg;
    const struct special_hit *x = a, *y = b;
    uint32_t rx = t->special_rank[x->id], ry = t->special_rank[y->id];
    if (rx != ry)
        return rx < ry ? -1 : 1;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

static int pos_cmp(const void *a, const void *b)
{
    const struct special_hit *x = a, *y = b;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

/* The special tokens to cut out of text, sorted by position. *ret_hits is owned by the caller. */
static int find_specials(const struct exo_tokenizer *t, const uint8_t *text, size_t len,
                         bool parse_special, struct special_hit **ret_hits, size_t *ret_n)
{
    struct special_hit *hits = NULL;
    uint8_t *claimed = NULL;
    size_t n = 0, cap = 0, kept = 0;
    size_t limit = len * MAX_CANDIDATES_PER_BYTE + 4096;
    int rc = 0;

    /* Every occurrence of every special text, found in one trie walk per position. */
    for (size_t p = 0; p < len; p++) {
        uint32_t node = 0;
        for (size_t k = p; k < len; k++) {
            const struct exo_tok_map_entry *e =
                exo_tok_map_get(&t->trie, t->seed, (uint64_t)node << 8 | text[k]);
            if (!e)
                break;
            node = e->a;
            int32_t id = t->trie_token[node];
            if (id < 0)
                continue;
            if (!parse_special && (t->tokens[id].attr & (EXO_TOK_CONTROL | EXO_TOK_UNKNOWN)))
                continue;
            if (n == limit) {
                rc = EXO_ETOOBIG;
                goto out;
            }
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                struct special_hit *h = exo_realloc(hits, exo_mul_size(cap, sizeof(*h)));
                if (!h) {
                    rc = EXO_ENOMEM;
                    goto out;
                }
                hits = h;
            }
            hits[n++] = (struct special_hit){(uint32_t)p, (uint32_t)(k + 1 - p), id};
        }
    }
    if (n == 0)
        goto out;

    /* Replay them in llama.cpp's order; an occurrence survives if its bytes are still free. */
    claimed = exo_calloc(len, 1);
    if (!claimed) {
        rc = EXO_ENOMEM;
        goto out;
    }
    qsort_r(hits, n, sizeof(*hits), hit_cmp, (void *)t);
    for (size_t i = 0; i < n; i++) {
        const struct special_hit *h = &hits[i];
        if (memchr(claimed + h->pos, 1, h->len))
            continue;
        memset(claimed + h->pos, 1, h->len);
        hits[kept++] = *h;
    }
    qsort(hits, kept, sizeof(*hits), pos_cmp);
out:
    exo_free(claimed);
    if (rc != 0) {
        exo_free(hits);
        return rc;
    }
    *ret_hits = hits;
    *ret_n = kept;
    return 0;
}

static int encode_fragment(const struct exo_tokenizer *t, const char *text, size_t len,
                           bool after_special, struct exo_tok_vec *out)
{
    if (t->kind == EXO_TOK_SPM)
        return exo_tok_spm_encode(t, text, len, t->add_space_prefix && after_special, out);
    return exo_tok_bpe_encode(t, text, len, out);
}

int exo_tokenizer_encode(const struct exo_tokenizer *t, const char *text, size_t len,
                         bool add_special, bool parse_special, int32_t **ret_tokens, size_t *ret_n)
{
    struct exo_tok_vec out = {0};
    struct special_hit *hits = NULL;
    size_t n_hits = 0;
    int rc = 0;

    if (len > EXO_TOKENIZER_MAX_TEXT)
        return EXO_ETOOBIG;
    if (add_special && t->add_bos)
        rc = exo_tok_vec_push(&out, t->special[EXO_TOK_SP_BOS]);
    if (rc == 0 && len > 0 && (parse_special ? t->n_specials : t->n_user_specials) > 0)
        rc = find_specials(t, (const uint8_t *)text, len, parse_special, &hits, &n_hits);
    if (rc != 0)
        goto out;

    /* SentencePiece puts a space before the first fragment and after every special token. */
    bool after_special = true;
    size_t pos = 0;
    for (size_t i = 0; i <= n_hits && rc == 0; i++) {
        size_t end = i < n_hits ? hits[i].pos : len;
        if (end > pos) {
            rc = encode_fragment(t, text + pos, end - pos, after_special, &out);
            after_special = false;
        }
        if (rc == 0 && i < n_hits) {
            rc = exo_tok_vec_push(&out, hits[i].id);
            after_special = true;
            pos = hits[i].pos + hits[i].len;
        }
    }
    if (rc == 0 && add_special && t->add_eos)
        rc = exo_tok_vec_push(&out, t->special[EXO_TOK_SP_EOS]);
    if (rc == 0 && !out.ids) {
        out.ids = exo_malloc(sizeof(*out.ids)); /* an empty result is still an array */
        if (!out.ids)
            rc = EXO_ENOMEM;
    }
out:
    exo_free(hits);
    if (rc != 0) {
        exo_free(out.ids);
        return rc;
    }
    *ret_tokens = out.ids;
    *ret_n = out.n;
    return 0;
}

/* ---- queries ------------------------------------------------------------------------------ */

int32_t exo_tokenizer_vocab_size(const struct exo_tokenizer *t)
{
    return (int32_t)t->n_tokens;
}

const char *exo_tokenizer_model(const struct exo_tokenizer *t)
{
    return t->model_name;
}

const char *exo_tokenizer_pre(const struct exo_tokenizer *t)
{
    return t->pre_name ? t->pre_name : "default";
}

int32_t exo_tokenizer_bos(const struct exo_tokenizer *t)
{
    return t->special[EXO_TOK_SP_BOS];
}

int32_t exo_tokenizer_eos(const struct exo_tokenizer *t)
{
    return t->special[EXO_TOK_SP_EOS];
}

int32_t exo_tokenizer_eot(const struct exo_tokenizer *t)
{
    return t->special[EXO_TOK_SP_EOT];
}

bool exo_tokenizer_adds_bos(const struct exo_tokenizer *t)
{
    return t->add_bos;
}

bool exo_tokenizer_adds_eos(const struct exo_tokenizer *t)
{
    return t->add_eos;
}

bool exo_tokenizer_is_eog(const struct exo_tokenizer *t, int32_t tok)
{
    if (tok < 0 || (uint32_t)tok >= t->n_tokens)
        return false;
    return bsearch(&tok, t->eog, t->n_eog, sizeof(*t->eog), int_cmp) != NULL;
}

int32_t exo_tokenizer_find(const struct exo_tokenizer *t, const char *piece, size_t len)
{
    return exo_tok_lookup(t, piece, len);
}

const char *exo_tokenizer_token_text(const struct exo_tokenizer *t, int32_t tok, size_t *ret_len)
{
    if (tok < 0 || (uint32_t)tok >= t->n_tokens)
        return NULL;
    *ret_len = t->tokens[tok].text_len;
    return exo_tok_text(t, tok);
}

const char *exo_tokenizer_piece(const struct exo_tokenizer *t, int32_t tok, size_t *ret_len)
{
    if (tok < 0 || (uint32_t)tok >= t->n_tokens)
        return NULL;
    *ret_len = t->tokens[tok].piece_len;
    return t->pool + t->tokens[tok].piece_off;
}

/* ---- detokenizer -------------------------------------------------------------------------- */

static const uint8_t replacement[3] = {0xef, 0xbf, 0xbd}; /* U+FFFD */

/* Bytes a sequence with this lead byte needs; 0 for bytes that cannot start one. */
static uint8_t seq_need(uint8_t b)
{
    if (b < 0x80)
        return 1;
    if (b >= 0xc2 && b <= 0xdf)
        return 2;
    if (b >= 0xe0 && b <= 0xef)
        return 3;
    if (b >= 0xf0 && b <= 0xf4)
        return 4;
    return 0;
}

/* Whether b may follow the n bytes already pending (lead in pending[0]); the second byte's range
 * depends on the lead so that overlongs, surrogates and values past U+10FFFF are refused. */
static bool continues(const struct exo_detok *d, uint8_t b)
{
    uint8_t lo = 0x80, hi = 0xbf;
    if (d->n_pending == 1) {
        switch (d->pending[0]) {
        case 0xe0:
            lo = 0xa0;
            break;
        case 0xed:
            hi = 0x9f;
            break;
        case 0xf0:
            lo = 0x90;
            break;
        case 0xf4:
            hi = 0x8f;
            break;
        default:
            break;
        }
    }
    return b >= lo && b <= hi;
}

static void utf8_feed(struct exo_detok *d, const uint8_t *p, size_t n, struct exo_buf *out)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t b = p[i];
        if (d->n_pending > 0) {
            if (continues(d, b)) {
                d->pending[d->n_pending++] = b;
                if (d->n_pending == seq_need(d->pending[0])) {
                    exo_buf_put(out, d->pending, d->n_pending);
                    d->n_pending = 0;
                }
                continue;
            }
            exo_buf_put(out, replacement, sizeof(replacement));
            d->n_pending = 0;
        }
        uint8_t need = seq_need(b);
        if (need == 1) {
            size_t j = i + 1;
            while (j < n && p[j] < 0x80)
                j++;
            exo_buf_put(out, p + i, j - i);
            i = j - 1;
            continue;
        }
        if (need == 0) {
            exo_buf_put(out, replacement, sizeof(replacement));
            continue;
        }
        d->pending[0] = b;
        d->n_pending = 1;
    }
}

void exo_detok_init(struct exo_detok *d, bool render_special)
{
    memset(d, 0, sizeof(*d));
    d->render_special = render_special;
}

int exo_detok_push(const struct exo_tokenizer *t, struct exo_detok *d, int32_t tok,
                   struct exo_buf *out)
{
    if (tok < 0 || (uint32_t)tok >= t->n_tokens)
        return EXO_ERANGE;
    const struct exo_tok_token *k = &t->tokens[tok];
    if (!d->render_special && (k->attr & (EXO_TOK_CONTROL | EXO_TOK_UNKNOWN)))
        return out->err;
    utf8_feed(d, (const uint8_t *)t->pool + k->piece_off, k->piece_len, out);
    return out->err;
}

int exo_detok_flush(struct exo_detok *d, struct exo_buf *out)
{
    if (d->n_pending > 0) {
        exo_buf_put(out, replacement, sizeof(replacement));
        d->n_pending = 0;
    }
    return out->err;
}
