/* SPDX-License-Identifier: Apache-2.0 */
/* `exo keygen`: a fresh cluster key file on stdout, for --cluster-key on every node. */
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/alloc.h"
#include "core/error.h"
#include "net/seal.h"

int exo_cli_keygen(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        printf("usage: exo keygen > cluster.key\n"
               "\n"
               "Print a new random cluster key. Copy the file to every node and start each\n"
               "with --cluster-key cluster.key: gossip is then encrypted and nodes without the\n"
               "key can neither join nor read it. To rotate, put a new key on the first line\n"
               "and keep the old one below it until every node has the new file.\n");
        return 0;
    }
    if (argc > 1) {
        fprintf(stderr, "exo keygen: unexpected argument '%s'\n", argv[1]);
        return 2;
    }
    char *text = NULL;
    if (sodium_init() < 0 || exo_seal_keygen(&text) < 0) {
        fprintf(stderr, "exo keygen: cannot make a key\n");
        return 1;
    }
    size_t len = strlen(text);
    int status = fwrite(text, 1, len, stdout) == len && fflush(stdout) == 0 ? 0 : 1;
    if (status)
        fprintf(stderr, "exo keygen: cannot write the key to stdout\n");
    else if (isatty(STDOUT_FILENO))
        fprintf(stderr, "exo keygen: keep this key secret; save it with 'exo keygen > "
                        "cluster.key' and pass --cluster-key cluster.key on every node\n");
    sodium_memzero(text, len);
    exo_free(text);
    return status;
}
