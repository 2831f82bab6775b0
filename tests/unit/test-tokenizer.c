/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The tokenizer on tiny vocabularies written here with the GGUF writer (byte-level BPE with
 * every pre-tokenizer family, SentencePiece with byte fallback), on hostile metadata and under
 * allocation failure; the streaming detokenizer on characters split across tokens and on invalid
 * UTF-8; and, when EXO_MODEL names the default model, every case of the llama.cpp oracle in
 * tests/data/oracle/smollm2.json (made by tests/oracle/make-oracle.py).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cJSON.h>
#include <cmocka.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/rng.h"
#include "engine/gguf.h"
#include "engine/tokenizer-int.h"
#include "engine/tokenizer.h"
#include "support/gguf-writer.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ---- helpers ------------------------------------------------------------------------------ */

static int load(struct gguf_writer *w, struct exo_tokenizer **ret, struct exo_diag *diag)
{
    uint8_t *data;
    size_t size;
    gguf_writer_finish(w, &data, &size);
    gguf_writer_free(w);
    struct exo_gguf *g = NULL;
    int rc = exo_gguf_open_memory(data, size, "tiny.gguf", &g, diag);
    if (rc != 0) {
        free(data);
        fail_msg("the test wrote a GGUF file the reader rejects: %s", diag->msg);
    }
    rc = exo_tokenizer_from_gguf(g, ret, diag);
    exo_gguf_close(g); /* the tokenizer keeps copies */
    free(data);
    return rc;
}

static struct exo_tokenizer *must_load(struct gguf_writer *w)
{
    struct exo_tokenizer *t = NULL;
    struct exo_diag diag;
    if (load(w, &t, &diag) != 0)
        fail_msg("%s", diag.msg);
    return t;
}

static void expect_ids(const struct exo_tokenizer *t, const char *text, size_t len,
                       bool add_special, bool parse_special, const int32_t *want, size_t n_want)
{
    int32_t *ids = NULL;
    size_t n = 0;
    assert_int_equal(exo_tokenizer_encode(t, text, len, add_special, parse_special, &ids, &n), 0);
    assert_non_null(ids);
    bool same = n == n_want && (n == 0 || memcmp(ids, want, n * sizeof(*ids)) == 0);
    if (!same) {
        char got[1024] = "";
        for (size_t i = 0, o = 0; i < n && o < sizeof(got) - 16; i++)
            o += (size_t)snprintf(got + o, sizeof(got) - o, " %d", ids[i]);
        exo_free(ids);
        fail_msg("[%.*s] (special %d/%d): got%s (%zu ids, want %zu)", (int)len, text, add_special,
                 parse_special, got, n, n_want);
    }
    exo_free(ids);
}

#define EXPECT(t, text, add, parse, ...)                                    \
    do {                                                                    \
        static const int32_t want_[] = {__VA_ARGS__};                       \
        expect_ids(t, text, strlen(text), add, parse, want_, COUNT(want_)); \
    } while (0)

/* The concatenated pieces of ids: what the text decodes to before UTF-8 cleanup. */
static void pieces(const struct exo_tokenizer *t, const int32_t *ids, size_t n, struct exo_buf *out)
{
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *p = exo_tokenizer_piece(t, ids[i], &len);
        assert_non_null(p);
        exo_buf_put(out, p, len);
    }
}

static bool utf8_valid(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint8_t b = s[i];
        size_t len = b < 0x80                 ? 1
                     : b >= 0xc2 && b <= 0xdf ? 2
                     : b >= 0xe0 && b <= 0xef ? 3
                     : b >= 0xf0 && b <= 0xf4 ? 4
                                              : 0;
        if (len == 0 || len > n - i)
            return false;
        uint8_t lo = b == 0xe0 ? 0xa0 : b == 0xf0 ? 0x90 : 0x80;
        uint8_t hi = b == 0xed ? 0x9f : b == 0xf4 ? 0x8f : 0xbf;
        for (size_t k = 1; k < len; k++) {
            if (s[i + k] < (k == 1 ? lo : 0x80) || s[i + k] > (k == 1 ? hi : 0xbf))
                return false;
        }
        i += len;
    }
    return true;
}

/* ---- a tiny byte-level BPE vocabulary -------------------------------------------------------
 * ids 0-255: the byte-level character of byte id (so id == byte), then merges and specials. */
enum {
    T_HE = 256,
    T_LL,
    T_HELL,
    T_HELLO,
    T_GW,
    T_OR,
    T_GWOR,
    T_GWORL,
    T_GWORLD,
    T_AB,
    T_ABAB,
    T_12,
    T_IM_START,
    T_IM_END,
    T_USER,
    T_EOT,
    T_ABC,
    T_XA,
    N_TINY
};

static const char *const tiny_extra[] = {
    "he",
    "ll",
    "hell",
    "hello",
    "\xc4\xa0w",
    "or",
    "\xc4\xa0wor",
    "\xc4\xa0worl",
    "\xc4\xa0world",
    "ab",
    "abab",
    "12",
    "<|im_start|>",
    "<|im_end|>",
    "<user>",
    "<|endoftext|>",
    "ABC",
    "xA",
};

static const char *const tiny_merges[] = {
    "h e",   "l l",          "he ll",         "hell o",         "\xc4\xa0 w",
    "o r",   "\xc4\xa0w or", "\xc4\xa0wor l", "\xc4\xa0worl d", "a b",
    "ab ab", "1 2",          "zz qq", /* names no tokens: skipped */
    "h",                              /* no separator: skipped */
    "a b",                            /* repeated: the first rank counts */
};

enum { OMIT_MODEL = 1, OMIT_TOKENS = 2, OMIT_TYPES = 4, OMIT_MERGES = 8, OMIT_IDS = 16 };

static char tiny_chars[256][3];

static const char *const *tiny_tokens(void)
{
    static const char *tokens[N_TINY];
    for (unsigned b = 0; b < 256; b++) {
        size_t n = exo_tok_bpe_byte_char((uint8_t)b, tiny_chars[b]);
        tiny_chars[b][n] = '\0';
        tokens[b] = tiny_chars[b];
    }
    /* The NUL byte's character is U+0100, so no token text is empty. */
    for (size_t i = 0; i < COUNT(tiny_extra); i++)
        tokens[256 + i] = tiny_extra[i];
    return tokens;
}

static struct gguf_writer *tiny_bpe(const char *pre, unsigned omit)
{
    struct gguf_writer *w = gguf_writer_new(3, 32);
    if (!(omit & OMIT_MODEL))
        gguf_writer_str(w, "tokenizer.ggml.model", "gpt2");
    if (pre)
        gguf_writer_str(w, "tokenizer.ggml.pre", pre);
    if (!(omit & OMIT_TOKENS))
        gguf_writer_arr_str(w, "tokenizer.ggml.tokens", tiny_tokens(), N_TINY);
    if (!(omit & OMIT_TYPES)) {
        int32_t types[N_TINY];
        for (int i = 0; i < N_TINY; i++)
            types[i] = EXO_TOK_TYPE_NORMAL;
        types[T_IM_START] = types[T_IM_END] = types[T_EOT] = EXO_TOK_TYPE_CONTROL;
        types[T_ABC] = types[T_XA] = EXO_TOK_TYPE_CONTROL;
        types[T_USER] = EXO_TOK_TYPE_USER_DEFINED;
        gguf_writer_arr(w, "tokenizer.ggml.token_type", EXO_GGUF_INT32, types, N_TINY);
    }
    if (!(omit & OMIT_MERGES))
        gguf_writer_arr_str(w, "tokenizer.ggml.merges", tiny_merges, COUNT(tiny_merges));
    if (!(omit & OMIT_IDS)) {
        gguf_writer_u32(w, "tokenizer.ggml.bos_token_id", T_IM_START);
        gguf_writer_u32(w, "tokenizer.ggml.eos_token_id", T_EOT);
    }
    return w;
}

static void test_tokenizer_bpe_merges_and_specials(void **state)
{
    (void)state;
    struct exo_tokenizer *t = must_load(tiny_bpe("gpt-2", 0));
    assert_int_equal(exo_tokenizer_vocab_size(t), N_TINY);
    assert_string_equal(exo_tokenizer_model(t), "gpt2");
    assert_string_equal(exo_tokenizer_pre(t), "gpt-2");

    EXPECT(t, "hello world", false, false, T_HELLO, T_GWORLD);
    EXPECT(t, "hello world", true, true, T_HELLO, T_GWORLD); /* gpt2 adds no BOS by default */
    EXPECT(t, "hello<|im_end|>", false, true, T_HELLO, T_IM_END);
    EXPECT(t, "hello<|im_end|>", false, false, T_HELLO, '<', '|', 'i', 'm', '_', 'e', 'n', 'd', '|',
           '>');
    /* User-defined tokens are matched whole even without parse_special. */
    EXPECT(t, "a<user>b", false, false, 'a', T_USER, 'b');
    EXPECT(t, "a<user>b", false, true, 'a', T_USER, 'b');
    /* llama.cpp's order: the longer special text claims its bytes first, so "xABC" is x + ABC
     * although "xA" starts further left. */
    EXPECT(t, "xABC", false, true, 'x', T_ABC);
    EXPECT(t, "xAxA", false, true, T_XA, T_XA);
    EXPECT(t, "xABC", false, false, 'x', 'A', 'B', 'C');
    EXPECT(t, "<|im_start|><|im_start|>", false, true, T_IM_START, T_IM_START);
    /* Merges go by rank, then leftmost. */
    EXPECT(t, "ababab", false, false, T_ABAB, T_AB);
    EXPECT(t, "hel", false, false, T_HE, 'l');

    int32_t *ids = NULL;
    size_t n = 99;
    assert_int_equal(exo_tokenizer_encode(t, NULL, 0, false, true, &ids, &n), 0);
    assert_non_null(ids);
    assert_int_equal(n, 0);
    exo_free(ids);

    assert_int_equal(exo_tokenizer_find(t, "\xc4\xa0world", 7), T_GWORLD);
    assert_int_equal(exo_tokenizer_find(t, "nope", 4), -1);
    assert_int_equal(exo_tokenizer_find(t, "", 0), -1);
    size_t len;
    assert_memory_equal(exo_tokenizer_token_text(t, T_GW, &len), "\xc4\xa0w", 3);
    assert_int_equal(len, 3);
    assert_null(exo_tokenizer_token_text(t, N_TINY, &len));
    assert_null(exo_tokenizer_piece(t, -1, &len));
    assert_memory_equal(exo_tokenizer_piece(t, T_GWORLD, &len), " world", 6);
    assert_int_equal(len, 6);
    /* The byte-level mapping's fixed points: space is Ġ, newline Ċ, 'a' itself. */
    assert_memory_equal(exo_tokenizer_token_text(t, ' ', &len), "\xc4\xa0", 2);
    assert_memory_equal(exo_tokenizer_token_text(t, '\n', &len), "\xc4\x8a", 2);
    assert_memory_equal(exo_tokenizer_token_text(t, 'a', &len), "a", 1);

    assert_int_equal(exo_tokenizer_bos(t), T_IM_START);
    assert_int_equal(exo_tokenizer_eos(t), T_EOT);
    assert_int_equal(exo_tokenizer_eot(t), T_IM_END); /* the first end-of-turn text by id */
    assert_true(exo_tokenizer_is_eog(t, T_IM_END));
    assert_true(exo_tokenizer_is_eog(t, T_EOT));
    assert_false(exo_tokenizer_is_eog(t, T_IM_START));
    assert_false(exo_tokenizer_is_eog(t, -1));
    assert_false(exo_tokenizer_is_eog(t, N_TINY));
    assert_false(exo_tokenizer_adds_bos(t));
    assert_false(exo_tokenizer_adds_eos(t));
    exo_tokenizer_free(t);
    exo_tokenizer_free(NULL);
}

/* Each pre-tokenizer family splits digits its own way; "12" is a token, "1" and "2" bytes. */
static void test_tokenizer_pre_tokenizer_digit_splits(void **state)
{
    (void)state;
    static const struct {
        const char *pre;
        int32_t want[4];
        size_t n;
    } cases[] = {
        {"gpt-2", {T_12, T_12}, 2},         /* \p{N}+: one piece */
        {"default", {T_12, '1', '2'}, 3},   /* ... then [0-9]{3}: "121", "2" */
        {NULL, {T_12, '1', '2'}, 3},        /* absent means default */
        {"llama-bpe", {T_12, '1', '2'}, 3}, /* \p{N}{1,3} */
        {"llama3", {T_12, '1', '2'}, 3},
        {"smollm", {'1', '2', '1', '2'}, 4}, /* every digit alone */
        {"qwen2", {'1', '2', '1', '2'}, 4},
        {"starcoder", {'1', '2', '1', '2'}, 4},
        {"dbrx", {T_12, '1', '2'}, 3},
    };
    for (size_t i = 0; i < COUNT(cases); i++) {
        struct exo_tokenizer *t = must_load(tiny_bpe(cases[i].pre, 0));
        expect_ids(t, "1212", 4, false, false, cases[i].want, cases[i].n);
        exo_tokenizer_free(t);
    }
    /* Llama 3 looks a whole piece up before merging; SmolLM puts a space before digits alone. */
    struct exo_tokenizer *t = must_load(tiny_bpe("llama-bpe", 0));
    EXPECT(t, "abab", false, false, T_ABAB);
    EXPECT(t, "I'M", false, false, 'I', '\'', 'M');
    assert_true(exo_tokenizer_adds_bos(t)); /* llama.cpp's default for llama3 */
    EXPECT(t, "hello", true, false, T_IM_START, T_HELLO);
    exo_tokenizer_free(t);
    t = must_load(tiny_bpe("smollm", 0));
    EXPECT(t, " 12 world", false, false, ' ', '1', '2', T_GWORLD);
    exo_tokenizer_free(t);
}

/* A piece with no spaces at all (100 KB) is merged in one heap pass, not rescanned per merge. */
static void test_tokenizer_bpe_long_piece(void **state)
{
    (void)state;
    struct exo_tokenizer *t = must_load(tiny_bpe("gpt-2", 0));
    size_t len = 100000;
    char *text = malloc(len);
    assert_non_null(text);
    for (size_t i = 0; i < len; i++)
        text[i] = i % 2 ? 'b' : 'a';
    int32_t *ids;
    size_t n;
    assert_int_equal(exo_tokenizer_encode(t, text, len, false, false, &ids, &n), 0);
    assert_int_equal(n, len / 4);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(ids[i], T_ABAB);
    exo_free(ids);
    memset(text, 'a', len);
    assert_int_equal(exo_tokenizer_encode(t, text, len, false, false, &ids, &n), 0);
    assert_int_equal(n, len);
    exo_free(ids);
    /* The special-token pass over a long text full of near-misses. */
    for (size_t i = 0; i < len; i++)
        text[i] = "<|im_"[i % 5];
    assert_int_equal(exo_tokenizer_encode(t, text, len, false, true, &ids, &n), 0);
    exo_free(ids);
    free(text);
    exo_tokenizer_free(t);
}

/* With every byte in the vocabulary, the pieces of the ids give back any input byte for byte,
 * malformed UTF-8 included. */
static void test_tokenizer_bpe_round_trip_any_bytes(void **state)
{
    (void)state;
    static const char *const pres[] = {"gpt-2", "default", "smollm", "llama-bpe", "qwen2"};
    static const char alphabet[] = "ab 12\n\t<|im_end|><user>'sxA\xc3\xa9\xe2\x82\xac\xf0\x9f\x98";
    struct exo_rng rng;
    exo_rng_seed(&rng, 42);
    for (size_t p = 0; p < COUNT(pres); p++) {
        struct exo_tokenizer *t = must_load(tiny_bpe(pres[p], 0));
        for (int iter = 0; iter < 300; iter++) {
            char text[96];
            size_t len = (size_t)exo_rng_below(&rng, sizeof(text));
            for (size_t i = 0; i < len; i++) {
                text[i] = iter % 2 ? (char)exo_rng_below(&rng, 256)
                                   : alphabet[exo_rng_below(&rng, sizeof(alphabet) - 1)];
            }
            for (int parse = 0; parse < 2; parse++) {
                int32_t *ids;
                size_t n;
                assert_int_equal(exo_tokenizer_encode(t, text, len, false, parse, &ids, &n), 0);
                struct exo_buf out;
                exo_buf_init(&out, 0);
                pieces(t, ids, n, &out);
                exo_free(ids);
                bool same = out.len == len && (len == 0 || memcmp(out.data, text, len) == 0);
                exo_buf_free(&out);
                if (!same)
                    fail_msg("%s: round trip of %zu bytes failed", pres[p], len);
            }
        }
        exo_tokenizer_free(t);
    }
}

/* ---- a tiny SentencePiece vocabulary ------------------------------------------------------ */

static struct gguf_writer *tiny_spm(int add_space_prefix, bool scores, bool types)
{
    static const struct {
        const char *text;
        float score;
    } words[] = {
        {"\xe2\x96\x81", -10},
        {"h", -10},
        {"e", -10},
        {"l", -10},
        {"o", -10},
        {"w", -10},
        {"r", -10},
        {"d", -10},
        {"he", -1},
        {"ll", -2},
        {"hell", -3},
        {"hello", -4},
        {"\xe2\x96\x81hello", -5},
        {"\xe2\x96\x81w", -6},
        {"or", -7},
        {"\xe2\x96\x81wor", -8},
        {"ld", -9},
        {"\xe2\x96\x81world", -9.5f},
        {"<user>", 0},
    };
    enum { N = 3 + 256 + COUNT(words) };
    static char bytes[256][8];
    const char *tokens[N];
    float score[N];
    int32_t type[N];
    tokens[0] = "<unk>";
    tokens[1] = "<s>";
    tokens[2] = "</s>";
    type[0] = EXO_TOK_TYPE_UNKNOWN;
    type[1] = type[2] = EXO_TOK_TYPE_CONTROL;
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], sizeof(bytes[b]), "<0x%02X>", b);
        tokens[3 + b] = bytes[b];
        type[3 + b] = EXO_TOK_TYPE_BYTE;
    }
    for (size_t i = 0; i < COUNT(words); i++) {
        tokens[259 + i] = words[i].text;
        score[259 + i] = words[i].score;
        type[259 + i] = EXO_TOK_TYPE_NORMAL;
    }
    type[N - 1] = EXO_TOK_TYPE_USER_DEFINED;
    for (int i = 0; i < 259; i++)
        score[i] = 0;
    struct gguf_writer *w = gguf_writer_new(3, 32);
    gguf_writer_str(w, "tokenizer.ggml.model", "llama");
    gguf_writer_arr_str(w, "tokenizer.ggml.tokens", tokens, N);
    if (scores)
        gguf_writer_arr(w, "tokenizer.ggml.scores", EXO_GGUF_FLOAT32, score, N);
    if (types)
        gguf_writer_arr(w, "tokenizer.ggml.token_type", EXO_GGUF_INT32, type, N);
    if (add_space_prefix >= 0)
        gguf_writer_bool(w, "tokenizer.ggml.add_space_prefix", add_space_prefix);
    return w;
}

enum { S_HELLO = 259 + 11, S_GHELLO, S_GW, S_OR, S_GWOR, S_LD, S_GWORLD, S_USER };

static void test_tokenizer_spm_merges_and_byte_fallback(void **state)
{
    (void)state;
    struct exo_tokenizer *t = must_load(tiny_spm(-1, true, true));
    assert_string_equal(exo_tokenizer_model(t), "llama");
    assert_true(exo_tokenizer_adds_bos(t));
    assert_int_equal(exo_tokenizer_bos(t), 1);
    assert_int_equal(exo_tokenizer_eos(t), 2);
    assert_true(exo_tokenizer_is_eog(t, 2));

    EXPECT(t, "hello world", true, false, 1, S_GHELLO, S_GWORLD);
    EXPECT(t, "hello world", false, false, S_GHELLO, S_GWORLD);
    /* é has no token: its two bytes become <0xC3> <0xA9>. */
    EXPECT(t, "h\xc3\xa9llo", false, false, 259, 260, 3 + 0xc3, 3 + 0xa9, 259 + 9, 259 + 4);
    /* After a special token the next fragment gets a space prefix again. */
    EXPECT(t, "<s>hello", false, true, 1, S_GHELLO);
    EXPECT(t, "world<user>hello", false, false, S_GWORLD, S_USER, S_GHELLO);
    /* A lone continuation byte is a character of its own for SentencePiece. */
    EXPECT(t, "\x80", false, false, 259, 3 + 0x80);

    size_t len;
    assert_memory_equal(exo_tokenizer_piece(t, S_GWORLD, &len), " world", 6);
    assert_memory_equal(exo_tokenizer_piece(t, 3 + 0x41, &len), "A", 1);
    exo_tokenizer_free(t);

    t = must_load(tiny_spm(0, true, true));
    EXPECT(t, "hello world", false, false, S_HELLO, S_GWORLD);
    exo_tokenizer_free(t);
    /* Without scores every merge ties and the leftmost goes first; without types all are
     * normal, <0xXX> included, and still used as byte fallback. */
    t = must_load(tiny_spm(-1, false, false));
    EXPECT(t, "h\xc3\xa9", false, false, 259, 260, 3 + 0xc3, 3 + 0xa9);
    exo_tokenizer_free(t);
}

/* ---- the streaming detokenizer ------------------------------------------------------------ */

static void push_all(const struct exo_tokenizer *t, struct exo_detok *d, const int32_t *ids,
                     size_t n, struct exo_buf *out)
{
    for (size_t i = 0; i < n; i++)
        assert_int_equal(exo_detok_push(t, d, ids[i], out), 0);
}

static void expect_detok(const struct exo_tokenizer *t, bool render, const int32_t *ids, size_t n,
                         const char *want)
{
    struct exo_detok d;
    struct exo_buf out;
    exo_detok_init(&d, render);
    exo_buf_init(&out, 0);
    push_all(t, &d, ids, n, &out);
    assert_int_equal(exo_detok_flush(&d, &out), 0);
    bool same = out.len == strlen(want) && memcmp(out.data, want, out.len) == 0;
    exo_buf_free(&out);
    if (!same)
        fail_msg("detok of %zu ids: want [%s]", n, want);
}

#define DETOK(t, render, want, ...)                       \
    do {                                                  \
        static const int32_t ids_[] = {__VA_ARGS__};      \
        expect_detok(t, render, ids_, COUNT(ids_), want); \
    } while (0)

static void test_tokenizer_detok_streams_utf8(void **state)
{
    (void)state;
    struct exo_tokenizer *t = must_load(tiny_bpe("gpt-2", 0));
    /* 😀 arrives one byte token at a time: nothing until the character is complete. */
    static const int32_t emoji[] = {0xf0, 0x9f, 0x98, 0x80};
    struct exo_detok d;
    struct exo_buf out;
    exo_detok_init(&d, false);
    exo_buf_init(&out, 0);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(exo_detok_push(t, &d, emoji[i], &out), 0);
        assert_int_equal(out.len, 0);
        assert_int_equal(d.n_pending, i + 1);
    }
    assert_int_equal(exo_detok_push(t, &d, emoji[3], &out), 0);
    assert_int_equal(out.len, 4);
    assert_memory_equal(out.data, "\xf0\x9f\x98\x80", 4);
    assert_int_equal(d.n_pending, 0);
    assert_int_equal(exo_detok_push(t, &d, N_TINY, &out), EXO_ERANGE);
    assert_int_equal(exo_detok_push(t, &d, -1, &out), EXO_ERANGE);
    exo_buf_free(&out);

    DETOK(t, false, "hello world", T_HELLO, T_GWORLD);
    DETOK(t, false, "\xc3\xa9", 0xc3, 0xa9);
    /* Invalid sequences become U+FFFD, one per maximal invalid subpart. */
    DETOK(t, false,
          "\xef\xbf\xbd"
          "A",
          0xc3, 'A');                      /* truncated */
    DETOK(t, false, "\xef\xbf\xbd", 0xff); /* never valid */
    DETOK(t, false,
          "\xef\xbf\xbd"
          "A",
          0xe2, 0x82, 'A'); /* truncated 3-byte */
    DETOK(t, false, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 0xed, 0xa0, 0x80); /* surrogate */
    DETOK(t, false, "\xef\xbf\xbd\xef\xbf\xbd", 0xc0, 0x80);                   /* overlong */
    DETOK(t, false, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 0xf4, 0x90, 0x80, 0x80);
    DETOK(t, false, "\xef\xbf\xbd", 0xe2, 0x82); /* cut off by flush */
    DETOK(t, false,
          "\xef\xbf\xbd"
          "hello",
          0xf0, 0x9f, T_HELLO);
    /* Control tokens only with render_special; user-defined ones always. */
    DETOK(t, false, "hello", T_HELLO, T_IM_END);
    DETOK(t, true, "hello<|im_end|>", T_HELLO, T_IM_END);
    DETOK(t, false, "a<user>", 'a', T_USER);
    DETOK(t, true, "\xef\xbf\xbd<|im_end|>", 0xe2, T_IM_END);

    /* Errors of the output buffer come back. */
    exo_detok_init(&d, false);
    exo_buf_init(&out, 3);
    assert_int_equal(exo_detok_push(t, &d, T_HELLO, &out), EXO_ETOOBIG);
    exo_buf_free(&out);
    exo_tokenizer_free(t);
}

/* ---- hostile metadata -------------------------------------------------------------------- */

static void expect_error(struct gguf_writer *w, int want, const char *needle)
{
    struct exo_tokenizer *t = NULL;
    struct exo_diag diag;
    int rc = load(w, &t, &diag);
    if (rc != want)
        fail_msg("want %d, got %d (%s)", want, rc, rc ? diag.msg : "loaded");
    assert_null(t);
    if (needle && !strstr(diag.msg, needle))
        fail_msg("message [%s] lacks [%s]", diag.msg, needle);
    assert_non_null(strstr(diag.msg, "tiny.gguf"));
}

static void test_tokenizer_rejects_hostile_metadata(void **state)
{
    (void)state;
    struct gguf_writer *w;

    expect_error(tiny_bpe("gpt-2", OMIT_MODEL), EXO_EFORMAT, "tokenizer.ggml.model");
    w = tiny_bpe("gpt-2", OMIT_MODEL);
    gguf_writer_str(w, "tokenizer.ggml.model", "bert");
    expect_error(w, EXO_EUNSUPPORTED, "'bert'");
    w = tiny_bpe("gpt-2", OMIT_MODEL);
    gguf_writer_u32(w, "tokenizer.ggml.model", 7);
    expect_error(w, EXO_EFORMAT, "not a string");
    expect_error(tiny_bpe("tekken", 0), EXO_EUNSUPPORTED, "smollm");
    w = tiny_bpe(NULL, 0);
    gguf_writer_u32(w, "tokenizer.ggml.pre", 1);
    expect_error(w, EXO_EFORMAT, "tokenizer.ggml.pre");

    expect_error(tiny_bpe("gpt-2", OMIT_TOKENS), EXO_EFORMAT, "tokenizer.ggml.tokens");
    w = tiny_bpe("gpt-2", OMIT_TOKENS);
    int32_t ints[3] = {1, 2, 3};
    gguf_writer_arr(w, "tokenizer.ggml.tokens", EXO_GGUF_INT32, ints, 3);
    expect_error(w, EXO_EFORMAT, "tokenizer.ggml.tokens");
    w = tiny_bpe("gpt-2", OMIT_TOKENS | OMIT_TYPES | OMIT_IDS);
    gguf_writer_arr_str(w, "tokenizer.ggml.tokens", NULL, 0);
    expect_error(w, EXO_EFORMAT, "empty");

    /* Types and scores shorter than the vocabulary, or of the wrong element type. */
    w = tiny_bpe("gpt-2", OMIT_TYPES);
    gguf_writer_arr(w, "tokenizer.ggml.token_type", EXO_GGUF_INT32, ints, 3);
    expect_error(w, EXO_EFORMAT, "token_type");
    w = tiny_bpe("gpt-2", OMIT_TYPES);
    float f[3] = {0};
    gguf_writer_arr(w, "tokenizer.ggml.token_type", EXO_GGUF_FLOAT32, f, 3);
    expect_error(w, EXO_EFORMAT, "token_type");
    w = tiny_bpe("gpt-2", 0);
    gguf_writer_arr(w, "tokenizer.ggml.scores", EXO_GGUF_FLOAT32, f, 3);
    expect_error(w, EXO_EFORMAT, "scores");
    w = tiny_bpe("gpt-2", 0);
    gguf_writer_arr_str(w, "tokenizer.ggml.scores", tiny_merges, 2);
    expect_error(w, EXO_EFORMAT, "scores");

    /* Special ids outside the vocabulary, or not integers. */
    w = tiny_bpe("gpt-2", OMIT_IDS);
    gguf_writer_u32(w, "tokenizer.ggml.bos_token_id", N_TINY);
    expect_error(w, EXO_ERANGE, "bos_token_id");
    w = tiny_bpe("gpt-2", OMIT_IDS);
    gguf_writer_u32(w, "tokenizer.ggml.eot_token_id", UINT32_MAX);
    expect_error(w, EXO_ERANGE, "eot_token_id");
    w = tiny_bpe("gpt-2", OMIT_IDS);
    gguf_writer_i32(w, "tokenizer.ggml.eos_token_id", -1);
    expect_error(w, EXO_EFORMAT, "eos_token_id");
    w = tiny_bpe("gpt-2", OMIT_IDS);
    gguf_writer_str(w, "tokenizer.ggml.unknown_token_id", "0");
    expect_error(w, EXO_EFORMAT, "unknown_token_id");
    w = tiny_bpe("gpt-2", 0);
    gguf_writer_u8(w, "tokenizer.ggml.add_bos_token", 1);
    expect_error(w, EXO_EFORMAT, "add_bos_token");

    /* add_bos_token with no BOS: a 5-token vocabulary where llama.cpp's default (11) does not
     * exist. */
    static const char *const five[] = {"a", "b", "c", "d", "e"};
    static const char *const none[] = {"x y"};
    w = gguf_writer_new(3, 32);
    gguf_writer_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_writer_arr_str(w, "tokenizer.ggml.tokens", five, 5);
    gguf_writer_arr_str(w, "tokenizer.ggml.merges", none, 1);
    gguf_writer_bool(w, "tokenizer.ggml.add_bos_token", true);
    expect_error(w, EXO_EFORMAT, "no BOS");

    /* Repeated texts, a text past the length cap, byte-level BPE without merges. */
    static const char *const dup[] = {"a", "b", "a"};
    w = gguf_writer_new(3, 32);
    gguf_writer_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_writer_arr_str(w, "tokenizer.ggml.tokens", dup, 3);
    gguf_writer_arr_str(w, "tokenizer.ggml.merges", none, 1);
    expect_error(w, EXO_EFORMAT, "repeats");
    char *huge = malloc(EXO_TOKENIZER_MAX_TOKEN_LEN + 2);
    assert_non_null(huge);
    memset(huge, 'z', EXO_TOKENIZER_MAX_TOKEN_LEN + 1);
    huge[EXO_TOKENIZER_MAX_TOKEN_LEN + 1] = '\0';
    const char *long_tokens[] = {"a", huge};
    w = gguf_writer_new(3, 32);
    gguf_writer_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_writer_arr_str(w, "tokenizer.ggml.tokens", long_tokens, 2);
    gguf_writer_arr_str(w, "tokenizer.ggml.merges", none, 1);
    expect_error(w, EXO_ETOOBIG, "limit");
    free(huge);
    expect_error(tiny_bpe("gpt-2", OMIT_MERGES), EXO_EFORMAT, "merges");
    w = tiny_bpe("gpt-2", OMIT_MERGES);
    gguf_writer_arr(w, "tokenizer.ggml.merges", EXO_GGUF_INT32, ints, 3);
    expect_error(w, EXO_EFORMAT, "merges");

    /* SentencePiece scores shorter than the vocabulary. */
    w = tiny_spm(-1, false, true);
    gguf_writer_arr(w, "tokenizer.ggml.scores", EXO_GGUF_FLOAT32, f, 3);
    expect_error(w, EXO_EFORMAT, "scores");
}

/* Texts llama.cpp reads as C strings: a NUL ends a token early, an empty token is renamed. */
static void test_tokenizer_nul_and_empty_token_texts(void **state)
{
    (void)state;
    const struct exo_gguf_str tokens[] = {{"a", 1}, {"b\0c", 3}, {"", 0}, {"ab", 2}};
    const struct exo_gguf_str merges[] = {{"a b", 3}, {"a b\0zz", 6}};
    struct exo_tok_spec spec;
    exo_tok_spec_init(&spec);
    spec.model = (struct exo_gguf_str){"gpt2", 4};
    spec.pre = (struct exo_gguf_str){"gpt-2", 5};
    spec.tokens = tokens;
    spec.n_tokens = COUNT(tokens);
    spec.merges = merges;
    spec.n_merges = COUNT(merges);
    struct exo_tokenizer *t = NULL;
    struct exo_diag diag;
    if (exo_tokenizer_from_spec(&spec, &t, &diag) != 0)
        fail_msg("%s", diag.msg);
    assert_int_equal(exo_tokenizer_find(t, "b", 1), 1);
    assert_int_equal(exo_tokenizer_find(t, "[EMPTY_2]", 9), 2);
    EXPECT(t, "ab", false, false, 3);
    exo_tokenizer_free(t);

    const struct exo_gguf_str clash[] = {{"a", 1}, {"a\0b", 3}};
    spec.tokens = clash;
    spec.n_tokens = COUNT(clash);
    assert_int_equal(exo_tokenizer_from_spec(&spec, &t, &diag), EXO_EFORMAT);
}

static void test_tokenizer_survives_allocation_failure(void **state)
{
    (void)state;
    uint8_t *data;
    size_t size;
    struct gguf_writer *w = tiny_bpe("llama-bpe", 0);
    gguf_writer_finish(w, &data, &size);
    gguf_writer_free(w);
    struct exo_gguf *g = NULL;
    struct exo_diag diag;
    assert_int_equal(exo_gguf_open_memory(data, size, "tiny.gguf", &g, &diag), 0);
    bool loaded = false;
    for (long n = 0; !loaded; n++) {
        struct exo_tokenizer *t = NULL;
        exo_alloc_fail_after(n);
        int rc = exo_tokenizer_from_gguf(g, &t, &diag);
        exo_alloc_fail_after(-1);
        if (rc == EXO_ENOMEM) {
            assert_null(t);
            continue;
        }
        assert_int_equal(rc, 0);
        loaded = true;
        /* Now encode under failure: every outcome is success or EXO_ENOMEM, without leaks. */
        static const char text[] = "hello world<|im_end|> 1212 \xff\xfe<user>";
        for (long k = 0;; k++) {
            int32_t *ids = NULL;
            size_t n_ids;
            exo_alloc_fail_after(k);
            rc = exo_tokenizer_encode(t, text, sizeof(text) - 1, true, true, &ids, &n_ids);
            exo_alloc_fail_after(-1);
            if (rc == 0) {
                exo_free(ids);
                break;
            }
            assert_int_equal(rc, EXO_ENOMEM);
        }
        exo_tokenizer_free(t);
    }
    exo_gguf_close(g);
    free(data);
}

static void test_tokenizer_text_cap(void **state)
{
    (void)state;
    struct exo_tokenizer *t = must_load(tiny_bpe("gpt-2", 0));
    int32_t *ids = NULL;
    size_t n;
    /* The cap is checked before the text is read, so a pointer to one byte is enough. */
    assert_int_equal(
        exo_tokenizer_encode(t, "a", (size_t)EXO_TOKENIZER_MAX_TEXT + 1, false, false, &ids, &n),
        EXO_ETOOBIG);
    assert_null(ids);
    exo_tokenizer_free(t);
}

/* ---- the llama.cpp oracle on the default model -------------------------------------------- */

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)size + 1);
    if (s && fread(s, 1, (size_t)size, f) != (size_t)size) {
        free(s);
        s = NULL;
    }
    if (s)
        s[size] = '\0';
    fclose(f);
    return s;
}

static void expect_json_ids(const struct exo_tokenizer *t, const char *name, const char *text,
                            bool add_special, bool parse_special, const cJSON *want)
{
    int32_t *ids;
    size_t n;
    assert_int_equal(
        exo_tokenizer_encode(t, text, strlen(text), add_special, parse_special, &ids, &n), 0);
    bool same = (size_t)cJSON_GetArraySize(want) == n;
    for (size_t i = 0; same && i < n; i++)
        same = cJSON_GetArrayItem(want, (int)i)->valueint == ids[i];
    if (!same) {
        char got[2048] = "";
        for (size_t i = 0, o = 0; i < n && o < sizeof(got) - 16; i++)
            o += (size_t)snprintf(got + o, sizeof(got) - o, " %d", ids[i]);
        char *exp = cJSON_PrintUnformatted(want);
        fail_msg("oracle case '%s' (parse_special %d): got%s\n want %s", name, parse_special, got,
                 exp);
    }
    /* Decoding gives the text back: piece by piece, and through the streaming detokenizer
     * with every intermediate output valid UTF-8. */
    struct exo_buf raw, out;
    exo_buf_init(&raw, 0);
    exo_buf_init(&out, 0);
    pieces(t, ids, n, &raw);
    assert_int_equal(raw.len, strlen(text));
    assert_memory_equal(raw.data, text, raw.len);
    struct exo_detok d;
    exo_detok_init(&d, parse_special);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(exo_detok_push(t, &d, ids[i], &out), 0);
        assert_true(utf8_valid(out.data, out.len));
    }
    assert_int_equal(exo_detok_flush(&d, &out), 0);
    assert_int_equal(out.len, strlen(text));
    assert_memory_equal(out.data, text, out.len);
    exo_buf_free(&raw);
    exo_buf_free(&out);
    exo_free(ids);
}

static void test_tokenizer_matches_llama_cpp_oracle(void **state)
{
    (void)state;
    const char *model = getenv("EXO_MODEL");
    const char *data = getenv("EXO_TEST_DATA");
    if (!model || !*model || !data)
        skip();
    char path[4096];
    snprintf(path, sizeof(path), "%s/oracle/smollm2.json", data);
    char *json = read_file(path);
    if (!json)
        fail_msg("cannot read %s", path);
    cJSON *root = cJSON_Parse(json);
    free(json);
    assert_non_null(root);

    struct stat st;
    assert_int_equal(stat(model, &st), 0);
    const cJSON *info = cJSON_GetObjectItem(root, "model");
    if ((double)st.st_size != cJSON_GetObjectItem(info, "bytes")->valuedouble)
        fail_msg("EXO_MODEL=%s is not %s, the oracle's model", model,
                 cJSON_GetObjectItem(info, "file")->valuestring);

    struct exo_gguf *g;
    struct exo_diag diag;
    struct exo_tokenizer *t;
    if (exo_gguf_open(model, &g, &diag) != 0 || exo_tokenizer_from_gguf(g, &t, &diag) != 0)
        fail_msg("%s", diag.msg);
    exo_gguf_close(g);
    assert_string_equal(exo_tokenizer_pre(t), "smollm");

    int n_cases = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "tokenize"))
    {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
        expect_json_ids(t, name, text, false, true, cJSON_GetObjectItem(c, "parse_special"));
        expect_json_ids(t, name, text, false, false, cJSON_GetObjectItem(c, "plain"));
        n_cases++;
    }
    assert_true(n_cases >= 40);

    /* The end-of-generation set, exactly. */
    const cJSON *eog = cJSON_GetObjectItem(root, "eog_ids");
    int n_eog = 0;
    for (int32_t id = 0; id < exo_tokenizer_vocab_size(t); id++) {
        if (!exo_tokenizer_is_eog(t, id))
            continue;
        assert_true(n_eog < cJSON_GetArraySize(eog));
        assert_int_equal(cJSON_GetArrayItem(eog, n_eog)->valueint, id);
        n_eog++;
    }
    assert_int_equal(n_eog, cJSON_GetArraySize(eog));

    /* The generation prompts tokenize to the oracle's prompt ids, and the generated ids
     * detokenize to its text. */
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "generate"))
    {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        int32_t *ids;
        size_t n;
        const char *prompt = cJSON_GetObjectItem(c, "prompt")->valuestring;
        bool add = cJSON_IsTrue(cJSON_GetObjectItem(c, "add_special"));
        bool parse = cJSON_IsTrue(cJSON_GetObjectItem(c, "parse_special"));
        assert_int_equal(exo_tokenizer_encode(t, prompt, strlen(prompt), add, parse, &ids, &n), 0);
        const cJSON *want = cJSON_GetObjectItem(c, "prompt_ids");
        assert_int_equal(n, cJSON_GetArraySize(want));
        for (size_t i = 0; i < n; i++)
            assert_int_equal(ids[i], cJSON_GetArrayItem(want, (int)i)->valueint);
        exo_free(ids);

        struct exo_detok d;
        struct exo_buf out;
        exo_detok_init(&d, false);
        exo_buf_init(&out, 0);
        const cJSON *id;
        cJSON_ArrayForEach(id, cJSON_GetObjectItem(c, "ids"))
            assert_int_equal(exo_detok_push(t, &d, id->valueint, &out), 0);
        assert_int_equal(exo_detok_flush(&d, &out), 0);
        const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
        if (out.len != strlen(text) || memcmp(out.data, text, out.len) != 0)
            fail_msg("generation '%s' detokenizes to [%.*s]", name, (int)out.len,
                     (const char *)out.data);
        exo_buf_free(&out);
    }
    exo_tokenizer_free(t);
    cJSON_Delete(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokenizer_bpe_merges_and_specials),
        cmocka_unit_test(test_tokenizer_pre_tokenizer_digit_splits),
        cmocka_unit_test(test_tokenizer_bpe_long_piece),
        cmocka_unit_test(test_tokenizer_bpe_round_trip_any_bytes),
        cmocka_unit_test(test_tokenizer_spm_merges_and_byte_fallback),
        cmocka_unit_test(test_tokenizer_detok_streams_utf8),
        cmocka_unit_test(test_tokenizer_rejects_hostile_metadata),
        cmocka_unit_test(test_tokenizer_nul_and_empty_token_texts),
        cmocka_unit_test(test_tokenizer_survives_allocation_failure),
        cmocka_unit_test(test_tokenizer_text_cap),
        cmocka_unit_test(test_tokenizer_matches_llama_cpp_oracle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
