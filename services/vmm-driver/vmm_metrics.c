/* vmm_metrics.c: the sampler: every instance's VMM, TAP and guest, on one timer, published as instance.metrics.
 *
 * One timer (vmm_driver.metrics_interval) starts a round: each live instance's VMM is read from
 * /proc at once (stat: CPU time; status: RSS, threads; io: disk bytes where the kernel lets us),
 * then one net.stats asks netd for the TAP counters of every instance with a network, and each
 * guest whose husk-agent answered gets a stats frame. The round ends when every answer came or
 * at its deadline, whichever is first, and each sample goes out then: nothing waits on the loop,
 * nothing is read on request. A slow netd or agent costs its part of one sample, not the rest. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/mp.h"
#include "services/vmm-driver/vmm.h"

#define METRICS_ANSWER_MAX_MS 2000 /* a round waits at most this (or half the interval) for answers */

/* ---- /proc parsing (pure: tests/unit/vmm-driver/test_metrics.c) ------------------------------- */

/* The number after "key:" at the start of a line of a "key: value [unit]" text; -ENOENT when absent. */
static int line_u64(const char *text, const char *key, uint64_t *ret) {
        size_t len = strlen(key);

        for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
                char field[32];
                size_t n;

                if (strncmp(p, key, len) != 0 || p[len] != ':')
                        continue;
                p += len + 1;
                p += strspn(p, " \t");
                n = strspn(p, "0123456789");
                if (n == 0 || n >= sizeof(field))
                        return -EBADMSG;
                memcpy(field, p, n);
                field[n] = '\0';
                return parse_u64(field, ret) < 0 ? -EBADMSG : 0;
        }
        return -ENOENT;
}

int vmm_metrics_parse_status(const char *status, uint64_t *ret_rss_bytes, uint64_t *ret_threads) {
        uint64_t rss_kib = 0;
        int r;

        /* A kernel thread or a zombie has no VmRSS: nothing resident. */
        r = line_u64(status, "VmRSS", &rss_kib);
        if (r < 0 && r != -ENOENT)
                return r;
        r = line_u64(status, "Threads", ret_threads);
        if (r < 0)
                return -EBADMSG;
        *ret_rss_bytes = rss_kib * 1024;
        return 0;
}

int vmm_metrics_parse_io(const char *io, uint64_t *ret_read, uint64_t *ret_write) {
        if (line_u64(io, "read_bytes", ret_read) < 0 || line_u64(io, "write_bytes", ret_write) < 0)
                return -EBADMSG;
        return 0;
}

/* ---- one instance's VMM --------------------------------------------------------------------- */

static uint64_t boottime_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_BOOTTIME, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int read_proc(pid_t pid, const char *name, char **ret) {
        char path[64];

        snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
        return read_file(path, 16384, ret, NULL);
}

/* Fill i's sample from /proc; -ESRCH when the process is gone (its exit is on its way). */
static int sample_proc(vmm_instance_t *i, uint64_t now_boot_ms) {
        vmm_sample_t *s = &i->sample;
        instance_metrics_t *m = &s->m;
        _cleanup_free_ char *stat = NULL, *status = NULL, *io = NULL;
        pid_t pid = (pid_t)i->rec.inst.pid;
        long hz = sysconf(_SC_CLK_TCK);
        uint64_t ticks, start, read_b = 0, write_b = 0;
        int r;

        if (pid <= 0)
                return -ESRCH;
        if (hz <= 0)
                hz = 100;
        r = read_proc(pid, "stat", &stat);
        if (r >= 0)
                r = vmm_proc_parse_stat(stat, &ticks, &start);
        if (r >= 0)
                r = read_proc(pid, "status", &status);
        if (r >= 0)
                r = vmm_metrics_parse_status(status, &m->rss_bytes, &m->threads);
        if (r < 0)
                return r == -ENOENT ? -ESRCH : r;
        /* Same process as the record says (a pid reused since it died is someone else's). */
        if (i->rec.pid_start_time && start != i->rec.pid_start_time)
                return -ESRCH;

        m->cpu_seconds = (double)ticks / (double)hz;
        if (s->prev_boot_ms && now_boot_ms > s->prev_boot_ms && ticks >= s->prev_ticks)
                m->cpu_percent = 100.0 * ((double)(ticks - s->prev_ticks) / (double)hz) /
                                 ((double)(now_boot_ms - s->prev_boot_ms) / 1000.0);
        else {
                /* First sample: the average over the process's life so far. */
                uint64_t started_ms = start * 1000 / (uint64_t)hz;

                m->cpu_percent = now_boot_ms > started_ms
                                         ? 100.0 * m->cpu_seconds / ((double)(now_boot_ms - started_ms) / 1000.0)
                                         : 0.0;
        }
        s->prev_ticks = ticks;
        s->prev_boot_ms = now_boot_ms;

        /* The kernel denies io to anyone but a ptrace-capable reader: a VMM that made itself
         * undumpable (cloud-hypervisor does) or yama's ptrace_scope. Zeros then, and why. */
        r = read_proc(pid, "io", &io);
        if (r >= 0)
                r = vmm_metrics_parse_io(io, &read_b, &write_b);
        m->disk_read_bytes = read_b;
        m->disk_write_bytes = write_b;
        m->disk_note[0] = '\0';
        if (r < 0)
                snprintf(m->disk_note, sizeof(m->disk_note), "/proc/%d/io: %s: disk counters are zeros", (int)pid,
                         strerror(-r));
        return 0;
}

/* ---- a round ---------------------------------------------------------------------------------- */

static void round_end(vmm_t *d) {
        msgpack_sbuffer buf;
        msgpack_packer pk;

        if (d->metrics_deadline_timer) {
                zloop_timer_end(d->loop, d->metrics_deadline_timer);
                d->metrics_deadline_timer = 0;
        }
        if (!d->metrics_round_open)
                return;
        d->metrics_round_open = false;
        d->metrics_pending = 0;
        msgpack_sbuffer_init(&buf);
        msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
        for (vmm_instance_t *i = zhashx_first(d->instances); i; i = zhashx_next(d->instances)) {
                if (i->sample.round != d->metrics_round || !vmm_instance_alive(i))
                        continue;
                msgpack_sbuffer_clear(&buf);
                instance_metrics_pack(&pk, &i->sample.m);
                if (bus_pub_send(d->pub, BUS_EVENT_INSTANCE_METRICS, buf.data, buf.size) < 0)
                        log_debug("Failed to publish instance.metrics for %s, ignoring", i->sample.m.instance_id);
        }
        msgpack_sbuffer_destroy(&buf);
}

static int on_deadline(zloop_t *loop, int timer_id, void *arg) {
        vmm_t *d = arg;

        d->metrics_deadline_timer = 0;
        round_end(d);
        return 0;
}

/* The last answer came: the round ends from the loop, not from inside whatever delivered the
 * answer (an instance being freed, with a walk over the instances above us). */
static void answered(vmm_t *d, uint64_t round) {
        if (round != d->metrics_round || !d->metrics_round_open)
                return; /* a late answer to a round that ended */
        if (d->metrics_pending == 0 || --d->metrics_pending > 0)
                return;
        if (d->metrics_deadline_timer)
                zloop_timer_end(d->loop, d->metrics_deadline_timer);
        d->metrics_deadline_timer = zloop_timer(d->loop, 0, 1, on_deadline, d);
        if (d->metrics_deadline_timer < 0) {
                d->metrics_deadline_timer = 0;
                round_end(d);
        }
}

typedef struct net_call {
        vmm_t *d;
        uint64_t round;
} net_call_t;

static void on_net_stats(int error, const bus_reply_t *reply, void *userdata) {
        _cleanup_free_ net_call_t *c = userdata;
        vmm_t *d = c->d;

        if (error < 0 || reply->error_code || !reply->result || reply->result->type != MSGPACK_OBJECT_ARRAY) {
                log_debug("net.stats: %s, this round has no network counters",
                          error < 0 ? strerror(-error) : reply->error_code ?: "not an array");
                answered(d, c->round);
                return;
        }
        for (uint32_t k = 0; k < reply->result->via.array.size; k++) {
                const msgpack_object *o = &reply->result->via.array.ptr[k];
                _cleanup_free_ char *id = NULL;
                vmm_instance_t *i;
                net_counters_t n;

                if (mp_get_str(o, "instance_id", PROTO_ID_MAX, &id) < 0 || net_counters_unpack(o, &n) < 0)
                        continue;
                i = vmm_instance_get(d, id);
                if (!i || i->sample.round != c->round)
                        continue;
                i->sample.m.network = n;
                i->sample.m.has_network = true;
        }
        answered(d, c->round);
}

static void on_agent_stats(vmm_instance_t *i, const msgpack_object *body, int error, void *userdata) {
        uint64_t round = (uint64_t)(uintptr_t)userdata;
        guest_stats_t g;

        /* An agent older than the stats frame says unknown_type: no guest view, nothing else lost. */
        if (error >= 0 && body && i->sample.round == round && guest_stats_unpack(body, &g) >= 0) {
                i->sample.m.guest = g;
                i->sample.m.has_guest = true;
        }
        answered(i->vmm, round);
}

static void round_start(vmm_t *d) {
        uint64_t interval = d->metrics_interval_ms;
        uint64_t wait_ms = interval / 2 < METRICS_ANSWER_MAX_MS ? interval / 2 : METRICS_ANSWER_MAX_MS;
        uint64_t now_boot = boottime_ms(), now = now_realtime_ms();
        bus_call_opts_t opts = { .timeout_ms = wait_ms ? wait_ms : 1 };
        msgpack_sbuffer args;
        msgpack_packer pk;
        size_t n_net = 0;

        /* The previous round's stragglers are given up: its samples go out as they are. */
        round_end(d);
        d->metrics_round++;
        d->metrics_round_open = true;
        d->metrics_pending = 1; /* this function's own, dropped at its end */

        for (vmm_instance_t *i = zhashx_first(d->instances); i; i = zhashx_next(d->instances)) {
                instance_metrics_t *m = &i->sample.m;
                const instance_spec_t *s = &i->rec.inst.spec;

                if (!vmm_instance_alive(i) || sample_proc(i, now_boot) < 0)
                        continue;
                i->sample.round = d->metrics_round;
                m->ts = now;
                snprintf(m->instance_id, sizeof(m->instance_id), "%s", s->instance_id);
                snprintf(m->deployment_id, sizeof(m->deployment_id), "%s", s->deployment_id ?: "");
                snprintf(m->runtime, sizeof(m->runtime), "%s", s->runtime ?: "");
                m->pid = i->rec.inst.pid;
                m->interval_ms = interval;
                m->memory_limit_bytes = (uint64_t)s->memory_mib * 1024 * 1024;
                m->has_network = m->has_guest = false;
                if (i->rec.inst.address)
                        n_net++;
                if (i->agent.connected && i->agent.answered &&
                    vmm_agent_request(i, AGENT_FRAME_STATS, 0, NULL, NULL, wait_ms, on_agent_stats,
                                      (void *)(uintptr_t)d->metrics_round) > 0)
                        d->metrics_pending++;
        }

        if (n_net > 0 && d->netd) {
                net_call_t *c = calloc(1, sizeof(*c));

                msgpack_sbuffer_init(&args);
                msgpack_packer_init(&pk, &args, msgpack_sbuffer_write);
                msgpack_pack_map(&pk, 1);
                mp_pack_str(&pk, "instance_ids");
                msgpack_pack_array(&pk, (uint32_t)n_net);
                for (vmm_instance_t *i = zhashx_first(d->instances); i; i = zhashx_next(d->instances))
                        if (i->sample.round == d->metrics_round && i->rec.inst.address)
                                mp_pack_str(&pk, i->rec.inst.spec.instance_id);
                if (c) {
                        *c = (net_call_t){ .d = d, .round = d->metrics_round };
                        if (bus_call_async(d->netd, BUS_METHOD_NET_STATS, &args, &opts, on_net_stats, c, NULL) >= 0)
                                d->metrics_pending++;
                        else
                                free(c);
                }
                msgpack_sbuffer_destroy(&args);
        }

        if (d->metrics_pending > 1) {
                d->metrics_deadline_timer = zloop_timer(d->loop, wait_ms ? wait_ms : 1, 1, on_deadline, d);
                if (d->metrics_deadline_timer < 0)
                        d->metrics_deadline_timer = 0;
        }
        answered(d, d->metrics_round);
}

static int on_tick(zloop_t *loop, int timer_id, void *arg) {
        round_start(arg);
        return 0;
}

int vmm_metrics_start(vmm_t *d, uint64_t interval) {
        vmm_metrics_stop(d);
        d->metrics_interval_ms = interval;
        if (interval == 0)
                return 0;
        d->metrics_timer = zloop_timer(d->loop, interval, 0, on_tick, d);
        if (d->metrics_timer < 0) {
                d->metrics_timer = 0;
                return log_error_errno(ENOMEM, "Failed to start the metrics timer");
        }
        return 0;
}

void vmm_metrics_stop(vmm_t *d) {
        if (d->metrics_timer && d->loop)
                zloop_timer_end(d->loop, d->metrics_timer);
        d->metrics_timer = 0;
        if (d->metrics_deadline_timer && d->loop)
                zloop_timer_end(d->loop, d->metrics_deadline_timer);
        d->metrics_deadline_timer = 0;
        d->metrics_round_open = false;
        d->metrics_pending = 0;
}

void vmm_metrics_reload(vmm_t *d, uint64_t interval) {
        if (interval != d->metrics_interval_ms)
                (void)vmm_metrics_start(d, interval);
}
