/* SPDX-License-Identifier: Apache-2.0 */
/* Log lines as text or JSON on one stream; any thread may log (a mutex keeps lines whole). */
#include "core/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/error.h"

static atomic_int log_level = EXO_LOG_INFO;
static atomic_int log_format = EXO_LOG_FORMAT_TEXT;
static FILE *log_stream;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};

void exo_log_set_level(enum exo_log_level level)
{
    atomic_store(&log_level, (int)level);
}

enum exo_log_level exo_log_get_level(void)
{
    return (enum exo_log_level)atomic_load(&log_level);
}

void exo_log_set_format(enum exo_log_format format)
{
    atomic_store(&log_format, (int)format);
}

void exo_log_set_stream(FILE *stream)
{
    pthread_mutex_lock(&log_lock);
    log_stream = stream;
    pthread_mutex_unlock(&log_lock);
}

int exo_log_level_parse(const char *text, enum exo_log_level *ret_level)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcasecmp(text, level_names[i]) == 0) {
            *ret_level = (enum exo_log_level)i;
            return 0;
        }
    }
    if (strcasecmp(text, "warning") == 0) {
        *ret_level = EXO_LOG_WARN;
        return 0;
    }
    return EXO_EINVAL;
}

int exo_log_format_parse(const char *text, enum exo_log_format *ret_format)
{
    if (strcasecmp(text, "text") == 0)
        *ret_format = EXO_LOG_FORMAT_TEXT;
    else if (strcasecmp(text, "json") == 0)
        *ret_format = EXO_LOG_FORMAT_JSON;
    else
        return EXO_EINVAL;
    return 0;
}

bool exo_log_enabled(enum exo_log_level level)
{
    return (int)level <= atomic_load_explicit(&log_level, memory_order_relaxed);
}

/* Write s as the body of a JSON string: quotes, backslashes and control bytes escaped. */
static void put_json_string(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", f);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
}

void exo_log(enum exo_log_level level, const char *subsys, const char *fmt, ...)
{
    char msg[2048];
    char stamp[40];
    struct timespec ts;
    struct tm tm;
    va_list ap;

    if (!exo_log_enabled(level))
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(stamp + n, sizeof(stamp) - n, ".%03ldZ", ts.tv_nsec / 1000000L);

    pthread_mutex_lock(&log_lock);
    FILE *f = log_stream ? log_stream : stderr;
    if (atomic_load(&log_format) == EXO_LOG_FORMAT_JSON) {
        fprintf(f, "{\"ts\":\"%s\",\"level\":\"%s\",\"subsys\":\"", stamp, level_names[level]);
        put_json_string(f, subsys);
        fputs("\",\"msg\":\"", f);
        put_json_string(f, msg);
        fputs("\"}\n", f);
    } else {
        fprintf(f, "%s %-5s %s: %s\n", stamp, level_names[level], subsys, msg);
    }
    fflush(f);
    pthread_mutex_unlock(&log_lock);
}
