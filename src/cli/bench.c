/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `exo bench`: prompt-processing and generation speed, measured the way llama-bench measures
 * them so the figures compare directly: ppN evaluates N random tokens from an empty cache in
 * batches; tgN decodes N tokens one at a time from an empty cache (no sampling). One warm-up run
 * precedes the timed repetitions; the median and the spread are printed.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cli/cli.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/rng.h"
#include "engine/generate.h"

struct bench_options {
    char model[4096];
    long n_prompt, n_gen, reps;
    bool json;
    struct exo_session_params session;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: exo bench [-m MODEL] [-p N] [-n N] [-r N] [-t THREADS] [--json]\n"
               "\n"
               "Measure prompt processing (ppN: N tokens in batches of 512) and generation\n"
               "(tgN: N tokens one at a time) in tokens per second, as llama-bench does.\n"
               "\n"
               "  -m, --model PATH     GGUF model (default: the default model in the cache)\n"
               "  -p, --n-prompt N     prompt tokens (default 512; 0 skips the test)\n"
               "  -n, --n-gen N        generated tokens (default 128; 0 skips the test)\n"
               "  -r, --repetitions N  timed runs per test (default 5)\n"
               "  -t, --threads N      compute threads (default: physical cores)\n"
               "      --json           one JSON object per test on stdout\n"
               "  -h, --help           this help\n");
}

static int parse(int argc, char **argv, struct bench_options *o)
{
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'},  {"n-prompt", required_argument, NULL, 'p'},
        {"n-gen", required_argument, NULL, 'n'},  {"repetitions", required_argument, NULL, 'r'},
        {"threads", required_argument, NULL, 't'}, {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    long l;
    int c;
    exo_cli_default_model(o->model, sizeof(o->model));
    o->n_prompt = 512;
    o->n_gen = 128;
    o->reps = 5;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:p:n:r:t:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'm':
            snprintf(o->model, sizeof(o->model), "%s", optarg);
            break;
        case 'p':
            if (exo_cli_parse_int("bench", "n-prompt", optarg, 0, 1 << 20, &o->n_prompt) < 0)
                return 2;
            break;
        case 'n':
            if (exo_cli_parse_int("bench", "n-gen", optarg, 0, 1 << 20, &o->n_gen) < 0)
                return 2;
            break;
        case 'r':
            if (exo_cli_parse_int("bench", "repetitions", optarg, 1, 1000, &o->reps) < 0)
                return 2;
            break;
        case 't':
            if (exo_cli_parse_int("bench", "threads", optarg, 1, 512, &l) < 0)
                return 2;
            o->session.n_threads = (int32_t)l;
            break;
        case 'j':
            o->json = true;
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
        fprintf(stderr, "exo bench: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    return -1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* One timed run of a test; returns tokens per second or a negative error code. */
static double run_test(struct exo_session *s, const int32_t *tokens, long n_prompt, long n_gen)
{
    uint64_t t0 = exo_clock_ns();
    int rc = 0;
    exo_session_reset(s);
    if (n_prompt > 0) {
        rc = exo_session_eval(s, tokens, (int32_t)n_prompt, 0, NULL);
    } else {
        for (long i = 0; i < n_gen && rc == 0; i++)
            rc = exo_session_eval(s, &tokens[i], 1, (int32_t)i, NULL);
    }
    if (rc < 0)
        return rc;
    double secs = (double)(exo_clock_ns() - t0) / 1e9;
    return (double)(n_prompt > 0 ? n_prompt : n_gen) / secs;
}

static int bench_one(struct exo_session *s, const struct bench_options *o, const char *name,
                     long n_prompt, long n_gen, const int32_t *tokens)
{
    double *tps = exo_calloc((size_t)o->reps, sizeof(double));
    if (!tps)
        return EXO_ENOMEM;
    double warm = run_test(s, tokens, n_prompt, n_gen);
    if (warm < 0) {
        exo_free(tps);
        return (int)warm;
    }
    double sum = 0.0;
    for (long r = 0; r < o->reps; r++) {
        tps[r] = run_test(s, tokens, n_prompt, n_gen);
        if (tps[r] < 0) {
            int rc = (int)tps[r];
            exo_free(tps);
            return rc;
        }
        sum += tps[r];
    }
    double mean = sum / (double)o->reps, var = 0.0;
    for (long r = 0; r < o->reps; r++)
        var += (tps[r] - mean) * (tps[r] - mean);
    double sd = o->reps > 1 ? sqrt(var / (double)(o->reps - 1)) : 0.0;
    qsort(tps, (size_t)o->reps, sizeof(double), cmp_double);
    double median = o->reps % 2 ? tps[o->reps / 2]
                                : (tps[o->reps / 2 - 1] + tps[o->reps / 2]) / 2.0;
    const struct exo_model *m = exo_session_model(s);
    if (o->json)
        printf("{\"model\":\"%s\",\"test\":\"%s\",\"device\":\"%s\",\"reps\":%ld,"
               "\"median_tps\":%.2f,\"mean_tps\":%.2f,\"stdev_tps\":%.2f,\"min_tps\":%.2f,"
               "\"max_tps\":%.2f}\n",
               m->name, name, exo_session_device(s), o->reps, median, mean, sd, tps[0],
               tps[o->reps - 1]);
    else
        printf("| %-28.28s | %-6s | %10.2f | %8.2f | %10.2f .. %-10.2f |\n", m->name, name, median,
               sd, tps[0], tps[o->reps - 1]);
    fflush(stdout);
    exo_free(tps);
    return 0;
}

int exo_cli_bench(int argc, char **argv)
{
    struct bench_options o = {0};
    struct exo_session *s = NULL;
    struct exo_diag diag = {{0}};
    int32_t *tokens = NULL;
    int status = parse(argc, argv, &o);
    if (status >= 0)
        return status;

    long need = (o.n_prompt > o.n_gen ? o.n_prompt : o.n_gen) + 1;
    o.session.n_ctx = (uint32_t)(need < 512 ? 512 : need);
    o.session.n_batch = 512;
    int rc = exo_session_open(o.model, &o.session, &s, &diag);
    if (rc < 0) {
        fprintf(stderr, "exo bench: %s\n", diag.msg[0] ? diag.msg : exo_strerror(rc));
        return 1;
    }
    const struct exo_model *m = exo_session_model(s);
    tokens = exo_malloc((size_t)need * sizeof(int32_t));
    if (!tokens) {
        exo_session_close(s);
        return 1;
    }
    /* Random tokens, as llama-bench uses; a fixed seed keeps runs comparable. */
    struct exo_rng rng;
    exo_rng_seed(&rng, 42);
    for (long i = 0; i < need; i++)
        tokens[i] = (int32_t)exo_rng_below(&rng, m->hp.n_vocab);

    if (!o.json) {
        fprintf(stderr, "exo bench: %s, %.1f MiB, %s, %ld repetitions after one warm-up\n",
                m->name, (double)m->weight_bytes / 1048576.0, exo_session_device(s), o.reps);
        printf("| %-28s | %-6s | %10s | %8s | %-24s |\n", "model", "test", "t/s median",
               "stdev", "min .. max");
        printf("|------------------------------|--------|------------|----------|"
               "--------------------------|\n");
    }
    char name[32];
    if (o.n_prompt > 0) {
        snprintf(name, sizeof(name), "pp%ld", o.n_prompt);
        rc = bench_one(s, &o, name, o.n_prompt, 0, tokens);
    }
    if (rc == 0 && o.n_gen > 0) {
        snprintf(name, sizeof(name), "tg%ld", o.n_gen);
        rc = bench_one(s, &o, name, 0, o.n_gen, tokens);
    }
    if (rc < 0) {
        fprintf(stderr, "exo bench: %s\n", exo_strerror(rc));
        status = 1;
    } else {
        status = 0;
        /* The memory target: resident size within model file + KV cache + 64 MiB. */
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        double rss = (double)ru.ru_maxrss / 1024.0;
        double kv = (double)exo_model_kv_bytes_per_token(m, EXO_DTYPE_F16) *
                    exo_session_n_ctx(s) / 1048576.0;
        size_t file_size;
        exo_gguf_mapping(m->gguf, &file_size);
        double file = (double)file_size / 1048576.0;
        fprintf(stderr,
                "exo bench: peak resident %.1f MiB = model file %.1f MiB + KV cache %.1f MiB "
                "(%u tokens) + %.1f MiB\n",
                rss, file, kv, exo_session_n_ctx(s), rss - file - kv);
    }
    exo_free(tokens);
    exo_session_close(s);
    return status;
}
