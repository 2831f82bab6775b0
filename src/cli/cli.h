/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The subcommands of the exo binary, one file each. Each takes the arguments after its name
 * (argv[0] is the subcommand) and returns the process exit status: 0 success, 1 failure,
 * 2 bad usage. main.c dispatches and is the only caller of exit().
 */
#ifndef EXO_CLI_CLI_H
#define EXO_CLI_CLI_H

#include <stddef.h>

/* The daemon: `exo [options]`; argv[0] is the program name. */
int exo_cli_daemon(int argc, char **argv);
int exo_cli_run(int argc, char **argv);
int exo_cli_bench(int argc, char **argv);
int exo_cli_status(int argc, char **argv);
int exo_cli_keygen(int argc, char **argv);
int exo_cli_devices(int argc, char **argv);

/* Where the default model lives once scripts/fetch-model has fetched it:
 * $EXO_MODEL_DIR or ${XDG_CACHE_HOME:-$HOME/.cache}/exo/models, then the file name. */
void exo_cli_default_model(char *buf, size_t size);

/* Parse a whole decimal number / float option value, printing "exo <cmd>: --name: ..." on error. */
int exo_cli_parse_int(const char *cmd, const char *name, const char *text, long min, long max,
                      long *ret);
int exo_cli_parse_float(const char *cmd, const char *name, const char *text, double min, double max,
                        double *ret);

#endif
