/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for the tokenizer. The first byte picks what the rest is:
 *
 *   0x00-0xfe  text, encoded by one of six small tokenizers built once (byte-level BPE with each
 *              pre-tokenizer family, and SentencePiece), with parse_special from bit 7. For
 *              byte-level BPE the token pieces must give the text back byte for byte; for all,
 *              every id must be in range, and the streaming detokenizer must only ever emit
 *              valid UTF-8, equal to the text when the text is valid UTF-8.
 *   0xff       a GGUF image whose tokenizer metadata is loaded (and, when it loads, used to
 *              encode a fixed text): a hostile vocabulary must give an error, never a crash.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "engine/gguf.h"
#include "engine/tokenizer-int.h"
#include "engine/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)           \
    do {                      \
        if (!(cond))          \
            __builtin_trap(); \
    } while (0)

static const char *const extra[] = {
    "he",
    "ll",
    "hell",
    "hello",
    "\xc4\xa0w",
    "or",
    "\xc4\xa0wor",
    "\xc4\xa0world",
    "12",
    "123",
    "\xc4\xa0\xc4\xa0",
    "'s",
    "<|im_start|>",
    "<|im_end|>",
    "<u>",
    "<|im",
};
static const char *const merges[] = {
    "h e",
    "l l",
    "he ll",
    "hell o",
    "\xc4\xa0 w",
    "o r",
    "\xc4\xa0w or",
    "\xc4\xa0wor ld",
    "1 2",
    "12 3",
    "\xc4\xa0 \xc4\xa0",
    "' s",
};
#define N_BPE (256 + sizeof(extra) / sizeof(extra[0]))

static const char *const spm_words[] = {
    "<unk>", "<s>", "</s>",  "\xe2\x96\x81",      "\xe2\x96\x81h",
    "he",    "ll",  "hello", "\xe2\x96\x81hello", "<|im_end|>",
    "<u>",
};
#define N_SPM (256 + sizeof(spm_words) / sizeof(spm_words[0]))

static struct exo_tokenizer *tokenizers[6];

static struct exo_gguf_str str(const char *s)
{
    return (struct exo_gguf_str){s, strlen(s)};
}

static struct exo_tokenizer *build_bpe(const char *pre)
{
    static char chars[256][2];
    static struct exo_gguf_str tokens[N_BPE], merge[sizeof(merges) / sizeof(merges[0])];
    static int32_t types[N_BPE];
    for (unsigned b = 0; b < 256; b++) {
        tokens[b].ptr = chars[b];
        tokens[b].len = exo_tok_bpe_byte_char((uint8_t)b, chars[b]);
        types[b] = EXO_TOK_TYPE_NORMAL;
    }
    for (size_t i = 0; i < N_BPE - 256; i++) {
        tokens[256 + i] = str(extra[i]);
        types[256 + i] = extra[i][0] == '<' ? EXO_TOK_TYPE_CONTROL : EXO_TOK_TYPE_NORMAL;
    }
    types[N_BPE - 2] = EXO_TOK_TYPE_USER_DEFINED; /* "<u>" */
    for (size_t i = 0; i < sizeof(merges) / sizeof(merges[0]); i++)
        merge[i] = str(merges[i]);
    struct exo_tok_spec spec;
    exo_tok_spec_init(&spec);
    spec.model = str("gpt2");
    spec.pre = str(pre);
    spec.tokens = tokens;
    spec.n_tokens = N_BPE;
    spec.types = types;
    spec.n_types = N_BPE;
    spec.merges = merge;
    spec.n_merges = sizeof(merges) / sizeof(merges[0]);
    spec.special[EXO_TOK_SP_BOS] = N_BPE - 4;
    struct exo_tokenizer *t = NULL;
    CHECK(exo_tokenizer_from_spec(&spec, &t, NULL) == 0);
    return t;
}

static struct exo_tokenizer *build_spm(void)
{
    static char hex[256][8];
    static struct exo_gguf_str tokens[N_SPM];
    static int32_t types[N_SPM];
    static float scores[N_SPM];
    for (size_t i = 0; i < N_SPM - 256; i++) {
        tokens[i] = str(spm_words[i]);
        types[i] = i < 3 ? EXO_TOK_TYPE_CONTROL : EXO_TOK_TYPE_NORMAL;
        scores[i] = -(float)i;
    }
    types[0] = EXO_TOK_TYPE_UNKNOWN;
    types[9] = EXO_TOK_TYPE_CONTROL;       /* "<|im_end|>" */
    types[10] = EXO_TOK_TYPE_USER_DEFINED; /* "<u>" */
    for (unsigned b = 0; b < 256; b++) {
        size_t i = N_SPM - 256 + b;
        static const char digits[] = "0123456789ABCDEF";
        memcpy(hex[b], "<0x", 3);
        hex[b][3] = digits[b >> 4];
        hex[b][4] = digits[b & 15];
        hex[b][5] = '>';
        tokens[i] = (struct exo_gguf_str){hex[b], 6};
        types[i] = EXO_TOK_TYPE_BYTE;
    }
    struct exo_tok_spec spec;
    exo_tok_spec_init(&spec);
    spec.model = str("llama");
    spec.tokens = tokens;
    spec.n_tokens = N_SPM;
    spec.types = types;
    spec.n_types = N_SPM;
    spec.scores = scores;
    spec.scores_type = EXO_GGUF_FLOAT32;
    spec.n_scores = N_SPM;
    struct exo_tokenizer *t = NULL;
    CHECK(exo_tokenizer_from_spec(&spec, &t, NULL) == 0);
    return t;
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
        for (size_t k = 1; k < len; k++)
            if (s[i + k] < (k == 1 ? lo : 0x80) || s[i + k] > (k == 1 ? hi : 0xbf))
                return false;
        i += len;
    }
    return true;
}

static void check_text(const struct exo_tokenizer *t, bool byte_level, bool parse,
                       const uint8_t *text, size_t len)
{
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK(exo_tokenizer_encode(t, (const char *)text, len, true, parse, &ids, &n) == 0);
    struct exo_buf raw, out;
    exo_buf_init(&raw, 0);
    exo_buf_init(&out, 0);
    struct exo_detok d;
    exo_detok_init(&d, true);
    for (size_t i = 0; i < n; i++) {
        CHECK(ids[i] >= 0 && ids[i] < exo_tokenizer_vocab_size(t));
        size_t plen;
        const char *p = exo_tokenizer_piece(t, ids[i], &plen);
        exo_buf_put(&raw, p, plen);
        CHECK(exo_detok_push(t, &d, ids[i], &out) == 0);
        CHECK(utf8_valid(out.data, out.len));
    }
    CHECK(exo_detok_flush(&d, &out) == 0);
    CHECK(utf8_valid(out.data, out.len));
    if (byte_level) {
        size_t skip = exo_tokenizer_adds_bos(t) ? 1 : 0; /* llama3 adds BOS with add_special */
        size_t bos_len = 0;
        if (skip)
            exo_tokenizer_piece(t, exo_tokenizer_bos(t), &bos_len);
        CHECK(raw.len == bos_len + len);
        CHECK(len == 0 || memcmp(raw.data + bos_len, text, len) == 0);
        if (utf8_valid(text, len))
            CHECK(out.len == raw.len && (len == 0 || memcmp(out.data, raw.data, raw.len) == 0));
    }
    exo_buf_free(&raw);
    exo_buf_free(&out);
    exo_free(ids);
}

static void check_gguf(const uint8_t *data, size_t size)
{
    struct exo_gguf *g = NULL;
    if (exo_gguf_open_memory(data, size, "fuzz.gguf", &g, NULL) != 0)
        return;
    struct exo_tokenizer *t = NULL;
    if (exo_tokenizer_from_gguf(g, &t, NULL) == 0) {
        static const char text[] = "Hello <|im_start|>world 123 \xc3\xa9\xff";
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK(exo_tokenizer_encode(t, text, sizeof(text) - 1, true, true, &ids, &n) == 0);
        for (size_t i = 0; i < n; i++)
            CHECK(ids[i] >= 0 && ids[i] < exo_tokenizer_vocab_size(t));
        exo_free(ids);
        exo_tokenizer_free(t);
    }
    exo_gguf_close(g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!tokenizers[0]) {
        static const char *const pres[] = {"gpt-2", "default", "smollm", "llama-bpe", "qwen2"};
        for (int i = 0; i < 5; i++)
            tokenizers[i] = build_bpe(pres[i]);
        tokenizers[5] = build_spm();
    }
    if (size == 0)
        return 0;
    if (data[0] == 0xff) {
        check_gguf(data + 1, size - 1);
        return 0;
    }
    int which = (data[0] & 0x7f) % 6;
    check_text(tokenizers[which], which < 5, data[0] & 0x80, data + 1, size - 1);
    return 0;
}
