/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The exo command line: parse the subcommand and hand over to its module. Without a subcommand
 * (no arguments, or options first, as in `exo --listen 0.0.0.0`) exo runs the daemon. The only
 * place that calls exit().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: exo [options]                  run the daemon (see 'exo daemon --help')\n"
               "       exo <command> [options]\n"
               "       exo --version | --help\n"
               "\n"
               "commands:\n"
               "  daemon    serve the OpenAI-compatible API and the dashboard (the default)\n"
               "  run       generate text from a model on this machine\n"
               "  bench     measure prompt-processing and generation speed\n"
               "  devices   list this machine's devices and how fast they are\n"
               "  status    show the cluster as the local daemon sees it\n"
               "  keygen    print a new cluster key (for --cluster-key)\n"
               "\n"
               "Run 'exo <command> --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || (argv[1][0] == '-' && strcmp(argv[1], "--version") != 0 &&
                     strcmp(argv[1], "--help") != 0 && strcmp(argv[1], "-h") != 0))
        exit(exo_cli_daemon(argc, argv));
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("exo %s\n", EXO_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "daemon") == 0)
        exit(exo_cli_daemon(argc - 1, argv + 1));
    if (strcmp(argv[1], "run") == 0)
        exit(exo_cli_run(argc - 1, argv + 1));
    if (strcmp(argv[1], "bench") == 0)
        exit(exo_cli_bench(argc - 1, argv + 1));
    if (strcmp(argv[1], "devices") == 0)
        exit(exo_cli_devices(argc - 1, argv + 1));
    if (strcmp(argv[1], "status") == 0)
        exit(exo_cli_status(argc - 1, argv + 1));
    if (strcmp(argv[1], "keygen") == 0)
        exit(exo_cli_keygen(argc - 1, argv + 1));
    fprintf(stderr, "exo: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
