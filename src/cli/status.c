/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `exo status`: ask the local daemon (GET /api/v1/cluster) and print the cluster as a table:
 * every member with its state, incarnation and round-trip time as this node sees it, the leader,
 * the term and the state digest. --json prints the daemon's answer as it came.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "api/http-client.h"
#include "cli/cli.h"
#include "core/buf.h"
#include "core/error.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: exo status [--host HOST] [--api-port PORT] [--api-token TOKEN] [--json]\n"
               "\n"
               "Show the cluster as the local daemon sees it.\n"
               "\n"
               "  --host HOST        daemon to ask (default 127.0.0.1)\n"
               "  --api-port PORT    its HTTP port (EXO_API_PORT; default 52415)\n"
               "  --api-token TOKEN  bearer token, when the daemon requires one (EXO_API_TOKEN)\n"
               "  --json             print the daemon's JSON answer\n");
}

static const char *str(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsString(v) ? v->valuestring : "-";
}

static double num(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsNumber(v) ? v->valuedouble : -1.0;
}

static void print_table(const cJSON *c)
{
    const cJSON *leader = cJSON_GetObjectItemCaseSensitive(c, "leader");
    const cJSON *members = cJSON_GetObjectItemCaseSensitive(c, "members");
    const char *leader_id = cJSON_IsObject(leader) ? str(leader, "id") : "";
    printf("cluster: %d members, leader %s, term %.0f, state digest %.16s, gossip %s\n",
           cJSON_GetArraySize(members), cJSON_IsObject(leader) ? str(leader, "name") : "(none)",
           num(c, "term"), str(c, "digest"),
           cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "encrypted")) ? "encrypted"
                                                                          : "signed");
    printf("%-20s %-16s %-24s %-8s %12s %9s\n", "NAME", "ID", "ADDRESS", "STATE", "INCARNATION",
           "RTT");
    const cJSON *m;
    cJSON_ArrayForEach(m, members)
    {
        const cJSON *local = cJSON_GetObjectItemCaseSensitive(m, "local");
        const char *state = cJSON_IsObject(local) ? str(local, "state") : str(m, "state");
        double rtt = cJSON_IsObject(local) ? num(local, "rtt_us") : -1.0;
        bool self = cJSON_IsObject(local) &&
                    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(local, "self"));
        char rtt_text[32] = "-";
        if (rtt > 0)
            snprintf(rtt_text, sizeof(rtt_text), "%.2f ms", rtt / 1000.0);
        char name[64];
        snprintf(name, sizeof(name), "%s%s%s", str(m, "name"),
                 strcmp(str(m, "id"), leader_id) == 0 ? " *" : "", self ? " (this)" : "");
        printf("%-20s %-16.16s %-24s %-8s %12.0f %9s\n", name, str(m, "id"), str(m, "addr"),
               state, num(m, "incarnation"), self ? "-" : rtt_text);
    }
}

int exo_cli_status(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"host", required_argument, NULL, 'H'},  {"api-port", required_argument, NULL, 'p'},
        {"api-token", required_argument, NULL, 'k'}, {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
    };
    const char *host = "127.0.0.1";
    const char *token = getenv("EXO_API_TOKEN");
    long port = 52415;
    bool json = false;
    int c;
    const char *env_port = getenv("EXO_API_PORT");
    if (env_port && *env_port && exo_cli_parse_int("status", "api-port", env_port, 1, 65535, &port))
        return 2;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'H':
            host = optarg;
            break;
        case 'p':
            if (exo_cli_parse_int("status", "api-port", optarg, 1, 65535, &port) < 0)
                return 2;
            break;
        case 'k':
            token = optarg;
            break;
        case 'j':
            json = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    struct exo_buf body;
    int status = 0;
    exo_buf_init(&body, 16u << 20);
    int rc = exo_http_get(host, (uint16_t)port, "/api/v1/cluster", token, 5000, &body, &status);
    if (rc < 0) {
        fprintf(stderr, "exo status: no daemon answers at %s:%ld (%s); is 'exo' running?\n", host,
                port, exo_strerror(rc));
        exo_buf_free(&body);
        return 1;
    }
    if (status != 200) {
        fprintf(stderr, "exo status: the daemon answered %d: %.*s\n", status, (int)body.len,
                body.data ? (const char *)body.data : "");
        exo_buf_free(&body);
        return 1;
    }
    int ret = 0;
    if (json) {
        fwrite(body.data, 1, body.len, stdout);
        putchar('\n');
    } else {
        cJSON *j = cJSON_ParseWithLength((const char *)body.data, body.len);
        if (!j) {
            fprintf(stderr, "exo status: the daemon's answer is not JSON\n");
            ret = 1;
        } else {
            print_table(j);
            cJSON_Delete(j);
        }
    }
    exo_buf_free(&body);
    return ret;
}
