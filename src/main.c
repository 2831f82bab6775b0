/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The exo command line: parse the subcommand and hand over to its module. The only place that
 * calls exit().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: exo [--version] [--help] <command> [options]\n"
               "\n"
               "commands:\n"
               "  run       generate text from a model on this machine\n"
               "  bench     measure prompt-processing and generation speed\n"
               "  devices   list this machine's devices and how fast they are\n"
               "\n"
               "Run 'exo <command> --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("exo %s\n", EXO_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "run") == 0)
        exit(exo_cli_run(argc - 1, argv + 1));
    if (strcmp(argv[1], "bench") == 0)
        exit(exo_cli_bench(argc - 1, argv + 1));
    if (strcmp(argv[1], "devices") == 0)
        exit(exo_cli_devices(argc - 1, argv + 1));
    fprintf(stderr, "exo: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
