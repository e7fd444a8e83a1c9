/* agent_log.c: husk-agent's log lines on the console (its stderr is the serial console). */
#include "services/agent/agent.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int max_level = LOG_INFO;

void agent_log_set_max_level(int level) { max_level = level; }

int agent_log(int level, int error, const char *fmt, ...) {
        int saved_errno = errno;
        char msg[1024], line[1100];
        va_list ap;
        int n;

        if (error < 0)
                error = -error;
        if (level > max_level)
                return -error;

        errno = error; /* so that %m prints the error being reported */
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        /* One write per line: the console is shared with the kernel and with children, and
         * logd classifies lines by the level word. */
        if (level >= LOG_DEBUG) /* boot analysis: when each step happened */
                n = snprintf(line, sizeof(line), "husk-agent: [%llu ms] %s\n", (unsigned long long)agent_uptime_ms(),
                             msg);
        else
                n = snprintf(line, sizeof(line), "husk-agent: %s%s\n",
                             level <= LOG_ERR       ? "error: "
                             : level == LOG_WARNING ? "warning: "
                                                    : "",
                             msg);
        if (n > (int)sizeof(line) - 1)
                n = (int)sizeof(line) - 1;
        if (write(STDERR_FILENO, line, (size_t)n) < 0) {
                /* no console: nowhere else to say it */
        }
        errno = saved_errno;
        return -error;
}
