/* agent_console.c: the workload's stdout and stderr, line by line and marked, on the console. */
#include "services/agent/agent.h"

#include <errno.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

void agent_relay_init(agent_relay_t *r, int fd, const char *marker, int console) {
        *r = (agent_relay_t){ .fd = fd, .marker = marker, .console = console };
}

/* One writev per line: the console is shared with the kernel and the agent's own lines, and a
 * line split across writes could be interleaved with theirs. */
static void emit(agent_relay_t *r) {
        size_t len = r->len;
        struct iovec iov[3];

        if (len > 0 && r->line[len - 1] == '\r')
                len--;
        iov[0] = (struct iovec){ .iov_base = (void *)r->marker, .iov_len = strlen(r->marker) };
        iov[1] = (struct iovec){ .iov_base = r->line, .iov_len = len };
        iov[2] = (struct iovec){ .iov_base = "\n", .iov_len = 1 };
        if (writev(r->console, iov, 3) < 0) {
                /* no console: nowhere to say it */
        }
        r->len = 0;
}

void agent_relay_feed(agent_relay_t *r, const char *data, size_t size, bool eof) {
        for (size_t k = 0; k < size; k++) {
                if (data[k] == '\n') {
                        emit(r);
                        continue;
                }
                r->line[r->len++] = data[k];
                if (r->len == sizeof(r->line))
                        emit(r);
        }
        if (eof && r->len > 0)
                emit(r);
}

int agent_relay_read(agent_relay_t *r) {
        char buf[16384];

        for (;;) {
                ssize_t n;

                if (r->fd < 0)
                        return -EPIPE;
                n = read(r->fd, buf, sizeof(buf));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return 0;
                if (n <= 0) {
                        agent_relay_feed(r, NULL, 0, true);
                        close(r->fd);
                        r->fd = -1;
                        return -EPIPE;
                }
                agent_relay_feed(r, buf, (size_t)n, false);
        }
}
