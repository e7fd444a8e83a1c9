/* vmm_qemu_qmp.c: non-blocking QMP client per QEMU: connect, greeting, qmp_capabilities, then events (SHUTDOWN) on the zloop. */
#include <errno.h>
#include <jansson.h>
#include <string.h>
#include <sys/socket.h>

#include "lib/log.h"
#include "services/vmm-driver/vmm_qemu.h"

#define QMP_SOCKET "qmp.sock"
#define QMP_LINE_MAX (1u << 20) /* a QMP message we would accept is a few KiB */
#define QMP_CONNECT_FIRST_MS 5
#define QMP_CONNECT_MAX_DELAY_MS 50
/* QEMU creates the socket before it sets up the machine, normally within 100 ms; this bound
 * only matters on a badly overloaded host. */
#define QMP_CONNECT_TIMEOUT_MS 30000

static const char *id_of(const vmm_instance_t *i) { return i->rec.inst.spec.instance_id; }

static void qmp_close(vmm_instance_t *i) {
        vmm_qmp_t *q = &vmm_qemu_of(i)->qmp;

        if (q->fd >= 0) {
                zloop_poller_end(i->vmm->loop, &(zmq_pollitem_t){ .fd = q->fd });
                close(q->fd);
                q->fd = -1;
        }
        free(q->buf);
        q->buf = NULL;
        q->len = q->cap = 0;
        q->state = VMM_QMP_IDLE;
}

void vmm_qmp_stop(vmm_instance_t *i) {
        vmm_qmp_t *q = &vmm_qemu_of(i)->qmp;

        if (q->timer) {
                zloop_timer_end(i->vmm->loop, q->timer);
                q->timer = 0;
        }
        qmp_close(i);
}

static int qmp_send(vmm_instance_t *i, const char *execute) {
        char line[256];
        int n;
        ssize_t w;

        n = snprintf(line, sizeof(line), "{\"execute\": \"%s\"}\r\n", execute);
        if (n < 0 || (size_t)n >= sizeof(line))
                return -EINVAL;
        /* Commands are tiny and QEMU reads them promptly: a short write means a dead peer. */
        w = send(vmm_qemu_of(i)->qmp.fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0)
                return -errno;
        return w == n ? 0 : -EAGAIN;
}

int vmm_qmp_execute(vmm_instance_t *i, const char *command) {
        const vmm_qmp_t *q = &vmm_qemu_of(i)->qmp;

        if (q->fd < 0 || q->state != VMM_QMP_READY)
                return -ENOTCONN;
        return qmp_send(i, command);
}

static void handle_event(vmm_instance_t *i, json_t *msg) {
        const char *event = json_string_value(json_object_get(msg, "event"));
        json_t *data = json_object_get(msg, "data");

        if (!event)
                return;
        if (streq(event, "SHUTDOWN")) {
                const char *reason = json_string_value(json_object_get(data, "reason"));
                vmm_instance_on_shutdown_event(i, reason ? reason : "unknown");
                return;
        }
        log_debug("Instance %s: QMP event %s", id_of(i), event);
}

/* Returns < 0 when the connection must be closed. */
static int handle_line(vmm_instance_t *i, const char *line) {
        vmm_qmp_t *q = &vmm_qemu_of(i)->qmp;
        json_t *msg;
        int r = 0;

        msg = json_loads(line, JSON_REJECT_DUPLICATES, NULL);
        if (!msg || !json_is_object(msg)) {
                json_decref(msg);
                return log_warning_errno(EBADMSG, "Instance %s: malformed QMP message, closing", id_of(i));
        }
        switch (q->state) {
        case VMM_QMP_GREETING:
                if (!json_object_get(msg, "QMP")) {
                        r = log_warning_errno(EPROTO, "Instance %s: QMP greeting expected, closing", id_of(i));
                        break;
                }
                r = qmp_send(i, "qmp_capabilities");
                if (r < 0) {
                        log_warning_errno(r, "Instance %s: cannot send qmp_capabilities: %m", id_of(i));
                        break;
                }
                q->state = VMM_QMP_NEGOTIATING;
                break;
        case VMM_QMP_NEGOTIATING:
                if (!json_object_get(msg, "return")) {
                        r = log_warning_errno(EPROTO, "Instance %s: qmp_capabilities refused, closing", id_of(i));
                        break;
                }
                q->state = VMM_QMP_READY;
                log_debug("Instance %s: QMP ready", id_of(i));
                /* A clone taken from the warm pool waits paused until here (again after a restart
                 * of ours before its identity: cont on a running VM changes nothing). */
                if (i->rec.pooled && !i->rec.identity_given) {
                        int e = qmp_send(i, "cont");
                        if (e < 0)
                                log_warning_errno(e, "Instance %s: cannot resume the pool's clone: %m", id_of(i));
                }
                vmm_instance_on_running(i);
                break;
        case VMM_QMP_READY:
                if (json_object_get(msg, "event"))
                        handle_event(i, msg);
                else if (json_object_get(msg, "error"))
                        log_warning("Instance %s: QMP command failed: %s", id_of(i),
                                    json_string_value(json_object_get(json_object_get(msg, "error"), "desc")) ?: "?");
                break;
        default:
                break;
        }
        json_decref(msg);
        return r;
}

/* Read all that is available and handle complete lines; close on EOF or error. */
static void qmp_read(vmm_instance_t *i) {
        vmm_qmp_t *q = &vmm_qemu_of(i)->qmp;

        while (q->fd >= 0) {
                char *nl;
                ssize_t n;

                if (q->cap - q->len < 4096) {
                        size_t cap = q->cap ? q->cap * 2 : 8192;
                        char *nb;

                        if (cap > QMP_LINE_MAX + 1) {
                                log_warning("Instance %s: QMP line too long, closing", id_of(i));
                                qmp_close(i);
                                return;
                        }
                        nb = realloc(q->buf, cap);
                        if (!nb) {
                                log_error("Instance %s: out of memory reading QMP", id_of(i));
                                qmp_close(i);
                                return;
                        }
                        q->buf = nb;
                        q->cap = cap;
                }
                n = recv(q->fd, q->buf + q->len, q->cap - q->len - 1, MSG_DONTWAIT);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                        return;
                if (n <= 0) {
                        /* QEMU closes its QMP sockets only when it exits; the pidfd reports that. */
                        log_debug("Instance %s: QMP connection closed", id_of(i));
                        qmp_close(i);
                        return;
                }
                q->len += (size_t)n;
                q->buf[q->len] = '\0';
                while (q->fd >= 0 && (nl = memchr(q->buf, '\n', q->len))) {
                        size_t used = (size_t)(nl - q->buf) + 1;

                        *nl = '\0';
                        if (handle_line(i, q->buf) < 0) {
                                qmp_close(i);
                                return;
                        }
                        memmove(q->buf, q->buf + used, q->len - used);
                        q->len -= used;
                        q->buf[q->len] = '\0';
                }
        }
}

static int on_qmp(zloop_t *loop, zmq_pollitem_t *item, void *arg) {
        qmp_read(arg);
        return 0;
}

void vmm_qmp_drain(vmm_instance_t *i) { qmp_read(i); }

static int on_connect_timer(zloop_t *loop, int timer_id, void *arg);

static void arm_connect(vmm_instance_t *i, unsigned delay_ms) {
        vmm_qmp_t *q = &vmm_qemu_of(i)->qmp;

        q->timer = zloop_timer(i->vmm->loop, delay_ms, 1, on_connect_timer, i);
        if (q->timer < 0) {
                q->timer = 0;
                q->state = VMM_QMP_IDLE;
                log_error("Instance %s: cannot arm the QMP connect timer", id_of(i));
        }
}

static int on_connect_timer(zloop_t *loop, int timer_id, void *arg) {
        vmm_instance_t *i = arg;
        vmm_qmp_t *q = &vmm_qemu_of(i)->qmp;
        zmq_pollitem_t item;
        int fd;

        if (timer_id != q->timer)
                return 0;
        q->timer = 0;

        fd = vmm_instance_connect(i, QMP_SOCKET);
        if (fd < 0) {
                if (now_monotonic_ms() >= q->deadline_ms) {
                        log_warning_errno(fd, "Instance %s: no QMP socket after %u s, giving up: %m", id_of(i),
                                          QMP_CONNECT_TIMEOUT_MS / 1000);
                        q->state = VMM_QMP_IDLE;
                        return 0;
                }
                arm_connect(i, q->delay_ms);
                q->delay_ms = q->delay_ms * 2 > QMP_CONNECT_MAX_DELAY_MS ? QMP_CONNECT_MAX_DELAY_MS : q->delay_ms * 2;
                return 0;
        }
        item = (zmq_pollitem_t){ .fd = fd, .events = ZMQ_POLLIN };
        if (zloop_poller(loop, &item, on_qmp, i) < 0) {
                close(fd);
                log_error("Instance %s: cannot poll the QMP socket", id_of(i));
                q->state = VMM_QMP_IDLE;
                return 0;
        }
        zloop_poller_set_tolerant(loop, &item);
        q->fd = fd;
        q->state = VMM_QMP_GREETING;
        return 0;
}

void vmm_qmp_start(vmm_instance_t *i) {
        vmm_qmp_t *q = &vmm_qemu_of(i)->qmp;

        vmm_qmp_stop(i);
        q->state = VMM_QMP_CONNECTING;
        q->delay_ms = QMP_CONNECT_FIRST_MS * 2;
        q->deadline_ms = now_monotonic_ms() + QMP_CONNECT_TIMEOUT_MS;
        arm_connect(i, QMP_CONNECT_FIRST_MS);
}
