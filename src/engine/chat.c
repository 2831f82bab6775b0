/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Chat templates rendered in C (see chat.h for the shapes). Each renderer follows its Jinja
 * template statement by statement, including the details that change bytes: which contents are
 * trimmed (Jinja's trim and Python's str.strip remove Unicode whitespace at both ends), where the
 * BOS text goes, and which message lists the template refuses. Detection mirrors llama.cpp's
 * llm_chat_detect_template for these families: it looks for the markers each template writes.
 */
#include "engine/chat.h"

#include <string.h>

#include "core/alloc.h"
#include "core/error.h"

#define MAX_DEFAULT_SYSTEM (64u << 10)

static const char *const template_names[] = {
    [EXO_CHAT_CHATML] = "chatml",
    [EXO_CHAT_LLAMA3] = "llama3",
    [EXO_CHAT_LLAMA2] = "llama2",
    [EXO_CHAT_GEMMA] = "gemma",
};

const char *exo_chat_template_name(enum exo_chat_template tmpl)
{
    if ((unsigned)tmpl < sizeof(template_names) / sizeof(template_names[0]))
        return template_names[tmpl];
    return "unknown";
}

static bool contains(const char *s, size_t len, const char *needle)
{
    return memmem(s, len, needle, strlen(needle)) != NULL;
}

enum exo_chat_template exo_chat_detect(const char *jinja, size_t len, bool *ret_fallback)
{
    bool fallback = false;
    enum exo_chat_template tmpl = EXO_CHAT_CHATML;
    for (size_t i = 0; jinja && i < sizeof(template_names) / sizeof(template_names[0]); i++) {
        if (strlen(template_names[i]) == len && memcmp(template_names[i], jinja, len) == 0) {
            tmpl = (enum exo_chat_template)i;
            goto out;
        }
    }
    if (!jinja || len == 0) {
        fallback = true;
    } else if (contains(jinja, len, "<|im_start|>")) {
        /* Phi-4 and SmolVLM use <|im_start|> with other separators: not ChatML. */
        fallback = contains(jinja, len, "<|im_sep|>") || contains(jinja, len, "<end_of_utterance>");
    } else if (contains(jinja, len, "[INST]") || (len >= 7 && memcmp(jinja, "mistral", 7) == 0)) {
        tmpl = EXO_CHAT_LLAMA2;
    } else if (contains(jinja, len, "<start_of_turn>")) {
        tmpl = EXO_CHAT_GEMMA;
    } else if (contains(jinja, len, "<|start_header_id|>") &&
               contains(jinja, len, "<|end_header_id|>")) {
        tmpl = EXO_CHAT_LLAMA3;
    } else {
        fallback = true;
    }
out:
    if (ret_fallback)
        *ret_fallback = fallback;
    return tmpl;
}

/* ---- rendering helpers ---------------------------------------------------------------------- */

/* Python's str.isspace() set, which Jinja's trim and str.strip() remove. */
static bool py_space(uint32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0d) || (cp >= 0x1c && cp <= 0x20) || cp == 0x85 || cp == 0xa0 ||
           cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

/* The code point of the well-formed UTF-8 character at s (n bytes available) and its length,
 * or length 0 for a malformed one (never whitespace). */
static size_t decode(const uint8_t *s, size_t n, uint32_t *ret_cp)
{
    uint8_t b = s[0];
    size_t len = b < 0x80             ? 1
                 : (b & 0xe0) == 0xc0 ? 2
                 : (b & 0xf0) == 0xe0 ? 3
                 : (b & 0xf8) == 0xf0 ? 4
                                      : 0;
    if (len == 0 || len > n)
        return 0;
    uint32_t cp = len == 1 ? b : b & (0x7f >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    *ret_cp = cp;
    return len;
}

/* The bytes of s without leading and trailing Python whitespace. */
static void strip(const char *s, size_t len, const char **ret, size_t *ret_len)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t start = 0, end = len;
    uint32_t cp;
    size_t n;
    while (start < end && (n = decode(p + start, end - start, &cp)) > 0 && py_space(cp))
        start += n;
    while (end > start) {
        size_t back = 1;
        while (back < 4 && back < end - start && (p[end - back] & 0xc0) == 0x80)
            back++;
        n = decode(p + end - back, back, &cp);
        if (n != back || !py_space(cp))
            break;
        end -= back;
    }
    *ret = s + start;
    *ret_len = end - start;
}

static void put_str(struct exo_buf *out, const char *s)
{
    exo_buf_put(out, s, strlen(s));
}

static void put_trimmed(struct exo_buf *out, const char *s)
{
    const char *t;
    size_t n;
    strip(s, strlen(s), &t, &n);
    exo_buf_put(out, t, n);
}

static bool is_role(const struct exo_chat_message *m, const char *role)
{
    return strcmp(m->role, role) == 0;
}

/* ---- the templates ----------------------------------------------------------------------------
 */

static void render_chatml(const struct exo_chat_message *msgs, size_t n, bool gen,
                          struct exo_buf *out)
{
    for (size_t i = 0; i < n; i++) {
        put_str(out, "<|im_start|>");
        put_str(out, msgs[i].role);
        put_str(out, "\n");
        put_str(out, msgs[i].content);
        put_str(out, "<|im_end|>\n");
    }
    if (gen)
        put_str(out, "<|im_start|>assistant\n");
}

static void render_llama3(const struct exo_chat_message *msgs, size_t n, bool gen,
                          struct exo_buf *out)
{
    for (size_t i = 0; i < n; i++) {
        if (i == 0)
            put_str(out, "<|begin_of_text|>");
        put_str(out, "<|start_header_id|>");
        put_str(out, msgs[i].role);
        put_str(out, "<|end_header_id|>\n\n");
        put_trimmed(out, msgs[i].content);
        put_str(out, "<|eot_id|>");
    }
    if (gen)
        put_str(out, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

/* Both Llama 2 and Gemma take an optional leading system message out of the loop and require the
 * rest to alternate user, assistant, user, ... (other roles pass the check at odd positions);
 * their templates raise an exception otherwise, and for an empty conversation. */
static int split_system(const struct exo_chat_message *msgs, size_t n, const char **ret_system,
                        size_t *ret_first)
{
    if (n == 0)
        return EXO_EINVAL; /* the templates read messages[0] */
    size_t first = n > 0 && is_role(&msgs[0], "system") ? 1 : 0;
    for (size_t i = first; i < n; i++) {
        if (is_role(&msgs[i], "user") != ((i - first) % 2 == 0))
            return EXO_EINVAL;
    }
    *ret_system = first ? msgs[0].content : NULL;
    *ret_first = first;
    return 0;
}

static int render_llama2(const struct exo_chat_message *msgs, size_t n, struct exo_buf *out)
{
    const char *system;
    size_t first;
    int rc = split_system(msgs, n, &system, &first);
    if (rc != 0)
        return rc;
    struct exo_buf content;
    exo_buf_init(&content, 0);
    for (size_t i = first; i < n; i++) {
        bool user = is_role(&msgs[i], "user");
        if (!user && !is_role(&msgs[i], "assistant"))
            continue;
        /* The system block joins the first message before the whole is stripped. */
        exo_buf_reset(&content);
        if (i == first && system) {
            put_str(&content, "<<SYS>>\n");
            put_str(&content, system);
            put_str(&content, "\n<</SYS>>\n\n");
        }
        put_str(&content, msgs[i].content);
        if (content.err) {
            rc = content.err;
            break;
        }
        const char *s;
        size_t len;
        strip((const char *)content.data, content.len, &s, &len);
        put_str(out, user ? "<s>[INST] " : " ");
        exo_buf_put(out, s, len);
        put_str(out, user ? " [/INST]" : " </s>");
    }
    exo_buf_free(&content);
    return rc;
}

static int render_gemma(const struct exo_chat_message *msgs, size_t n, bool gen,
                        struct exo_buf *out)
{
    const char *system;
    size_t first;
    int rc = split_system(msgs, n, &system, &first);
    if (rc != 0)
        return rc;
    put_str(out, "<bos>");
    for (size_t i = first; i < n; i++) {
        put_str(out, "<start_of_turn>");
        put_str(out, is_role(&msgs[i], "assistant") ? "model" : msgs[i].role);
        put_str(out, "\n");
        if (i == first && system) {
            put_str(out, system);
            put_str(out, "\n\n");
        }
        put_trimmed(out, msgs[i].content);
        put_str(out, "<end_of_turn>\n");
    }
    if (gen)
        put_str(out, "<start_of_turn>model\n");
    return 0;
}

int exo_chat_format(enum exo_chat_template tmpl, const char *default_system,
                    const struct exo_chat_message *msgs, size_t n, bool add_generation_prompt,
                    struct exo_buf *out)
{
    for (size_t i = 0; i < n; i++) {
        if (!msgs[i].role || !msgs[i].content)
            return EXO_EINVAL;
    }
    /* A default system prompt is a system message in front of the conversation. */
    struct exo_chat_message *all = NULL;
    if (default_system && n > 0 && !is_role(&msgs[0], "system")) {
        all = exo_malloc(exo_mul_size(n + 1, sizeof(*all)));
        if (!all)
            return EXO_ENOMEM;
        all[0] = (struct exo_chat_message){"system", default_system};
        memcpy(all + 1, msgs, n * sizeof(*msgs));
        msgs = all;
        n++;
    }
    size_t mark = out->len;
    int rc = 0;
    switch (tmpl) {
    case EXO_CHAT_CHATML:
        render_chatml(msgs, n, add_generation_prompt, out);
        break;
    case EXO_CHAT_LLAMA3:
        render_llama3(msgs, n, add_generation_prompt, out);
        break;
    case EXO_CHAT_LLAMA2:
        rc = render_llama2(msgs, n, out);
        break;
    case EXO_CHAT_GEMMA:
        rc = render_gemma(msgs, n, add_generation_prompt, out);
        break;
    default:
        rc = EXO_EINVAL;
        break;
    }
    exo_free(all);
    if (rc == 0)
        rc = out->err;
    if (rc != 0 && !out->err)
        out->len = mark; /* a refused conversation leaves nothing behind */
    return rc;
}

/* ---- default system prompt ---------------------------------------------------------------- */

/* Jinja string escapes: \n, \t, \r, \\, \', \" (others kept as written). */
static char *unescape(const char *s, size_t len)
{
    char *out = exo_malloc(len + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '\\' && i + 1 < len) {
            char e = s[++i];
            c = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e;
            if (e != 'n' && e != 't' && e != 'r' && e != '\\' && e != '\'' && e != '"')
                out[o++] = '\\';
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return out;
}

/* Whether the literal text that starts at p (in raw template text when quote is 0, else in a
 * string literal opened by quote) runs unbroken up to the next <|im_end|>; sets *ret_stop there. */
static bool literal_until_end(const char *p, const char *end, char quote, const char **ret_stop)
{
    static const char close[] = "<|im_end|>";
    for (const char *c = p; c < end; c++) {
        if ((size_t)(end - c) >= sizeof(close) - 1 && memcmp(c, close, sizeof(close) - 1) == 0) {
            *ret_stop = c;
            return c > p && (size_t)(c - p) <= MAX_DEFAULT_SYSTEM;
        }
        if (quote == 0 && *c == '{' && c + 1 < end && (c[1] == '{' || c[1] == '%' || c[1] == '#'))
            return false;
        if (quote != 0 && *c == '\\')
            c++;
        else if (quote != 0 && *c == quote)
            return false;
    }
    return false;
}

/* Walk the template as Jinja's lexer would (raw text, {{ }} / {% %} blocks with their string
 * literals, {# #} comments) and take the first system turn written out literally, either as raw
 * text or inside one string literal. */
int exo_chat_default_system(const char *jinja, size_t len, char **ret_system)
{
    static const char open[] = "<|im_start|>system";
    enum { RAW, BLOCK, STRING, COMMENT } state = RAW;
    char quote = 0;
    const char *end = jinja ? jinja + len : NULL;
    for (const char *c = jinja; c && c < end; c++) {
        size_t left = (size_t)(end - c);
        if ((state == RAW || state == STRING) && left > sizeof(open) - 1 &&
            memcmp(c, open, sizeof(open) - 1) == 0) {
            const char *body = c + sizeof(open) - 1, *stop;
            if (*body == '\n')
                body++;
            else if (state == STRING && end - body >= 2 && body[0] == '\\' && body[1] == 'n')
                body += 2;
            else
                body = NULL;
            if (body && literal_until_end(body, end, state == STRING ? quote : 0, &stop)) {
                char *text = state == STRING ? unescape(body, (size_t)(stop - body))
                                             : exo_strndup(body, (size_t)(stop - body));
                if (!text)
                    return EXO_ENOMEM;
                *ret_system = text;
                return 0;
            }
        }
        switch (state) {
        case RAW:
            if (*c == '{' && left >= 2 && (c[1] == '{' || c[1] == '%')) {
                state = BLOCK;
                c++;
            } else if (*c == '{' && left >= 2 && c[1] == '#') {
                state = COMMENT;
                c++;
            }
            break;
        case BLOCK:
            if (*c == '\'' || *c == '"') {
                state = STRING;
                quote = *c;
            } else if ((*c == '}' || *c == '%') && left >= 2 && c[1] == '}') {
                state = RAW;
                c++;
            }
            break;
        case STRING:
            if (*c == '\\')
                c++;
            else if (*c == quote)
                state = BLOCK;
            break;
        case COMMENT:
            if (*c == '#' && left >= 2 && c[1] == '}') {
                state = RAW;
                c++;
            }
            break;
        }
    }
    return EXO_ENOENT;
}
