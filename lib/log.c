/* log.c: leveled logging to stderr. Under systemd (JOURNAL_STREAM set) each line carries a
 * "<N>" priority prefix that journald parses; on a terminal it carries a timestamp instead. */
#include "lib/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *log_ident = "husk";
static int log_max_level = LOG_INFO;

void log_set_ident(const char *ident) { log_ident = ident; }
void log_set_max_level(int level) { log_max_level = level; }
int log_get_max_level(void) { return log_max_level; }

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

        if (getenv("JOURNAL_STREAM")) {
                fprintf(stderr, "<%d>%s\n", level, msg);
        } else {
                char ts[32];
                format_timestamp_ms(now_realtime_ms(), ts, sizeof(ts));
                fprintf(stderr, "%s %s[%d]: %s: %s\n", ts, log_ident, (int)getpid(), level_names[level & 7], msg);
        }
        errno = saved_errno;
        return -error;
}
