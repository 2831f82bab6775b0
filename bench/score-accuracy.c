/* SPDX-License-Identifier: Apache-2.0 */
/*
 * How good is the speed prediction? Each round measures a fresh CPU score (src/device/score.h),
 * predicts generation tokens/s for the model from it (src/device/profile.h), then measures the
 * engine's real generation speed the way `exo bench -p 0 -n N` does (N tokens decoded one at a
 * time from an empty cache, after one warm-up run), and prints both and the error. Scoring and
 * decoding alternate, so both see the same load on a shared machine; the summary gives the
 * median error and the spread over rounds.
 *
 *   score-accuracy [-m MODEL] [-n N] [-r ROUNDS] [-t THREADS] [-b BUDGET_S]
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/rng.h"
#include "device/detect.h"
#include "device/profile.h"
#include "device/score.h"
#include "engine/generate.h"

#define MAX_ROUNDS 64

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), compare_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

static void print_load(const char *when)
{
    char text[128] = "";
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (!fgets(text, sizeof(text), f))
            text[0] = '\0';
        fclose(f);
    }
    text[strcspn(text, "\n")] = '\0';
    printf("# load average %s: %s\n", when, text);
}

/* Tokens per second decoding n tokens one at a time from an empty cache. */
static double decode_tps(struct exo_session *s, const int32_t *tokens, long n)
{
    exo_session_reset(s);
    uint64_t t0 = exo_clock_ns();
    for (long i = 0; i < n; i++)
        if (exo_session_eval(s, &tokens[i], 1, (int32_t)i, NULL) < 0)
            return -1;
    return (double)n / ((double)(exo_clock_ns() - t0) / 1e9);
}

int main(int argc, char **argv)
{
    char model[4096];
    long n_gen = 128, rounds = 5, threads = 0;
    double budget = 2.0;
    int c;
    exo_cli_default_model(model, sizeof(model));
    while ((c = getopt(argc, argv, "m:n:r:t:b:h")) != -1) {
        switch (c) {
        case 'm':
            snprintf(model, sizeof(model), "%s", optarg);
            break;
        case 'n':
            n_gen = strtol(optarg, NULL, 10);
            break;
        case 'r':
            rounds = strtol(optarg, NULL, 10);
            break;
        case 't':
            threads = strtol(optarg, NULL, 10);
            break;
        case 'b':
            budget = strtod(optarg, NULL);
            break;
        default:
            fprintf(stderr, "usage: score-accuracy [-m MODEL] [-n N] [-r ROUNDS] [-t THREADS] "
                            "[-b BUDGET_S]\n");
            return 2;
        }
    }
    if (n_gen < 1 || n_gen > 4096 || rounds < 1 || rounds > MAX_ROUNDS || threads < 0 ||
        !(budget > 0)) {
        fprintf(stderr, "score-accuracy: bad option value\n");
        return 2;
    }

    struct exo_device_list *devices = exo_malloc(sizeof(*devices));
    struct exo_detect_options dopts = {
        .skip = 1u << EXO_DEVICE_API_VULKAN | 1u << EXO_DEVICE_API_OPENCL |
                1u << EXO_DEVICE_API_CUDA | 1u << EXO_DEVICE_API_NVML};
    if (!devices || exo_device_detect(&dopts, devices) < 0) {
        fprintf(stderr, "score-accuracy: detection failed\n");
        return 1;
    }
    const struct exo_device *cpu = exo_device_list_find(devices, "cpu0");

    struct exo_session_params sp = {.n_ctx = (uint32_t)(n_gen + 1 < 512 ? 512 : n_gen + 1),
                                    .n_batch = 512,
                                    .n_threads = (int32_t)threads};
    struct exo_session *s = NULL;
    struct exo_diag diag = {{0}};
    if (exo_session_open(model, &sp, &s, &diag) < 0) {
        fprintf(stderr, "score-accuracy: %s\n", diag.msg);
        return 1;
    }
    const struct exo_model *m = exo_session_model(s);
    struct exo_model_profile mp;
    if (exo_model_profile_from_model(m, &mp) < 0) {
        fprintf(stderr, "score-accuracy: no profile for the model\n");
        return 1;
    }
    enum exo_dtype main_type = EXO_DTYPE_F32;
    for (int t = 0; t < EXO_DTYPE_COUNT; t++)
        if (mp.layer_bytes[t] > mp.layer_bytes[main_type])
            main_type = (enum exo_dtype)t;
    int32_t *tokens = exo_malloc((size_t)n_gen * sizeof(int32_t));
    struct exo_rng rng;
    exo_rng_seed(&rng, 42);
    for (long i = 0; i < n_gen; i++)
        tokens[i] = (int32_t)exo_rng_below(&rng, m->hp.n_vocab);

    printf("# %s (%.1f MiB), %s, tg%ld, %ld rounds of (score %.1f s, warm-up, decode)\n", m->name,
           (double)m->weight_bytes / 1048576.0, exo_session_device(s), n_gen, rounds, budget);
    print_load("before");
    printf("%-5s %10s %10s %8s %9s %9s %9s %9s %8s\n", "round", "predicted", "measured", "error",
           "mem GB/s", "mv GB/s", "op us", "row ns", "score s");
    double err[MAX_ROUNDS], abs_err[MAX_ROUNDS], meas[MAX_ROUNDS], predv[MAX_ROUNDS];
    struct exo_score_params params = {.n_threads = (int32_t)threads, .budget_s = budget};
    for (long r = 0; r < rounds; r++) {
        struct exo_score score;
        struct exo_device_profile dp;
        struct exo_prediction pred;
        if (exo_score_measure(cpu, &params, &score) < 0) {
            fprintf(stderr, "score-accuracy: scoring failed\n");
            return 1;
        }
        exo_device_profile_init(&dp, cpu, &score);
        if (exo_device_profile_predict(&dp, &mp, sp.n_ctx, (uint32_t)(n_gen / 2), &pred) < 0) {
            fprintf(stderr, "score-accuracy: the model has a type the score lacks\n");
            return 1;
        }
        decode_tps(s, tokens, n_gen); /* warm-up, as exo bench does */
        double tps = decode_tps(s, tokens, n_gen);
        if (tps < 0) {
            fprintf(stderr, "score-accuracy: decoding failed\n");
            return 1;
        }
        predv[r] = pred.decode_tps;
        meas[r] = tps;
        err[r] = (pred.decode_tps - tps) / tps * 100.0;
        abs_err[r] = fabs(err[r]);
        /* The rate and fixed costs of the type most of the model's weights have. */
        const struct exo_score_type *st = exo_score_find(&score, main_type);
        printf("%-5ld %10.2f %10.2f %+7.1f%% %9.2f %9.2f %9.2f %9.2f %8.2f\n", r, pred.decode_tps,
               tps, err[r], score.mem_bw_gbps, st ? st->matvec_gbps : 0, st ? st->op_us : 0,
               st ? st->row_ns : 0, score.seconds);
        fflush(stdout);
    }
    print_load("after");
    double lo = err[0], hi = err[0];
    for (long r = 1; r < rounds; r++) {
        lo = err[r] < lo ? err[r] : lo;
        hi = err[r] > hi ? err[r] : hi;
    }
    /* The fastest round of each is the least disturbed by other load: comparing them says how
     * well the model predicts the machine itself, apart from the load swinging between the
     * score and the decode of one round. */
    double best_pred = predv[0], best_meas = meas[0];
    for (long r = 1; r < rounds; r++) {
        best_pred = predv[r] > best_pred ? predv[r] : best_pred;
        best_meas = meas[r] > best_meas ? meas[r] : best_meas;
    }
    printf("per round: error median %+.1f%% (|error| median %.1f%%), range %+.1f%% .. %+.1f%%\n",
           median(err, (int)rounds), median(abs_err, (int)rounds), lo, hi);
    printf("medians: predicted %.2f t/s, measured %.2f t/s (%+.1f%%); fastest: predicted %.2f "
           "t/s, measured %.2f t/s (%+.1f%%)\n",
           median(predv, (int)rounds), median(meas, (int)rounds),
           (median(predv, (int)rounds) / median(meas, (int)rounds) - 1) * 100, best_pred, best_meas,
           (best_pred / best_meas - 1) * 100);
    exo_free(tokens);
    exo_session_close(s);
    exo_free(devices);
    return 0;
}
