/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The models the cluster serves. Each node reports the model it serves as a replicated-state
 * record (kind models, keyed by the model id of /v1/models); every node's API then lists the
 * cluster's models and forwards a request for a model it does not serve itself to an alive node
 * that does, taking those nodes in turn.
 */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "api/api.h"
#include "api/json.h"
#include "api/openai.h"
#include "cli/daemon-int.h"
#include "cluster/state.h"
#include "engine/runner.h"

#define MODELS_LISTED_MAX 64

/* A models record of another node that is alive now, with its parsed value (owned). */
struct served {
    struct exo_state_member node;
    char id[EXO_STATE_KEY_MAX + 1];
    cJSON *value;
};

/* The i-th record when it is a model that an alive node other than this one serves. */
static bool served_at(struct daemon *d, struct exo_state *s, size_t i, struct served *ret)
{
    struct exo_state_record r;
    if (exo_state_record_at(s, i, &r) < 0 || r.kind != EXO_STATE_KIND_MODELS ||
        memcmp(r.owner, d->node_id, EXO_NODE_ID_SIZE) == 0 ||
        exo_state_member_get(s, r.owner, &ret->node) < 0 ||
        ret->node.state != EXO_MEMBER_STATE_ALIVE || !ret->node.meta.api_port)
        return false;
    memcpy(ret->id, r.key, r.key_len);
    ret->id[r.key_len] = '\0';
    ret->value = cJSON_ParseWithLength((const char *)r.value, r.value_len);
    return true;
}

static const char *value_string(const struct served *sv, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(sv->value, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool serves(const struct served *sv, const char *model)
{
    return exo_openai_model_matches(model, sv->id, value_string(sv, "name"));
}

/* exo_openai_peers.find: the matching nodes in turn, so that load spreads. */
static int peers_find(void *ud, const char *model, char ip[64], uint16_t *port, char label[96])
{
    struct daemon *d = ud;
    struct exo_state *s = cluster_state(d);
    if (!s)
        return EXO_ENOENT;
    size_t n = 0;
    for (size_t pass = 0; pass < 2; pass++) {
        size_t want = pass ? d->models_turn++ % n : 0, seen = 0;
        for (size_t i = 0; i < exo_state_record_count(s); i++) {
            struct served sv;
            if (!served_at(d, s, i, &sv))
                continue;
            bool match = serves(&sv, model);
            cJSON_Delete(sv.value);
            if (!match)
                continue;
            if (pass && seen++ == want) {
                if (!cluster_addr_host(&sv.node.addr, ip, 64))
                    return EXO_ENOENT;
                *port = sv.node.meta.api_port;
                snprintf(label, 96, "node %s at %s", sv.node.name, ip);
                return 0;
            }
            n += !pass;
        }
        if (!n)
            return EXO_ENOENT;
    }
    return EXO_ENOENT;
}

/* exo_openai_peers.list: each model once, with the nodes that serve it. */
static void peers_list(void *ud, const char *local_id, bool comma, struct exo_buf *out)
{
    struct daemon *d = ud;
    struct exo_state *s = cluster_state(d);
    if (!s)
        return;
    char listed[MODELS_LISTED_MAX][EXO_STATE_KEY_MAX + 1];
    size_t n_listed = 0;
    for (size_t i = 0; i < exo_state_record_count(s) && n_listed < MODELS_LISTED_MAX; i++) {
        struct served sv;
        if (!served_at(d, s, i, &sv))
            continue;
        bool known = strcmp(sv.id, local_id) == 0;
        for (size_t k = 0; k < n_listed && !known; k++)
            known = strcmp(listed[k], sv.id) == 0;
        if (known) {
            cJSON_Delete(sv.value);
            continue;
        }
        snprintf(listed[n_listed++], sizeof(listed[0]), "%s", sv.id);
        const char *name = value_string(&sv, "name");
        const cJSON *ctx = cJSON_GetObjectItemCaseSensitive(sv.value, "context_length");
        exo_buf_printf(out, "%s{\"id\":", comma ? "," : "");
        exo_json_put_string(out, sv.id, strlen(sv.id));
        exo_buf_printf(out,
                       ",\"object\":\"model\",\"created\":%lld,\"owned_by\":\"exo\","
                       "\"status\":\"ready\"",
                       (long long)d->started_s);
        if (name) {
            exo_buf_put(out, ",\"name\":", 8);
            exo_json_put_string(out, name, strlen(name));
        }
        if (cJSON_IsNumber(ctx))
            exo_buf_printf(out, ",\"context_length\":%.0f", ctx->valuedouble);
        cJSON_Delete(sv.value);
        /* Every alive node that serves it. */
        exo_buf_printf(out, ",\"nodes\":[");
        bool first = true;
        for (size_t j = 0; j < exo_state_record_count(s); j++) {
            struct served other;
            if (!served_at(d, s, j, &other))
                continue;
            if (strcmp(other.id, listed[n_listed - 1]) == 0) {
                exo_buf_printf(out, "%s", first ? "" : ",");
                exo_json_put_string(out, other.node.name, strlen(other.node.name));
                first = false;
            }
            cJSON_Delete(other.value);
        }
        exo_buf_printf(out, "]}");
        comma = true;
    }
}

/* Report what the runner serves now (or that it serves nothing) to the cluster. */
void models_runner_changed(struct daemon *d)
{
    struct exo_state *s = cluster_state(d);
    if (!s || !d->runner)
        return;
    const struct exo_runner_info *info = exo_runner_info(d->runner);
    if (info->state != EXO_RUNNER_READY) {
        if (d->model_reported[0])
            cluster_report_delete(d, EXO_STATE_KIND_MODELS, d->model_reported);
        d->model_reported[0] = '\0';
        return;
    }
    char id[sizeof(d->model_reported)]; /* a state key: at most EXO_STATE_KEY_MAX */
    exo_openai_model_id(info->model_path, id, sizeof(id));
    cJSON *v = cJSON_CreateObject();
    if (!v || !cJSON_AddStringToObject(v, "id", id) ||
        !cJSON_AddStringToObject(v, "name", info->model_name) ||
        !cJSON_AddStringToObject(v, "arch", info->arch) ||
        !cJSON_AddNumberToObject(v, "context_length", info->n_ctx) ||
        !cJSON_AddNumberToObject(v, "weight_bytes", (double)info->weight_bytes)) {
        cJSON_Delete(v);
        v = NULL;
    }
    if (cluster_report(d, EXO_STATE_KIND_MODELS, id, v) == 0)
        memcpy(d->model_reported, id, sizeof(id));
}

int models_start(struct daemon *d)
{
    struct exo_openai_peers peers = {.list = peers_list, .find = peers_find, .ud = d};
    exo_api_set_peers(d->api, &peers);
    models_runner_changed(d);
    return 0;
}

void models_stop(struct daemon *d)
{
    exo_api_set_peers(d->api, NULL);
    stop_next(d);
}
