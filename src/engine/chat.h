/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Chat templates: a conversation -> the prompt text the model was trained on. We do not run
 * Jinja; we recognise the few template families our models use from the Jinja text in
 * tokenizer.chat_template and render them in C, producing byte for byte what the model's own
 * template produces (tests/unit/test-chat.c compares with strings rendered by jinja2):
 *
 *   ChatML   <|im_start|>{role}\n{content}<|im_end|>\n ... <|im_start|>assistant\n
 *   Llama 3 <|begin_of_text|><|start_header_id|>{role}<|end_header_id|>\n\n{content|trim}<|eot_id|>
 *   Llama 2  <s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user|strip} [/INST] {assistant|strip} </s>
 *            (Meta's template; Mistral's [INST] templates are rendered the same way)
 *   Gemma    <bos><start_of_turn>user\n{content|trim}<end_of_turn>\n ... <start_of_turn>model\n
 *            (Gemma 3's template: a system message is prefixed to the first user turn)
 *
 * The text includes the BOS marker where the template writes one, as the model's own template
 * does; tokenize it with add_special = false and parse_special = true so BOS is not doubled.
 */
#ifndef EXO_ENGINE_CHAT_H
#define EXO_ENGINE_CHAT_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

enum exo_chat_template {
    EXO_CHAT_CHATML,
    EXO_CHAT_LLAMA3,
    EXO_CHAT_LLAMA2,
    EXO_CHAT_GEMMA,
};

/* Both strings borrowed, NUL-terminated. */
struct exo_chat_message {
    const char *role; /* "system", "user", "assistant", ... */
    const char *content;
};

/* Recognise the template from the Jinja text in tokenizer.chat_template (borrowed; len bytes).
 * A template name ("chatml", "llama3", "llama2", "gemma") is accepted too. NULL or unknown text
 * gives ChatML with *ret_fallback = true (ret_fallback may be NULL). */
enum exo_chat_template exo_chat_detect(const char *jinja, size_t len, bool *ret_fallback);

/* "chatml", "llama3", "llama2", "gemma" (static). */
const char *exo_chat_template_name(enum exo_chat_template tmpl);

/*
 * Append the prompt for msgs (borrowed, n of them) to out (borrowed). default_system (borrowed,
 * may be NULL) is the system prompt a template injects when the conversation does not start
 * with a system message (SmolLM2's does); it goes first as a system message when n > 0.
 * add_generation_prompt appends the header of the assistant's turn (Llama 2 has none).
 * Returns 0, EXO_EINVAL for a NULL role or content or, with Llama 2 and Gemma, roles that do
 * not alternate user/assistant (their templates raise an exception there), or out's error.
 */
int exo_chat_format(enum exo_chat_template tmpl, const char *default_system,
                    const struct exo_chat_message *msgs, size_t n, bool add_generation_prompt,
                    struct exo_buf *out);

/* The system prompt a ChatML template (jinja, borrowed) injects as a literal
 * "<|im_start|>system\n...<|im_end|>" string, unescaped. *ret_system is owned by the caller
 * (exo_free). EXO_ENOENT when the template
 * injects none (or builds it from variables). */
int exo_chat_default_system(const char *jinja, size_t len, char **ret_system);

#endif
