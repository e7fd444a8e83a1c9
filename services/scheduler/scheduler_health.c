/* scheduler_health.c: health checks: one timer per check per instance, probes that never block the loop, bounded history, on_failure and readiness.
 *
 * tcp and http probes are non-blocking sockets to the guest address netd gave the instance,
 * polled on the loop with a timeout timer of their own. A command probe is instance.exec on
 * vmm-driver, an asynchronous call whose deadline is the probe's timeout (plus the time
 * vmm-driver needs to say so). The history lives here only (the scheduler keeps no durable
 * state): a restarted scheduler starts it afresh. */
#include "services/scheduler/scheduler.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/mp.h"
#include "proto/event.h"

#define HISTORY_MAX 10
#define FIRST_PROBE_MS 200 /* after the instance is seen running: soon, not at once */
/* How long a guest that never says it is up may take to boot before its failed checks count. A
 * kit guest is up when its agent (PID 1) reports ready, any guest once one of its checks passed:
 * both usually well before this. A disk image booted by firmware says nothing else (its agent,
 * if it has one, is one service among many).
 * Under TCG a Debian image with cloud-init takes 60-90 s, and Ring's example check (3 failures
 * 10 s apart) would otherwise replace it before it ever finished booting. */
#define BOOT_GRACE_MS (180 * 1000)

typedef struct probe_result {
        uint64_t ts;
        bool ok;
        bool counted; /* false inside start_period: a failure there does not count */
        uint32_t duration_ms;
        char message[200];
} probe_result_t;

struct probe {
        struct probe *next;
        scheduler_t *s;
        char instance_id[16];
        char deployment_id[64];
        uint64_t started_at;  /* the instance's, for start_period */
        bool guest_up;        /* booted: its kit agent reported ready, or a check of it passed */
        size_t index;         /* position in the deployment's health_checks */
        health_check_t check; /* a copy: the deployment record is gone after the pass */
        char guest_ip[16];    /* "" until netd told us */
        int timer;            /* next probe, -1 when none is armed */
        /* one probe in flight */
        bool in_flight;
        uint64_t call_id; /* command: the instance.exec in flight, cancelled when the probe stops */
        int fd;
        int timeout_timer;
        bool sent; /* http: request written, reading the status line */
        char buf[64];
        size_t buf_len;
        uint64_t probe_start;
        /* results */
        uint32_t consecutive_failures;
        bool passing; /* the last counted result was a success */
        bool acted;   /* on_failure ran for the current streak */
        bool seen;    /* mark and sweep in scheduler_health_sync() */
        probe_result_t history[HISTORY_MAX];
        size_t n_history; /* up to HISTORY_MAX; newest at (slot - 1) */
        size_t slot;      /* where the next result goes */
};

static void arm(probe_t *p, uint64_t delay_ms);

static void probe_free(probe_t *p) {
        health_check_clear(&p->check);
        free(p);
}

static bool check_equal(const health_check_t *a, const health_check_t *b) {
        size_t i;

        if (!streq(a->type, b->type) || a->port != b->port || a->interval_ms != b->interval_ms ||
            a->timeout_ms != b->timeout_ms || a->threshold != b->threshold || a->readiness != b->readiness ||
            a->start_period_ms != b->start_period_ms || !streq(a->on_failure, b->on_failure) || !a->url != !b->url ||
            (a->url && !streq(a->url, b->url)) || !a->command != !b->command)
                return false;
        for (i = 0; a->command && a->command[i] && b->command[i]; i++)
                if (!streq(a->command[i], b->command[i]))
                        return false;
        return !a->command || (!a->command[i] && !b->command[i]);
}

static int check_copy(const health_check_t *from, health_check_t *to) {
        *to = *from;
        to->type = strdup(from->type);
        to->url = from->url ? strdup(from->url) : NULL;
        to->command = mp_strv_copy(from->command);
        to->on_failure = strdup(from->on_failure);
        if (!to->type || !to->on_failure || (from->url && !to->url) || (from->command && !to->command)) {
                health_check_clear(to);
                return -ENOMEM;
        }
        return 0;
}

/* "tcp :8080", "http http://x:8080/healthz", "command /bin/sh -c ..." for messages. */
static void describe(const health_check_t *h, char *buf, size_t size) {
        if (streq(h->type, "tcp"))
                snprintf(buf, size, "tcp :%u", h->port);
        else if (streq(h->type, "http"))
                snprintf(buf, size, "http %s", h->url);
        else {
                size_t len = (size_t)snprintf(buf, size, "command");
                for (size_t i = 0; h->command[i] && len < size; i++)
                        len += (size_t)snprintf(buf + len, size - len, " %s", h->command[i]);
        }
}

/* ---- acting on results ----------------------------------------------------------------------- */

static void on_streak(probe_t *p, const char *why) {
        scheduler_t *s = p->s;
        char what[400], target[200];

        describe(&p->check, target, sizeof(target));
        snprintf(what, sizeof(what), "instance %s: %s failed %u times in a row (%s)", p->instance_id, target,
                 p->consecutive_failures, why);
        scheduler_event(s, p->deployment_id, EVENT_LEVEL_WARNING, EVENT_HEALTH_CHECK_FAILED, "%s; on_failure: %s", what,
                        p->check.on_failure);
        if (streq(p->check.on_failure, "restart"))
                scheduler_replace_unhealthy(s, p->deployment_id, p->instance_id, what, false);
        else if (streq(p->check.on_failure, "stop"))
                scheduler_replace_unhealthy(s, p->deployment_id, p->instance_id, what, true);
}

static void record(probe_t *p, bool ok, const char *message) {
        uint64_t now = now_realtime_ms();
        /* A failure counts once start_period is over and the guest has booted (or had its
         * BOOT_GRACE_MS): a guest still booting is not failing, however slow the host. */
        bool booted = p->guest_up || now >= p->started_at + BOOT_GRACE_MS;
        bool counted = ok || (now >= p->started_at + p->check.start_period_ms && booted);
        probe_result_t *r = &p->history[p->slot];
        bool was_passing = p->passing;

        r->ts = now;
        r->ok = ok;
        r->counted = counted;
        r->duration_ms = (uint32_t)(now_monotonic_ms() - p->probe_start);
        snprintf(r->message, sizeof(r->message), "%s", message);
        p->slot = (p->slot + 1) % HISTORY_MAX;
        if (p->n_history < HISTORY_MAX)
                p->n_history++;

        if (ok) {
                p->guest_up = true;
                p->consecutive_failures = 0;
                p->acted = false;
                p->passing = true;
        } else if (counted) {
                p->consecutive_failures++;
                p->passing = false;
                if (p->consecutive_failures >= p->check.threshold && !p->acted) {
                        p->acted = true;
                        on_streak(p, message);
                }
        }
        /* Readiness changed: the deployment's status may change with it. */
        if (p->check.readiness && was_passing != p->passing)
                scheduler_kick(p->s, ok ? "a readiness check passed" : "a readiness check failed");
}

/* ---- tcp and http probes ----------------------------------------------------------------- */

static void socket_done(probe_t *p, bool ok, const char *message) {
        zmq_pollitem_t item = { .fd = p->fd };

        if (p->fd >= 0) {
                zloop_poller_end(p->s->ctx->loop, &item);
                close(p->fd);
                p->fd = -1;
        }
        if (p->timeout_timer >= 0) {
                zloop_timer_end(p->s->ctx->loop, p->timeout_timer);
                p->timeout_timer = -1;
        }
        p->in_flight = false;
        record(p, ok, message);
        arm(p, p->check.interval_ms);
}

static int on_socket_timeout(zloop_t *loop, int timer_id, void *arg) {
        probe_t *p = arg;
        char msg[96];

        p->timeout_timer = -1;
        snprintf(msg, sizeof(msg), "no answer within %llu ms", (unsigned long long)p->check.timeout_ms);
        socket_done(p, false, msg);
        return 0;
}

static int on_socket(zloop_t *loop, zmq_pollitem_t *item, void *arg) {
        probe_t *p = arg;
        char msg[160];
        int err = 0;
        socklen_t len = sizeof(err);

        if (!p->sent) {
                if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                        err = errno;
                if (err) {
                        snprintf(msg, sizeof(msg), "connect to %s: %s", p->guest_ip, strerror(err));
                        socket_done(p, false, msg);
                        return 0;
                }
                if (streq(p->check.type, "tcp")) {
                        socket_done(p, true, "connected");
                        return 0;
                }
                {
                        const char *path = "/";
                        char req[1200];
                        zmq_pollitem_t in = { .fd = p->fd, .events = ZMQ_POLLIN };
                        int n;

                        (void)health_url_split(p->check.url, NULL, &path);
                        n = snprintf(req, sizeof(req),
                                     "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: husk-scheduler\r\n\r\n", path,
                                     p->guest_ip);
                        /* A fresh socket's buffer takes a request this small in one write. */
                        if (n < 0 || (size_t)n >= sizeof(req) || write(p->fd, req, (size_t)n) != n) {
                                snprintf(msg, sizeof(msg), "sending the request: %s", strerror(errno));
                                socket_done(p, false, msg);
                                return 0;
                        }
                        p->sent = true;
                        zloop_poller_end(loop, item);
                        if (zloop_poller(loop, &in, on_socket, p) < 0) {
                                socket_done(p, false, "cannot poll the socket");
                                return 0;
                        }
                        return 0;
                }
        }

        /* http: read up to the end of the status line. */
        ssize_t n = read(p->fd, p->buf + p->buf_len, sizeof(p->buf) - 1 - p->buf_len);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return 0;
        if (n > 0)
                p->buf_len += (size_t)n;
        p->buf[p->buf_len] = '\0';
        if (n > 0 && !strchr(p->buf, '\n') && p->buf_len < sizeof(p->buf) - 1)
                return 0;
        {
                unsigned major, minor, code;

                if (sscanf(p->buf, "HTTP/%u.%u %u", &major, &minor, &code) != 3) {
                        snprintf(msg, sizeof(msg), "no HTTP status line in the answer (%s)",
                                 n < 0 ? strerror(errno) : "connection closed");
                        socket_done(p, false, msg);
                        return 0;
                }
                snprintf(msg, sizeof(msg), "HTTP %u", code);
                socket_done(p, code >= 200 && code < 400, msg);
        }
        return 0;
}

static void start_socket_probe(probe_t *p) {
        struct sockaddr_in sa = { .sin_family = AF_INET };
        zmq_pollitem_t item = { .events = ZMQ_POLLOUT };
        uint16_t port = (uint16_t)p->check.port;
        char msg[160];

        if (!p->guest_ip[0]) {
                snprintf(msg, sizeof(msg), "no guest address: netd has no attachment for instance %s", p->instance_id);
                record(p, false, msg);
                arm(p, p->check.interval_ms);
                return;
        }
        if (streq(p->check.type, "http"))
                (void)health_url_split(p->check.url, &port, NULL);
        sa.sin_port = htons(port);
        if (inet_pton(AF_INET, p->guest_ip, &sa.sin_addr) != 1) {
                record(p, false, "the guest address is not an IPv4 address");
                arm(p, p->check.interval_ms);
                return;
        }
        p->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (p->fd < 0 || (connect(p->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS)) {
                snprintf(msg, sizeof(msg), "connect to %s:%u: %s", p->guest_ip, port, strerror(errno));
                if (p->fd >= 0)
                        close(p->fd);
                p->fd = -1;
                record(p, false, msg);
                arm(p, p->check.interval_ms);
                return;
        }
        p->in_flight = true;
        p->sent = false;
        p->buf_len = 0;
        item.fd = p->fd;
        if (zloop_poller(p->s->ctx->loop, &item, on_socket, p) < 0) {
                socket_done(p, false, "cannot poll the socket");
                return;
        }
        p->timeout_timer = zloop_timer(p->s->ctx->loop, p->check.timeout_ms, 1, on_socket_timeout, p);
}

/* ---- command probes --------------------------------------------------------------------- */

/* instance.exec answered, or its deadline passed. */
static void on_exec(int error, const bus_reply_t *reply, void *userdata) {
        probe_t *p = userdata;
        char message[200];
        bool ok = false;

        p->in_flight = false;
        if (error < 0)
                snprintf(message, sizeof(message), "vmm-driver did not answer instance.exec: %s", strerror(-error));
        else if (reply->error_code)
                /* vmm-driver names husk-agent when the agent cannot be reached. */
                snprintf(message, sizeof(message), "%s: %s", reply->error_code, reply->error_message ?: "");
        else {
                bool timed_out = false;
                int64_t status;

                (void)mp_get_bool(reply->result, "timed_out", &timed_out);
                if (mp_get_i64(reply->result, "exit_status", &status) < 0)
                        snprintf(message, sizeof(message), "instance.exec answered without exit_status");
                else if (timed_out)
                        snprintf(message, sizeof(message), "timed out after %llu ms",
                                 (unsigned long long)p->check.timeout_ms);
                else {
                        ok = status == 0;
                        snprintf(message, sizeof(message), "exit status %lld", (long long)status);
                }
        }
        record(p, ok, message);
        arm(p, p->check.interval_ms);
}

static void start_command_probe(probe_t *p) {
        /* The agent ends the command at timeout_ms; the call gives vmm-driver 2 s more to say so. */
        bus_call_opts_t opts = { .timeout_ms = p->check.timeout_ms + 2000 };
        msgpack_sbuffer buf;
        msgpack_packer pk;
        int r;

        msgpack_sbuffer_init(&buf);
        msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 3);
        mp_pack_kv_str(&pk, "instance_id", p->instance_id);
        mp_pack_kv_strv(&pk, "argv", p->check.command);
        mp_pack_kv_u64(&pk, "timeout_ms", p->check.timeout_ms);
        /* Not idempotent: a resend would run the command twice. */
        r = p->s->vmm ? bus_call_async(p->s->vmm, BUS_METHOD_INSTANCE_EXEC, &buf, &opts, on_exec, p, &p->call_id)
                      : -ENOTCONN;
        msgpack_sbuffer_destroy(&buf);
        if (r < 0) {
                char message[200];

                snprintf(message, sizeof(message), "cannot call instance.exec: %s", strerror(-r));
                record(p, false, message);
                arm(p, p->check.interval_ms);
                return;
        }
        p->in_flight = true;
}

/* ---- timers and the set of probes --------------------------------------------------------- */

static int on_timer(zloop_t *loop, int timer_id, void *arg) {
        probe_t *p = arg;

        p->timer = -1;
        if (p->in_flight)
                return 0;
        p->probe_start = now_monotonic_ms();
        if (streq(p->check.type, "command"))
                start_command_probe(p);
        else
                start_socket_probe(p);
        return 0;
}

static void arm(probe_t *p, uint64_t delay_ms) {
        if (p->timer >= 0)
                zloop_timer_end(p->s->ctx->loop, p->timer);
        p->timer = zloop_timer(p->s->ctx->loop, delay_ms ? delay_ms : 1, 1, on_timer, p);
}

static void probe_stop(scheduler_t *s, probe_t *p) {
        if (p->timer >= 0)
                zloop_timer_end(s->ctx->loop, p->timer);
        p->timer = -1;
        if (p->fd >= 0 || p->timeout_timer >= 0) {
                zmq_pollitem_t item = { .fd = p->fd };
                if (p->fd >= 0) {
                        zloop_poller_end(s->ctx->loop, &item);
                        close(p->fd);
                }
                if (p->timeout_timer >= 0)
                        zloop_timer_end(s->ctx->loop, p->timeout_timer);
                p->fd = -1;
                p->timeout_timer = -1;
                p->in_flight = false;
        }
        if (p->in_flight && s->vmm)
                (void)bus_call_cancel(s->vmm, p->call_id); /* its callback never runs */
        probe_free(p);
}

static probe_t *find(scheduler_t *s, const char *instance_id, size_t index) {
        for (probe_t *p = s->probes; p; p = p->next)
                if (p->index == index && streq(p->instance_id, instance_id))
                        return p;
        return NULL;
}

static void on_net_list(int error, const bus_reply_t *reply, void *userdata) {
        scheduler_t *s = userdata;

        s->net_list_in_flight = false;
        if (error < 0 || reply->error_code || !reply->result || reply->result->type != MSGPACK_OBJECT_ARRAY)
                return; /* the probes say "no guest address"; the next pass asks again */
        for (uint32_t k = 0; k < reply->result->via.array.size; k++) {
                const msgpack_object *a = &reply->result->via.array.ptr[k];
                _cleanup_free_ char *id = NULL, *ip = NULL;

                if (mp_get_str(a, "instance_id", 15, &id) < 0 || mp_get_str(a, "guest_ip", 15, &ip) < 0)
                        continue;
                /* The probes of now: those stopped since the call are gone from the list. */
                for (probe_t *p = s->probes; p; p = p->next)
                        if (streq(p->instance_id, id))
                                snprintf(p->guest_ip, sizeof(p->guest_ip), "%s", ip);
        }
}

/* netd's guest addresses, asked at most once per pass and only when a socket probe lacks one. */
static void fill_guest_ips(scheduler_t *s) {
        bus_call_opts_t opts = { .timeout_ms = 1000, .idempotent = true };
        bool needed = false;

        for (probe_t *p = s->probes; p && !needed; p = p->next)
                needed = !p->guest_ip[0] && !streq(p->check.type, "command");
        if (!needed || !s->netd || s->net_list_in_flight)
                return;
        if (bus_call_async(s->netd, BUS_METHOD_NET_LIST, NULL, &opts, on_net_list, s, NULL) >= 0)
                s->net_list_in_flight = true;
}

static bool probed(const instance_t *i) {
        return streq(i->state, INSTANCE_STATE_RUNNING) || streq(i->state, INSTANCE_STATE_READY);
}

void scheduler_health_sync(scheduler_t *s, const deployment_t *deployments, size_t n_deployments,
                           const instance_t *instances, size_t n_instances) {
        probe_t **pp;

        for (probe_t *p = s->probes; p; p = p->next)
                p->seen = false;
        for (size_t k = 0; k < n_instances; k++) {
                const instance_t *i = &instances[k];
                const deployment_t *d = NULL;

                for (size_t j = 0; j < n_deployments && !d; j++)
                        if (streq(deployments[j].id, i->spec.deployment_id))
                                d = &deployments[j];
                if (!d || !probed(i) || streq(d->status, DEPLOYMENT_STATUS_DELETED))
                        continue;
                for (size_t c = 0; c < d->n_health_checks; c++) {
                        probe_t *p = find(s, i->spec.instance_id, c);

                        if (p && !check_equal(&p->check, &d->health_checks[c])) {
                                /* A new spec for the same instance: start its history afresh. */
                                p->seen = false;
                                continue;
                        }
                        if (!p) {
                                p = calloc(1, sizeof(*p));
                                if (!p || check_copy(&d->health_checks[c], &p->check) < 0) {
                                        free(p);
                                        log_warning("Out of memory for a health check, ignoring");
                                        continue;
                                }
                                p->s = s;
                                snprintf(p->instance_id, sizeof(p->instance_id), "%s", i->spec.instance_id);
                                snprintf(p->deployment_id, sizeof(p->deployment_id), "%s", d->id);
                                p->started_at = i->started_at;
                                p->index = c;
                                p->fd = -1;
                                p->timer = -1;
                                p->timeout_timer = -1;
                                p->next = s->probes;
                                s->probes = p;
                                arm(p, FIRST_PROBE_MS);
                        }
                        /* The kit's agent is PID 1: its ready is the guest's. In a disk image it
                         * is one service among many, started long before the others are up. */
                        if (streq(i->state, INSTANCE_STATE_READY) && !i->firmware_boot)
                                p->guest_up = true;
                        p->seen = true;
                }
        }
        for (pp = &s->probes; *pp;) {
                probe_t *p = *pp;

                if (p->seen) {
                        pp = &p->next;
                        continue;
                }
                *pp = p->next;
                probe_stop(s, p);
        }
        fill_guest_ips(s);
}

bool scheduler_health_ready(scheduler_t *s, const deployment_t *d, const char *instance_id) {
        for (size_t c = 0; c < d->n_health_checks; c++) {
                probe_t *p;

                if (!d->health_checks[c].readiness)
                        continue;
                p = find(s, instance_id, c);
                if (!p || !p->passing)
                        return false;
        }
        return true;
}

int scheduler_method_health_list(bus_request_t *req, msgpack_packer *pk, void *userdata) {
        scheduler_t *s = userdata;
        _cleanup_free_ char *id = NULL;
        size_t n = 0;

        if (mp_get_str(req->args, "deployment_id", 64, &id) < 0)
                return bus_request_fail(req, BUS_ERR_INVALID, "deployment_id: required string");
        for (probe_t *p = s->probes; p; p = p->next)
                n += streq(p->deployment_id, id);
        msgpack_pack_array(pk, n);
        for (probe_t *p = s->probes; p; p = p->next) {
                char target[200];

                if (!streq(p->deployment_id, id))
                        continue;
                describe(&p->check, target, sizeof(target));
                msgpack_pack_map(pk, 11);
                mp_pack_kv_str(pk, "instance_id", p->instance_id);
                mp_pack_kv_u64(pk, "check", p->index);
                mp_pack_kv_str(pk, "type", p->check.type);
                mp_pack_kv_str(pk, "target", target);
                mp_pack_kv_bool(pk, "readiness", p->check.readiness);
                mp_pack_kv_str(pk, "on_failure", p->check.on_failure);
                mp_pack_kv_u64(pk, "threshold", p->check.threshold);
                mp_pack_kv_str(pk, "status", p->n_history == 0 ? "pending" : p->passing ? "passing" : "failing");
                mp_pack_kv_u64(pk, "consecutive_failures", p->consecutive_failures);
                mp_pack_kv_str(pk, "guest_ip", p->guest_ip[0] ? p->guest_ip : NULL);
                mp_pack_str(pk, "history");
                msgpack_pack_array(pk, p->n_history);
                for (size_t k = 0; k < p->n_history; k++) {
                        const probe_result_t *r = &p->history[(p->slot + HISTORY_MAX - p->n_history + k) % HISTORY_MAX];

                        msgpack_pack_map(pk, 5);
                        mp_pack_kv_u64(pk, "timestamp", r->ts);
                        mp_pack_kv_bool(pk, "ok", r->ok);
                        mp_pack_kv_bool(pk, "counted", r->counted);
                        mp_pack_kv_u64(pk, "duration_ms", r->duration_ms);
                        mp_pack_kv_str(pk, "message", r->message);
                }
        }
        return 0;
}

void scheduler_health_close(scheduler_t *s) {
        while (s->probes) {
                probe_t *p = s->probes;

                s->probes = p->next;
                probe_stop(s, p);
        }
}
