/* oci_log.c: husk-oci's messages in runc's form: logrus lines in --log (json or text), else on stderr. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/oci/oci.h"

static const char *log_path; /* --log; NULL: stderr */
static bool log_json, log_debug;

void oci_log_setup(const oci_ctx_t *ctx) {
        log_path = ctx->log;
        log_json = ctx->log_json;
        log_debug = ctx->debug;
}

static void rfc3339(uint64_t unix_ms, char *buf, size_t size) {
        time_t t = (time_t)(unix_ms / 1000);
        struct tm tm;

        gmtime_r(&t, &tm);
        strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

char *oci_log_line(const char *level, const char *msg, uint64_t unix_ms, bool json) {
        char when[40];
        char *line = NULL;

        rfc3339(unix_ms, when, sizeof(when));
        if (json) {
                json_t *o = json_pack("{s:s, s:s, s:s}", "level", level, "msg", msg, "time", when);

                if (o)
                        line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
                json_decref(o);
                return line;
        }
        /* logrus's text formatter: key=value, the message quoted. */
        {
                json_t *quoted = json_string(msg);
                char *q = quoted ? json_dumps(quoted, JSON_ENCODE_ANY) : NULL;

                if (q && asprintf(&line, "time=\"%s\" level=%s msg=%s", when, level, q) < 0)
                        line = NULL;
                free(q);
                json_decref(quoted);
        }
        return line;
}

static void emit(const char *level, const char *msg) {
        _cleanup_free_ char *line = oci_log_line(level, msg, now_realtime_ms(), log_json);
        int fd;

        if (!line)
                return;
        if (!log_path) {
                if (streq(level, "error"))
                        fprintf(stderr, "husk-oci: %s\n", msg);
                return;
        }
        /* One write per line, O_APPEND: lines of concurrent calls (the shim's delete and its
         * cleanup's delete --force) never interleave. */
        fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0) {
                fprintf(stderr, "husk-oci: %s\n", msg);
                return;
        }
        {
                size_t n = strlen(line);

                line[n] = '\n'; /* the NUL is replaced: write n + 1 bytes, never read as a string again */
                (void)!write(fd, line, n + 1);
                line[n] = '\0';
        }
        close(fd);
}

/* One line of level from fmt; an out-of-memory message for an error that cannot be formatted. */
static void emitv(const char *level, const char *fmt, va_list ap) {
        _cleanup_free_ char *msg = NULL;

        if (vasprintf(&msg, fmt, ap) < 0)
                msg = NULL;
        if (msg || streq(level, "error"))
                emit(level, msg ?: "out of memory");
}

int oci_error(const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        emitv("error", fmt, ap);
        va_end(ap);
        return OCI_EXIT_FAILURE;
}

void oci_warning(const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        emitv("warning", fmt, ap);
        va_end(ap);
}

void oci_debug(const char *fmt, ...) {
        va_list ap;

        if (!log_debug)
                return;
        va_start(ap, fmt);
        emitv("debug", fmt, ap);
        va_end(ap);
}
