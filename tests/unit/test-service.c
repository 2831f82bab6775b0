/* SPDX-License-Identifier: Apache-2.0 */
/* The state directory (lock, persistent node id, atomic files) and sd_notify. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/buf.h"
#include "service/notify.h"
#include "service/statedir.h"

static void temp_dir(char *out, size_t size, const char *name)
{
    const char *tmp = getenv("EXO_TEST_TMP");
    snprintf(out, size, "%s/%s-%ld", tmp ? tmp : "/tmp", name, (long)getpid());
}

static void remove_tree(const char *dir)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_service_node_id_persists(void **state)
{
    char dir[512];
    temp_dir(dir, sizeof(dir), "statedir/nested");
    struct exo_statedir *sd = NULL;
    struct exo_diag diag = {{0}};
    uint8_t a[EXO_NODE_ID_SIZE], b[EXO_NODE_ID_SIZE];
    assert_int_equal(exo_statedir_open(dir, &sd, &diag), 0);
    assert_int_equal(exo_statedir_node_id(sd, a, &diag), 0);
    exo_statedir_close(sd);
    assert_int_equal(exo_statedir_open(dir, &sd, &diag), 0);
    assert_int_equal(exo_statedir_node_id(sd, b, &diag), 0);
    assert_memory_equal(a, b, EXO_NODE_ID_SIZE);

    /* A second daemon on the same directory is refused while the first runs. */
    struct exo_statedir *other = NULL;
    assert_int_equal(exo_statedir_open(dir, &other, &diag), EXO_EBUSY);
    assert_non_null(strstr(diag.msg, "in use by another exo daemon"));
    assert_null(other);

    /* A damaged node id is reported, not silently replaced. */
    assert_int_equal(exo_statedir_write(sd, "node-id", "xyz\n", 4, &diag), 0);
    assert_int_equal(exo_statedir_node_id(sd, b, &diag), EXO_EFORMAT);
    assert_non_null(strstr(diag.msg, "remove it"));
    exo_statedir_close(sd);
    char top[512];
    temp_dir(top, sizeof(top), "statedir");
    remove_tree(top);
}

static void test_service_atomic_files(void **state)
{
    char dir[512];
    temp_dir(dir, sizeof(dir), "atomic");
    struct exo_statedir *sd = NULL;
    struct exo_diag diag = {{0}};
    struct exo_buf b;
    exo_buf_init(&b, 0);
    assert_int_equal(exo_statedir_open(dir, &sd, &diag), 0);
    assert_int_equal(exo_statedir_read(sd, "scores.json", 100, &b, &diag), EXO_ENOENT);
    assert_int_equal(exo_statedir_write(sd, "scores.json", "{\"a\":1}", 7, &diag), 0);
    assert_int_equal(exo_statedir_write(sd, "scores.json", "{\"a\":2}", 7, &diag), 0);
    assert_int_equal(exo_statedir_read(sd, "scores.json", 100, &b, &diag), 0);
    assert_int_equal(b.len, 7);
    assert_memory_equal(b.data, "{\"a\":2}", 7);
    exo_buf_reset(&b);
    assert_int_equal(exo_statedir_read(sd, "scores.json", 3, &b, &diag), EXO_ETOOBIG);
    assert_int_equal(exo_statedir_write(sd, "../escape", "x", 1, &diag), EXO_EINVAL);
    assert_int_equal(exo_statedir_write(sd, ".hidden", "x", 1, &diag), EXO_EINVAL);
    exo_buf_free(&b);
    exo_statedir_close(sd);
    remove_tree(dir);
}

static void test_service_node_id_hex(void **state)
{
    uint8_t id[EXO_NODE_ID_SIZE], back[EXO_NODE_ID_SIZE];
    char hex[33];
    for (int i = 0; i < EXO_NODE_ID_SIZE; i++)
        id[i] = (uint8_t)(i * 17 + 3);
    exo_node_id_hex(id, hex);
    assert_int_equal(strlen(hex), 32);
    assert_int_equal(exo_node_id_parse(hex, 32, back), 0);
    assert_memory_equal(id, back, EXO_NODE_ID_SIZE);
    assert_int_equal(exo_node_id_parse(hex, 31, back), EXO_EFORMAT);
    hex[5] = 'g';
    assert_int_equal(exo_node_id_parse(hex, 32, back), EXO_EFORMAT);
}

static void test_service_notify(void **state)
{
    unsetenv("NOTIFY_SOCKET");
    assert_int_equal(exo_notify("READY=1"), 0); /* not under systemd: a no-op */

    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    /* An abstract-namespace socket, as systemd may hand out. */
    char name[64];
    snprintf(name, sizeof(name), "@exo-test-notify-%ld", (long)getpid());
    memcpy(sa.sun_path, name, strlen(name));
    sa.sun_path[0] = '\0';
    assert_int_equal(bind(fd, (struct sockaddr *)&sa,
                          (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name))),
                     0);
    setenv("NOTIFY_SOCKET", name, 1);
    assert_int_equal(exo_notify("READY=1\nSTATUS=serving"), 0);
    char buf[64] = {0};
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
    assert_int_equal(n, 22);
    assert_string_equal(buf, "READY=1\nSTATUS=serving");
    close(fd);
    unsetenv("NOTIFY_SOCKET");

    setenv("WATCHDOG_USEC", "3000000", 1);
    unsetenv("WATCHDOG_PID");
    assert_int_equal(exo_notify_watchdog_ms(), 3000);
    setenv("WATCHDOG_PID", "1", 1); /* someone else's watchdog */
    assert_int_equal(exo_notify_watchdog_ms(), 0);
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_service_node_id_persists),
        cmocka_unit_test(test_service_atomic_files),
        cmocka_unit_test(test_service_node_id_hex),
        cmocka_unit_test(test_service_notify),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
