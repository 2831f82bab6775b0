/* SPDX-License-Identifier: Apache-2.0 */
/* State directory, lock and atomic file replacement (see statedir.h). */
#include "service/statedir.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "core/alloc.h"

struct exo_statedir {
    char *path; /* owned */
    int lock_fd;
};

static int resolve(const char *dir, char *out, size_t size)
{
    const char *env;
    if (dir && *dir)
        return snprintf(out, size, "%s", dir) < (int)size ? 0 : EXO_ETOOBIG;
    if ((env = getenv("EXO_STATE_DIR")) && *env)
        return snprintf(out, size, "%s", env) < (int)size ? 0 : EXO_ETOOBIG;
    if ((env = getenv("STATE_DIRECTORY")) && *env) {
        /* systemd may pass several, colon-separated; the first is ours. */
        size_t n = strcspn(env, ":");
        return snprintf(out, size, "%.*s", (int)n, env) < (int)size ? 0 : EXO_ETOOBIG;
    }
    if ((env = getenv("XDG_STATE_HOME")) && *env)
        return snprintf(out, size, "%s/exo", env) < (int)size ? 0 : EXO_ETOOBIG;
    if ((env = getenv("HOME")) && *env)
        return snprintf(out, size, "%s/.local/state/exo", env) < (int)size ? 0 : EXO_ETOOBIG;
    return EXO_ENOENT;
}

/* mkdir -p with mode 0700 for the last component. */
static int make_dirs(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int rc = mkdir(path, 0755);
        *p = '/';
        if (rc != 0 && errno != EEXIST)
            return -errno;
    }
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}

int exo_statedir_open(const char *dir, struct exo_statedir **ret, struct exo_diag *diag)
{
    char path[PATH_MAX];
    int rc = resolve(dir, path, sizeof(path));
    if (rc < 0)
        return exo_diag_set(diag, rc, "cannot tell where the state directory is: set --state-dir");
    int err = make_dirs(path);
    if (err < 0)
        return exo_diag_set(diag, exo_error_from_errno(err), "cannot create state directory %s: %s",
                            path, strerror(-err));
    struct exo_statedir *sd = exo_calloc(1, sizeof(*sd));
    if (!sd || !(sd->path = exo_strdup(path))) {
        exo_free(sd);
        return EXO_ENOMEM;
    }
    char lock[PATH_MAX + 8];
    snprintf(lock, sizeof(lock), "%s/lock", path);
    sd->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (sd->lock_fd < 0) {
        rc = exo_diag_set(diag, exo_error_from_errno(errno), "cannot open %s: %s", lock,
                          strerror(errno));
        goto fail;
    }
    if (flock(sd->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        char pid[32] = "";
        ssize_t n = pread(sd->lock_fd, pid, sizeof(pid) - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        rc = exo_diag_set(diag, EXO_EBUSY,
                          "state directory %s is in use by another exo daemon%s%s%s; give each "
                          "daemon its own --state-dir",
                          path, pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "");
        goto fail;
    }
    char pid[32];
    int len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    /* The pid is only a hint for the message above; the lock is what counts, so a failed
     * write is ignored. */
    if (ftruncate(sd->lock_fd, 0) == 0)
        (void)!pwrite(sd->lock_fd, pid, (size_t)len, 0);
    *ret = sd;
    return 0;
fail:
    exo_statedir_close(sd);
    return rc;
}

void exo_statedir_close(struct exo_statedir *sd)
{
    if (!sd)
        return;
    if (sd->lock_fd >= 0)
        close(sd->lock_fd); /* releases the flock */
    exo_free(sd->path);
    exo_free(sd);
}

const char *exo_statedir_path(const struct exo_statedir *sd)
{
    return sd->path;
}

static int valid_name(const char *name)
{
    return name[0] && name[0] != '.' && !strchr(name, '/') && strlen(name) < 128;
}

int exo_statedir_write(struct exo_statedir *sd, const char *name, const void *data, size_t len,
                       struct exo_diag *diag)
{
    char final[PATH_MAX + 160], tmp[PATH_MAX + 200];
    if (!valid_name(name))
        return EXO_EINVAL;
    snprintf(final, sizeof(final), "%s/%s", sd->path, name);
    snprintf(tmp, sizeof(tmp), "%s/.%s.%ld.tmp", sd->path, name, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return exo_diag_set(diag, exo_error_from_errno(errno), "cannot write %s: %s", tmp,
                            strerror(errno));
    const char *p = data;
    size_t left = len;
    int rc = 0;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? errno : ENOSPC;
            break;
        }
        p += n;
        left -= (size_t)n;
    }
    if (rc == 0 && fsync(fd) != 0)
        rc = errno;
    if (close(fd) != 0 && rc == 0)
        rc = errno;
    if (rc == 0 && rename(tmp, final) != 0)
        rc = errno;
    if (rc != 0) {
        unlink(tmp);
        return exo_diag_set(diag, exo_error_from_errno(rc),
                            "cannot write %s: %s (the previous version is kept)", final,
                            strerror(rc));
    }
    /* Make the rename itself durable. */
    int dfd = open(sd->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

int exo_statedir_read(struct exo_statedir *sd, const char *name, size_t max, struct exo_buf *out,
                      struct exo_diag *diag)
{
    char path[PATH_MAX + 160];
    if (!valid_name(name))
        return EXO_EINVAL;
    snprintf(path, sizeof(path), "%s/%s", sd->path, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? EXO_ENOENT
                               : exo_diag_set(diag, exo_error_from_errno(errno),
                                              "cannot read %s: %s", path, strerror(errno));
    char chunk[4096];
    size_t total = 0;
    int rc = 0;
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = exo_diag_set(diag, exo_error_from_errno(errno), "cannot read %s: %s", path,
                              strerror(errno));
            break;
        }
        if (n == 0)
            break;
        total += (size_t)n;
        if (total > max) {
            rc = exo_diag_set(diag, EXO_ETOOBIG, "%s is larger than %zu bytes", path, max);
            break;
        }
        exo_buf_put(out, chunk, (size_t)n);
    }
    close(fd);
    if (rc == 0 && out->err)
        rc = out->err;
    return rc;
}

void exo_node_id_hex(const uint8_t id[EXO_NODE_ID_SIZE], char out[2 * EXO_NODE_ID_SIZE + 1])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < EXO_NODE_ID_SIZE; i++) {
        out[2 * i] = digits[id[i] >> 4];
        out[2 * i + 1] = digits[id[i] & 15];
    }
    out[2 * EXO_NODE_ID_SIZE] = '\0';
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int exo_node_id_parse(const char *hex, size_t len, uint8_t id[EXO_NODE_ID_SIZE])
{
    if (len != 2 * EXO_NODE_ID_SIZE)
        return EXO_EFORMAT;
    for (int i = 0; i < EXO_NODE_ID_SIZE; i++) {
        int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return EXO_EFORMAT;
        id[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

int exo_statedir_node_id(struct exo_statedir *sd, uint8_t id[EXO_NODE_ID_SIZE],
                         struct exo_diag *diag)
{
    struct exo_buf b;
    exo_buf_init(&b, 0);
    int rc = exo_statedir_read(sd, "node-id", 256, &b, diag);
    if (rc == 0) {
        size_t len = b.len;
        while (len > 0 && (b.data[len - 1] == '\n' || b.data[len - 1] == '\r'))
            len--;
        rc = exo_node_id_parse((const char *)b.data, len, id);
        if (rc < 0)
            exo_diag_set(diag, rc,
                         "%s/node-id is not a 32-digit hex node id; remove it to make a new one "
                         "(this node then joins as a new member)",
                         sd->path);
        exo_buf_free(&b);
        return rc;
    }
    exo_buf_free(&b);
    if (rc != EXO_ENOENT)
        return rc;
    char hex[2 * EXO_NODE_ID_SIZE + 2];
    randombytes_buf(id, EXO_NODE_ID_SIZE);
    exo_node_id_hex(id, hex);
    strcat(hex, "\n");
    return exo_statedir_write(sd, "node-id", hex, strlen(hex), diag);
}
