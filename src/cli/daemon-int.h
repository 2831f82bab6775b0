/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The daemon's parts, shared by its files: daemon.c (options, the component table, start and
 * shutdown, the state directory, runner, API and model), daemon-cluster.c (mDNS, membership,
 * the replicated state and their routes) and daemon-devices.c (detection, scoring, telemetry
 * and their routes). Every function here runs on the loop thread.
 *
 * A component's start returns 0 or a negative code (it has logged why); its stop ends by
 * calling stop_next(d), at once or later from the loop.
 */
#ifndef EXO_CLI_DAEMON_INT_H
#define EXO_CLI_DAEMON_INT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "cluster/state.h"
#include "core/buf.h"
#include "service/statedir.h"

struct cJSON;

#define DEFAULT_LISTEN   "127.0.0.1"
#define DEFAULT_API_PORT 52415
#define SHUTDOWN_MS      1800 /* the daemon must be gone within 2 s of SIGTERM */
#define FETCH_OUTPUT_MAX 4096 /* the script prints one path */
#define FETCH_LINE_MAX   512
#define MAX_OPEN_FILES   65536

#define DEFAULT_GOSSIP_PORT 52416
#define DEFAULT_DATA_PORT   52417
#define MAX_JOIN            16

struct daemon_options {
    const char *listen;
    long gossip_port;
    const char *join[MAX_JOIN]; /* HOST:PORT seeds */
    size_t n_join;
    char join_env[1024];     /* $EXO_JOIN, split in place */
    const char *cluster_key; /* key file */
    const char *cluster;     /* cluster name: the label and, without a key, the key */
    const char *name;        /* this node's display name; NULL: the host name */
    long leader_priority;
    long api_port;
    const char *model; /* PATH or NAME; NULL: the default model */
    const char *api_token;
    long threads;
    long ctx;
    long queue_depth;
    const char *state_dir;
};

/* A fetch of the default model by scripts/fetch-model, running as a child process. */
struct fetch {
    struct daemon *d;
    uv_process_t proc;
    uv_pipe_t out, err;
    int open_handles;
    bool exited;
    int64_t exit_status;
    int term_signal;
    struct exo_buf stdout_text; /* the model's path, printed when done */
    char line[FETCH_LINE_MAX];  /* the stderr line being read */
    size_t line_len;
    char last_line[FETCH_LINE_MAX];
    int last_decile; /* progress logged so far, in tenths */
};

struct daemon {
    struct daemon_options opt;
    uv_loop_t loop;
    uv_signal_t sigterm, sigint;
    uv_timer_t watchdog, deadline;
    struct exo_statedir *statedir;
    struct exo_runner *runner;
    struct exo_api *api;
    struct daemon_cluster *cluster; /* daemon-cluster.c; NULL until started */
    struct daemon_devices *devices; /* daemon-devices.c; NULL when not running */
    struct daemon_links *links;     /* daemon-links.c; NULL when not running */
    /* The latest telemetry sample of a node as JSON (owned by the caller), or NULL: set by the
     * devices component for /api/v1/nodes. */
    struct cJSON *(*telemetry_of)(struct daemon *d, const uint8_t id[EXO_NODE_ID_SIZE]);
    uint8_t node_id[EXO_NODE_ID_SIZE];
    char node_hex[2 * EXO_NODE_ID_SIZE + 1];
    struct fetch *fetch;
    char model_path[PATH_MAX];
    char model_reported[EXO_STATE_KEY_MAX + 1]; /* daemon-models.c: the id the cluster knows */
    size_t models_turn;                         /* daemon-models.c: the next node to forward to */
    int64_t started_s;                          /* wall clock at start */
    size_t n_started;                           /* components started, in table order */
    bool stopping;
    bool forced;
    int status;
};

void stop_next(struct daemon *d);

/* daemon-cluster.c */
int cluster_start(struct daemon *d);
void cluster_stop(struct daemon *d);
/* Free the rest once the loop has run dry (the routes may read it until the server is gone). */
void cluster_release(struct daemon *d);
/* The parts, for other components; NULL when the cluster is not running. */
struct exo_state *cluster_state(struct daemon *d);
struct exo_members *cluster_members(struct daemon *d);
/* This node's replicated record (kind, key): set to j's JSON text (j consumed; NULL when
 * building it ran out of memory) or deleted. A failure is logged and returned; with the
 * cluster stopped there is nobody to tell, and both return 0. */
int cluster_report(struct daemon *d, uint16_t kind, const char *key, struct cJSON *j);
int cluster_report_delete(struct daemon *d, uint16_t kind, const char *key);
/* The value of a JSON record of the replicated table (s: cluster_state()), parsed and owned by
 * the caller; NULL when absent or unparsable. */
struct cJSON *cluster_record_json(const struct exo_state *s, uint16_t kind, const uint8_t *owner,
                                  const char *key);
/* A member's IP address as text (no port) into host (size bytes: INET6_ADDRSTRLEN is enough);
 * false, with host empty, when it has none. */
bool cluster_addr_host(const struct exo_members_addr *a, char *host, size_t size);
/* Application messages whose first byte is `channel` (not EXO_STATE_CHANNEL) go to cb, with the
 * sender's id; data is borrowed for the call. At most 8 handlers. */
typedef void (*daemon_message_cb)(void *ud, const uint8_t from[EXO_NODE_ID_SIZE],
                                  const uint8_t *data, size_t len, bool broadcast);
int cluster_on_message(struct daemon *d, uint8_t channel, daemon_message_cb cb, void *ud);
/* Send an application message (data[0] is its channel; borrowed) to every member by gossip
 * (at most EXO_MEMBERS_BROADCAST_MAX bytes), or to one member directly (up to
 * EXO_MEMBERS_MESSAGE_MAX). 0, EXO_ECLOSED when the cluster is not running, or the membership
 * layer's error. */
int cluster_broadcast(struct daemon *d, const uint8_t *data, size_t len);
int cluster_send(struct daemon *d, const uint8_t to[EXO_NODE_ID_SIZE], const uint8_t *data,
                 size_t len);
/* One event to every /api/v1/events client: event name, id (NULL: none), JSON text. */
void cluster_sse_publish(struct daemon *d, const char *event, const char *id, const char *json);

/* daemon-models.c: the cluster's models in /v1/models, and requests forwarded to them. */
int models_start(struct daemon *d);
void models_stop(struct daemon *d);
/* The runner's state changed: report the model it serves (or none) to the cluster. */
void models_runner_changed(struct daemon *d);

/* daemon-links.c: this node's measured links to the others, as its `links` record. */
int links_start(struct daemon *d);
void links_stop(struct daemon *d);

/* daemon-devices.c */
int devices_start(struct daemon *d);
void devices_stop(struct daemon *d);

#endif
