/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Logging for daemon and CLI code. Parsers, kernels and the planner do not log: they return codes
 * and let the caller decide (STYLE.md, habit 11). Lines go to stderr as text or as one JSON object
 * per line; a mutex keeps lines from different threads whole.
 */
#ifndef EXO_CORE_LOG_H
#define EXO_CORE_LOG_H

#include <stdbool.h>
#include <stdio.h>

enum exo_log_level {
    EXO_LOG_ERROR = 0,
    EXO_LOG_WARN,
    EXO_LOG_INFO,
    EXO_LOG_DEBUG,
    EXO_LOG_TRACE,
};

enum exo_log_format {
    EXO_LOG_FORMAT_TEXT = 0,
    EXO_LOG_FORMAT_JSON,
};

void exo_log_set_level(enum exo_log_level level);
enum exo_log_level exo_log_get_level(void);
void exo_log_set_format(enum exo_log_format format);

/* Redirect output (default stderr). The stream is borrowed and must outlive the logger's use. */
void exo_log_set_stream(FILE *stream);

/* Parse "error", "warn", "info", "debug", "trace" (case-insensitive). 0 or EXO_EINVAL. */
int exo_log_level_parse(const char *text, enum exo_log_level *ret_level);
int exo_log_format_parse(const char *text, enum exo_log_format *ret_format);

bool exo_log_enabled(enum exo_log_level level);

void exo_log(enum exo_log_level level, const char *subsys, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
