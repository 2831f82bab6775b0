/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Byte-level BPE ("gpt2" vocabularies): pre-tokenizer split, then merges inside each piece.
 *
 * Pre-tokenizer. tokenizer.ggml.pre names a list of regexes; each one splits every piece from the
 * one before into its matches and the gaps between them (the gaps are pieces too), exactly as
 * llama.cpp's unicode_regex_split. llama.cpp runs some of these with hand-written matchers and
 * the rest with std::regex over a text whose code points are "collapsed" to one byte per Unicode
 * category; both are meant to equal the plain regex, and we run the plain regex on PCRE2 (UTF and
 * UCP mode, JIT-compiled where the platform allows). Two details keep the results identical:
 *   - "\s" is spelled out as the Unicode White_Space set that llama.cpp's tables use (PCRE2's
 *     own \s differs at U+180E and U+0085);
 *   - llama.cpp reads malformed UTF-8 as U+FFFD, one per bad byte. We match on a copy of the
 *     text in which each bad byte is U+FFFD (and overlong forms are read as the code point they
 *     spell, as llama.cpp does) and map the pieces back to the original bytes, so the split is
 *     llama.cpp's while the bytes that reach the merges are the caller's, and decoding gives them
 *     back unchanged. llama.cpp instead encodes the U+FFFD; this is the one place we differ.
 * The Unicode tables are PCRE2's, so characters assigned after its Unicode version may classify
 * differently from llama.cpp's tables.
 *
 * Merges. The GPT-2 byte-to-unicode mapping turns every byte into one printable character, so a
 * symbol of the merge loop is simply a byte range of the piece and the vocabulary is consulted by
 * id: merges are indexed by (left id, right id) -> (rank, merged id). Candidate pairs sit in a
 * min-heap ordered by rank and then position, as in llama.cpp; a popped pair whose symbols have
 * changed since it was pushed is skipped. Each merge pushes at most two pairs, so a piece of n
 * bytes costs O(n log n) whatever its content.
 */
#include "engine/tokenizer-int.h"

#include <stdio.h>
#include <string.h>

#include "core/alloc.h"

/* Unicode White_Space, the set llama.cpp's tables call whitespace; used for \s and \S. */
#define WS                                                                                      \
    "\\x{9}-\\x{d}\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}" \
    "\\x{205f}\\x{3000}"

/* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
#define RE_GPT2                                                                              \
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS "\\p{L}\\p{N}]+|[" WS "]+(?![^" WS \
    "])|[" WS "]+"

/* (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
 * \s*[\r\n]+|\s+(?!\S)|\s+   with DIGITS = \p{N}{1,3} (Llama 3) or \p{N} (Qwen2) */
#define RE_LLAMA3_LIKE(DIGITS)                                                                     \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+"      \
    "|" DIGITS "| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n]*|[" WS "]*[\\r\\n]+|[" WS "]+(?![^" WS "])|[" WS \
    "]+"

static const char *const re_default[] = {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+",
                                         "[0-9][0-9][0-9]", NULL};
static const char *const re_gpt2[] = {RE_GPT2, NULL};
static const char *const re_smollm[] = {"\\p{N}", RE_GPT2, NULL};
static const char *const re_llama3[] = {RE_LLAMA3_LIKE("\\p{N}{1,3}"), NULL};
static const char *const re_qwen2[] = {RE_LLAMA3_LIKE("\\p{N}"), NULL};

struct pre_def {
    const char *name;
    const char *const *regex;
    bool ignore_merges; /* a piece that is a whole token is not merged (Llama 3) */
    bool add_bos;       /* llama.cpp's default when add_bos_token is absent */
};

/* tokenizer.ggml.pre values and what they mean, from llama.cpp's loader. */
static const struct pre_def pre_defs[] = {
    {"default", re_default, false, false},
    {"gpt-2", re_gpt2, false, false},
    {"phi-2", re_gpt2, false, false},
    {"gigachat", re_gpt2, false, false},
    {"a.x-4.0", re_gpt2, false, false},
    {"mellum", re_gpt2, false, false},
    {"mpt", re_gpt2, false, false},
    {"olmo", re_gpt2, false, false},
    {"jais", re_gpt2, false, false},
    {"trillion", re_gpt2, false, false},
    {"granite-docling", re_gpt2, false, false},
    {"exaone4", re_gpt2, false, false},
    {"smollm", re_smollm, false, false},
    {"starcoder", re_smollm, false, false},
    {"refact", re_smollm, false, false},
    {"command-r", re_smollm, false, false},
    {"codeshell", re_smollm, false, false},
    {"exaone", re_smollm, false, false},
    {"minerva-7b", re_smollm, false, false},
    {"mellum2", re_smollm, false, false},
    {"llama3", re_llama3, true, true},
    {"llama-v3", re_llama3, true, true},
    {"llama-bpe", re_llama3, true, true},
    {"falcon3", re_llama3, true, true},
    {"falcon-h1", re_llama3, true, true},
    {"pixtral", re_llama3, true, true},
    {"midm-2.0", re_llama3, true, true},
    {"lfm2", re_llama3, true, true},
    {"dbrx", re_llama3, false, false},
    {"smaug-bpe", re_llama3, false, false},
    {"qwen2", re_qwen2, false, false},
    {"deepseek-r1-qwen", re_qwen2, false, false},
    {"kormo", re_qwen2, false, false},
    {"f2llmv2", re_qwen2, false, false},
    {"stablelm2", re_qwen2, false, false},
    {"megrez", re_qwen2, false, false},
    {"hunyuan", re_qwen2, false, false},
    {"solar-open", re_qwen2, false, false},
};

#define N_PRE_DEFS (sizeof(pre_defs) / sizeof(pre_defs[0]))

/* ---- the GPT-2 byte <-> unicode mapping ----------------------------------------------------- */

/* Printable Latin-1 bytes stand for themselves; the other 68 bytes (controls, space, DEL, the
 * C1 range, NBSP and soft hyphen) take the code points 256, 257, ... in byte order. */
static bool byte_is_self(unsigned b)
{
    return (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
}

static uint32_t byte_char(unsigned b)
{
    if (byte_is_self(b))
        return b;
    uint32_t n = 0;
    for (unsigned c = 0; c < b; c++)
        n += !byte_is_self(c);
    return 256 + n;
}

int exo_tok_bpe_char_byte(uint32_t cp)
{
    if (cp < 256)
        return byte_is_self(cp) ? (int)cp : -1;
    if (cp >= 256 + 68)
        return -1;
    uint32_t n = cp - 256;
    for (unsigned b = 0; b < 256; b++) {
        if (!byte_is_self(b) && n-- == 0)
            return (int)b;
    }
    return -1;
}

/* UTF-8 of a code point below 0x800 (all the mapping needs); returns the length. */
static size_t put_small_utf8(uint32_t cp, uint8_t *out)
{
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    out[0] = (uint8_t)(0xc0 | cp >> 6);
    out[1] = (uint8_t)(0x80 | (cp & 0x3f));
    return 2;
}

size_t exo_tok_bpe_byte_char(uint8_t b, char out[2])
{
    uint8_t u[2];
    size_t n = put_small_utf8(byte_char(b), u);
    memcpy(out, u, n);
    return n;
}

/* ---- setup -------------------------------------------------------------------------------- */

static void *re_malloc(PCRE2_SIZE size, void *data)
{
    (void)data;
    return exo_malloc(size);
}

static void re_free(void *ptr, void *data)
{
    (void)data;
    exo_free(ptr);
}

static int compile_regexes(struct exo_tokenizer *t, const char *const *regex, struct exo_diag *diag)
{
    t->re_alloc = pcre2_general_context_create(re_malloc, re_free, NULL);
    if (!t->re_alloc)
        return EXO_ENOMEM;
    t->re_match = pcre2_match_context_create(t->re_alloc);
    pcre2_compile_context *cc = pcre2_compile_context_create(t->re_alloc);
    int rc = 0;
    if (!t->re_match || !cc) {
        rc = EXO_ENOMEM;
        goto out;
    }
    for (; *regex; regex++) {
        int err;
        PCRE2_SIZE at;
        pcre2_code *code = pcre2_compile((PCRE2_SPTR)*regex, PCRE2_ZERO_TERMINATED,
                                         PCRE2_UTF | PCRE2_UCP, &err, &at, cc);
        if (!code) {
            if (err == PCRE2_ERROR_HEAP_FAILED) {
                rc = EXO_ENOMEM;
            } else {
                PCRE2_UCHAR msg[120];
                pcre2_get_error_message(err, msg, sizeof(msg));
                rc = exo_diag_set(diag, EXO_EINTERNAL, "pre-tokenizer regex %d: %s at %zu",
                                  t->n_regex, (const char *)msg, (size_t)at);
            }
            goto out;
        }
        t->regex[t->n_regex++] = code;
        /* Without JIT (unsupported platform, or no executable memory) the interpreter runs the
         * same patterns, only slower. */
        pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    }
out:
    pcre2_compile_context_free(cc);
    return rc;
}

static const struct pre_def *find_pre(const struct exo_gguf_str *pre)
{
    if (!pre->ptr)
        return &pre_defs[0]; /* llama.cpp warns and uses "default" */
    for (size_t i = 0; i < N_PRE_DEFS; i++) {
        if (strlen(pre_defs[i].name) == pre->len &&
            memcmp(pre_defs[i].name, pre->ptr, pre->len) == 0)
            return &pre_defs[i];
    }
    return NULL;
}

static int unsupported_pre(const struct exo_gguf_str *pre, struct exo_diag *diag)
{
    char names[1024];
    size_t off = 0;
    for (size_t i = 0; i < N_PRE_DEFS && off < sizeof(names); i++) {
        int n = snprintf(names + off, sizeof(names) - off, "%s%s", i ? ", " : "", pre_defs[i].name);
        if (n < 0)
            break;
        off += (size_t)n;
    }
    return exo_diag_set(diag, EXO_EUNSUPPORTED,
                        "pre-tokenizer '%.*s' (tokenizer.ggml.pre) is not supported; supported: %s",
                        (int)(pre->len > 64 ? 64 : pre->len), pre->ptr, names);
}

/* Index the merges by the ids of their two halves. A merge whose halves or result are not
 * tokens can never apply to token ids and is skipped; the first rank of a repeated pair wins,
 * as in llama.cpp. */
static int load_merges(struct exo_tokenizer *t, const struct exo_tok_spec *spec,
                       struct exo_diag *diag)
{
    if (!spec->merges)
        return exo_diag_set(diag, EXO_EFORMAT, "tokenizer.ggml.merges is missing");
    if (spec->n_merges > EXO_TOKENIZER_MAX_MERGES) {
        return exo_diag_set(diag, EXO_ETOOBIG, "tokenizer.ggml.merges has %llu entries (limit %u)",
                            (unsigned long long)spec->n_merges, EXO_TOKENIZER_MAX_MERGES);
    }
    int rc = exo_tok_map_init(&t->merges, (size_t)spec->n_merges);
    if (rc != 0)
        return rc;
    char *both = exo_malloc(2 * (size_t)t->max_token_len + 1);
    if (!both)
        return EXO_ENOMEM;
    for (uint64_t i = 0; i < spec->n_merges; i++) {
        const struct exo_gguf_str *m = &spec->merges[i];
        if (m->len < 3 || m->len > 2 * (uint64_t)t->max_token_len + 1)
            continue;
        /* A NUL ends the text early, as llama.cpp reads these as C strings. */
        const char *nul = memchr(m->ptr, '\0', (size_t)m->len);
        size_t len = nul ? (size_t)(nul - m->ptr) : (size_t)m->len;
        const char *space = len > 1 ? memchr(m->ptr + 1, ' ', len - 1) : NULL;
        if (!space)
            continue;
        size_t la = (size_t)(space - m->ptr), lb = len - la - 1;
        int32_t a = exo_tok_lookup(t, m->ptr, la);
        int32_t b = exo_tok_lookup(t, space + 1, lb);
        if (a < 0 || b < 0)
            continue;
        memcpy(both, m->ptr, la);
        memcpy(both + la, space + 1, lb);
        int32_t ab = exo_tok_lookup(t, both, la + lb);
        if (ab < 0)
            continue;
        bool inserted;
        struct exo_tok_map_entry *e =
            exo_tok_map_put(&t->merges, t->seed, (uint64_t)a << 32 | (uint32_t)b, &inserted);
        if (inserted) {
            e->a = (uint32_t)i;
            e->b = (uint32_t)ab;
        }
    }
    exo_free(both);
    return 0;
}

int exo_tok_bpe_init(struct exo_tokenizer *t, const struct exo_tok_spec *spec,
                     struct exo_diag *diag)
{
    const struct pre_def *pre = find_pre(&spec->pre);
    if (!pre)
        return unsupported_pre(&spec->pre, diag);
    t->pre_name = exo_strdup(pre->name);
    if (!t->pre_name)
        return EXO_ENOMEM;
    t->ignore_merges = pre->ignore_merges;
    t->add_bos = pre->add_bos;

    for (unsigned b = 0; b < 256; b++) {
        uint8_t u[2];
        size_t n = put_small_utf8(byte_char(b), u);
        t->byte_token[b] = exo_tok_lookup(t, (const char *)u, n);
        /* llama.cpp looks a character that is not a token up byte by byte. */
        t->byte_fallback[b][0] = exo_tok_lookup(t, (const char *)u, 1);
        t->byte_fallback[b][1] = n == 2 ? exo_tok_lookup(t, (const char *)u + 1, 1) : -1;
    }
    int rc = load_merges(t, spec, diag);
    if (rc == 0)
        rc = compile_regexes(t, pre->regex, diag);
    return rc;
}

void exo_tok_bpe_fini(struct exo_tokenizer *t)
{
    for (int i = 0; i < t->n_regex; i++)
        pcre2_code_free(t->regex[i]);
    t->n_regex = 0;
    pcre2_match_context_free(t->re_match);
    pcre2_general_context_free(t->re_alloc);
    t->re_match = NULL;
    t->re_alloc = NULL;
}

/* ---- pre-tokenizer ------------------------------------------------------------------------ */

/* Decode one character the way llama.cpp's unicode_cpt_from_utf8 does: by the lead byte's high
 * bits alone (so overlong forms and surrogates decode), 0 for a byte it rejects. */
static size_t decode_lenient(const uint8_t *s, size_t n, uint32_t *ret_cp)
{
    uint8_t b = s[0];
    size_t len;
    uint32_t cp;
    if (b < 0x80) {
        *ret_cp = b;
        return 1;
    }
    if (!(b & 0x40))
        return 0;
    if (!(b & 0x20)) {
        len = 2;
        cp = b & 0x1f;
    } else if (!(b & 0x10)) {
        len = 3;
        cp = b & 0x0f;
    } else if (!(b & 0x08)) {
        len = 4;
        cp = b & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    *ret_cp = cp;
    return len;
}

static size_t utf8_size(uint32_t cp)
{
    return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

static size_t put_utf8(uint32_t cp, uint8_t *out)
{
    size_t n = utf8_size(cp);
    if (n == 1) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    static const uint8_t lead[5] = {0, 0, 0xc0, 0xe0, 0xf0};
    for (size_t i = n - 1; i > 0; i--) {
        out[i] = (uint8_t)(0x80 | (cp & 0x3f));
        cp >>= 6;
    }
    out[0] = (uint8_t)(lead[n] | cp);
    return n;
}

/* A decoded character PCRE2 can take as is: a scalar value in its shortest form. */
static bool strict(uint32_t cp, size_t len)
{
    return len > 0 && len == utf8_size(cp) && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff);
}

/* The text the regexes see, and for each of its bytes the offset in the caller's text. */
struct match_text {
    const uint8_t *s;
    size_t n;
    uint8_t *owned; /* NULL when s is the caller's text */
    uint32_t *orig; /* n + 1 offsets, or NULL when s is the caller's text */
};

static int make_match_text(const uint8_t *text, size_t len, struct match_text *mt)
{
    size_t need = 0;
    bool clean = true;
    for (size_t i = 0; i < len;) {
        uint32_t cp = 0;
        size_t n = decode_lenient(text + i, len - i, &cp);
        if (!strict(cp, n)) {
            clean = false;
            cp = (n == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) ? 0xfffd : cp;
        }
        need += utf8_size(cp);
        i += n ? n : 1;
    }
    mt->s = text;
    mt->n = len;
    mt->owned = NULL;
    mt->orig = NULL;
    if (clean)
        return 0;

    mt->owned = exo_malloc(need + 1);
    mt->orig = exo_malloc(exo_mul_size(need + 1, sizeof(*mt->orig)));
    if (!mt->owned || !mt->orig)
        return EXO_ENOMEM;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp = 0;
        size_t n = decode_lenient(text + i, len - i, &cp);
        if (n == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            cp = 0xfffd;
        size_t w = put_utf8(cp, mt->owned + o);
        for (size_t k = 0; k < w; k++)
            mt->orig[o + k] = (uint32_t)i;
        o += w;
        i += n ? n : 1;
    }
    mt->orig[o] = (uint32_t)len;
    mt->s = mt->owned;
    mt->n = o;
    return 0;
}

struct piece {
    uint32_t start, end;
};

struct piece_vec {
    struct piece *p; /* owned */
    size_t n, cap;
};

static int piece_push(struct piece_vec *v, size_t start, size_t end)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        struct piece *p = exo_realloc(v->p, exo_mul_size(cap, sizeof(*p)));
        if (!p)
            return EXO_ENOMEM;
        v->p = p;
        v->cap = cap;
    }
    v->p[v->n++] = (struct piece){(uint32_t)start, (uint32_t)end};
    return 0;
}

static int pcre_error(int rc)
{
    switch (rc) {
    case PCRE2_ERROR_NOMEMORY:
        return EXO_ENOMEM;
    case PCRE2_ERROR_MATCHLIMIT:
    case PCRE2_ERROR_DEPTHLIMIT:
    case PCRE2_ERROR_HEAPLIMIT:
    case PCRE2_ERROR_JIT_STACKLIMIT:
        return EXO_ETOOBIG;
    default:
        return EXO_EINTERNAL;
    }
}

/* Split every piece of in into the matches of re and the gaps between them. */
static int split(const struct exo_tokenizer *t, const pcre2_code *re, pcre2_match_data *md,
                 const uint8_t *s, const struct piece_vec *in, struct piece_vec *out)
{
    out->n = 0;
    for (size_t i = 0; i < in->n; i++) {
        size_t start = in->p[i].start, end = in->p[i].end;
        size_t gap = start, off = start;
        while (off < end) {
            int rc = pcre2_match(re, s + start, end - start, off - start, PCRE2_NO_UTF_CHECK, md,
                                 t->re_match);
            if (rc == PCRE2_ERROR_NOMATCH)
                break;
            if (rc < 0)
                return pcre_error(rc);
            const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            size_t ms = start + ov[0], me = start + ov[1];
            if (me == ms) {
                /* No pattern here can match empty, but step over the character if one does. */
                uint32_t cp;
                size_t n = ms < end ? decode_lenient(s + ms, end - ms, &cp) : 0;
                off = ms + (n ? n : 1);
                continue;
            }
            if (ms > gap && piece_push(out, gap, ms) != 0)
                return EXO_ENOMEM;
            if (piece_push(out, ms, me) != 0)
                return EXO_ENOMEM;
            gap = off = me;
        }
        if (gap < end && piece_push(out, gap, end) != 0)
            return EXO_ENOMEM;
    }
    return 0;
}

/* ---- merges ------------------------------------------------------------------------------- */

struct scratch {
    struct exo_tok_sym *sym; /* owned */
    size_t cap_sym;
    uint8_t *enc; /* owned: the byte-level text of a piece (ignore_merges lookups) */
    size_t cap_enc;
    uint8_t *word; /* owned: a piece of malformed text as it is merged */
    size_t cap_word, n_word;
    struct exo_tok_heap heap;
};

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    void *q = exo_realloc(*p, exo_mul_size(need, elem));
    if (!q)
        return EXO_ENOMEM;
    *p = q;
    *cap = need;
    return 0;
}

/* The bytes to merge for a piece of malformed UTF-8. A malformed character keeps its own bytes
 * when the vocabulary has a token for each of them, so that decoding gives the text back; when it
 * does not (a vocabulary trained on valid UTF-8 often lacks bytes such as 0xf5-0xff), it is
 * merged as llama.cpp would: U+FFFD for a bad byte, the shortest form of an overlong one. */
static int malformed_word(const struct exo_tokenizer *t, const uint8_t *s, size_t n,
                          struct scratch *sc)
{
    if (grow((void **)&sc->word, &sc->cap_word, 3 * n, 1) != 0)
        return EXO_ENOMEM;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp = 0;
        size_t len = decode_lenient(s + i, n - i, &cp);
        size_t raw = len ? len : 1;
        /* llama.cpp re-encodes what it decoded, which for a surrogate is the same bytes. */
        bool keep = strict(cp, len) || (len == 3 && cp >= 0xd800 && cp <= 0xdfff);
        if (!keep) {
            keep = true;
            for (size_t k = 0; k < raw; k++)
                keep = keep && t->byte_token[s[i + k]] >= 0;
        }
        if (keep) {
            memcpy(sc->word + o, s + i, raw);
            o += raw;
        } else {
            o += put_utf8(len == 0 || cp > 0x10ffff ? 0xfffd : cp, sc->word + o);
        }
        i += raw;
    }
    sc->n_word = o;
    return 0;
}

static int push_pair(const struct exo_tokenizer *t, struct scratch *sc, int32_t left, int32_t right)
{
    if (left < 0 || right < 0)
        return 0;
    const struct exo_tok_sym *l = &sc->sym[left], *r = &sc->sym[right];
    if (l->id < 0 || r->id < 0)
        return 0;
    const struct exo_tok_map_entry *e =
        exo_tok_map_get(&t->merges, t->seed, (uint64_t)l->id << 32 | (uint32_t)r->id);
    if (!e)
        return 0;
    struct exo_tok_cand c = {e->a, left, right, l->len + r->len, (int32_t)e->b};
    return exo_tok_heap_push(&sc->heap, &c);
}

static int merge_piece(const struct exo_tokenizer *t, const uint8_t *w, size_t n,
                       struct scratch *sc, struct exo_tok_vec *out)
{
    if (n == 0)
        return 0;
    if (t->ignore_merges && n <= t->max_token_len) {
        if (grow((void **)&sc->enc, &sc->cap_enc, 2 * n, 1) != 0)
            return EXO_ENOMEM;
        size_t len = 0;
        for (size_t i = 0; i < n; i++)
            len += put_small_utf8(byte_char(w[i]), sc->enc + len);
        int32_t id = exo_tok_lookup(t, (const char *)sc->enc, len);
        if (id >= 0)
            return exo_tok_vec_push(out, id);
    }
    if (grow((void **)&sc->sym, &sc->cap_sym, n, sizeof(*sc->sym)) != 0)
        return EXO_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        sc->sym[i] = (struct exo_tok_sym){(uint32_t)i, 1, (int32_t)i - 1,
                                          i + 1 < n ? (int32_t)i + 1 : -1, t->byte_token[w[i]]};
    }
    sc->heap.n = 0;
    for (size_t i = 1; i < n; i++) {
        if (push_pair(t, sc, (int32_t)i - 1, (int32_t)i) != 0)
            return EXO_ENOMEM;
    }
    struct exo_tok_cand c;
    while (exo_tok_heap_pop(&sc->heap, &c)) {
        struct exo_tok_sym *l = &sc->sym[c.left], *r = &sc->sym[c.right];
        if (l->len == 0 || r->len == 0 || l->next != c.right || l->len + r->len != c.len)
            continue; /* stale: one side has merged with something else since */
        l->len += r->len;
        l->id = c.id;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0)
            sc->sym[r->next].prev = c.left;
        if (push_pair(t, sc, l->prev, c.left) != 0 || push_pair(t, sc, c.left, l->next) != 0)
            return EXO_ENOMEM;
    }
    for (int32_t i = 0; i >= 0; i = sc->sym[i].next) {
        const struct exo_tok_sym *s = &sc->sym[i];
        int rc = 0;
        if (s->id >= 0) {
            rc = exo_tok_vec_push(out, s->id);
        } else {
            /* Only a single byte can lack a token (merges always make tokens). */
            for (int k = 0; k < 2 && rc == 0; k++) {
                int32_t f = t->byte_fallback[w[s->start]][k];
                if (f >= 0)
                    rc = exo_tok_vec_push(out, f);
            }
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}

int exo_tok_bpe_encode(const struct exo_tokenizer *t, const char *text, size_t len,
                       struct exo_tok_vec *out)
{
    struct match_text mt = {0};
    struct piece_vec a = {0}, b = {0};
    struct scratch sc = {0};
    pcre2_match_data *md = NULL;
    int rc = make_match_text((const uint8_t *)text, len, &mt);
    if (rc != 0)
        goto out;
    md = pcre2_match_data_create(1, t->re_alloc);
    if (!md || piece_push(&a, 0, mt.n) != 0) {
        rc = EXO_ENOMEM;
        goto out;
    }
    for (int i = 0; i < t->n_regex; i++) {
        rc = split(t, t->regex[i], md, mt.s, &a, &b);
        if (rc != 0)
            goto out;
        struct piece_vec tmp = a;
        a = b;
        b = tmp;
    }
    for (size_t i = 0; i < a.n; i++) {
        const uint8_t *w = (const uint8_t *)text + a.p[i].start;
        size_t n = a.p[i].end - a.p[i].start;
        if (mt.orig) {
            size_t start = mt.orig[a.p[i].start], end = mt.orig[a.p[i].end];
            rc = malformed_word(t, (const uint8_t *)text + start, end - start, &sc);
            if (rc != 0)
                goto out;
            w = sc.word;
            n = sc.n_word;
        }
        rc = merge_piece(t, w, n, &sc, out);
        if (rc != 0)
            goto out;
    }
out:
    pcre2_match_data_free(md);
    exo_tok_heap_free(&sc.heap);
    exo_free(sc.sym);
    exo_free(sc.enc);
    exo_free(sc.word);
    exo_free(a.p);
    exo_free(b.p);
    exo_free(mt.owned);
    exo_free(mt.orig);
    return rc;
}
