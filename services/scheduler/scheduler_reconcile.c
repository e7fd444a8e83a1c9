/* scheduler_reconcile.c: reconcile passes. A pass asks apiserver for the deployments and vmm-driver for
 * the instances at once, plans every deployment when both answered, hands each plan to
 * scheduler_act.c and ends when every call made for it ended. Nothing here waits: the loop
 * keeps serving requests, events and probes while a pass is in flight.
 *
 * At most one pass runs; a kick during a pass queues one more after it (never two). When
 * apiserver does not answer, the pass plans from the deployment list apiserver gave last
 * ("stale"): vmm-driver's fresh instance list is enough to replace a crashed VM, and every
 * other action (status, exits, stops, removal) waits for apiserver. A stale pass is not
 * counted and is retried. */
#include "services/scheduler/scheduler.h"

#include <errno.h>
#include <string.h>

#include "lib/log.h"
#include "lib/stats.h"

#define RETRY_AFTER_FAILURE_MS 1000

typedef enum pass_phase {
        PASS_GATHER, /* the two lists are asked for */
        PASS_ACT,    /* planned; the jobs' calls run */
} pass_phase_t;

struct pass {
        scheduler_t *s;
        pass_phase_t phase;
        unsigned holds; /* calls and jobs in flight for it, and one while a phase starts them */
        bool fresh;     /* apiserver answered deployment.list: s->known is its answer */
        bool have_instances;
        bool failed;           /* something transient failed: a retry pass follows */
        instance_t *instances; /* vmm-driver's list, which the plans point into */
        size_t n_instances;
        uint64_t wake_at; /* earliest unix ms any deployment needs a pass at; 0: none */
        double started;   /* stats_now() at its start: husk_scheduler_pass_duration_seconds */
};

typedef int (*unpack_fn)(const msgpack_object *o, void *item);
typedef void (*clear_fn)(void *item);

static int unpack_deployment(const msgpack_object *o, void *item) { return deployment_unpack(o, item); }
static int unpack_instance(const msgpack_object *o, void *item) { return instance_unpack(o, item); }
static void clear_deployment(void *item) { deployment_clear(item); }
static void clear_instance(void *item) { instance_clear(item); }

static void list_free(void *items, size_t n, size_t elem_size, clear_fn clear) {
        for (size_t k = 0; k < n; k++)
                clear((char *)items + k * elem_size);
        free(items);
}

/* Decode a list reply into a new array (never NULL on success, even when empty). A malformed
 * record is skipped with a warning: one bad record must not stop the reconciliation of all the
 * others. */
static int list_decode(const bus_reply_t *reply, const char *method, size_t elem_size, unpack_fn unpack,
                       void **ret_items, size_t *ret_n) {
        const msgpack_object *a = reply->result;
        char *items;
        size_t n = 0;

        if (!a || a->type != MSGPACK_OBJECT_ARRAY)
                return log_warning_errno(EBADMSG, "%s: result is not an array", method);
        items = calloc(a->via.array.size + 1, elem_size);
        if (!items)
                return -ENOMEM;
        for (uint32_t i = 0; i < a->via.array.size; i++)
                if (unpack(&a->via.array.ptr[i], items + n * elem_size) == 0)
                        n++;
                else
                        log_warning("%s: skipping a malformed record", method);
        *ret_items = items;
        *ret_n = n;
        return 0;
}

static void on_deployments(scheduler_t *s, int r, const bus_reply_t *reply, void *userdata) {
        pass_t *p = userdata;
        deployment_t *items;
        size_t n;

        if (r < 0 || list_decode(reply, BUS_METHOD_DEPLOYMENT_LIST, sizeof(deployment_t), unpack_deployment,
                                 (void **)&items, &n) < 0)
                return;
        /* No pass plans from the old list any more: the one in flight is this one, still gathering. */
        list_free(s->known, s->n_known, sizeof(deployment_t), clear_deployment);
        s->known = items;
        s->n_known = n;
        p->fresh = true;
}

static void on_instances(scheduler_t *s, int r, const bus_reply_t *reply, void *userdata) {
        pass_t *p = userdata;

        if (r == 0 && list_decode(reply, BUS_METHOD_INSTANCE_LIST, sizeof(instance_t), unpack_instance,
                                  (void **)&p->instances, &p->n_instances) == 0)
                p->have_instances = true;
}

/* An instance whose readiness checks have not all passed is not ready, whatever its agent
 * said: the plan sees it as still booting, so the deployment stays creating and a rolling
 * update keeps the old instances. */
static void hold_back_unready(scheduler_t *s, instance_t *instances, size_t n_instances) {
        for (size_t k = 0; k < n_instances; k++) {
                instance_t *i = &instances[k];
                char *running;

                if (!streq(i->state, INSTANCE_STATE_READY))
                        continue;
                for (size_t j = 0; j < s->n_known; j++) {
                        const deployment_t *d = &s->known[j];

                        if (!streq(d->id, i->spec.deployment_id) || scheduler_health_ready(s, d, i->spec.instance_id))
                                continue;
                        running = strdup(INSTANCE_STATE_RUNNING);
                        if (running) {
                                free(i->state);
                                i->state = running;
                        }
                }
        }
}

/* Guest RAM the host may hand out: the configured scheduler.host_memory, else MemTotal. */
static uint64_t host_memory_mib(scheduler_t *s) {
        _cleanup_free_ char *meminfo = NULL;
        const char *p;
        uint64_t kib;

        if (s->ctx->config->scheduler.host_memory_bytes)
                return s->ctx->config->scheduler.host_memory_bytes / (1024 * 1024);
        if (read_file("/proc/meminfo", 65536, &meminfo, NULL) < 0 || !(p = strstr(meminfo, "MemTotal:")))
                return 0; /* unknown: no admission rather than refusing everything */
        kib = strtoull(p + strlen("MemTotal:"), NULL, 10);
        return kib / 1024;
}

/* Both lists are in (or what could be had): plan each deployment and start acting on it. Plans
 * are made one after the other against one host budget, each charged with its creates before
 * the next is planned: together they never overcommit. */
static void pass_plan(pass_t *p) {
        scheduler_t *s = p->s;
        plan_host_t host = {};
        uint64_t now = now_realtime_ms();

        if (!p->have_instances || !s->known) {
                p->failed = true; /* nothing to plan from: retried */
                return;
        }
        if (!p->fresh)
                log_warning("apiserver did not answer deployment.list: planning from the list it gave last; "
                            "only creating instances until it answers");
        scheduler_health_sync(s, s->known, s->n_known, p->instances, p->n_instances);
        hold_back_unready(s, p->instances, p->n_instances);
        host.memory_capacity_mib = host_memory_mib(s);
        host.create_concurrency = s->ctx->config->scheduler.create_concurrency;
        host.progress_deadline_ms = s->ctx->config->scheduler.progress_deadline_ms;
        plan_host_count(&host, p->instances, p->n_instances, now);
        for (size_t k = 0; k < s->n_known; k++) {
                const deployment_t *d = &s->known[k];
                plan_t plan;

                if (scheduler_plan_at(d, p->instances, p->n_instances, now, &host, &plan) < 0) {
                        p->failed = true;
                        continue;
                }
                host.memory_used_mib += (uint64_t)plan.create * d->memory_mib;
                host.booting += plan.create;
                if (scheduler_act(s, p, d, &plan) < 0)
                        p->failed = true;
        }
        if (p->fresh)
                scheduler_reap_orphans(s, p, s->known, s->n_known, p->instances, p->n_instances);
}

static int on_pass_timer(zloop_t *loop, int timer_id, void *arg);

static void pass_queue(scheduler_t *s, uint64_t delay_ms) {
        if (s->pass_timer >= 0)
                return;
        s->pass_timer = zloop_timer(s->ctx->loop, delay_ms, 1, on_pass_timer, s);
        if (s->pass_timer < 0)
                log_error("Cannot arm the pass timer; the next event or resync tick retries");
}

static void pass_end(pass_t *p) {
        scheduler_t *s = p->s;
        bool planned = p->phase == PASS_ACT && p->have_instances && s->known;

        s->pass = NULL;
        if (!s->closing) {
                if (planned)
                        scheduler_wake_at(s, p->wake_at);
                /* Saw both lists fresh: counted, even when an action failed (retried below). */
                if (planned && p->fresh) {
                        s->passes++;
                        stats_hist_observe(&s->pass_duration, stats_now() - p->started);
                }
                if ((p->failed || !p->fresh) && !s->pass_scheduled) {
                        s->pass_scheduled = true;
                        pass_queue(s, RETRY_AFTER_FAILURE_MS);
                } else if (s->pass_scheduled)
                        pass_queue(s, 1); /* kicked while this one ran */
        }
        list_free(p->instances, p->n_instances, sizeof(instance_t), clear_instance);
        free(p);
}

void scheduler_pass_hold(pass_t *p) {
        if (p)
                p->holds++;
}

void scheduler_pass_release(pass_t *p) {
        if (!p || --p->holds > 0)
                return;
        if (p->phase == PASS_GATHER && !p->s->closing) {
                p->phase = PASS_ACT;
                p->holds = 1;
                pass_plan(p);
                scheduler_pass_release(p);
                return;
        }
        pass_end(p);
}

bool scheduler_pass_stale(const pass_t *p) { return p->phase == PASS_ACT && !p->fresh; }

void scheduler_pass_wake(pass_t *p, uint64_t wake_at) {
        if (wake_at && (!p->wake_at || wake_at < p->wake_at))
                p->wake_at = wake_at;
}

void scheduler_pass_fail(pass_t *p) { p->failed = true; }

static void pass_start(scheduler_t *s) {
        pass_t *p = calloc(1, sizeof(*p));

        if (!p) {
                log_error("Out of memory for a reconcile pass, retrying");
                scheduler_kick(s, NULL);
                return;
        }
        *p = (pass_t){ .s = s, .phase = PASS_GATHER, .holds = 1, .started = stats_now() };
        s->pass = p;
        /* Both lists must be fresh to act on everything: a partial view could kill healthy
         * instances. Asked at once; the plan starts when both calls ended. */
        (void)scheduler_call(s, s->apiserver, p, BUS_METHOD_DEPLOYMENT_LIST, NULL, true, on_deployments, p);
        (void)scheduler_call(s, s->vmm, p, BUS_METHOD_INSTANCE_LIST, NULL, true, on_instances, p);
        scheduler_pass_release(p);
}

static int on_pass_timer(zloop_t *loop, int timer_id, void *arg) {
        scheduler_t *s = arg;

        s->pass_timer = -1;
        s->pass_scheduled = false;
        pass_start(s);
        return 0;
}

void scheduler_kick(scheduler_t *s, const char *why) {
        if (s->closing || s->pass_scheduled)
                return;
        if (why)
                log_debug("Reconcile: %s", why);
        s->pass_scheduled = true;
        /* Immediately for events; after a pause when retrying a failed pass; after the pass in
         * flight, if any (pass_end() arms it). */
        if (!s->pass)
                pass_queue(s, why ? 1 : RETRY_AFTER_FAILURE_MS);
}

static int on_wake(zloop_t *loop, int timer_id, void *arg) {
        scheduler_t *s = arg;

        s->wake_timer = -1;
        scheduler_kick(s, "a back-off or healthy period is over");
        return 0;
}

/* One timer for the earliest deadline any deployment waits for (0: none); re-armed after
 * every pass, so it never holds more than the next one. */
void scheduler_wake_at(scheduler_t *s, uint64_t wake_at) {
        uint64_t now = now_realtime_ms();

        if (s->wake_timer >= 0) {
                zloop_timer_end(s->ctx->loop, s->wake_timer);
                s->wake_timer = -1;
        }
        if (wake_at)
                s->wake_timer = zloop_timer(s->ctx->loop, wake_at > now ? wake_at - now + 1 : 1, 1, on_wake, s);
}

void scheduler_reconcile_close(scheduler_t *s) {
        if (s->pass_timer >= 0)
                zloop_timer_end(s->ctx->loop, s->pass_timer);
        s->pass_timer = -1;
        scheduler_wake_at(s, 0);
        list_free(s->known, s->n_known, sizeof(deployment_t), clear_deployment);
        s->known = NULL;
        s->n_known = 0;
}
