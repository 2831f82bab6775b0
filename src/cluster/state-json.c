/* SPDX-License-Identifier: Apache-2.0 */
/*
 * JSON views of the replicated state for the HTTP routes (/api/v1/cluster, /api/v1/events and
 * the record tables), and the metrics table for /metrics. Ids and hashes are lower-case hex;
 * binary values and member blobs are base64; a JSON record value is embedded as JSON. The
 * counters object of /api/v1/cluster is made from the metrics table, so the two never disagree.
 */
#include <cjson/cJSON.h>
#include <sodium.h>
#include <string.h>

#include "cluster/state-int.h"
#include "core/alloc.h"

static const uint8_t zero_id[EXO_MEMBERS_ID_BYTES];

/* Add a lower-case hex string of bin (borrowed) to obj; false when out of memory. */
static bool add_hex(cJSON *obj, const char *name, const uint8_t *bin, size_t len)
{
    char hex[2 * EXO_STATE_HASH_BYTES + 1];
    sodium_bin2hex(hex, sizeof(hex), bin, len);
    return cJSON_AddStringToObject(obj, name, hex) != NULL;
}

static bool add_base64(cJSON *obj, const char *name, const uint8_t *bin, size_t len)
{
    size_t n = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
    char *text = exo_malloc(n);
    if (!text)
        return false;
    sodium_bin2base64(text, n, bin, len, sodium_base64_VARIANT_ORIGINAL);
    bool ok = cJSON_AddStringToObject(obj, name, text) != NULL;
    exo_free(text);
    return ok;
}

static bool add_u64(cJSON *obj, const char *name, uint64_t v)
{
    return cJSON_AddNumberToObject(obj, name, (double)v) != NULL;
}

static bool add_key(cJSON *obj, const uint8_t *key, size_t len)
{
    char text[EXO_STATE_KEY_MAX + 1];
    memcpy(text, key, len);
    text[len] = '\0';
    return cJSON_AddStringToObject(obj, "key", text) != NULL;
}

static bool add_kind(cJSON *obj, uint16_t kind)
{
    const char *name = exo_state_kind_name(kind);
    bool ok = add_u64(obj, "kind_id", kind);
    if (name)
        return ok && cJSON_AddStringToObject(obj, "kind", name);
    return ok && cJSON_AddNullToObject(obj, "kind");
}

static bool add_owner(cJSON *obj, const uint8_t *owner)
{
    if (memcmp(owner, zero_id, EXO_MEMBERS_ID_BYTES) == 0)
        return cJSON_AddNullToObject(obj, "owner") != NULL;
    return add_hex(obj, "owner", owner, EXO_MEMBERS_ID_BYTES);
}

static cJSON *member_json(const struct exo_state_member *m)
{
    char addr[64];
    exo_members_addr_format(&m->addr, addr, sizeof(addr));
    cJSON *j = cJSON_CreateObject();
    cJSON *proto = j ? cJSON_AddArrayToObject(j, "proto") : NULL;
    cJSON *ports = j ? cJSON_AddObjectToObject(j, "ports") : NULL;
    bool ok =
        proto && ports && add_hex(j, "id", m->id, EXO_MEMBERS_ID_BYTES) &&
        cJSON_AddStringToObject(j, "name", m->name) && cJSON_AddStringToObject(j, "addr", addr) &&
        cJSON_AddStringToObject(j, "state", exo_members_state_name(m->state)) &&
        add_u64(j, "incarnation", m->incarnation) &&
        cJSON_AddItemToArray(proto, cJSON_CreateNumber(m->meta.proto_min)) &&
        cJSON_AddItemToArray(proto, cJSON_CreateNumber(m->meta.proto_max)) &&
        add_u64(ports, "gossip", m->meta.gossip_port) && add_u64(ports, "api", m->meta.api_port) &&
        add_u64(ports, "data", m->meta.data_port) && add_u64(j, "roles", m->meta.roles) &&
        cJSON_AddNumberToObject(j, "priority", m->meta.leader_priority) &&
        add_base64(j, "blob", m->meta.blob, m->meta.blob_len);
    if (!ok) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

static cJSON *record_json(const struct exo_state_record *r)
{
    cJSON *j = cJSON_CreateObject();
    bool ok = j && add_kind(j, r->kind) && add_owner(j, r->owner) &&
              add_key(j, r->key, r->key_len) && add_u64(j, "version", r->version);
    if (ok && r->format == EXO_STATE_FORMAT_JSON) {
        cJSON *v = cJSON_ParseWithLength((const char *)r->value, r->value_len);
        ok = v && cJSON_AddItemToObject(j, "value", v);
        if (!ok)
            cJSON_Delete(v);
    } else if (ok) {
        ok = add_base64(j, "value", r->value, r->value_len);
    }
    if (!ok) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

static bool add_item(cJSON *obj, const char *name, cJSON *item)
{
    if (!item || !cJSON_AddItemToObject(obj, name, item)) {
        cJSON_Delete(item);
        return false;
    }
    return true;
}

/* The event's own fields, from its payload. */
static bool add_event_fields(cJSON *j, const struct exo_state_event *e)
{
    struct exo_state_payload p;
    if (e->type == EXO_STATE_EVENT_SNAPSHOT)
        return true;
    if (exo_state_payload_decode(e->type, e->payload, e->len, &p, NULL) < 0)
        return add_u64(j, "type_id", e->type) && cJSON_AddTrueToObject(j, "undecoded");
    switch (e->type) {
    case EXO_STATE_EVENT_LEADER:
        return add_hex(j, "leader", p.leader.id, EXO_MEMBERS_ID_BYTES) &&
               cJSON_AddNumberToObject(j, "priority", p.leader.priority);
    case EXO_STATE_EVENT_MEMBER_SET: {
        struct exo_state_member m;
        memcpy(m.id, p.member.id, EXO_MEMBERS_ID_BYTES);
        memcpy(m.name, p.member.name, sizeof(m.name));
        m.addr = p.member.addr;
        m.state = (enum exo_member_state)p.member.state;
        m.incarnation = p.member.incarnation;
        m.meta = p.member.meta;
        return add_item(j, "member", member_json(&m));
    }
    case EXO_STATE_EVENT_MEMBER_DEL:
        return add_hex(j, "id", p.id, EXO_MEMBERS_ID_BYTES);
    case EXO_STATE_EVENT_RECORD_SET:
        return add_item(j, "record", record_json(&p.record));
    default: /* EXO_STATE_EVENT_RECORD_DEL */
        return add_kind(j, p.record.kind) && add_owner(j, p.record.owner) &&
               add_key(j, p.record.key, p.record.key_len);
    }
}

cJSON *exo_state_json_event(const struct exo_state_event *e)
{
    cJSON *j = cJSON_CreateObject();
    if (!j || !add_u64(j, "index", e->index) || !add_u64(j, "term", e->term) ||
        !cJSON_AddStringToObject(j, "type", exo_state_event_name(e->type)) ||
        !add_event_fields(j, e)) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

cJSON *exo_state_json_records(const struct exo_state *s, uint16_t kind)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr && i < exo_state_record_count(s); i++) {
        struct exo_state_record r;
        exo_state_record_at(s, i, &r);
        if (kind && r.kind != kind)
            continue;
        cJSON *item = record_json(&r);
        if (!item || !cJSON_AddItemToArray(arr, item)) {
            cJSON_Delete(item);
            cJSON_Delete(arr);
            return NULL;
        }
    }
    return arr;
}

/* One member of the table, with this node's own view of it (state and RTT) where it has one. */
static cJSON *member_with_view(struct exo_state *s, size_t i)
{
    struct exo_state_member m;
    exo_state_member_at(s, i, &m);
    cJSON *j = member_json(&m);
    if (!j)
        return NULL;
    struct exo_member_info info;
    bool ok;
    if (exo_members_get(exo_state_members_of(s), m.id, &info) == 0) {
        cJSON *local = cJSON_AddObjectToObject(j, "local");
        ok = local && cJSON_AddStringToObject(local, "state", exo_members_state_name(info.state)) &&
             add_u64(local, "incarnation", info.incarnation) &&
             (info.rtt_us ? add_u64(local, "rtt_us", info.rtt_us)
                          : cJSON_AddNullToObject(local, "rtt_us") != NULL) &&
             cJSON_AddBoolToObject(local, "self", info.is_self);
    } else {
        ok = cJSON_AddNullToObject(j, "local") != NULL;
    }
    if (!ok) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

static cJSON *counters_json(const struct exo_state *s)
{
    struct exo_state_metric mt[EXO_STATE_METRICS_MAX];
    size_t n = exo_state_metrics(s, mt, EXO_STATE_METRICS_MAX);
    cJSON *c = cJSON_CreateObject();
    for (size_t i = 0; c && i < n && i < EXO_STATE_METRICS_MAX; i++) {
        const char *name = mt[i].name + strlen("exo_state_");
        cJSON *into = c;
        if (mt[i].label) {
            into = cJSON_GetObjectItemCaseSensitive(c, name);
            if (!into && !add_item(c, name, into = cJSON_CreateObject()))
                into = NULL;
            name = mt[i].label_value;
        }
        if (!into || !add_u64(into, name, mt[i].value)) {
            cJSON_Delete(c);
            return NULL;
        }
    }
    return c;
}

/* The node, the leader (null before any), the term, the log position and the digest. */
static bool add_summary(cJSON *root, struct exo_state *s)
{
    const uint8_t *self = exo_state_self_id(s);
    struct exo_member_info me;
    exo_members_get(exo_state_members_of(s), self, &me);
    cJSON *node = cJSON_AddObjectToObject(root, "node");
    bool ok = node && add_hex(node, "id", self, EXO_MEMBERS_ID_BYTES) &&
              cJSON_AddStringToObject(node, "name", me.name) &&
              cJSON_AddBoolToObject(node, "leader", exo_state_is_leader(s));
    uint8_t leader[EXO_MEMBERS_ID_BYTES];
    uint64_t term = 0;
    if (ok && exo_state_leader(s, leader, &term) == 0) {
        struct exo_state_member lm;
        cJSON *l = cJSON_AddObjectToObject(root, "leader");
        ok = l && add_hex(l, "id", leader, EXO_MEMBERS_ID_BYTES) &&
             (exo_state_member_get(s, leader, &lm) == 0
                  ? cJSON_AddStringToObject(l, "name", lm.name) != NULL
                  : cJSON_AddNullToObject(l, "name") != NULL);
    } else if (ok) {
        ok = cJSON_AddNullToObject(root, "leader") != NULL;
    }
    struct exo_leader_claim follow;
    exo_state_following(s, &follow);
    cJSON *f = ok ? cJSON_AddObjectToObject(root, "following") : NULL;
    ok = f && add_u64(root, "term", term) && add_u64(f, "term", follow.term) &&
         (follow.term ? add_hex(f, "leader", follow.id, EXO_MEMBERS_ID_BYTES)
                      : cJSON_AddNullToObject(f, "leader") != NULL);
    uint64_t index;
    uint8_t hash[EXO_STATE_HASH_BYTES], digest[EXO_STATE_HASH_BYTES];
    exo_state_position(s, &index, hash);
    exo_state_digest(s, digest);
    cJSON *log = ok ? cJSON_AddObjectToObject(root, "log") : NULL;
    return log && add_u64(log, "index", index) && add_u64(log, "first", exo_state_log_first(s)) &&
           add_hex(log, "hash", hash, EXO_STATE_HASH_BYTES) &&
           add_hex(root, "digest", digest, EXO_STATE_HASH_BYTES);
}

cJSON *exo_state_json_cluster(struct exo_state *s)
{
    cJSON *root = cJSON_CreateObject();
    if (!root)
        return NULL;
    bool ok = add_summary(root, s);
    cJSON *arr = ok ? cJSON_AddArrayToObject(root, "members") : NULL;
    ok = arr != NULL;
    for (size_t i = 0; ok && i < exo_state_member_count(s); i++) {
        cJSON *m = member_with_view(s, i);
        ok = m && cJSON_AddItemToArray(arr, m);
        if (!ok)
            cJSON_Delete(m);
    }
    if (!ok || !add_item(root, "counters", counters_json(s))) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

size_t exo_state_metrics(const struct exo_state *s, struct exo_state_metric *out, size_t cap)
{
    struct exo_state_stats st;
    exo_state_get_stats(s, &st);
    struct exo_state_metric all[EXO_STATE_METRICS_MAX];
    size_t n = 0;
#define METRIC(nm, hp, ctr, v)            \
    all[n++] = (struct exo_state_metric){ \
        .name = "exo_state_" nm, .help = hp, .counter = ctr, .value = (uint64_t)(v)}
    METRIC("term", "Term of the leader this node follows", false, st.term);
    METRIC("leader", "1 when this node leads", false, st.leader);
    METRIC("log_index", "Index of the last log entry", false, st.log_index);
    METRIC("log_first_index", "Index of the oldest log entry kept", false, st.log_first);
    METRIC("members", "Members in the replicated table", false, st.members);
    METRIC("records", "Records in the replicated table", false, st.records);
    METRIC("claims_total", "Terms this node started as leader", true, st.claims);
    METRIC("leader_changes_total", "Times the followed leader changed", true, st.leader_changes);
    METRIC("events_appended_total", "Events appended as leader", true, st.events_appended);
    METRIC("events_applied_total", "Events applied to the state machine", true, st.events_applied);
    METRIC("heartbeats_total", "Heartbeats sent as leader", true, st.heartbeats_sent);
    METRIC("repairs_requested_total", "Range repairs asked of the leader", true,
           st.repairs_requested);
    METRIC("repairs_served_total", "Repair requests answered as leader", true, st.repairs_served);
    METRIC("entries_served_total", "Log entries sent in answer to repairs", true,
           st.entries_served);
    METRIC("snapshots_served_total", "Snapshot transfers started as leader", true,
           st.snapshots_served);
    METRIC("snapshot_chunks_sent_total", "Snapshot chunks sent", true, st.snapshot_chunks_sent);
    METRIC("snapshot_chunks_received_total", "Snapshot chunks received", true,
           st.snapshot_chunks_received);
    METRIC("snapshots_installed_total", "Snapshots that replaced this node's state", true,
           st.snapshots_installed);
    METRIC("divergences_total", "Times this node found its history off the leader's", true,
           st.divergences);
    METRIC("reports_sent_total", "Report messages sent to the leader", true, st.reports_sent);
    METRIC("reports_accepted_total", "Reported records applied as leader", true,
           st.reports_accepted);
#undef METRIC
    for (int d = 0; d < EXO_STATE_DROP__COUNT; d++)
        all[n++] = (struct exo_state_metric){.name = "exo_state_dropped_total",
                                             .help = "Messages and events refused, by reason",
                                             .counter = true,
                                             .label = "reason",
                                             .label_value = exo_state_drop_name(d),
                                             .value = st.dropped[d]};
    for (size_t i = 0; i < n && i < cap; i++)
        out[i] = all[i];
    return n;
}
