/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The per-node table of digests and device records: which gossiped digests are kept (late
 * retransmissions refused, restarts and clock steps heard), expiry, the id-ordered listing for
 * /metrics, and the device diff that turns looks at the replicated table into appeared,
 * changed and disappeared events.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "device/peers.h"

static const uint8_t node_a[EXO_PEERS_ID_SIZE] = {1};
static const uint8_t node_b[EXO_PEERS_ID_SIZE] = {2};
static const uint8_t node_c[EXO_PEERS_ID_SIZE] = {0, 9};

static struct exo_digest digest(uint64_t seq, uint64_t t_ms)
{
    struct exo_digest d = {.seq = seq, .t_ms = t_ms, .cpu_permille = 250};
    return d;
}

static void test_device_peers_digest_order(void **state)
{
    struct exo_peers *p;
    assert_int_equal(exo_peers_create(&p), 0);
    assert_null(exo_peers_digest(p, node_a));
    struct exo_digest d = digest(10, 10000);
    assert_int_equal(exo_peers_put_digest(p, node_a, &d, 1), 0);
    /* A late retransmission of an older digest, and the same one again, are refused. */
    d = digest(9, 9000);
    assert_int_equal(exo_peers_put_digest(p, node_a, &d, 2), EXO_EREPLAY);
    d = digest(10, 10000);
    assert_int_equal(exo_peers_put_digest(p, node_a, &d, 2), EXO_EREPLAY);
    assert_int_equal(exo_peers_digest(p, node_a)->seq, 10);
    /* The sender restarted: its sequence starts again, its clock goes on. */
    d = digest(0, 12000);
    assert_int_equal(exo_peers_put_digest(p, node_a, &d, 3), 0);
    /* Its clock stepped back: the sequence goes on. */
    d = digest(1, 5000);
    assert_int_equal(exo_peers_put_digest(p, node_a, &d, 4), 0);
    assert_int_equal(exo_peers_digest(p, node_a)->t_ms, 5000);
    assert_int_equal(exo_peers_digest(p, node_a)->cpu_permille, 250);
    exo_peers_free(p);
}

static void test_device_peers_expire_and_list(void **state)
{
    struct exo_peers *p;
    assert_int_equal(exo_peers_create(&p), 0);
    struct exo_digest d = digest(1, 1000);
    assert_int_equal(exo_peers_put_digest(p, node_b, &d, 100), 0);
    assert_int_equal(exo_peers_put_digest(p, node_a, &d, 200), 0);
    assert_int_equal(exo_peers_put_digest(p, node_c, &d, 300), 0);
    const uint8_t *ids[4];
    const struct exo_digest *ds[4];
    assert_int_equal(exo_peers_digests(p, ids, ds, 4), 3);
    assert_memory_equal(ids[0], node_c, EXO_PEERS_ID_SIZE); /* id order */
    assert_memory_equal(ids[1], node_a, EXO_PEERS_ID_SIZE);
    assert_memory_equal(ids[2], node_b, EXO_PEERS_ID_SIZE);
    assert_int_equal(exo_peers_digests(p, ids, ds, 1), 3); /* counts beyond cap */
    exo_peers_expire(p, 250);
    assert_null(exo_peers_digest(p, node_a));
    assert_null(exo_peers_digest(p, node_b));
    assert_non_null(exo_peers_digest(p, node_c));
    assert_int_equal(exo_peers_digests(p, ids, ds, 4), 1);
    /* A node heard again after expiring starts over. */
    d = digest(0, 10);
    assert_int_equal(exo_peers_put_digest(p, node_a, &d, 400), 0);
    assert_int_equal(exo_peers_digests(p, ids, ds, 4), 2);
    exo_peers_free(p);
}

struct seen_event {
    enum exo_device_event ev;
    uint8_t node[EXO_PEERS_ID_SIZE];
    char device[EXO_DEVICE_ID_SIZE];
    char value[64];
};

struct events {
    struct seen_event v[16];
    size_t n;
};

static void on_event(void *ud, enum exo_device_event ev, const uint8_t node[EXO_PEERS_ID_SIZE],
                     const char *device, const void *value, size_t len)
{
    struct events *e = ud;
    assert_true(e->n < 16);
    struct seen_event *s = &e->v[e->n++];
    s->ev = ev;
    memcpy(s->node, node, EXO_PEERS_ID_SIZE);
    snprintf(s->device, sizeof(s->device), "%s", device);
    snprintf(s->value, sizeof(s->value), "%.*s", (int)len, (const char *)value);
}

static void seen(struct exo_peers *p, const uint8_t *node, const char *device, uint64_t version,
                 const char *value, struct events *e)
{
    assert_int_equal(
        exo_peers_device_seen(p, node, device, version, value, strlen(value), on_event, e), 0);
}

static void test_device_peers_device_diff(void **state)
{
    struct exo_peers *p;
    struct events e = {0};
    assert_int_equal(exo_peers_create(&p), 0);

    exo_peers_devices_begin(p);
    seen(p, node_a, "cpu0", 1, "{\"a\":1}", &e);
    seen(p, node_a, "gpu0", 1, "{\"g\":1}", &e);
    seen(p, node_b, "cpu0", 4, "{\"b\":1}", &e);
    exo_peers_devices_end(p, on_event, &e);
    assert_int_equal(e.n, 3);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(e.v[i].ev, EXO_DEVICE_EVENT_APPEARED);
    assert_string_equal(e.v[1].device, "gpu0");
    assert_memory_equal(e.v[2].node, node_b, EXO_PEERS_ID_SIZE);

    /* The same table again: nothing to say. */
    e.n = 0;
    exo_peers_devices_begin(p);
    seen(p, node_a, "cpu0", 1, "{\"a\":1}", &e);
    seen(p, node_a, "gpu0", 1, "{\"g\":1}", &e);
    seen(p, node_b, "cpu0", 4, "{\"b\":1}", &e);
    exo_peers_devices_end(p, on_event, &e);
    assert_int_equal(e.n, 0);

    /* gpu0 changed, node b's CPU went (with its last value), node c's appeared. */
    exo_peers_devices_begin(p);
    seen(p, node_a, "cpu0", 1, "{\"a\":1}", &e);
    seen(p, node_a, "gpu0", 2, "{\"g\":2}", &e);
    seen(p, node_c, "cpu0", 1, "{\"c\":1}", &e);
    exo_peers_devices_end(p, on_event, &e);
    assert_int_equal(e.n, 3);
    assert_int_equal(e.v[0].ev, EXO_DEVICE_EVENT_CHANGED);
    assert_string_equal(e.v[0].value, "{\"g\":2}");
    assert_int_equal(e.v[1].ev, EXO_DEVICE_EVENT_APPEARED);
    assert_memory_equal(e.v[1].node, node_c, EXO_PEERS_ID_SIZE);
    assert_int_equal(e.v[2].ev, EXO_DEVICE_EVENT_DISAPPEARED);
    assert_memory_equal(e.v[2].node, node_b, EXO_PEERS_ID_SIZE);
    assert_string_equal(e.v[2].device, "cpu0");
    assert_string_equal(e.v[2].value, "{\"b\":1}");

    /* Everything went. */
    e.n = 0;
    exo_peers_devices_begin(p);
    exo_peers_devices_end(p, on_event, &e);
    assert_int_equal(e.n, 3);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(e.v[i].ev, EXO_DEVICE_EVENT_DISAPPEARED);
    exo_peers_free(p);
}

static void count(void *ud, enum exo_device_event ev, const uint8_t node[EXO_PEERS_ID_SIZE],
                  const char *device, const void *value, size_t len)
{
    ++*(size_t *)ud;
}

static void test_device_peers_device_bounds(void **state)
{
    struct exo_peers *p;
    struct events e = {0};
    char id[EXO_DEVICE_ID_SIZE + 8];
    assert_int_equal(exo_peers_create(&p), 0);
    exo_peers_devices_begin(p);
    assert_int_equal(exo_peers_device_seen(p, node_a, "", 1, "x", 1, on_event, &e), EXO_EINVAL);
    memset(id, 'g', sizeof(id) - 1);
    id[sizeof(id) - 1] = '\0';
    assert_int_equal(exo_peers_device_seen(p, node_a, id, 1, "x", 1, on_event, &e), EXO_EINVAL);
    size_t appeared = 0;
    for (int i = 0; i < EXO_DEVICE_MAX; i++) {
        snprintf(id, sizeof(id), "gpu%d", i);
        assert_int_equal(exo_peers_device_seen(p, node_a, id, 1, "", 0, count, &appeared), 0);
    }
    assert_int_equal(appeared, EXO_DEVICE_MAX);
    assert_int_equal(exo_peers_device_seen(p, node_a, "gpu99", 1, "x", 1, on_event, &e),
                     EXO_ENOSPC);
    assert_int_equal(e.n, 0);
    exo_peers_devices_end(p, on_event, &e);
    assert_int_equal(e.n, 0); /* the refused one never disappears */
    exo_peers_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device_peers_digest_order),
        cmocka_unit_test(test_device_peers_expire_and_list),
        cmocka_unit_test(test_device_peers_device_diff),
        cmocka_unit_test(test_device_peers_device_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
