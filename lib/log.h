/* log.h: leveled logging to stderr, with syslog priority prefixes when journald reads it. */
#pragma once

#include <syslog.h>

#include "lib/util.h"

/* Levels are syslog's: LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG. */
void log_set_ident(const char *ident);
void log_set_max_level(int level);
int log_get_max_level(void);
/* "error", "warning", "notice", "info", "debug" -> level; -EINVAL otherwise. */
int log_level_from_string(const char *s);

/* text: "TIMESTAMP IDENT[PID]: LEVEL: message" lines (under journald, "<N>message");
 * json: one object per line for log shippers, {"timestamp", "level", "ident", "pid",
 * "message", "errno"?} (under journald behind its "<N>" prefix, which journald removes). */
typedef enum log_format {
        LOG_FORMAT_TEXT,
        LOG_FORMAT_JSON,
} log_format_t;
void log_set_format(log_format_t format);
/* "text" or "json" -> format; -EINVAL otherwise. */
int log_format_from_string(const char *s);

/* Logs the message if level is enabled and returns -abs(error) (or 0 when error is 0), so a
 * caller can `return log_error_errno(r, "Failed to open %s: %m", path);`. When error is
 * non-zero, %m in fmt prints strerror(error). */
int log_internal(int level, int error, const char *fmt, ...) _printf_(3, 4);

#define log_error(...) log_internal(LOG_ERR, 0, __VA_ARGS__)
#define log_warning(...) log_internal(LOG_WARNING, 0, __VA_ARGS__)
#define log_notice(...) log_internal(LOG_NOTICE, 0, __VA_ARGS__)
#define log_info(...) log_internal(LOG_INFO, 0, __VA_ARGS__)
#define log_debug(...) log_internal(LOG_DEBUG, 0, __VA_ARGS__)
#define log_error_errno(e, ...) log_internal(LOG_ERR, (e), __VA_ARGS__)
#define log_warning_errno(e, ...) log_internal(LOG_WARNING, (e), __VA_ARGS__)
#define log_debug_errno(e, ...) log_internal(LOG_DEBUG, (e), __VA_ARGS__)
