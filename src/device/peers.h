/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What a node keeps about every node's devices and telemetry besides the replicated state: each
 * node's latest telemetry digest, and the device records it has already seen, so that one look
 * at the replicated table after another tells which devices appeared, disappeared or changed.
 *
 * Digests come by gossip, which may deliver a late retransmission after a newer digest: a digest
 * is kept only when its sequence number or its wall clock is ahead of the one kept. Both have to
 * fall behind for it to be refused, so a sender that restarted (its sequence starts at 0 again)
 * or whose clock stepped back is still heard.
 *
 * Device records are compared by version, mark and sweep: exo_peers_devices_begin(), then
 * exo_peers_device_seen() for every record of the table, then exo_peers_devices_end(). The last
 * value of each device is kept, so a disappearance can say what went.
 *
 * Pure logic without I/O or clocks (callers pass the time); every function runs on the thread
 * that owns the table (the daemon's loop thread).
 */
#ifndef EXO_DEVICE_PEERS_H
#define EXO_DEVICE_PEERS_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "device/device.h"
#include "device/digest.h"

#define EXO_PEERS_ID_SIZE 16
#define EXO_PEERS_MAX     4096 /* nodes, as many as the replicated state holds members */

struct exo_peers;

/* Called once per difference; node, device and value (the device record's value, len bytes)
 * are borrowed for the call. For DISAPPEARED the value is the last one seen. */
typedef void (*exo_peers_device_cb)(void *ud, enum exo_device_event ev,
                                    const uint8_t node[EXO_PEERS_ID_SIZE], const char *device,
                                    const void *value, size_t len);

/* An empty table; *ret owned by the caller. 0 or EXO_ENOMEM. */
int exo_peers_create(struct exo_peers **ret);
/* Accepts NULL. */
void exo_peers_free(struct exo_peers *p);

/* Keep d (copied) as node's latest digest, heard at now_ms. 0 when kept; EXO_EREPLAY when neither
 * its seq nor its t_ms is ahead of the kept one's; EXO_ENOSPC beyond EXO_PEERS_MAX nodes;
 * EXO_ENOMEM. */
int exo_peers_put_digest(struct exo_peers *p, const uint8_t node[EXO_PEERS_ID_SIZE],
                         const struct exo_digest *d, uint64_t now_ms);

/* The latest digest of node, or NULL. Borrowed until the next call that changes p. */
const struct exo_digest *exo_peers_digest(const struct exo_peers *p,
                                          const uint8_t node[EXO_PEERS_ID_SIZE]);

/* Forget digests heard before cutoff_ms: a node that stopped talking has no current telemetry. */
void exo_peers_expire(struct exo_peers *p, uint64_t cutoff_ms);

/* Nodes with a digest, in id order: fill ids and digests (borrowed from p as above; arrays of
 * cap) and return how many there are. */
size_t exo_peers_digests(const struct exo_peers *p, const uint8_t **ids,
                         const struct exo_digest **digests, size_t cap);

/* Start a look at the device records. */
void exo_peers_devices_begin(struct exo_peers *p);

/* The record of device (a device id, at most EXO_DEVICE_ID_SIZE - 1 bytes) of node, at version
 * with value (len bytes; all borrowed) is in the table: cb(APPEARED) when it is new to p,
 * cb(CHANGED) when its version moved. 0; EXO_EINVAL for a bad device id; EXO_ENOSPC beyond
 * EXO_DEVICE_MAX devices of one node or EXO_PEERS_MAX nodes; EXO_ENOMEM. A refused record is
 * reported nowhere (not even as disappeared later). */
int exo_peers_device_seen(struct exo_peers *p, const uint8_t node[EXO_PEERS_ID_SIZE],
                          const char *device, uint64_t version, const void *value, size_t len,
                          exo_peers_device_cb cb, void *ud);

/* End the look: every device not seen since exo_peers_devices_begin disappeared; cb for each,
 * then it is forgotten. */
void exo_peers_devices_end(struct exo_peers *p, exo_peers_device_cb cb, void *ud);

#endif
