/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by the subcommands: the default model's path and option value parsing. */
#include "cli/cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#define DEFAULT_MODEL_FILE "SmolLM2-135M-Instruct.Q4_1.gguf"

void exo_cli_default_model(char *buf, size_t size)
{
    const char *dir = getenv("EXO_MODEL_DIR");
    if (dir && *dir) {
        snprintf(buf, size, "%s/%s", dir, DEFAULT_MODEL_FILE);
        return;
    }
    const char *cache = getenv("XDG_CACHE_HOME");
    if (cache && *cache)
        snprintf(buf, size, "%s/exo/models/%s", cache, DEFAULT_MODEL_FILE);
    else
        snprintf(buf, size, "%s/.cache/exo/models/%s", getenv("HOME") ? getenv("HOME") : ".",
                 DEFAULT_MODEL_FILE);
}

int exo_cli_parse_int(const char *cmd, const char *name, const char *text, long min, long max,
                      long *ret)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < min || v > max) {
        fprintf(stderr, "exo %s: --%s expects a whole number from %ld to %ld, not '%s'\n", cmd,
                name, min, max, text);
        return -1;
    }
    *ret = v;
    return 0;
}

int exo_cli_parse_float(const char *cmd, const char *name, const char *text, double min,
                        double max, double *ret)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !(v >= min && v <= max)) {
        fprintf(stderr, "exo %s: --%s expects a number from %g to %g, not '%s'\n", cmd, name, min,
                max, text);
        return -1;
    }
    *ret = v;
    return 0;
}
