/* log.c: leveled logging to stderr. Under systemd (JOURNAL_STREAM set) each line carries a
 * "<N>" priority prefix that journald parses; on a terminal it carries a timestamp instead. */
#include "lib/log.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *log_ident = "husk";
static int log_max_level = LOG_INFO;
static log_format_t log_format = LOG_FORMAT_TEXT;

void log_set_ident(const char *ident) { log_ident = ident; }
void log_set_max_level(int level) { log_max_level = level; }
int log_get_max_level(void) { return log_max_level; }
void log_set_format(log_format_t format) { log_format = format; }

int log_format_from_string(const char *s) {
        if (s && streq(s, "text"))
                return LOG_FORMAT_TEXT;
        if (s && streq(s, "json"))
                return LOG_FORMAT_JSON;
        return -EINVAL;
}

static const char *const level_names[] = {
        [LOG_EMERG] = "emerg",     [LOG_ALERT] = "alert",   [LOG_CRIT] = "crit", [LOG_ERR] = "error",
        [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice", [LOG_INFO] = "info", [LOG_DEBUG] = "debug",
};

int log_level_from_string(const char *s) {
        for (int i = LOG_ERR; i <= LOG_DEBUG; i++)
                if (s && streq(s, level_names[i]))
                        return i;
        return -EINVAL;
}

int log_internal(int level, int error, const char *fmt, ...) {
        int saved_errno = errno;
        char msg[2048];
        va_list ap;

        if (error < 0)
                error = -error;
        if (level > log_max_level)
                return -error;

        errno = error; /* so that %m prints the error being reported */
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);

        if (log_format == LOG_FORMAT_JSON) {
                char ts[32], *line = NULL;
                json_t *o = NULL;

                format_timestamp_ms(now_realtime_ms(), ts, sizeof(ts));
                for (int attempt = 0; !o && attempt < 2; attempt++) {
                        /* A message that is not UTF-8 (a name as a guest or the kernel gave it)
                         * is logged with its other bytes as '?' rather than lost. */
                        if (attempt == 1)
                                for (char *p = msg; *p; p++)
                                        if ((unsigned char)*p >= 0x80)
                                                *p = '?';
                        o = json_pack("{s:s, s:s, s:s, s:i, s:s}", "timestamp", ts, "level", level_names[level & 7],
                                      "ident", log_ident, "pid", (int)getpid(), "message", msg);
                }
                if (o && error)
                        (void)json_object_set_new(o, "errno", json_integer(error));
                line = o ? json_dumps(o, JSON_COMPACT) : NULL;
                if (line && getenv("JOURNAL_STREAM"))
                        fprintf(stderr, "<%d>%s\n", level, line);
                else if (line)
                        fprintf(stderr, "%s\n", line);
                free(line);
                json_decref(o);
        } else if (getenv("JOURNAL_STREAM")) {
                fprintf(stderr, "<%d>%s\n", level, msg);
        } else {
                char ts[32];
                format_timestamp_ms(now_realtime_ms(), ts, sizeof(ts));
                fprintf(stderr, "%s %s[%d]: %s: %s\n", ts, log_ident, (int)getpid(), level_names[level & 7], msg);
        }
        errno = saved_errno;
        return -error;
}
