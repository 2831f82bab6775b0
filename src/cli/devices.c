/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `exo devices`: this machine's devices, the APIs that see each one, their memory, and the
 * CPU's measured score (cached in the state directory; --rescore measures again), with the
 * speed predicted from it for the default model when that model is in the cache. --json prints
 * what GET /api/v1/devices serves for this node.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/alloc.h"
#include "core/log.h"
#include "device/detect.h"
#include "device/profile.h"
#include "device/score.h"
#include "engine/model.h"
#include "service/statedir.h"

struct devices_options {
    bool json, rescore, no_score;
    const char *state_dir;
    int32_t n_threads;
    char model[4096];
};

static void usage(FILE *f)
{
    fprintf(f, "usage: exo devices [--json] [--rescore] [--no-score] [--state-dir DIR]\n"
               "                   [-t THREADS] [-m MODEL] [-v]\n"
               "\n"
               "List this machine's devices, the APIs that can drive each one, their memory and\n"
               "the CPU's measured speed (cached in the state directory).\n"
               "\n"
               "      --json           print the devices as the API serves them\n"
               "      --rescore        measure the CPU again instead of using the cached score\n"
               "      --no-score       detect only; do not measure or read the cache\n"
               "      --state-dir DIR  where the score cache lives (default: as the daemon)\n"
               "  -t, --threads N      threads to score with (default: physical cores)\n"
               "  -m, --model PATH     model to predict speeds for (default: the default model)\n"
               "  -v, --verbose        log what each probe found or skipped\n"
               "  -h, --help           this help\n");
}

static int parse(int argc, char **argv, struct devices_options *o)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'j'},
        {"rescore", no_argument, NULL, 'r'},
        {"no-score", no_argument, NULL, 'n'},
        {"state-dir", required_argument, NULL, 's'},
        {"threads", required_argument, NULL, 't'},
        {"model", required_argument, NULL, 'm'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    long l;
    /* Probes log a line for each API that is missing; a listing only wants them when asked. */
    exo_log_set_level(EXO_LOG_WARN);
    exo_cli_default_model(o->model, sizeof(o->model));
    optind = 1;
    while ((c = getopt_long(argc, argv, "t:m:vh", longopts, NULL)) != -1) {
        switch (c) {
        case 'j':
            o->json = true;
            break;
        case 'r':
            o->rescore = true;
            break;
        case 'n':
            o->no_score = true;
            break;
        case 's':
            o->state_dir = optarg;
            break;
        case 't':
            if (exo_cli_parse_int("devices", "threads", optarg, 1, 512, &l) < 0)
                return 2;
            o->n_threads = (int32_t)l;
            break;
        case 'm':
            snprintf(o->model, sizeof(o->model), "%s", optarg);
            break;
        case 'v':
            exo_log_set_level(EXO_LOG_INFO);
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
        fprintf(stderr, "exo devices: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    return -1;
}

/* The score, from the cache or measured now. A daemon holding the state directory only costs
 * the caching. */
static int get_score(const struct devices_options *o, const struct exo_device *cpu,
                     struct exo_score *score, bool *cached)
{
    struct exo_statedir *sd = NULL;
    struct exo_diag diag = {{0}};
    struct exo_score_params params = {.n_threads = o->n_threads};
    int rc = exo_statedir_open(o->state_dir, &sd, &diag);
    if (rc < 0)
        fprintf(stderr, "exo devices: %s; the score will not be cached\n",
                diag.msg[0] ? diag.msg : exo_strerror(rc));
    if (!o->json && (o->rescore || !sd))
        fprintf(stderr, "exo devices: measuring the CPU (about 2 s)...\n");
    diag.msg[0] = '\0';
    rc = exo_score_get(sd, cpu, &params, o->rescore, score, cached, &diag);
    if (rc == 0 && !*cached && !o->json && sd && diag.msg[0])
        fprintf(stderr, "exo devices: measured in %.1f s; %s\n", score->seconds, diag.msg);
    else if (rc == 0 && !*cached && !o->json && sd)
        fprintf(stderr, "exo devices: measured in %.1f s and cached in %s\n", score->seconds,
                exo_statedir_path(sd));
    exo_statedir_close(sd);
    if (rc < 0)
        fprintf(stderr, "exo devices: scoring failed: %s\n", exo_strerror(rc));
    return rc;
}

/* Predicted speeds for the model at path on the scored CPU; false when there is no model. */
static bool predict(const char *path, const struct exo_device *cpu, const struct exo_score *s,
                    struct exo_model_profile *mp, struct exo_prediction *pred)
{
    struct exo_model *m = NULL;
    struct exo_device_profile dp;
    if (access(path, R_OK) != 0 || exo_model_open(path, &m, NULL) < 0)
        return false;
    int rc = exo_model_profile_from_model(m, mp);
    exo_model_close(m);
    exo_device_profile_init(&dp, cpu, s);
    /* As `exo bench -n 128` measures: 128 tokens decoded from an empty cache. */
    return rc == 0 && exo_device_profile_predict(&dp, mp, 4096, 64, pred) == 0;
}

static void print_memory(char *out, size_t size, const struct exo_device *d)
{
    const double gib = 1024.0 * 1024.0 * 1024.0;
    if (!d->mem_total)
        snprintf(out, size, "%s", d->mem_shared ? "shared" : "?");
    else if (d->mem_free)
        snprintf(out, size, "%.1f / %.1f GiB", (double)d->mem_free / gib,
                 (double)d->mem_total / gib);
    else
        snprintf(out, size, "%.1f GiB", (double)d->mem_total / gib);
}

static void print_table(const struct exo_device_list *l, const struct exo_score *s, bool cached,
                        const struct exo_model_profile *mp, const struct exo_prediction *pred)
{
    printf("%-6s %-5s %-36s %-20s %-7s %s\n", "ID", "KIND", "NAME", "MEMORY free/total", "UNITS",
           "APIS");
    for (size_t i = 0; i < l->n; i++) {
        const struct exo_device *d = &l->v[i];
        char mem[48], units[24], apis[128] = "";
        print_memory(mem, sizeof(mem), d);
        if (d->kind == EXO_DEVICE_KIND_CPU)
            snprintf(units, sizeof(units), "%uc/%ut", d->compute_units, d->threads);
        else
            snprintf(units, sizeof(units), "%u", d->compute_units);
        size_t n = 0;
        for (uint32_t b = 0; b < d->n_bindings && n < sizeof(apis); b++)
            n += (size_t)snprintf(apis + n, sizeof(apis) - n, "%s%s", b ? ", " : "",
                                  exo_device_api_name(d->bindings[b].api));
        printf("%-6s %-5s %-36.36s %-20s %-7s %s\n", d->id, exo_device_kind_name(d->kind), d->name,
               mem, units, apis);
        for (uint32_t b = 0; b < d->n_bindings; b++) {
            const struct exo_device_binding *bd = &d->bindings[b];
            printf("         via %-7s %s%s%s%s\n", exo_device_api_name(bd->api), bd->name,
                   bd->driver[0] ? " (" : "", bd->driver, bd->driver[0] ? ")" : "");
        }
    }
    if (!s)
        return;
    const struct exo_device *cpu = &l->v[0];
    printf("\nScore of %s (%s, %d threads, kernels %s): memory %.1f GB/s, small op %.2f us\n",
           cpu->id, cached ? "cached" : "measured now", s->n_threads, cpu->isa, s->mem_bw_gbps,
           s->small_op_us);
    printf("  %-6s %14s %14s %12s %16s\n", "type", "mat-vec GB/s", "per mat-vec us", "per row ns",
           "mat-mat GFLOP/s");
    for (uint32_t i = 0; i < s->n_types; i++)
        printf("  %-6s %14.1f %14.1f %12.2f %16.1f\n", exo_dtype_name(s->types[i].type),
               s->types[i].matvec_gbps, s->types[i].op_us, s->types[i].row_ns,
               s->types[i].matmul_gflops);
    if (mp && pred)
        printf("\nPredicted on %s: generation %.1f tokens/s, prompt %.1f tokens/s "
               "(%.0f MiB of weights, %s)\n",
               mp->name, pred->decode_tps, pred->prefill_tps, (double)mp->weight_bytes / 1048576.0,
               pred->fits ? "fits" : "does not fit");
}

static int print_json(const struct exo_device_list *l, const struct exo_score *s,
                      const struct exo_model_profile *mp, const struct exo_prediction *pred)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *devs = exo_device_list_to_json(l);
    int rc = 1;
    if (!root || !devs || !cJSON_AddItemToObject(root, "devices", devs)) {
        cJSON_Delete(devs);
        goto out;
    }
    if (s) {
        /* The score belongs to the CPU device, the first one. */
        cJSON *score = exo_score_to_json(s);
        cJSON *cpu = cJSON_GetArrayItem(devs, 0);
        if (!score || !cpu || !cJSON_AddItemToObject(cpu, "score", score)) {
            cJSON_Delete(score);
            goto out;
        }
        if (mp && pred) {
            cJSON *p = cJSON_AddObjectToObject(cpu, "prediction");
            if (!p || !cJSON_AddStringToObject(p, "model", mp->name) ||
                !cJSON_AddNumberToObject(p, "decode_tps", pred->decode_tps) ||
                !cJSON_AddNumberToObject(p, "prefill_tps", pred->prefill_tps) ||
                !cJSON_AddBoolToObject(p, "fits", pred->fits))
                goto out;
        }
    }
    char *text = cJSON_Print(root);
    if (text) {
        printf("%s\n", text);
        cJSON_free(text);
        rc = 0;
    }
out:
    cJSON_Delete(root);
    if (rc)
        fprintf(stderr, "exo devices: out of memory\n");
    return rc;
}

int exo_cli_devices(int argc, char **argv)
{
    struct devices_options o = {0};
    struct exo_device_list *l = NULL;
    struct exo_score score;
    struct exo_model_profile mp;
    struct exo_prediction pred;
    bool cached = false, have_score = false, have_pred = false;
    int status = parse(argc, argv, &o);
    if (status >= 0)
        return status;
    l = exo_malloc(sizeof(*l));
    if (!l || exo_device_detect(NULL, l) < 0) {
        fprintf(stderr, "exo devices: out of memory\n");
        exo_free(l);
        return 1;
    }
    const struct exo_device *cpu = exo_device_list_find(l, "cpu0");
    if (cpu && !o.no_score && get_score(&o, cpu, &score, &cached) == 0) {
        have_score = true;
        have_pred = predict(o.model, cpu, &score, &mp, &pred);
    }
    if (o.json)
        status = print_json(l, have_score ? &score : NULL, have_pred ? &mp : NULL,
                            have_pred ? &pred : NULL);
    else
        print_table(l, have_score ? &score : NULL, cached, have_pred ? &mp : NULL,
                    have_pred ? &pred : NULL);
    exo_free(l);
    if (!o.json)
        status = 0;
    return status;
}
