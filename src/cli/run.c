/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `exo run`: generate text from a model on this machine, no daemon involved. The answer streams
 * to stdout as tokens arrive; model information and timings go to stderr so that stdout holds
 * only the generated text. With --chat the prompt is wrapped in the model's chat template, and
 * without -p a conversation is read from stdin line by line (each turn reuses the KV cache of
 * the previous ones). Ctrl-C stops the current answer.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/rng.h"
#include "engine/chat.h"
#include "engine/generate.h"

#include <sodium.h>

#define MAX_STOPS 16
#define MAX_TURNS 256

struct run_options {
    char model[4096];
    const char *prompt;
    const char *system;
    bool chat;
    bool seed_set;
    long n_predict;
    struct exo_session_params session;
    struct exo_generate_params gen;
    const char *stops[MAX_STOPS];
};

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

static bool print_text(void *ud, const char *text, size_t len)
{
    (void)ud;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return !interrupted;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: exo run [-m MODEL] [-p PROMPT | --chat] [options]\n"
            "\n"
            "Generate text with a model on this machine. Text goes to stdout, timings to stderr.\n"
            "\n"
            "  -m, --model PATH        GGUF model (default: the default model in the cache,\n"
            "                          fetched by scripts/fetch-model)\n"
            "  -p, --prompt TEXT       prompt; without --chat it is completed as raw text\n"
            "      --chat              use the model's chat template; without -p, read a\n"
            "                          conversation from stdin, one message per line\n"
            "      --system TEXT       system message for --chat\n"
            "  -n, --n-predict N       most tokens to generate (default 256, -1: no limit)\n"
            "      --temp T            temperature (default 0.8; 0 is greedy)\n"
            "      --top-k K           top-k (default 40; 0 off)\n"
            "      --top-p P           top-p (default 0.95; 1 off)\n"
            "      --min-p P           min-p (default 0.05; 0 off)\n"
            "      --repeat-penalty R  repetition penalty (default 1.0, off)\n"
            "      --presence-penalty P, --frequency-penalty F   (default 0, off)\n"
            "      --stop TEXT         stop when TEXT is generated (repeatable)\n"
            "      --seed S            random seed (default: random); a seed reproduces a run\n"
            "  -t, --threads N         compute threads (default: physical cores)\n"
            "  -c, --ctx N             context length in tokens (default: min(model, 4096))\n"
            "  -h, --help              this help\n");
}

enum {
    OPT_CHAT = 1000,
    OPT_SYSTEM,
    OPT_TEMP,
    OPT_TOP_K,
    OPT_TOP_P,
    OPT_MIN_P,
    OPT_REPEAT,
    OPT_PRESENCE,
    OPT_FREQUENCY,
    OPT_STOP,
    OPT_SEED,
};

static int parse(int argc, char **argv, struct run_options *o)
{
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'},
        {"prompt", required_argument, NULL, 'p'},
        {"chat", no_argument, NULL, OPT_CHAT},
        {"system", required_argument, NULL, OPT_SYSTEM},
        {"n-predict", required_argument, NULL, 'n'},
        {"temp", required_argument, NULL, OPT_TEMP},
        {"top-k", required_argument, NULL, OPT_TOP_K},
        {"top-p", required_argument, NULL, OPT_TOP_P},
        {"min-p", required_argument, NULL, OPT_MIN_P},
        {"repeat-penalty", required_argument, NULL, OPT_REPEAT},
        {"presence-penalty", required_argument, NULL, OPT_PRESENCE},
        {"frequency-penalty", required_argument, NULL, OPT_FREQUENCY},
        {"stop", required_argument, NULL, OPT_STOP},
        {"seed", required_argument, NULL, OPT_SEED},
        {"threads", required_argument, NULL, 't'},
        {"ctx", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct exo_sampler_params *sp = &o->gen.sampling;
    long l;
    double d;
    int c;

    exo_cli_default_model(o->model, sizeof(o->model));
    exo_sampler_params_default(sp);
    o->n_predict = 256;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:p:n:t:c:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'm':
            snprintf(o->model, sizeof(o->model), "%s", optarg);
            break;
        case 'p':
            o->prompt = optarg;
            break;
        case OPT_CHAT:
            o->chat = true;
            break;
        case OPT_SYSTEM:
            o->system = optarg;
            break;
        case 'n':
            if (exo_cli_parse_int("run", "n-predict", optarg, -1, 1 << 24, &o->n_predict) < 0)
                return 2;
            break;
        case OPT_TEMP:
            if (exo_cli_parse_float("run", "temp", optarg, 0, 100, &d) < 0)
                return 2;
            sp->temperature = (float)d;
            break;
        case OPT_TOP_K:
            if (exo_cli_parse_int("run", "top-k", optarg, 0, 1 << 24, &l) < 0)
                return 2;
            sp->top_k = (int32_t)l;
            break;
        case OPT_TOP_P:
            if (exo_cli_parse_float("run", "top-p", optarg, 0, 1, &d) < 0)
                return 2;
            sp->top_p = (float)d;
            break;
        case OPT_MIN_P:
            if (exo_cli_parse_float("run", "min-p", optarg, 0, 1, &d) < 0)
                return 2;
            sp->min_p = (float)d;
            break;
        case OPT_REPEAT:
            if (exo_cli_parse_float("run", "repeat-penalty", optarg, 0.01, 100, &d) < 0)
                return 2;
            sp->repeat_penalty = (float)d;
            break;
        case OPT_PRESENCE:
            if (exo_cli_parse_float("run", "presence-penalty", optarg, -2, 2, &d) < 0)
                return 2;
            sp->presence_penalty = (float)d;
            break;
        case OPT_FREQUENCY:
            if (exo_cli_parse_float("run", "frequency-penalty", optarg, -2, 2, &d) < 0)
                return 2;
            sp->frequency_penalty = (float)d;
            break;
        case OPT_STOP:
            if (o->gen.n_stop == MAX_STOPS) {
                fprintf(stderr, "exo run: at most %d --stop strings\n", MAX_STOPS);
                return 2;
            }
            o->stops[o->gen.n_stop++] = optarg;
            break;
        case OPT_SEED:
            if (exo_cli_parse_int("run", "seed", optarg, 0, 0x7fffffffffffffffL, &l) < 0)
                return 2;
            sp->seed = (uint64_t)l;
            o->seed_set = true;
            break;
        case 't':
            if (exo_cli_parse_int("run", "threads", optarg, 1, 512, &l) < 0)
                return 2;
            o->session.n_threads = (int32_t)l;
            break;
        case 'c':
            if (exo_cli_parse_int("run", "ctx", optarg, 16, 1 << 24, &l) < 0)
                return 2;
            o->session.n_ctx = (uint32_t)l;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "exo run: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!o->prompt && !o->chat) {
        fprintf(stderr, "exo run: give a prompt with -p, or --chat for a conversation\n");
        return 2;
    }
    if (!o->seed_set)
        randombytes_buf(&sp->seed, sizeof(sp->seed));
    o->gen.stop = o->stops;
    o->gen.max_tokens = (int32_t)o->n_predict;
    o->gen.on_text = print_text;
    return -1;
}


static void print_timings(const struct exo_generate_result *r)
{
    double pp_ms = (double)r->prompt_ns / 1e6, tg_ms = (double)r->generate_ns / 1e6;
    int32_t decoded = r->n_generated > 1 ? r->n_generated - 1 : 0;
    fprintf(stderr,
            "\nexo: prompt %d tokens (%d evaluated) in %.1f ms, %.1f tokens/s | generation %d "
            "tokens in %.1f ms, %.1f tokens/s\n",
            r->n_prompt, r->n_prompt_evaluated, pp_ms,
            pp_ms > 0 ? r->n_prompt_evaluated / (pp_ms / 1e3) : 0.0, r->n_generated, tg_ms,
            tg_ms > 0 ? decoded / (tg_ms / 1e3) : 0.0);
}

/* One generation over `text`; returns 0 or prints the error and returns 1. A chat template
 * writes the model's BOS text itself, so formatted chats are tokenized without adding one. */
static int generate_once(struct exo_session *s, struct run_options *o, const char *text)
{
    int32_t *tokens = NULL;
    size_t n = 0;
    struct exo_generate_result r;
    int rc = exo_session_tokenize(s, text, !o->chat, &tokens, &n);
    if (rc == 0 && n == 0)
        rc = EXO_EINVAL;
    if (rc < 0) {
        fprintf(stderr, "exo run: cannot tokenize the prompt: %s\n", exo_strerror(rc));
        exo_free(tokens);
        return 1;
    }
    interrupted = 0;
    rc = exo_session_generate(s, tokens, n, &o->gen, &r);
    exo_free(tokens);
    if (rc == EXO_ETOOBIG) {
        fprintf(stderr, "exo run: the prompt (%zu tokens) does not fit the context of %u tokens; "
                        "raise --ctx\n", n, exo_session_n_ctx(s));
        return 1;
    }
    if (rc < 0) {
        fprintf(stderr, "exo run: generation failed: %s\n", exo_strerror(rc));
        return 1;
    }
    print_timings(&r);
    return 0;
}

/* Collects the reply text of a chat turn while printing it. */
static bool print_and_keep(void *ud, const char *text, size_t len)
{
    exo_buf_put(ud, text, len);
    return print_text(NULL, text, len);
}

static int chat_loop(struct exo_session *s, struct run_options *o, enum exo_chat_template tmpl,
                     const char *default_system)
{
    struct exo_chat_message msgs[MAX_TURNS];
    char *owned[MAX_TURNS];
    size_t n_msgs = 0, n_owned = 0;
    struct exo_buf text, reply;
    char line[8192];
    int status = 0;
    bool tty = isatty(STDIN_FILENO);

    exo_buf_init(&text, 0);
    exo_buf_init(&reply, 0);
    if (o->system)
        msgs[n_msgs++] = (struct exo_chat_message){"system", o->system};
    o->gen.on_text = print_and_keep;
    o->gen.ud = &reply;
    for (;;) {
        if (tty)
            fputs("> ", stderr);
        if (!fgets(line, sizeof(line), stdin))
            break;
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[0])
            continue;
        if (n_msgs + 2 > MAX_TURNS) {
            fprintf(stderr, "exo run: the conversation is too long; start a new one\n");
            status = 1;
            break;
        }
        char *user = exo_strdup(line);
        if (!user) {
            status = 1;
            break;
        }
        owned[n_owned++] = user;
        msgs[n_msgs++] = (struct exo_chat_message){"user", user};
        exo_buf_reset(&text);
        exo_buf_reset(&reply);
        if (exo_chat_format(tmpl, default_system, msgs, n_msgs, true, &text) < 0 || text.err) {
            fprintf(stderr, "exo run: cannot format the conversation\n");
            status = 1;
            break;
        }
        if (generate_once(s, o, (const char *)text.data) != 0) {
            status = 1;
            break;
        }
        char *answer = exo_strndup(reply.data ? (const char *)reply.data : "", reply.len);
        if (!answer) {
            status = 1;
            break;
        }
        owned[n_owned++] = answer;
        msgs[n_msgs++] = (struct exo_chat_message){"assistant", answer};
    }
    for (size_t i = 0; i < n_owned; i++)
        exo_free(owned[i]);
    exo_buf_free(&text);
    exo_buf_free(&reply);
    return status;
}

int exo_cli_run(int argc, char **argv)
{
    struct run_options o = {0};
    struct exo_session *s = NULL;
    struct exo_diag diag = {{0}};
    char *default_system = NULL;
    struct exo_buf text;
    int status = parse(argc, argv, &o);
    if (status >= 0)
        return status;
    if (sodium_init() < 0) {
        fprintf(stderr, "exo run: libsodium failed to initialise\n");
        return 1;
    }

    int rc = exo_session_open(o.model, &o.session, &s, &diag);
    if (rc < 0) {
        fprintf(stderr, "exo run: %s\n", diag.msg[0] ? diag.msg : exo_strerror(rc));
        if (rc == EXO_ENOENT)
            fprintf(stderr, "exo run: fetch the default model with scripts/fetch-model, or "
                            "name one with -m\n");
        return 1;
    }
    const struct exo_model *m = exo_session_model(s);
    struct exo_gguf_str jinja = {NULL, 0};
    exo_gguf_get_str(m->gguf, "tokenizer.chat_template", &jinja);
    bool fallback = false;
    enum exo_chat_template tmpl = exo_chat_detect(jinja.ptr, (size_t)jinja.len, &fallback);
    if (exo_chat_default_system(jinja.ptr, (size_t)jinja.len, &default_system) < 0)
        default_system = NULL;
    fprintf(stderr, "exo: %s (%s, %u layers, %.1f MiB), context %u, %s, chat template %s%s\n",
            m->name, m->arch->name, m->hp.n_layer, (double)m->weight_bytes / 1048576.0,
            exo_session_n_ctx(s), exo_session_device(s), exo_chat_template_name(tmpl),
            fallback ? " (fallback: template not recognised)" : "");

    struct sigaction sa = {0};
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);

    exo_buf_init(&text, 0);
    if (o.chat && !o.prompt) {
        status = chat_loop(s, &o, tmpl, default_system);
    } else if (o.chat) {
        struct exo_chat_message msgs[2];
        size_t n = 0;
        if (o.system)
            msgs[n++] = (struct exo_chat_message){"system", o.system};
        msgs[n++] = (struct exo_chat_message){"user", o.prompt};
        if (exo_chat_format(tmpl, default_system, msgs, n, true, &text) < 0 || text.err) {
            fprintf(stderr, "exo run: cannot format the prompt with the chat template\n");
            status = 1;
        } else {
            status = generate_once(s, &o, (const char *)text.data);
        }
    } else {
        status = generate_once(s, &o, o.prompt);
    }
    exo_buf_free(&text);
    exo_free(default_system);
    exo_session_close(s);
    return status;
}
