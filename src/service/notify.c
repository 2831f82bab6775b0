/* SPDX-License-Identifier: Apache-2.0 */
/* sd_notify, written against the documented protocol (see notify.h). */
#include "service/notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/error.h"

int exo_notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path)
        return 0;
    size_t len = strlen(path);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if ((path[0] != '/' && path[0] != '@') || len >= sizeof(sa.sun_path))
        return EXO_EINVAL;
    memcpy(sa.sun_path, path, len);
    if (path[0] == '@')
        sa.sun_path[0] = '\0';
    socklen_t sa_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);

    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return exo_error_from_errno(errno);
    ssize_t n = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, sa_len);
    int rc = n < 0 ? exo_error_from_errno(errno) : 0;
    close(fd);
    return rc;
}

uint64_t exo_notify_watchdog_ms(void)
{
    const char *usec = getenv("WATCHDOG_USEC");
    const char *pid = getenv("WATCHDOG_PID");
    if (!usec || !*usec)
        return 0;
    if (pid && *pid && strtol(pid, NULL, 10) != (long)getpid())
        return 0;
    char *end;
    unsigned long long us = strtoull(usec, &end, 10);
    if (*end || us == 0)
        return 0;
    return us / 1000 ? us / 1000 : 1;
}
