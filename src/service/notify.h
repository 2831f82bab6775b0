/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The systemd notification protocol without libsystemd: one datagram per message to the
 * AF_UNIX socket named by $NOTIFY_SOCKET (a leading '@' is the abstract namespace). Messages are
 * "READY=1", "STOPPING=1", "WATCHDOG=1" and "STATUS=...". Without $NOTIFY_SOCKET every call is
 * a no-op, so the daemon calls them unconditionally.
 */
#ifndef EXO_SERVICE_NOTIFY_H
#define EXO_SERVICE_NOTIFY_H

#include <stdint.h>

/* Send `state` (e.g. "READY=1\nSTATUS=serving"). 0 when sent or when not under systemd. */
int exo_notify(const char *state);

/* The watchdog interval systemd expects pings within ($WATCHDOG_USEC, honouring
 * $WATCHDOG_PID), in milliseconds; 0 when no watchdog is configured. Ping at half of it. */
uint64_t exo_notify_watchdog_ms(void);

#endif
