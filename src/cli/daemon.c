/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `exo` with no subcommand: the daemon. It serves the OpenAI-compatible API and the dashboard
 * from the model it loads, on one libuv loop that the cluster (mDNS, membership, leader) will
 * share.
 *
 * The daemon is a list of components started in order and stopped in reverse: the state
 * directory (identity and lock), the runner (compute thread), the API (HTTP server and routes)
 * and the model (found, fetched if it is the default and missing, then loaded by the runner).
 * Adding a subsystem is adding a row to `components` with its start and stop: mDNS and
 * membership go between the runner and the API, so they are up before clients arrive and still
 * up while the API drains.
 *
 * Threads: this file runs on the main thread, which runs the loop. Model files are never read
 * here: the runner's compute thread opens them, and fetching runs scripts/fetch-model as a child
 * process whose output the loop reads as it comes.
 *
 * Shutdown (SIGTERM or SIGINT): sd_notify STOPPING, then each component stops in turn (the API
 * refuses new generations and cancels those in flight, then closes its connections; the runner
 * joins its thread). A timer bounds the whole at SHUTDOWN_MS; a second signal exits at once.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "api/api.h"
#include "cli/cli.h"
#include "cli/daemon-int.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "engine/runner.h"
#include "service/notify.h"
#include "service/statedir.h"

/* A daemon whose shutdown was cut short (see exo_cli_daemon). */
static struct daemon *abandoned;


/* Component: the state directory. ----------------------------------------------------------- */

static int state_start(struct daemon *d)
{
    struct exo_diag diag = {{0}};
    int rc = exo_statedir_open(d->opt.state_dir, &d->statedir, &diag);
    if (rc == 0)
        rc = exo_statedir_node_id(d->statedir, d->node_id, &diag);
    if (rc < 0) {
        exo_log(EXO_LOG_ERROR, "daemon", "%s", diag.msg[0] ? diag.msg : exo_strerror(rc));
        return rc;
    }
    exo_node_id_hex(d->node_id, d->node_hex);
    exo_log(EXO_LOG_INFO, "daemon", "node %s, state in %s", d->node_hex,
            exo_statedir_path(d->statedir));
    return 0;
}

static void state_stop(struct daemon *d)
{
    exo_statedir_close(d->statedir);
    d->statedir = NULL;
    stop_next(d);
}

/* Defined with the API component; the runner's ready message names the dashboard too. */
static void url_host(const char *listen, char *buf, size_t size);

/* Component: the runner. --------------------------------------------------------------------- */

static void on_runner_state(struct exo_runner *r, void *ud)
{
    struct daemon *d = ud;
    const struct exo_runner_info *info = exo_runner_info(r);
    char status[sizeof(info->model_path) + 64];
    switch (info->state) {
    case EXO_RUNNER_LOADING:
        exo_log(EXO_LOG_INFO, "model", "loading %s", info->model_path);
        snprintf(status, sizeof(status), "STATUS=loading %s", info->model_path);
        break;
    case EXO_RUNNER_READY:
        exo_log(EXO_LOG_INFO, "model",
                "ready: %s (%s, %u layers, %.1f MiB), context %u, %s, chat template %s, "
                "loaded in %.2f s",
                info->model_name, info->arch, info->n_layer, (double)info->weight_bytes / 1048576.0,
                info->n_ctx, info->device, info->chat_template, (double)info->load_ns / 1e9);
        snprintf(status, sizeof(status), "STATUS=serving %s", info->model_name);
        if (d->api) {
            char host[256];
            url_host(d->opt.listen, host, sizeof(host));
            exo_log(EXO_LOG_INFO, "daemon", "ready: the dashboard is at http://%s:%u/", host,
                    exo_http_server_port(exo_api_server(d->api)));
        }
        break;
    case EXO_RUNNER_FAILED:
        exo_log(EXO_LOG_ERROR, "model", "no model to serve: %s", info->error);
        snprintf(status, sizeof(status), "STATUS=no model: %.200s", info->error);
        break;
    default:
        return;
    }
    exo_notify(status);
    models_runner_changed(ud);
}

static int runner_start(struct daemon *d)
{
    struct exo_runner_config cfg = {
        .session = {.n_ctx = (uint32_t)d->opt.ctx, .n_threads = (int32_t)d->opt.threads},
        .max_queued = (uint32_t)d->opt.queue_depth,
        .on_state = on_runner_state,
        .ud = d,
    };
    int rc = exo_runner_start(&d->loop, &cfg, &d->runner);
    if (rc < 0)
        exo_log(EXO_LOG_ERROR, "daemon", "cannot start the compute thread: %s", exo_strerror(rc));
    return rc;
}

static void on_runner_stopped(void *ud)
{
    struct daemon *d = ud;
    d->runner = NULL;
    stop_next(d);
}

static void runner_stop(struct daemon *d)
{
    exo_runner_stop(d->runner, on_runner_stopped, d);
}

/* Component: the API. ------------------------------------------------------------------------ */

/* How people reach the API: the listen address, or this host's name when it listens on all. */
static void url_host(const char *listen, char *buf, size_t size)
{
    if (strcmp(listen, "0.0.0.0") == 0 || strcmp(listen, "::") == 0) {
        if (gethostname(buf, size) != 0 || !buf[0])
            snprintf(buf, size, "localhost");
        buf[size - 1] = '\0';
    } else if (strchr(listen, ':')) {
        snprintf(buf, size, "[%s]", listen);
    } else {
        snprintf(buf, size, "%s", listen);
    }
}

static int api_start(struct daemon *d)
{
    struct exo_api_config cfg = {
        .http = {.listen_addr = d->opt.listen,
                 .port = (uint16_t)d->opt.api_port,
                 .api_token = d->opt.api_token},
    };
    int rc = exo_api_start(&d->loop, &cfg, d->runner, &d->api);
    if (rc < 0) {
        exo_log(EXO_LOG_ERROR, "daemon", "cannot serve HTTP on %s port %ld: %s", d->opt.listen,
                d->opt.api_port, exo_strerror(rc));
        return rc;
    }
    char host[256];
    url_host(d->opt.listen, host, sizeof(host));
    uint16_t port = exo_http_server_port(exo_api_server(d->api));
    exo_log(EXO_LOG_INFO, "daemon", "dashboard: http://%s:%u/", host, port);
    exo_log(EXO_LOG_INFO, "daemon", "OpenAI-compatible API: http://%s:%u/v1 (listening on %s)",
            host, port, d->opt.listen);
    if (!d->opt.api_token || !d->opt.api_token[0])
        exo_log(EXO_LOG_INFO, "daemon",
                "no API token: anyone who can reach %s:%u may use the API (--api-token)",
                d->opt.listen, port);
    /* Ready for systemd means serving HTTP: /readyz tells when the model is loaded, which may
     * take a download first, longer than a start timeout should wait. */
    exo_notify("READY=1\nSTATUS=serving HTTP, preparing the model");
    return 0;
}

static void on_api_stopped(void *ud)
{
    struct daemon *d = ud;
    d->api = NULL;
    stop_next(d);
}

static void api_stop(struct daemon *d)
{
    exo_api_stop(d->api, on_api_stopped, d);
}

/* Component: the model. ---------------------------------------------------------------------- */

static bool is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The file --model names: a path, or a name in the model cache (with or without ".gguf").
 * Sets *ret_default when it is the default model (which may be fetched). 0 or EXO_ENOENT. */
static int resolve_model(const char *model, char *path, size_t size, bool *ret_default)
{
    char def[PATH_MAX];
    exo_cli_default_model(def, sizeof(def));
    const char *def_name = strrchr(def, '/') ? strrchr(def, '/') + 1 : def;
    *ret_default = !model || !model[0] || strcmp(model, "default") == 0 ||
                   strcmp(model, def_name) == 0 || strcmp(model, def) == 0;
    if (*ret_default) {
        snprintf(path, size, "%s", def);
        return 0;
    }
    if (strchr(model, '/') || is_file(model)) {
        snprintf(path, size, "%s", model);
        return is_file(path) ? 0 : EXO_ENOENT;
    }
    size_t dir_len = (size_t)(def_name - def);
    snprintf(path, size, "%.*s%s", (int)dir_len, def, model);
    if (is_file(path))
        return 0;
    snprintf(path, size, "%.*s%s.gguf", (int)dir_len, def, model);
    return is_file(path) ? 0 : EXO_ENOENT;
}

/* scripts/fetch-model: $EXO_FETCH_MODEL, beside the binary (a build tree inside the source tree:
 * build/ or build/<type>/), or the installed share directory. */
static int find_fetch_script(char *path, size_t size)
{
    const char *env = getenv("EXO_FETCH_MODEL");
    if (env && *env) {
        snprintf(path, size, "%s", env);
        return 0;
    }
    char exe[PATH_MAX];
    size_t len = sizeof(exe);
    if (uv_exepath(exe, &len) == 0) {
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = '\0';
        static const char *const rel[] = {"fetch-model", "../scripts/fetch-model",
                                          "../../scripts/fetch-model",
                                          "../../../scripts/fetch-model"};
        for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
            int n = snprintf(path, size, "%s/%s", exe, rel[i]);
            if (n > 0 && (size_t)n < size && access(path, X_OK) == 0)
                return 0;
        }
    }
    snprintf(path, size, "%s/fetch-model", EXO_SHARE_DIR);
    return access(path, X_OK) == 0 ? 0 : EXO_ENOENT;
}

static void fetch_handle_closed(uv_handle_t *h)
{
    struct fetch *f = h->data;
    if (--f->open_handles > 0)
        return;
    struct daemon *d = f->d;
    exo_buf_free(&f->stdout_text);
    exo_free(f);
    d->fetch = NULL;
    if (d->stopping)
        stop_next(d);
}

static void fetch_close(struct fetch *f)
{
    uv_handle_t *hs[] = {(uv_handle_t *)&f->proc, (uv_handle_t *)&f->out, (uv_handle_t *)&f->err};
    for (size_t i = 0; i < 3; i++)
        if (!uv_is_closing(hs[i]))
            uv_close(hs[i], fetch_handle_closed);
}

/* Both pipes are at EOF and the process has exited: load what it fetched. */
static void fetch_maybe_done(struct fetch *f)
{
    if (!f->exited || uv_is_active((uv_handle_t *)&f->out) || uv_is_active((uv_handle_t *)&f->err))
        return;
    struct daemon *d = f->d;
    if (!d->stopping) {
        char text[FETCH_OUTPUT_MAX];
        snprintf(text, sizeof(text), "%.*s", (int)f->stdout_text.len,
                 f->stdout_text.data ? (const char *)f->stdout_text.data : "");
        text[strcspn(text, "\r\n")] = '\0';
        if (f->exit_status == 0 && text[0] && is_file(text)) {
            snprintf(d->model_path, sizeof(d->model_path), "%s", text);
            exo_runner_load(d->runner, d->model_path);
        } else {
            char why[FETCH_LINE_MAX + 64];
            snprintf(why, sizeof(why), "cannot fetch the default model: %s",
                     f->last_line[0] ? f->last_line : "fetch-model failed");
            exo_runner_fail(d->runner, why);
        }
    }
    fetch_close(f);
}

static void on_fetch_exit(uv_process_t *p, int64_t status, int term_signal)
{
    struct fetch *f = p->data;
    f->exited = true;
    f->exit_status = status;
    f->term_signal = term_signal;
    fetch_maybe_done(f);
}

static void on_fetch_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char chunk[4096];
    *buf = uv_buf_init(chunk, sizeof(chunk));
}

static void on_fetch_stdout(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct fetch *f = s->data;
    if (n < 0) {
        uv_read_stop(s);
        fetch_maybe_done(f);
        return;
    }
    exo_buf_put(&f->stdout_text, buf->base, (size_t)n);
}

/* One line (or progress-bar update) from the script: its own messages go to the log; curl's
 * progress bar ("###   42.5%") becomes the runner's progress, logged every 10 %. */
static void fetch_line(struct fetch *f, const char *line)
{
    if (!line[0])
        return;
    const char *pct = strrchr(line, '%');
    if (pct && pct > line && line[0] == '#') {
        const char *num = pct;
        while (num > line && (num[-1] == '.' || (num[-1] >= '0' && num[-1] <= '9')))
            num--;
        double v = strtod(num, NULL) / 100.0;
        exo_runner_progress(f->d->runner, "fetching the default model", v);
        int decile = (int)(v * 10.0);
        if (decile > f->last_decile) {
            f->last_decile = decile;
            exo_log(EXO_LOG_INFO, "model", "fetching the default model: %.0f%%", v * 100.0);
        }
        return;
    }
    const char *msg = strncmp(line, "fetch-model: ", 13) == 0 ? line + 13 : line;
    exo_log(EXO_LOG_INFO, "model", "%s", msg);
    snprintf(f->last_line, sizeof(f->last_line), "%s", msg);
}

static void on_fetch_stderr(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct fetch *f = s->data;
    if (n < 0) {
        uv_read_stop(s);
        f->line[f->line_len] = '\0';
        fetch_line(f, f->line);
        f->line_len = 0;
        fetch_maybe_done(f);
        return;
    }
    for (ssize_t i = 0; i < n; i++) {
        char c = buf->base[i];
        if (c == '\n' || c == '\r') {
            f->line[f->line_len] = '\0';
            fetch_line(f, f->line);
            f->line_len = 0;
        } else if (f->line_len + 1 < sizeof(f->line)) {
            f->line[f->line_len++] = c;
        }
    }
}

static int fetch_start(struct daemon *d)
{
    char script[PATH_MAX];
    if (find_fetch_script(script, sizeof(script)) < 0) {
        exo_runner_fail(d->runner, "the default model is not in the cache and "
                                   "scripts/fetch-model was not found; name a model with --model");
        return 0;
    }
    struct fetch *f = exo_calloc(1, sizeof(*f));
    if (!f)
        return EXO_ENOMEM;
    f->d = d;
    f->last_decile = -1;
    exo_buf_init(&f->stdout_text, FETCH_OUTPUT_MAX);
    uv_pipe_init(&d->loop, &f->out, 0);
    uv_pipe_init(&d->loop, &f->err, 0);
    f->out.data = f->err.data = f->proc.data = f;
    f->open_handles = 3;
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE},
        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&f->out},
        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&f->err},
    };
    char *args[] = {script, NULL};
    /* Detached: its own process group, so that a stop can end curl along with the script. */
    uv_process_options_t po = {.file = script,
                               .args = args,
                               .exit_cb = on_fetch_exit,
                               .stdio_count = 3,
                               .stdio = stdio,
                               .flags = UV_PROCESS_DETACHED};
    int rc = uv_spawn(&d->loop, &f->proc, &po);
    if (rc < 0) {
        char why[PATH_MAX + 64];
        snprintf(why, sizeof(why), "cannot run %s: %s", script, uv_strerror(rc));
        exo_runner_fail(d->runner, why);
        f->exited = true;
        d->fetch = f;
        fetch_close(f);
        return 0;
    }
    d->fetch = f;
    exo_log(EXO_LOG_INFO, "model", "the default model is not in the cache: running %s", script);
    exo_runner_progress(d->runner, "fetching the default model", -1.0);
    uv_read_start((uv_stream_t *)&f->out, on_fetch_alloc, on_fetch_stdout);
    uv_read_start((uv_stream_t *)&f->err, on_fetch_alloc, on_fetch_stderr);
    return 0;
}

static int model_start(struct daemon *d)
{
    if (d->opt.model && strcmp(d->opt.model, "none") == 0) {
        exo_log(EXO_LOG_INFO, "daemon",
                "--model none: this node serves no model; it still joins the cluster and "
                "reports its devices");
        return 0;
    }
    bool is_default = false;
    if (resolve_model(d->opt.model, d->model_path, sizeof(d->model_path), &is_default) < 0) {
        exo_log(EXO_LOG_ERROR, "daemon",
                "model '%s' not found (neither a file nor a name in the model cache)",
                d->opt.model);
        return EXO_ENOENT;
    }
    if (is_file(d->model_path))
        return exo_runner_load(d->runner, d->model_path);
    return fetch_start(d);
}

static void model_stop(struct daemon *d)
{
    struct fetch *f = d->fetch;
    if (!f) {
        stop_next(d);
        return;
    }
    if (!f->exited)
        uv_kill(-f->proc.pid, SIGTERM);
    fetch_close(f);
}

/* The daemon. -------------------------------------------------------------------------------- */

static const struct component {
    const char *name;
    int (*start)(struct daemon *d);
    /* Ends by calling stop_next(d), now or later from the loop. */
    void (*stop)(struct daemon *d);
} components[] = {
    {"state directory", state_start, state_stop},
    {"runner", runner_start, runner_stop},
    {"api", api_start, api_stop},
    {"cluster", cluster_start, cluster_stop},
    {"models", models_start, models_stop},
    {"links", links_start, links_stop},
    {"devices", devices_start, devices_stop},
    {"model", model_start, model_stop},
};

static void close_own_handles(struct daemon *d)
{
    uv_handle_t *hs[] = {(uv_handle_t *)&d->sigterm, (uv_handle_t *)&d->sigint,
                         (uv_handle_t *)&d->watchdog, (uv_handle_t *)&d->deadline};
    for (size_t i = 0; i < sizeof(hs) / sizeof(hs[0]); i++)
        if (!uv_is_closing(hs[i]))
            uv_close(hs[i], NULL);
}

void stop_next(struct daemon *d)
{
    if (d->forced)
        return;
    if (d->n_started == 0) {
        close_own_handles(d);
        return;
    }
    const struct component *c = &components[--d->n_started];
    exo_log(EXO_LOG_DEBUG, "daemon", "stopping the %s", c->name);
    c->stop(d);
}

static void on_deadline(uv_timer_t *t)
{
    struct daemon *d = t->data;
    exo_log(EXO_LOG_WARN, "daemon",
            "shutdown is taking too long (still stopping the %s); "
            "exiting now",
            components[d->n_started].name);
    d->forced = true;
    uv_stop(&d->loop);
}

static void begin_stop(struct daemon *d)
{
    if (d->stopping)
        return;
    d->stopping = true;
    exo_notify("STOPPING=1");
    uv_timer_stop(&d->watchdog);
    uv_timer_start(&d->deadline, on_deadline, SHUTDOWN_MS, 0);
    uv_unref((uv_handle_t *)&d->deadline);
    stop_next(d);
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct daemon *d = s->data;
    if (d->stopping) {
        exo_log(EXO_LOG_WARN, "daemon", "second %s: exiting now", strsignal(signum));
        d->forced = true;
        d->status = 1;
        uv_stop(&d->loop);
        return;
    }
    exo_log(EXO_LOG_INFO, "daemon", "%s: shutting down", strsignal(signum));
    begin_stop(d);
}

static void on_watchdog(uv_timer_t *t)
{
    exo_notify("WATCHDOG=1");
}

/* 1024 connections need more descriptors than the usual soft limit leaves once the model,
 * pipes and cluster sockets are counted. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= MAX_OPEN_FILES)
        return;
    rl.rlim_cur = rl.rlim_max < MAX_OPEN_FILES ? rl.rlim_max : MAX_OPEN_FILES;
    setrlimit(RLIMIT_NOFILE, &rl);
}

/* Options. ----------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: exo [options]\n"
            "\n"
            "Run the exo daemon: load a model and serve the OpenAI-compatible API and the\n"
            "dashboard. Every option can also be set in the environment variable shown.\n"
            "\n"
            "  --listen ADDR        address to serve HTTP on (EXO_LISTEN; default %s, this\n"
            "                       machine only; 0.0.0.0 or :: to serve the network)\n"
            "  --api-port PORT      HTTP port (EXO_API_PORT; default %d; 0 picks a free one)\n"
            "  --gossip-port PORT   cluster membership port, UDP and TCP (EXO_GOSSIP_PORT;\n"
            "                       default %d; 0 picks a free one)\n"
            "  --join HOST:PORT     a peer to join where multicast discovery cannot reach\n"
            "                       (repeatable; EXO_JOIN, comma-separated)\n"
            "  --cluster-key FILE   key file from 'exo keygen': a closed, encrypted cluster\n"
            "                       (EXO_CLUSTER_KEY)\n"
            "  --cluster NAME       cluster name; nodes of other clusters are ignored\n"
            "                       (EXO_CLUSTER; default exo)\n"
            "  --name NAME          this node's display name (EXO_NAME; default: host name)\n"
            "  --leader-priority N  higher leads first (EXO_LEADER_PRIORITY; default 0)\n"
            "  -m, --model M        GGUF path or name in the model cache (EXO_MODEL; default:\n"
            "                       the default model, fetched into the cache if missing;\n"
            "                       none: serve no model, take part in the cluster only)\n"
            "  --api-token TOKEN    require 'Authorization: Bearer TOKEN' on every route but\n"
            "                       /healthz (EXO_API_TOKEN)\n"
            "  -t, --threads N      compute threads (EXO_THREADS; default: physical cores)\n"
            "  -c, --ctx N          context length in tokens (EXO_CTX; default: min(model, "
            "4096))\n"
            "  --queue-depth N      generation requests that may wait (EXO_QUEUE_DEPTH;\n"
            "                       default 16; beyond it: 429)\n"
            "  --state-dir DIR      node identity and caches (EXO_STATE_DIR; default\n"
            "                       $XDG_STATE_HOME/exo)\n"
            "  --log-level LEVEL    error, warn, info, debug, trace (EXO_LOG_LEVEL; default "
            "info)\n"
            "  --log-format FMT     text or json (EXO_LOG_FORMAT; default text)\n"
            "  -h, --help           this help\n"
            "\n"
            "EXO_TELEMETRY=off leaves out this node's 1 Hz telemetry (samples and digests).\n",
            DEFAULT_LISTEN, DEFAULT_API_PORT, DEFAULT_GOSSIP_PORT);
}

enum {
    OPT_LISTEN = 1000,
    OPT_API_PORT,
    OPT_GOSSIP_PORT,
    OPT_JOIN,
    OPT_CLUSTER_KEY,
    OPT_CLUSTER,
    OPT_NAME,
    OPT_LEADER_PRIORITY,
    OPT_API_TOKEN,
    OPT_QUEUE_DEPTH,
    OPT_STATE_DIR,
    OPT_LOG_LEVEL,
    OPT_LOG_FORMAT,
};

static const struct option longopts[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"api-port", required_argument, NULL, OPT_API_PORT},
    {"gossip-port", required_argument, NULL, OPT_GOSSIP_PORT},
    {"join", required_argument, NULL, OPT_JOIN},
    {"cluster-key", required_argument, NULL, OPT_CLUSTER_KEY},
    {"cluster", required_argument, NULL, OPT_CLUSTER},
    {"name", required_argument, NULL, OPT_NAME},
    {"leader-priority", required_argument, NULL, OPT_LEADER_PRIORITY},
    {"model", required_argument, NULL, 'm'},
    {"api-token", required_argument, NULL, OPT_API_TOKEN},
    {"threads", required_argument, NULL, 't'},
    {"ctx", required_argument, NULL, 'c'},
    {"queue-depth", required_argument, NULL, OPT_QUEUE_DEPTH},
    {"state-dir", required_argument, NULL, OPT_STATE_DIR},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* The environment variable of each option, read before the command line (which wins). */
static const struct {
    int opt;
    const char *env;
} env_vars[] = {
    {OPT_LISTEN, "EXO_LISTEN"},
    {OPT_API_PORT, "EXO_API_PORT"},
    {OPT_GOSSIP_PORT, "EXO_GOSSIP_PORT"},
    {OPT_JOIN, "EXO_JOIN"},
    {OPT_CLUSTER_KEY, "EXO_CLUSTER_KEY"},
    {OPT_CLUSTER, "EXO_CLUSTER"},
    {OPT_NAME, "EXO_NAME"},
    {OPT_LEADER_PRIORITY, "EXO_LEADER_PRIORITY"},
    {'m', "EXO_MODEL"},
    {OPT_API_TOKEN, "EXO_API_TOKEN"},
    {'t', "EXO_THREADS"},
    {'c', "EXO_CTX"},
    {OPT_QUEUE_DEPTH, "EXO_QUEUE_DEPTH"},
    {OPT_STATE_DIR, "EXO_STATE_DIR"},
    {OPT_LOG_LEVEL, "EXO_LOG_LEVEL"},
    {OPT_LOG_FORMAT, "EXO_LOG_FORMAT"},
};

/* Apply one option; 0 or 2 (bad usage, already reported). */
static int apply(struct daemon_options *o, int opt, const char *value)
{
    enum exo_log_level level;
    enum exo_log_format format;
    switch (opt) {
    case OPT_LISTEN:
        o->listen = value;
        return 0;
    case OPT_API_PORT:
        return exo_cli_parse_int("daemon", "api-port", value, 0, 65535, &o->api_port) ? 2 : 0;
    case OPT_GOSSIP_PORT:
        return exo_cli_parse_int("daemon", "gossip-port", value, 0, 65535, &o->gossip_port) ? 2
                                                                                           : 0;
    case OPT_JOIN:
        if (o->n_join == MAX_JOIN) {
            fprintf(stderr, "exo: at most %d --join seeds\n", MAX_JOIN);
            return 2;
        }
        o->join[o->n_join++] = value;
        return 0;
    case OPT_CLUSTER_KEY:
        o->cluster_key = value;
        return 0;
    case OPT_CLUSTER:
        if (!value[0] || strlen(value) > 64) {
            fprintf(stderr, "exo: --cluster expects a name of 1 to 64 characters\n");
            return 2;
        }
        o->cluster = value;
        return 0;
    case OPT_NAME:
        if (!value[0] || strlen(value) > 63) {
            fprintf(stderr, "exo: --name expects 1 to 63 characters\n");
            return 2;
        }
        o->name = value;
        return 0;
    case OPT_LEADER_PRIORITY:
        return exo_cli_parse_int("daemon", "leader-priority", value, -1000000, 1000000,
                                 &o->leader_priority)
                   ? 2
                   : 0;
    case 'm':
        o->model = value;
        return 0;
    case OPT_API_TOKEN:
        o->api_token = value;
        return 0;
    case 't':
        return exo_cli_parse_int("daemon", "threads", value, 1, 512, &o->threads) ? 2 : 0;
    case 'c':
        return exo_cli_parse_int("daemon", "ctx", value, 16, 1 << 24, &o->ctx) ? 2 : 0;
    case OPT_QUEUE_DEPTH:
        return exo_cli_parse_int("daemon", "queue-depth", value, 1, 100000, &o->queue_depth) ? 2
                                                                                             : 0;
    case OPT_STATE_DIR:
        o->state_dir = value;
        return 0;
    case OPT_LOG_LEVEL:
        if (exo_log_level_parse(value, &level) == 0) {
            exo_log_set_level(level);
            return 0;
        }
        fprintf(stderr, "exo: --log-level expects error, warn, info, debug or trace, not '%s'\n",
                value);
        return 2;
    case OPT_LOG_FORMAT:
        if (exo_log_format_parse(value, &format) == 0) {
            exo_log_set_format(format);
            return 0;
        }
        fprintf(stderr, "exo: --log-format expects text or json, not '%s'\n", value);
        return 2;
    }
    return 2;
}

/* Options from the environment, then the command line. 0 to go on (or, with *ret_help, to exit
 * successfully after the help), 2 for bad usage. */
static int parse(int argc, char **argv, struct daemon_options *o, bool *ret_help)
{
    *o = (struct daemon_options){.listen = DEFAULT_LISTEN,
                                 .api_port = DEFAULT_API_PORT,
                                 .gossip_port = DEFAULT_GOSSIP_PORT,
                                 .cluster = "exo"};
    *ret_help = false;
    for (size_t i = 0; i < sizeof(env_vars) / sizeof(env_vars[0]); i++) {
        const char *v = getenv(env_vars[i].env);
        if (v && *v && env_vars[i].opt == OPT_JOIN) {
            /* A list of seeds: split a copy at the commas. */
            snprintf(o->join_env, sizeof(o->join_env), "%s", v);
            char *save = NULL;
            for (char *t = strtok_r(o->join_env, ", ", &save); t; t = strtok_r(NULL, ", ", &save))
                if (apply(o, OPT_JOIN, t) != 0)
                    return 2;
            continue;
        }
        if (v && *v && apply(o, env_vars[i].opt, v) != 0) {
            fprintf(stderr, "exo: (from the environment variable %s)\n", env_vars[i].env);
            return 2;
        }
    }
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "m:t:c:h", longopts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            *ret_help = true;
            return 0;
        }
        if (c == '?' || apply(o, c, optarg) != 0) {
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "exo: unexpected argument '%s' (commands come first: exo run ...)\n",
                argv[optind]);
        return 2;
    }
    return 0;
}

int exo_cli_daemon(int argc, char **argv)
{
    struct daemon *d = exo_calloc(1, sizeof(*d));
    bool help = false;
    if (!d)
        return 1;
    d->started_s = (int64_t)(exo_clock_wall_ms() / 1000);
    int status = parse(argc, argv, &d->opt, &help);
    if (status != 0 || help) {
        exo_free(d);
        return status;
    }
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    if (uv_loop_init(&d->loop) != 0) {
        exo_free(d);
        return 1;
    }
    uv_signal_init(&d->loop, &d->sigterm);
    uv_signal_init(&d->loop, &d->sigint);
    uv_timer_init(&d->loop, &d->watchdog);
    uv_timer_init(&d->loop, &d->deadline);
    d->sigterm.data = d->sigint.data = d->watchdog.data = d->deadline.data = d;
    uv_signal_start(&d->sigterm, on_signal, SIGTERM);
    uv_signal_start(&d->sigint, on_signal, SIGINT);

    exo_log(EXO_LOG_INFO, "daemon", "exo %s starting (pid %d)", EXO_VERSION, (int)getpid());
    for (size_t i = 0; i < sizeof(components) / sizeof(components[0]); i++) {
        if (components[i].start(d) < 0) {
            d->status = 1;
            break;
        }
        d->n_started++;
    }
    if (d->status == 0) {
        uint64_t wd = exo_notify_watchdog_ms();
        if (wd)
            uv_timer_start(&d->watchdog, on_watchdog, wd / 2, wd / 2);
    } else {
        begin_stop(d);
    }
    uv_run(&d->loop, UV_RUN_DEFAULT);

    status = d->status;
    if (d->forced) {
        /* Handles are still open and the compute thread may still run: leave them to the
         * process's exit, keeping the daemon reachable so that leak checkers see it as such. */
        abandoned = d;
        return status;
    }
    cluster_release(d);
    uv_loop_close(&d->loop);
    exo_log(EXO_LOG_INFO, "daemon", "stopped");
    exo_free(d);
    return status;
}
