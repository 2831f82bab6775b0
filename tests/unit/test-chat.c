/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Chat templates: every template renders every conversation below exactly as its Jinja source
 * does. The expected strings were rendered with jinja2 3.1.6 the way transformers renders chat
 * templates (sandboxed, trim_blocks and lstrip_blocks, raise_exception), from the templates of
 * SmolLM2-135M-Instruct (from its GGUF), a plain ChatML template, Meta-Llama-3-8B-Instruct,
 * Llama-2-7b-chat and gemma-3 with bos_token/eos_token set to each model's texts; a NULL
 * expectation is a conversation the template raises an exception for. Also: template
 * detection, the default system prompt of a template, and allocation failure.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/error.h"
#include "engine/chat.h"
#include "engine/gguf.h"

#define SMOLLM2_SYSTEM "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

struct conversation {
    const struct exo_chat_message *msgs;
    size_t n;
};

struct expected {
    enum exo_chat_template tmpl;
    bool smollm2_default; /* rendered with SmolLM2's default system prompt */
    int conv;
    bool gen;
    const char *text; /* NULL: the template refuses */
};

/* Conversations, rendered below by every template. */
static const struct exo_chat_message conv0[] = {
    {"user", "Hello!"},
};
static const struct exo_chat_message conv1[] = {
    {"system", "You are terse."},
    {"user", "What is 2+2?"},
    {"assistant", "4"},
    {"user", "  And 3+3?\n"},
};
static const struct exo_chat_message conv2[] = {
    {"user", " \tpadded\302\240 "},
    {"assistant", "\343\200\200ok\342\200\203 \302\205"},
};
static const struct exo_chat_message conv3[] = {
    {NULL, NULL},
};
static const struct exo_chat_message conv4[] = {
    {"system", "Only a system message."},
};
static const struct exo_chat_message conv5[] = {
    {"user", "one"},
    {"user", "two"},
};
static const struct exo_chat_message conv6[] = {
    {"user", "Line1\nLine2 \346\227\245\346\234\254\350\252\236 \360\237\230\200"},
    {"assistant", "Sure:\n```c\nint x;\n```\n"},
};
static const struct exo_chat_message conv7[] = {
    {"system", "  Sys with spaces  "},
    {"user", "hi"},
};
static const struct exo_chat_message conv8[] = {
    {"user", "q"},
    {"tool", "result"},
};
static const struct exo_chat_message conv9[] = {
    {"assistant", "I speak first."},
};
static const struct conversation conversations[] = {
    {conv0, 1}, {conv1, 4}, {conv2, 2}, {conv3, 0}, {conv4, 1},
    {conv5, 2}, {conv6, 2}, {conv7, 2}, {conv8, 2}, {conv9, 1},
};

/* Expected prompts; NULL where the template refuses the conversation. */
static const struct expected expected[] = {
    {EXO_CHAT_CHATML, true, 0, true,
     "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
     "Face<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n"},
    {EXO_CHAT_CHATML, true, 0, false,
     "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
     "Face<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n"},
    {EXO_CHAT_CHATML, true, 1, true,
     "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nWhat is "
     "2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n<|im_start|>user\n  And "
     "3+3?\n<|im_end|>\n<|im_start|>assistant\n"},
    {EXO_CHAT_CHATML, true, 1, false,
     "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nWhat is "
     "2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n<|im_start|>user\n  And "
     "3+3?\n<|im_end|>\n"},
    {EXO_CHAT_CHATML, true, 2, true,
     "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
     "Face<|im_end|>\n<|im_start|>user\n \tpadded\302\240 "
     "<|im_end|>\n<|im_start|>assistant\n\343\200\200ok\342\200\203 "
     "\302\205<|im_end|>\n<|im_start|>assistant\n"},
    {EXO_CHAT_CHATML, true, 2, false,
     "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
     "Face<|im_end|>\n<|im_start|>user\n \tpadded\302\240 "
     "<|im_end|>\n<|im_start|>assistant\n\343\200\200ok\342\200\203 \302\205<|im_end|>\n"},
    {EXO_CHAT_CHATML, true, 3, true, "<|im_start|>assistant\n"},
    {EXO_CHAT_CHATML, true, 3, false, ""},
    {EXO_CHAT_CHATML, true, 4, true,
     "<|im_start|>system\nOnly a system message.<|im_end|>\n<|im_start|>assistant\n"},
    {EXO_CHAT_CHATML, true, 4, false, "<|im_start|>system\nOnly a system message.<|im_end|>\n"},
    {EXO_CHAT_CHATML, true, 5, true,
     "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
     "Face<|im_end|>\n<|im_start|>user\none<|im_end|>\n<|im_start|>user\ntwo<|im_end|>\n<|im_start|"
     ">assistant\n"},
    {EXO_CHAT_CHATML, true, 5, false,
     "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
     "Face<|im_end|>\n<|im_start|>user\none<|im_end|>\n<|im_start|>user\ntwo<|im_end|>\n"},
    {EXO_CHAT_CHATML, true, 6, true,
     "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
     "Face<|im_end|>\n<|im_start|>user\nLine1\nLine2 \346\227\245\346\234\254\350\252\236 "
     "\360\237\230\200<|im_end|>\n<|im_start|>assistant\nSure:\n```c\nint "
     "x;\n```\n<|im_end|>\n<|im_start|>assistant\n"},
    {EXO_CHAT_CHATML, true, 6, false,
     "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
     "Face<|im_end|>\n<|im_start|>user\nLine1\nLine2 \346\227\245\346\234\254\350\252\236 "
     "\360\237\230\200<|im_end|>\n<|im_start|>assistant\nSure:\n```c\nint x;\n```\n<|im_end|>\n"},
    {EXO_CHAT_CHATML, true, 7, true,
     "<|im_start|>system\n  Sys with spaces  "
     "<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"},
    {EXO_CHAT_CHATML, true, 7, false,
     "<|im_start|>system\n  Sys with spaces  <|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"},
    {EXO_CHAT_CHATML, true, 8, true,
     "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
     "Face<|im_end|>\n<|im_start|>user\nq<|im_end|>\n<|im_start|>tool\nresult<|im_end|>\n<|im_"
     "start|>assistant\n"},
    {EXO_CHAT_CHATML, true, 8, false,
     "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
     "Face<|im_end|>\n<|im_start|>user\nq<|im_end|>\n<|im_start|>tool\nresult<|im_end|>\n"},
    {EXO_CHAT_CHATML, true, 9, true,
     "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
     "Face<|im_end|>\n<|im_start|>assistant\nI speak first.<|im_end|>\n<|im_start|>assistant\n"},
    {EXO_CHAT_CHATML, true, 9, false,
     "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
     "Face<|im_end|>\n<|im_start|>assistant\nI speak first.<|im_end|>\n"},
    {EXO_CHAT_CHATML, false, 0, true,
     "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n"},
    {EXO_CHAT_CHATML, false, 0, false, "<|im_start|>user\nHello!<|im_end|>\n"},
    {EXO_CHAT_CHATML, false, 1, true,
     "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nWhat is "
     "2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n<|im_start|>user\n  And "
     "3+3?\n<|im_end|>\n<|im_start|>assistant\n"},
    {EXO_CHAT_CHATML, false, 1, false,
     "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nWhat is "
     "2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n<|im_start|>user\n  And "
     "3+3?\n<|im_end|>\n"},
    {EXO_CHAT_CHATML, false, 2, true,
     "<|im_start|>user\n \tpadded\302\240 "
     "<|im_end|>\n<|im_start|>assistant\n\343\200\200ok\342\200\203 "
     "\302\205<|im_end|>\n<|im_start|>assistant\n"},
    {EXO_CHAT_CHATML, false, 2, false,
     "<|im_start|>user\n \tpadded\302\240 "
     "<|im_end|>\n<|im_start|>assistant\n\343\200\200ok\342\200\203 \302\205<|im_end|>\n"},
    {EXO_CHAT_CHATML, false, 3, true, "<|im_start|>assistant\n"},
    {EXO_CHAT_CHATML, false, 3, false, ""},
    {EXO_CHAT_CHATML, false, 4, true,
     "<|im_start|>system\nOnly a system message.<|im_end|>\n<|im_start|>assistant\n"},
    {EXO_CHAT_CHATML, false, 4, false, "<|im_start|>system\nOnly a system message.<|im_end|>\n"},
    {EXO_CHAT_CHATML, false, 5, true,
     "<|im_start|>user\none<|im_end|>\n<|im_start|>user\ntwo<|im_end|>\n<|im_start|>assistant\n"},
    {EXO_CHAT_CHATML, false, 5, false,
     "<|im_start|>user\none<|im_end|>\n<|im_start|>user\ntwo<|im_end|>\n"},
    {EXO_CHAT_CHATML, false, 6, true,
     "<|im_start|>user\nLine1\nLine2 \346\227\245\346\234\254\350\252\236 "
     "\360\237\230\200<|im_end|>\n<|im_start|>assistant\nSure:\n```c\nint "
     "x;\n```\n<|im_end|>\n<|im_start|>assistant\n"},
    {EXO_CHAT_CHATML, false, 6, false,
     "<|im_start|>user\nLine1\nLine2 \346\227\245\346\234\254\350\252\236 "
     "\360\237\230\200<|im_end|>\n<|im_start|>assistant\nSure:\n```c\nint x;\n```\n<|im_end|>\n"},
    {EXO_CHAT_CHATML, false, 7, true,
     "<|im_start|>system\n  Sys with spaces  "
     "<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"},
    {EXO_CHAT_CHATML, false, 7, false,
     "<|im_start|>system\n  Sys with spaces  <|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"},
    {EXO_CHAT_CHATML, false, 8, true,
     "<|im_start|>user\nq<|im_end|>\n<|im_start|>tool\nresult<|im_end|>\n<|im_start|>assistant\n"},
    {EXO_CHAT_CHATML, false, 8, false,
     "<|im_start|>user\nq<|im_end|>\n<|im_start|>tool\nresult<|im_end|>\n"},
    {EXO_CHAT_CHATML, false, 9, true,
     "<|im_start|>assistant\nI speak first.<|im_end|>\n<|im_start|>assistant\n"},
    {EXO_CHAT_CHATML, false, 9, false, "<|im_start|>assistant\nI speak first.<|im_end|>\n"},
    {EXO_CHAT_LLAMA3, false, 0, true,
     "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|><|start_header_"
     "id|>assistant<|end_header_id|>\n\n"},
    {EXO_CHAT_LLAMA3, false, 0, false,
     "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>"},
    {EXO_CHAT_LLAMA3, false, 1, true,
     "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are "
     "terse.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWhat is "
     "2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n4<|eot_id|><|start_header_id|>"
     "user<|end_header_id|>\n\nAnd "
     "3+3?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
    {EXO_CHAT_LLAMA3, false, 1, false,
     "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are "
     "terse.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWhat is "
     "2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n4<|eot_id|><|start_header_id|>"
     "user<|end_header_id|>\n\nAnd 3+3?<|eot_id|>"},
    {EXO_CHAT_LLAMA3, false, 2, true,
     "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\npadded<|eot_id|><|start_header_"
     "id|>assistant<|end_header_id|>\n\nok<|eot_id|><|start_header_id|>assistant<|end_header_id|>"
     "\n\n"},
    {EXO_CHAT_LLAMA3, false, 2, false,
     "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\npadded<|eot_id|><|start_header_"
     "id|>assistant<|end_header_id|>\n\nok<|eot_id|>"},
    {EXO_CHAT_LLAMA3, false, 3, true, "<|start_header_id|>assistant<|end_header_id|>\n\n"},
    {EXO_CHAT_LLAMA3, false, 3, false, ""},
    {EXO_CHAT_LLAMA3, false, 4, true,
     "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nOnly a system "
     "message.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
    {EXO_CHAT_LLAMA3, false, 4, false,
     "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nOnly a system "
     "message.<|eot_id|>"},
    {EXO_CHAT_LLAMA3, false, 5, true,
     "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\none<|eot_id|><|start_header_id|>"
     "user<|end_header_id|>\n\ntwo<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
    {EXO_CHAT_LLAMA3, false, 5, false,
     "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\none<|eot_id|><|start_header_id|>"
     "user<|end_header_id|>\n\ntwo<|eot_id|>"},
    {EXO_CHAT_LLAMA3, false, 6, true,
     "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nLine1\nLine2 "
     "\346\227\245\346\234\254\350\252\236 "
     "\360\237\230\200<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nSure:\n```c\nint "
     "x;\n```<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
    {EXO_CHAT_LLAMA3, false, 6, false,
     "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nLine1\nLine2 "
     "\346\227\245\346\234\254\350\252\236 "
     "\360\237\230\200<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nSure:\n```c\nint "
     "x;\n```<|eot_id|>"},
    {EXO_CHAT_LLAMA3, false, 7, true,
     "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nSys with "
     "spaces<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|><|start_header_id|>"
     "assistant<|end_header_id|>\n\n"},
    {EXO_CHAT_LLAMA3, false, 7, false,
     "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nSys with "
     "spaces<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"},
    {EXO_CHAT_LLAMA3, false, 8, true,
     "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nq<|eot_id|><|start_header_id|>"
     "tool<|end_header_id|>\n\nresult<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
    {EXO_CHAT_LLAMA3, false, 8, false,
     "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nq<|eot_id|><|start_header_id|>"
     "tool<|end_header_id|>\n\nresult<|eot_id|>"},
    {EXO_CHAT_LLAMA3, false, 9, true,
     "<|begin_of_text|><|start_header_id|>assistant<|end_header_id|>\n\nI speak "
     "first.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
    {EXO_CHAT_LLAMA3, false, 9, false,
     "<|begin_of_text|><|start_header_id|>assistant<|end_header_id|>\n\nI speak first.<|eot_id|>"},
    {EXO_CHAT_LLAMA2, false, 0, true, "<s>[INST] Hello! [/INST]"},
    {EXO_CHAT_LLAMA2, false, 0, false, "<s>[INST] Hello! [/INST]"},
    {EXO_CHAT_LLAMA2, false, 1, true,
     "<s>[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nWhat is 2+2? [/INST] 4 </s><s>[INST] And 3+3? "
     "[/INST]"},
    {EXO_CHAT_LLAMA2, false, 1, false,
     "<s>[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nWhat is 2+2? [/INST] 4 </s><s>[INST] And 3+3? "
     "[/INST]"},
    {EXO_CHAT_LLAMA2, false, 2, true, "<s>[INST] padded [/INST] ok </s>"},
    {EXO_CHAT_LLAMA2, false, 2, false, "<s>[INST] padded [/INST] ok </s>"},
    {EXO_CHAT_LLAMA2, false, 3, true, NULL},
    {EXO_CHAT_LLAMA2, false, 3, false, NULL},
    {EXO_CHAT_LLAMA2, false, 4, true, ""},
    {EXO_CHAT_LLAMA2, false, 4, false, ""},
    {EXO_CHAT_LLAMA2, false, 5, true, NULL},
    {EXO_CHAT_LLAMA2, false, 5, false, NULL},
    {EXO_CHAT_LLAMA2, false, 6, true,
     "<s>[INST] Line1\nLine2 \346\227\245\346\234\254\350\252\236 \360\237\230\200 [/INST] "
     "Sure:\n```c\nint x;\n``` </s>"},
    {EXO_CHAT_LLAMA2, false, 6, false,
     "<s>[INST] Line1\nLine2 \346\227\245\346\234\254\350\252\236 \360\237\230\200 [/INST] "
     "Sure:\n```c\nint x;\n``` </s>"},
    {EXO_CHAT_LLAMA2, false, 7, true,
     "<s>[INST] <<SYS>>\n  Sys with spaces  \n<</SYS>>\n\nhi [/INST]"},
    {EXO_CHAT_LLAMA2, false, 7, false,
     "<s>[INST] <<SYS>>\n  Sys with spaces  \n<</SYS>>\n\nhi [/INST]"},
    {EXO_CHAT_LLAMA2, false, 8, true, "<s>[INST] q [/INST]"},
    {EXO_CHAT_LLAMA2, false, 8, false, "<s>[INST] q [/INST]"},
    {EXO_CHAT_LLAMA2, false, 9, true, NULL},
    {EXO_CHAT_LLAMA2, false, 9, false, NULL},
    {EXO_CHAT_GEMMA, false, 0, true,
     "<bos><start_of_turn>user\nHello!<end_of_turn>\n<start_of_turn>model\n"},
    {EXO_CHAT_GEMMA, false, 0, false, "<bos><start_of_turn>user\nHello!<end_of_turn>\n"},
    {EXO_CHAT_GEMMA, false, 1, true,
     "<bos><start_of_turn>user\nYou are terse.\n\nWhat is "
     "2+2?<end_of_turn>\n<start_of_turn>model\n4<end_of_turn>\n<start_of_turn>user\nAnd "
     "3+3?<end_of_turn>\n<start_of_turn>model\n"},
    {EXO_CHAT_GEMMA, false, 1, false,
     "<bos><start_of_turn>user\nYou are terse.\n\nWhat is "
     "2+2?<end_of_turn>\n<start_of_turn>model\n4<end_of_turn>\n<start_of_turn>user\nAnd "
     "3+3?<end_of_turn>\n"},
    {EXO_CHAT_GEMMA, false, 2, true,
     "<bos><start_of_turn>user\npadded<end_of_turn>\n<start_of_turn>model\nok<end_of_turn>\n<start_"
     "of_turn>model\n"},
    {EXO_CHAT_GEMMA, false, 2, false,
     "<bos><start_of_turn>user\npadded<end_of_turn>\n<start_of_turn>model\nok<end_of_turn>\n"},
    {EXO_CHAT_GEMMA, false, 3, true, NULL},
    {EXO_CHAT_GEMMA, false, 3, false, NULL},
    {EXO_CHAT_GEMMA, false, 4, true, "<bos><start_of_turn>model\n"},
    {EXO_CHAT_GEMMA, false, 4, false, "<bos>"},
    {EXO_CHAT_GEMMA, false, 5, true, NULL},
    {EXO_CHAT_GEMMA, false, 5, false, NULL},
    {EXO_CHAT_GEMMA, false, 6, true,
     "<bos><start_of_turn>user\nLine1\nLine2 \346\227\245\346\234\254\350\252\236 "
     "\360\237\230\200<end_of_turn>\n<start_of_turn>model\nSure:\n```c\nint "
     "x;\n```<end_of_turn>\n<start_of_turn>model\n"},
    {EXO_CHAT_GEMMA, false, 6, false,
     "<bos><start_of_turn>user\nLine1\nLine2 \346\227\245\346\234\254\350\252\236 "
     "\360\237\230\200<end_of_turn>\n<start_of_turn>model\nSure:\n```c\nint "
     "x;\n```<end_of_turn>\n"},
    {EXO_CHAT_GEMMA, false, 7, true,
     "<bos><start_of_turn>user\n  Sys with spaces  \n\nhi<end_of_turn>\n<start_of_turn>model\n"},
    {EXO_CHAT_GEMMA, false, 7, false,
     "<bos><start_of_turn>user\n  Sys with spaces  \n\nhi<end_of_turn>\n"},
    {EXO_CHAT_GEMMA, false, 8, true,
     "<bos><start_of_turn>user\nq<end_of_turn>\n<start_of_turn>tool\nresult<end_of_turn>\n<start_"
     "of_turn>model\n"},
    {EXO_CHAT_GEMMA, false, 8, false,
     "<bos><start_of_turn>user\nq<end_of_turn>\n<start_of_turn>tool\nresult<end_of_turn>\n"},
    {EXO_CHAT_GEMMA, false, 9, true, NULL},
    {EXO_CHAT_GEMMA, false, 9, false, NULL},
};

static void test_chat_renders_like_jinja(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++) {
        const struct expected *e = &expected[i];
        const struct conversation *c = &conversations[e->conv];
        struct exo_buf out;
        exo_buf_init(&out, 0);
        exo_buf_put(&out, "keep", 4); /* format appends */
        int rc = exo_chat_format(e->tmpl, e->smollm2_default ? SMOLLM2_SYSTEM : NULL, c->msgs, c->n,
                                 e->gen, &out);
        bool ok = e->text ? rc == 0 && out.len == strlen(e->text) + 4 &&
                                memcmp(out.data + 4, e->text, out.len - 4) == 0
                          : rc == EXO_EINVAL && out.len == 4;
        char got[4096];
        snprintf(got, sizeof(got), "rc %d [%.*s]", rc, (int)(out.len - 4),
                 (const char *)out.data + 4);
        exo_buf_free(&out);
        if (!ok)
            fail_msg("case %zu (%s, conversation %d, gen %d):\n got  %s\n want %s", i,
                     exo_chat_template_name(e->tmpl), e->conv, e->gen, got,
                     e->text ? e->text : "EXO_EINVAL, nothing appended");
    }
}

static void test_chat_rejects_null_fields(void **state)
{
    (void)state;
    struct exo_chat_message bad[] = {{"user", NULL}};
    struct exo_chat_message bad_role[] = {{NULL, "x"}};
    struct exo_buf out;
    exo_buf_init(&out, 0);
    assert_int_equal(exo_chat_format(EXO_CHAT_CHATML, NULL, bad, 1, true, &out), EXO_EINVAL);
    assert_int_equal(exo_chat_format(EXO_CHAT_LLAMA3, NULL, bad_role, 1, true, &out), EXO_EINVAL);
    assert_int_equal(exo_chat_format((enum exo_chat_template)99, NULL, conv0, 1, true, &out),
                     EXO_EINVAL);
    assert_int_equal(out.len, 0);
    exo_buf_free(&out);
}

static void test_chat_output_cap_is_an_error(void **state)
{
    (void)state;
    struct exo_buf out;
    exo_buf_init(&out, 16);
    assert_int_equal(exo_chat_format(EXO_CHAT_CHATML, NULL, conv1, 4, true, &out), EXO_ETOOBIG);
    exo_buf_free(&out);
}

static void test_chat_survives_allocation_failure(void **state)
{
    (void)state;
    for (long n = 0; n < 20; n++) {
        struct exo_buf out;
        exo_buf_init(&out, 0);
        exo_alloc_fail_after(n);
        int rc = exo_chat_format(EXO_CHAT_LLAMA2, "sys", conv0, 1, true, &out);
        exo_alloc_fail_after(-1);
        assert_true(rc == 0 || rc == EXO_ENOMEM);
        exo_buf_free(&out);
        char *sys = NULL;
        exo_alloc_fail_after(n);
        rc = exo_chat_default_system("{{ '<|im_start|>system\\nX<|im_end|>' }}", 36, &sys);
        exo_alloc_fail_after(-1);
        assert_true(rc == 0 || rc == EXO_ENOMEM);
        exo_free(sys);
    }
}

static void test_chat_detects_template_families(void **state)
{
    (void)state;
    static const struct {
        const char *jinja;
        enum exo_chat_template tmpl;
        bool fallback;
    } cases[] = {
        {"{% for m in messages %}{{'<|im_start|>' + m['role'] }}{% endfor %}", EXO_CHAT_CHATML,
         false},
        {"{{ bos_token }}{{ '<|start_header_id|>' + r + '<|end_header_id|>\\n\\n' }}",
         EXO_CHAT_LLAMA3, false},
        {"{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}", EXO_CHAT_LLAMA2, false},
        {"mistral", EXO_CHAT_LLAMA2, false},
        {"{{ '<start_of_turn>' + role + '\\n' }}", EXO_CHAT_GEMMA, false},
        {"chatml", EXO_CHAT_CHATML, false},
        {"llama3", EXO_CHAT_LLAMA3, false},
        {"llama2", EXO_CHAT_LLAMA2, false},
        {"gemma", EXO_CHAT_GEMMA, false},
        /* Phi-4 and SmolVLM write <|im_start|> but are not ChatML. */
        {"{{'<|im_start|>' + role + '<|im_sep|>'}}", EXO_CHAT_CHATML, true},
        {"{{'<|im_start|>User:' + c + '<end_of_utterance>'}}", EXO_CHAT_CHATML, true},
        {"{{ '### Instruction:' }}", EXO_CHAT_CHATML, true},
        {"", EXO_CHAT_CHATML, true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bool fallback = !cases[i].fallback;
        enum exo_chat_template t =
            exo_chat_detect(cases[i].jinja, strlen(cases[i].jinja), &fallback);
        if (t != cases[i].tmpl || fallback != cases[i].fallback)
            fail_msg("case %zu: got %s/%d", i, exo_chat_template_name(t), fallback);
    }
    bool fallback = false;
    assert_int_equal(exo_chat_detect(NULL, 0, &fallback), EXO_CHAT_CHATML);
    assert_true(fallback);
    assert_int_equal(exo_chat_detect("gemma", 5, NULL), EXO_CHAT_GEMMA);
    assert_string_equal(exo_chat_template_name(EXO_CHAT_LLAMA3), "llama3");
    assert_string_equal(exo_chat_template_name((enum exo_chat_template)42), "unknown");
}

static void check_default(const char *jinja, const char *want)
{
    char *got = NULL;
    int rc = exo_chat_default_system(jinja, strlen(jinja), &got);
    if (!want) {
        if (rc != EXO_ENOENT)
            fail_msg("[%s]: want none, got %d [%s]", jinja, rc, got ? got : "");
        return;
    }
    if (rc != 0 || strcmp(got, want) != 0)
        fail_msg("[%s]: want [%s], got %d [%s]", jinja, want, rc, got ? got : "");
    exo_free(got);
}

static void test_chat_extracts_default_system_prompt(void **state)
{
    (void)state;
    /* A literal with a real newline (as SmolLM2's GGUF stores it) and with the escape. */
    check_default("{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
                  "You are Smol.<|im_end|>\n' }}{% endif %}",
                  "You are Smol.");
    check_default(
        "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud.<|im_end|>\\n' }}",
        "You are Qwen, created by Alibaba Cloud.");
    check_default("{{ \"<|im_start|>system\\nIt's \\\"quoted\\\"\\tand\\\\ escaped<|im_end|>\" }}",
                  "It's \"quoted\"\tand\\ escaped");
    check_default("{{ '<|im_start|>system\\nDon\\'t panic.<|im_end|>' }}", "Don't panic.");
    /* Raw template text outside any block is literal too. */
    check_default("{% if x %}<|im_start|>system\nRaw text.<|im_end|>\n{% endif %}", "Raw text.");
    /* Built from a variable, not a literal: the string closes before <|im_end|>. */
    check_default("{{ '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}", NULL);
    /* ... then a literal default further on is still found. */
    check_default("{{ '<|im_start|>system\\n' + m + '<|im_end|>' }}{% else %}{{ '<|im_start|>"
                  "system\\nFallback.<|im_end|>' }}",
                  "Fallback.");
    /* Raw text interrupted by a block. */
    check_default("<|im_start|>system\n{{ sys }}<|im_end|>", NULL);
    /* In a comment it is not output at all. */
    check_default("{# '<|im_start|>system\\nHidden<|im_end|>' #}", NULL);
    check_default("{{ '<|im_start|>system\\n<|im_end|>' }}", NULL); /* empty */
    check_default("{{ '<|im_start|>system\\nNo end' }}", NULL);
    check_default("{{ '<|im_start|>systemX<|im_end|>' }}", NULL);
    check_default("{{ '<|im_start|>user\\nHi<|im_end|>' }}", NULL);
    char *got = NULL;
    assert_int_equal(exo_chat_default_system(NULL, 0, &got), EXO_ENOENT);
}

/* With EXO_MODEL set: the default model's own template is ChatML and injects SmolLM2's prompt. */
static void test_chat_default_model_template(void **state)
{
    (void)state;
    const char *path = getenv("EXO_MODEL");
    if (!path || !*path)
        skip();
    struct exo_gguf *g = NULL;
    struct exo_diag diag;
    if (exo_gguf_open(path, &g, &diag) != 0)
        fail_msg("%s", diag.msg);
    struct exo_gguf_str jinja;
    assert_int_equal(exo_gguf_get_str(g, "tokenizer.chat_template", &jinja), 0);
    bool fallback = true;
    assert_int_equal(exo_chat_detect(jinja.ptr, (size_t)jinja.len, &fallback), EXO_CHAT_CHATML);
    assert_false(fallback);
    char *sys = NULL;
    assert_int_equal(exo_chat_default_system(jinja.ptr, (size_t)jinja.len, &sys), 0);
    assert_string_equal(sys, SMOLLM2_SYSTEM);
    exo_free(sys);
    exo_gguf_close(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chat_renders_like_jinja),
        cmocka_unit_test(test_chat_rejects_null_fields),
        cmocka_unit_test(test_chat_output_cap_is_an_error),
        cmocka_unit_test(test_chat_survives_allocation_failure),
        cmocka_unit_test(test_chat_detects_template_families),
        cmocka_unit_test(test_chat_extracts_default_system_prompt),
        cmocka_unit_test(test_chat_default_model_template),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
