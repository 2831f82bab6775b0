#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Write tests/data/oracle/smollm2.json: what llama.cpp (through llama-cpp-python) makes of the
default model, so that exo's tokenizer and engine can be checked against an independent
implementation.

How the data is made (also recorded in the file's "about" field):
  * llama-cpp-python 0.3.36 from PyPI, built from source (it compiles its bundled llama.cpp on
    install, CPU only), in a virtual environment outside the repository:
    ~/.cache/exo/oracle-venv (created, and the package installed, when missing).
  * The model is SmolLM2-135M-Instruct.Q4_1.gguf as scripts/fetch-model caches it; its SHA-256
    is recorded and checked by the tests.
  * Tokenization: Llama.tokenize(text, add_bos=False, special=...) for every string below, once
    with special=True (parse_special: "<|im_start|>" is one control token) and once with
    special=False. add_bos=False means add_special=false; SmolLM2 adds no BOS/EOS anyway.
  * Generation: Llama(n_ctx=2048, n_batch=512, n_threads=2, seed=1234); the prompt is evaluated,
    then 64 times the token with the largest logit (llama_get_logits_ith(ctx, -1), ties to the
    lowest id) is taken and evaluated. That is greedy sampling: temperature 0 / top_k 1, no
    repetition penalty; end-of-generation tokens do not stop it, so there are always 64 ids.
    The same ids are cross-checked against Llama.generate(top_k=1, temp=0, repeat_penalty=1).
    "margins" holds, per step, the logit of the chosen token minus the runner-up's, so a test
    can tell a real divergence from a near-tie; "robust" marks generations whose every margin is
    at least ROBUST_MARGIN (see the comment above PLAIN_PROMPTS). "text" is Llama.detokenize(ids) decoded as UTF-8
    (invalid bytes replaced).
  * Chat prompts are rendered from the model's own tokenizer.chat_template with jinja2, the way
    transformers does (sandboxed, trim_blocks, lstrip_blocks), and tokenized with
    add_special=False and parse_special=True, as exo's chat.h prescribes.

Run it by hand from the repository root and commit the output:
    python3 tests/oracle/make-oracle.py [MODEL.gguf]
"""
import hashlib
import json
import os
import subprocess
import sys

LLAMA_CPP_PYTHON = "0.3.36"
VENV = os.path.expanduser("~/.cache/exo/oracle-venv")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "data", "oracle", "smollm2.json")
MODEL = os.path.expanduser("~/.cache/exo/models/SmolLM2-135M-Instruct.Q4_1.gguf")
N_CTX, N_BATCH, N_THREADS, SEED, N_PREDICT = 2048, 512, 2, 1234, 64


def in_venv():
    return os.path.realpath(sys.prefix) == os.path.realpath(VENV)


def enter_venv():
    """Re-run this script with the venv's Python, creating the venv first if needed."""
    python = os.path.join(VENV, "bin", "python")
    if not os.path.exists(python):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    have = subprocess.run([python, "-c", "import llama_cpp, jinja2; print(llama_cpp.__version__)"],
                          capture_output=True, text=True)
    if have.returncode != 0 or have.stdout.strip() != LLAMA_CPP_PYTHON:
        print(f"make-oracle: installing llama-cpp-python=={LLAMA_CPP_PYTHON} (builds llama.cpp; "
              "takes a while)", file=sys.stderr)
        subprocess.run([python, "-m", "pip", "install", "--quiet", "jinja2",
                        f"llama-cpp-python=={LLAMA_CPP_PYTHON}"], check=True)
    os.execv(python, [python, os.path.abspath(__file__)] + sys.argv[1:])


# Hard strings: (name, text). All valid UTF-8; see docs/internals/tokenizer.md for malformed text.
STRINGS = [
    ("empty", ""),
    ("single char", "x"),
    ("hello", "Hello, world!"),
    ("leading space", " leading space"),
    ("trailing space", "trailing space "),
    ("two leading spaces", "  two leading spaces"),
    ("only spaces", "   "),
    ("spaces inside", "multiple   spaces   inside  words"),
    ("tabs", "\t\ttabs\tand\ttext\t"),
    ("newlines", "line1\nline2\n\nline4\r\nwindows\r\n"),
    ("only newlines", "\n\n\n"),
    ("whitespace mix", "   \n   \n\t \n  x"),
    ("digits", "1234567890"),
    ("decimals", "3.14159 and 2,718,281.828"),
    ("ordinals", "Year 2024, 1st place, 100% of 7 days"),
    ("long number", "99999999999999999999999999999999"),
    ("contractions", "I'm sure you can't, won't, they're, we've, I'll, he'd"),
    ("upper contractions", "CAN'T WON'T I'M YOU'RE"),
    ("punctuation runs", "Wait!!! What??? Hmm... ,,, ;;; :::"),
    ("operators", "--> <== != === && || :: -> => <<= >>="),
    ("python", "def foo(x):\n    return x ** 2  # square it\n\n\nprint(foo(3))\n"),
    ("c code", "for (int i = 0; i < n; i++) {\n\tprintf(\"%d\\n\", i);\n}"),
    ("html", "<html><body class=\"x\">Hi &amp; bye</body></html>"),
    ("json", "{\"key\": [1, 2, {\"nested\": null, \"t\": true}]}"),
    ("url", "https://example.com/path/to?query=1&x=y#frag"),
    ("email", "user.name+tag@example.org"),
    ("latin accents", "Caf\u00e9 na\u00efve fa\u00e7ade r\u00e9sum\u00e9 \u00fcber"),
    ("latin ligatures", "Stra\u00dfe \u0152uvre \u00c6\u00d8\u00c5 \u00ff\u00fe\u00fd\u00f0"),
    ("japanese", "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3067\u3059\u3002"),
    ("chinese", "\u4e2d\u6587\u6d4b\u8bd5\uff0c\u5305\u62ec\u6807\u70b9\u7b26\u53f7\uff01"),
    ("korean", "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8"),
    ("cyrillic", "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440!"),
    ("arabic", "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645"),
    ("hebrew", "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd"),
    ("devanagari", "\u0939\u093f\u0928\u094d\u0926\u0940 \u092a\u093e\u0920"),
    ("thai", "\u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22"),
    ("emoji", "Emoji \U0001F600\U0001F389\U0001F680!"),
    ("zwj family and flags",
     "Family \U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466 and flags "
     "\U0001F1EB\U0001F1F7\U0001F1EF\U0001F1F5"),
    ("skin tones", "Skin tones \U0001F44D\U0001F3FD\U0001F44B\U0001F3FF"),
    ("combining marks", "e\u0301 a\u0300 o\u0308 n\u0303 Z\u0337\u0322a\u0334l\u0338g\u0335o\u0336"),
    ("math symbols", "Math: \u2211 \u222b \u221a \u221e \u2260 \u2264 \u2265 \u03c0\u00b2"),
    ("fullwidth", "Fullwidth: \uff21\uff22\uff23\uff11\uff12\uff13"),
    ("unicode spaces", "NBSP\u00a0here\u2003em\u3000ideographic \u2009thin"),
    ("zero width", "zero\u200bwidth\u200djoiner\ufeffbom"),
    ("line separators", "\u0085NEL\u2028LS\u2029PS"),
    ("control spaces", "Tab\u000bVT\u000cFF\u001cFS"),
    ("other numerals", "Roman \u216b, fractions \u00bd \u00be, Arabic-Indic \u0663\u0664\u0665"),
    ("identifiers", "snake_case camelCase PascalCase SCREAMING_CASE __dunder__"),
    ("chatml turn", "<|im_start|>user\nHello there<|im_end|>\n<|im_start|>assistant\n"),
    ("specials glued", "text<|im_end|>more<|endoftext|>end"),
    ("special twice", "<|im_start|><|im_start|>"),
    ("partial special", "<|im_start and <|im_end| and im_end|>"),
    ("other specials", "<reponame>x<file_sep>y<jupyter_code>z<empty_output>"),
    ("long run", "a" * 300),
    ("prose",
     "The quick brown fox jumps over the lazy dog. It was the best of times, it was the worst "
     "of times; it was the age of wisdom, it was the age of foolishness. \"Quoted,\" she said "
     "-- and then (parenthetically) added [brackets] and {braces}."),
]

# Greedy continuations of a 135M-parameter model are often near-ties between two tokens: over 64
# steps most prompts pass a step whose top-two logits differ by less than 0.05, below the ~0.15
# RMS logit difference between any two correct implementations (llama.cpp itself differs that
# much from a float64 forward pass, because 8-bit activations round differently). So the engine
# tests check these prompts with teacher forcing, and demand a free-running token-for-token match
# only of the "robust" ones, whose every step has a margin of at least ROBUST_MARGIN (the counting
# prompts below were chosen from ~50 candidates for that property).
ROBUST_MARGIN = 1.0
PLAIN_PROMPTS = [
    ("capital", "The capital of France is"),
    ("code", "def fibonacci(n):\n"),
    ("count 1-8", "1, 2, 3, 4, 5, 6, 7, 8,"),
    ("count 20", "20, 21, 22, 23,"),
    ("count 11", "11, 12, 13, 14, 15,"),
    ("count 0", "0, 1, 2, 3, 4,"),
    ("hundreds", "100, 200, 300, 400,"),
]
CHAT_PROMPTS = [
    ("chat capital", [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]),
    ("chat haiku", [{"role": "system", "content": "You are a poet."},
                    {"role": "user", "content": "Write a haiku about the sea."}]),
    ("chat count", [{"role": "user", "content": "Count from 1 to 20."}]),
]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def render_chat(template, messages):
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(msg):
        raise ValueError(msg)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[loopcontrols])
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template).render(messages=messages, add_generation_prompt=True,
                                            bos_token="", eos_token="")


def greedy(llm, llama_cpp, prompt_ids):
    import numpy as np
    llm.reset()
    llm.eval(prompt_ids)
    n_vocab = llm.n_vocab()
    ids, margins = [], []
    for _ in range(N_PREDICT):
        ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
        logits = np.ctypeslib.as_array(ptr, shape=(n_vocab,)).copy()
        tok = int(np.argmax(logits))
        second = np.partition(logits, -2)[-2]
        ids.append(tok)
        margins.append(round(float(logits[tok] - second), 4))
        llm.eval([tok])
    # Cross-check with llama-cpp-python's own greedy sampler. reset() first: generate() would
    # otherwise reuse the cached prompt and evaluate its last token on its own, a different
    # batch shape with slightly different rounding.
    llm.reset()
    check = []
    for tok in llm.generate(prompt_ids, top_k=1, top_p=1.0, min_p=0.0, temp=0.0,
                            repeat_penalty=1.0, reset=True):
        check.append(tok)
        if len(check) == N_PREDICT:
            break
    if check != ids:
        sys.exit(f"make-oracle: argmax and Llama.generate disagree:\n{ids}\n{check}\n{margins}")
    return ids, margins


def one_line_json(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(", ", ": "))


def main():
    if not in_venv():
        enter_venv()
    import llama_cpp

    model = sys.argv[1] if len(sys.argv) > 1 else MODEL
    llm = llama_cpp.Llama(model_path=model, n_ctx=N_CTX, n_batch=N_BATCH, n_threads=N_THREADS,
                          seed=SEED, logits_all=False, verbose=False)
    eog = [i for i in range(llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(
        llama_cpp.llama_model_get_vocab(llm.model), i)]

    cases = []
    for name, text in STRINGS:
        data = text.encode("utf-8")
        cases.append({"name": name, "text": text,
                      "parse_special": llm.tokenize(data, add_bos=False, special=True),
                      "plain": llm.tokenize(data, add_bos=False, special=False)})

    gens = []
    template = llm.metadata["tokenizer.chat_template"]
    prompts = [(n, p, False) for n, p in PLAIN_PROMPTS]
    prompts += [(n, render_chat(template, m), True) for n, m in CHAT_PROMPTS]
    for name, prompt, chat in prompts:
        prompt_ids = llm.tokenize(prompt.encode("utf-8"), add_bos=not chat, special=chat)
        ids, margins = greedy(llm, llama_cpp, prompt_ids)
        first_eog = next((i for i, t in enumerate(ids) if t in eog), None)
        gens.append({"name": name, "chat": chat, "prompt": prompt, "add_special": not chat,
                     "parse_special": chat, "prompt_ids": prompt_ids, "ids": ids,
                     "margins": margins, "eog_at": first_eog,
                     "robust": min(margins) >= ROBUST_MARGIN,
                     "text": llm.detokenize(ids).decode("utf-8", errors="replace")})

    header = {
        "about": "Made by tests/oracle/make-oracle.py (see its docstring and tests/oracle/README.md): "
                 "llama.cpp via llama-cpp-python's Llama.tokenize (add_bos=False; special=True for "
                 "parse_special, special=False for plain) and greedy argmax generation of "
                 f"{N_PREDICT} tokens with n_ctx {N_CTX}, n_batch {N_BATCH}, {N_THREADS} threads, "
                 f"seed {SEED}, no repetition penalty, EOG not stopping.",
        "model": {"file": os.path.basename(model), "sha256": sha256(model),
                  "bytes": os.path.getsize(model)},
        "llama_cpp_python": llama_cpp.__version__,
        "eog_ids": eog,
        "n_ctx": N_CTX,
        "seed": SEED,
        "n_predict": N_PREDICT,
    }
    lines = ["{"]
    for k, v in header.items():
        lines.append(f" {json.dumps(k)}: {one_line_json(v)},")
    lines.append(' "tokenize": [')
    lines.append(",\n".join("  " + one_line_json(c) for c in cases))
    lines.append(" ],")
    lines.append(' "generate": [')
    lines.append(",\n".join("  " + one_line_json(g) for g in gens))
    lines.append(" ]")
    lines.append("}")
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    json.load(open(OUT, encoding="utf-8"))  # it parses
    print(f"make-oracle: wrote {OUT}: {len(cases)} tokenization cases, {len(gens)} generations",
          file=sys.stderr)


if __name__ == "__main__":
    main()
