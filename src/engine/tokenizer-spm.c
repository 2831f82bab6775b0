/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SentencePiece BPE ("llama" vocabularies), as llama.cpp's llm_tokenizer_spm runs it: spaces
 * become U+2581, the fragment is cut into UTF-8 characters, and the adjacent pair whose
 * concatenation is the highest-scoring token merges first (ties: leftmost first) until no pair
 * is a token. A symbol that is not a token at the end is spelled with byte tokens <0xXX>.
 *
 * Symbols are byte ranges of the escaped fragment, so a pair's text is always contiguous and
 * looked up in place. The candidate heap is the one the byte-level BPE uses, keyed by the score
 * turned into an integer that sorts highest score first.
 */
#include "engine/tokenizer-int.h"

#include <stdio.h>
#include <string.h>

#include "core/alloc.h"

#define SPACE_MARK     "\xe2\x96\x81" /* U+2581 LOWER ONE EIGHTH BLOCK */
#define SPACE_MARK_LEN 3

int exo_tok_spm_init(struct exo_tokenizer *t, struct exo_diag *diag)
{
    (void)diag;
    for (unsigned b = 0; b < 256; b++) {
        char hex[8];
        snprintf(hex, sizeof(hex), "<0x%02X>", b);
        int32_t id = exo_tok_lookup(t, hex, 6);
        if (id < 0) {
            char c = (char)b;
            id = exo_tok_lookup(t, &c, 1);
        }
        t->spm_byte[b] = id;
    }
    return 0;
}

/* Highest score first: flip the float's bits into an unsigned order, then reverse it. */
static uint64_t score_key(float score)
{
    if (score == 0.0f)
        score = 0.0f; /* -0 and +0 tie, as they compare equal in llama.cpp */
    uint32_t bits;
    memcpy(&bits, &score, sizeof(bits));
    bits = (bits & 0x80000000u) ? ~bits : bits | 0x80000000u;
    return UINT32_MAX - bits;
}

struct spm_state {
    const struct exo_tokenizer *t;
    const char *text; /* escaped fragment */
    struct exo_tok_sym *sym;
    struct exo_tok_heap heap;
};

static int try_pair(struct spm_state *st, int32_t left, int32_t right)
{
    if (left < 0 || right < 0)
        return 0;
    const struct exo_tok_sym *l = &st->sym[left], *r = &st->sym[right];
    int32_t id = exo_tok_lookup(st->t, st->text + l->start, (size_t)l->len + r->len);
    if (id < 0)
        return 0;
    struct exo_tok_cand c = {score_key(st->t->tokens[id].score), left, right, l->len + r->len, id};
    return exo_tok_heap_push(&st->heap, &c);
}

/* The escaped fragment: an optional leading space, every ' ' as U+2581. */
static char *escape(const char *text, size_t len, bool space_prefix, size_t *ret_len)
{
    size_t n = space_prefix ? SPACE_MARK_LEN : 0;
    for (size_t i = 0; i < len; i++)
        n += text[i] == ' ' ? SPACE_MARK_LEN : 1;
    char *out = exo_malloc(n + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    if (space_prefix) {
        memcpy(out, SPACE_MARK, SPACE_MARK_LEN);
        o = SPACE_MARK_LEN;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(out + o, SPACE_MARK, SPACE_MARK_LEN);
            o += SPACE_MARK_LEN;
        } else {
            out[o++] = text[i];
        }
    }
    *ret_len = o;
    return out;
}

static int emit(const struct spm_state *st, const struct exo_tok_sym *s, struct exo_tok_vec *out)
{
    const struct exo_tokenizer *t = st->t;
    int32_t id = exo_tok_lookup(t, st->text + s->start, s->len);
    if (id >= 0)
        return exo_tok_vec_push(out, id);
    /* Byte fallback. Where the vocabulary has no token for a byte llama.cpp throws; we emit the
     * unknown token if there is one and drop the byte otherwise. */
    for (uint32_t k = 0; k < s->len; k++) {
        int32_t b = t->spm_byte[(uint8_t)st->text[s->start + k]];
        if (b < 0)
            b = t->special[EXO_TOK_SP_UNK];
        if (b >= 0 && exo_tok_vec_push(out, b) != 0)
            return EXO_ENOMEM;
    }
    return 0;
}

int exo_tok_spm_encode(const struct exo_tokenizer *t, const char *text, size_t len,
                       bool space_prefix, struct exo_tok_vec *out)
{
    static const uint8_t utf8_len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    struct spm_state st = {.t = t};
    size_t n_text;
    char *esc = escape(text, len, space_prefix, &n_text);
    int rc = EXO_ENOMEM;
    if (!esc)
        goto out;
    st.text = esc;
    st.sym = exo_malloc(exo_mul_size(n_text + 1, sizeof(*st.sym)));
    if (!st.sym)
        goto out;

    /* One symbol per UTF-8 character, stepping by the lead byte as llama.cpp does. */
    int32_t n = 0;
    for (size_t off = 0; off < n_text; n++) {
        size_t clen = utf8_len[(uint8_t)esc[off] >> 4];
        if (clen > n_text - off)
            clen = n_text - off;
        st.sym[n] = (struct exo_tok_sym){(uint32_t)off, (uint32_t)clen, n - 1, -1, -1};
        if (n > 0)
            st.sym[n - 1].next = n;
        off += clen;
    }
    rc = 0;
    for (int32_t i = 1; i < n && rc == 0; i++)
        rc = try_pair(&st, i - 1, i);

    struct exo_tok_cand c;
    while (rc == 0 && exo_tok_heap_pop(&st.heap, &c)) {
        struct exo_tok_sym *l = &st.sym[c.left], *r = &st.sym[c.right];
        if (l->len == 0 || r->len == 0 || l->next != c.right || l->len + r->len != c.len)
            continue; /* stale */
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0)
            st.sym[r->next].prev = c.left;
        rc = try_pair(&st, l->prev, c.left);
        if (rc == 0)
            rc = try_pair(&st, c.left, l->next);
    }
    for (int32_t i = n > 0 ? 0 : -1; i >= 0 && rc == 0; i = st.sym[i].next)
        rc = emit(&st, &st.sym[i], out);
out:
    exo_tok_heap_free(&st.heap);
    exo_free(st.sym);
    exo_free(esc);
    return rc;
}
