/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The daemon's state directory: where the persistent node id, the keyring and the device-score
 * cache live. Opening it takes an exclusive lock, so two daemons never share one identity.
 * Files are replaced atomically (write a temporary file, fsync, rename, fsync the directory), so a
 * crash or a full disk leaves the previous version intact, never a torn one.
 *
 * Resolution order: the explicit path (--state-dir), $EXO_STATE_DIR, $STATE_DIRECTORY (set by
 * systemd's StateDirectory=), $XDG_STATE_HOME/exo, ~/.local/state/exo.
 */
#ifndef EXO_SERVICE_STATEDIR_H
#define EXO_SERVICE_STATEDIR_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"

#define EXO_NODE_ID_SIZE 16

struct exo_statedir;

/* Resolve, create (mode 0700) and lock the state directory. dir may be NULL. *ret owned by the
 * caller. EXO_EBUSY when another process holds the lock. */
int exo_statedir_open(const char *dir, struct exo_statedir **ret, struct exo_diag *diag);
void exo_statedir_close(struct exo_statedir *sd);

const char *exo_statedir_path(const struct exo_statedir *sd);

/* The node id, created on first use and kept across restarts. */
int exo_statedir_node_id(struct exo_statedir *sd, uint8_t id[EXO_NODE_ID_SIZE],
                         struct exo_diag *diag);

/* Replace file `name` (no slashes) with len bytes, atomically. */
int exo_statedir_write(struct exo_statedir *sd, const char *name, const void *data, size_t len,
                       struct exo_diag *diag);

/* Read file `name` into out (appended), at most max bytes; EXO_ENOENT when absent,
 * EXO_ETOOBIG when larger than max. */
int exo_statedir_read(struct exo_statedir *sd, const char *name, size_t max, struct exo_buf *out,
                      struct exo_diag *diag);

/* Hex form of a node id (33 bytes with the NUL). */
void exo_node_id_hex(const uint8_t id[EXO_NODE_ID_SIZE], char out[2 * EXO_NODE_ID_SIZE + 1]);
int exo_node_id_parse(const char *hex, size_t len, uint8_t id[EXO_NODE_ID_SIZE]);

#endif
