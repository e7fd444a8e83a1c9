/* scheduler_bus.c: the scheduler's side of the bus: events in, list/act RPCs out. */
#include "services/scheduler/scheduler.h"

#include <errno.h>
#include <string.h>

#include "lib/log.h"
#include "lib/mp.h"
#include "proto/event.h"

#define RETRY_AFTER_FAILURE_MS 1000

typedef struct deployment_list {
        deployment_t *items;
        size_t n;
} deployment_list_t;

typedef struct instance_list {
        instance_t *items;
        size_t n;
} instance_list_t;

static void deployment_list_clear(deployment_list_t *l) {
        for (size_t i = 0; i < l->n; i++)
                deployment_clear(&l->items[i]);
        free(l->items);
        memset(l, 0, sizeof(*l));
}

static void instance_list_clear(instance_list_t *l) {
        for (size_t i = 0; i < l->n; i++)
                instance_clear(&l->items[i]);
        free(l->items);
        memset(l, 0, sizeof(*l));
}

/* Call and turn a remote error into a logged failure; returns the reply only on success. */
static int call(scheduler_t *s, bus_client_t *c, const char *method, const msgpack_sbuffer *args,
                bool idempotent, bus_reply_t **ret) {
        bus_call_opts_t opts = { .timeout_ms = s->ctx->config->scheduler.request_timeout_ms, .idempotent = idempotent };
        bus_reply_t *reply = NULL;
        int r;

        r = bus_call(c, method, args, &opts, &reply);
        if (r < 0)
                return log_warning_errno(r, "%s: no answer: %m", method);
        if (reply->error_code) {
                log_warning("%s failed: %s: %s", method, reply->error_code, reply->error_message);
                *ret = reply;
                return -EREMOTEIO;
        }
        *ret = reply;
        return 0;
}

typedef int (*unpack_fn)(const msgpack_object *o, void *item);

static int unpack_deployment(const msgpack_object *o, void *item) { return deployment_unpack(o, item); }
static int unpack_instance(const msgpack_object *o, void *item) { return instance_unpack(o, item); }

/* Call a method whose result is an array of records and decode each into a new array of
 * elem_size items. A malformed record is skipped with a warning: one bad record must not stop
 * the reconciliation of all the others. */
static int call_list(scheduler_t *s, bus_client_t *c, const char *method, size_t elem_size,
                     unpack_fn unpack, void **ret_items, size_t *ret_n) {
        _cleanup_(bus_reply_freep) bus_reply_t *reply = NULL;
        const msgpack_object *a;
        char *items;
        size_t n = 0;
        int r;

        r = call(s, c, method, NULL, true, &reply);
        if (r < 0)
                return r;
        a = reply->result;
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

static int list_deployments(scheduler_t *s, deployment_list_t *out) {
        return call_list(s, s->apiserver, "deployment.list", sizeof(deployment_t), unpack_deployment,
                         (void **)&out->items, &out->n);
}

static int list_instances(scheduler_t *s, instance_list_t *out) {
        return call_list(s, s->vmm, "instance.list", sizeof(instance_t), unpack_instance,
                         (void **)&out->items, &out->n);
}

static int instance_op(scheduler_t *s, const char *method, const instance_t *i, bool with_remove) {
        _cleanup_(bus_reply_freep) bus_reply_t *reply = NULL;
        msgpack_sbuffer buf;
        msgpack_packer pk;
        int r;

        msgpack_sbuffer_init(&buf);
        msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, with_remove ? 2 : 1);
        mp_pack_kv_str(&pk, "instance_id", i->spec.instance_id);
        if (with_remove)
                mp_pack_kv_bool(&pk, "remove", true);
        r = call(s, s->vmm, method, &buf, true, &reply);
        msgpack_sbuffer_destroy(&buf);
        return r;
}

/* Start one instance of d. Returns -EREMOTEIO with *ret_error set when vmm-driver refused it
 * as invalid (a permanent problem with the spec); -EADDRINUSE with *ret_error set when a host
 * port it publishes is taken (BUS_ERR_PORT_ALLOCATION_FAILED), -EAGAIN when it refused it for
 * another reason that may pass (no room): both a failed attempt; another negative
 * errno (no answer: it may have started) when the next pass must look again. */
static int create_instance(scheduler_t *s, const deployment_t *d, char *ret_error, size_t error_size) {
        _cleanup_(bus_reply_freep) bus_reply_t *reply = NULL;
        char id[13];
        instance_spec_t spec = {
                .instance_id = id, .deployment_id = d->id, .generation = d->generation,
                .runtime = d->runtime, .image = d->image, .kernel = d->kernel,
                .cpus = d->cpus, .memory_mib = d->memory_mib,
                .kind = d->kind, .command = d->command, .environment = d->environment,
                .ports = d->ports, .n_ports = d->n_ports,
        };
        msgpack_sbuffer buf;
        msgpack_packer pk;
        int r;

        r = random_hex(id, 6);
        if (r < 0)
                return r;
        msgpack_sbuffer_init(&buf);
        msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
        instance_spec_pack(&pk, &spec);
        /* Not idempotent from our side: a retry would start a second VM under the same id,
         * which vmm-driver refuses as a conflict; the next pass re-counts instead. */
        r = call(s, s->vmm, "instance.create", &buf, false, &reply);
        msgpack_sbuffer_destroy(&buf);
        ret_error[0] = '\0';
        if (r == -EREMOTEIO)
                snprintf(ret_error, error_size, "%s: %s", reply->error_code, reply->error_message ?: "");
        if (r == -EREMOTEIO && streq(reply->error_code, BUS_ERR_INVALID)) {
                snprintf(ret_error, error_size, "%s", reply->error_message);
                return r;
        }
        /* A taken host port is told by its code, never by the message's words. */
        if (r == -EREMOTEIO && streq(reply->error_code, BUS_ERR_PORT_ALLOCATION_FAILED))
                return -EADDRINUSE;
        if (r == 0)
                scheduler_event(s, d->id, EVENT_LEVEL_INFO, EVENT_INSTANCE_STARTED, "started instance %s (generation %llu)",
                                id, (unsigned long long)d->generation);
        return r == -EREMOTEIO ? -EAGAIN : r;
}

/* Report the plan's status, ready count and, when they changed, the restart fields. */
static int set_status(scheduler_t *s, const deployment_t *d, const plan_t *p) {
        _cleanup_(bus_reply_freep) bus_reply_t *reply = NULL;
        msgpack_sbuffer buf;
        msgpack_packer pk;
        int r;

        msgpack_sbuffer_init(&buf);
        msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 4 + (p->persist_restarts ? 2 : 0) + (p->has_exit_code ? 1 : 0) +
                                      (p->persist_restarts || p->has_exit_code ? 1 : 0));
        mp_pack_kv_str(&pk, "id", d->id);
        mp_pack_kv_str(&pk, "status", p->status);
        mp_pack_kv_str(&pk, "message", p->message);
        mp_pack_kv_u64(&pk, "ready_replicas", p->ready);
        if (p->persist_restarts) {
                mp_pack_kv_u64(&pk, "restart_count", p->restart_count);
                mp_pack_kv_u64(&pk, "failed_at", p->failed_at);
        }
        if (p->has_exit_code)
                mp_pack_kv_i64(&pk, "exit_code", p->exit_code);
        /* Counted against this spec: dropped by apiserver if a re-apply came since. */
        if (p->persist_restarts || p->has_exit_code)
                mp_pack_kv_u64(&pk, "generation", d->generation);
        r = call(s, s->apiserver, "deployment.set_status", &buf, true, &reply);
        msgpack_sbuffer_destroy(&buf);
        if (r == 0 && !streq(p->status, d->status))
                scheduler_event(s, d->id, streq(p->status, DEPLOYMENT_STATUS_FAILED) ||
                                                          streq(p->status, DEPLOYMENT_STATUS_CRASH_LOOP)
                                                  ? EVENT_LEVEL_ERROR
                                                  : EVENT_LEVEL_INFO,
                                EVENT_STATUS_CHANGED, "%s -> %s: %s", d->status, p->status, p->message);
        return r;
}

static int purge(scheduler_t *s, const deployment_t *d) {
        _cleanup_(bus_reply_freep) bus_reply_t *reply = NULL;
        msgpack_sbuffer buf;
        msgpack_packer pk;
        int r;

        msgpack_sbuffer_init(&buf);
        msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 1);
        mp_pack_kv_str(&pk, "id", d->id);
        r = call(s, s->apiserver, "deployment.purge", &buf, true, &reply);
        msgpack_sbuffer_destroy(&buf);
        if (r == 0)
                log_info("Deployment %s/%s: every instance gone, purged", d->namespace_, d->name);
        return r;
}

/* An exited instance is about to go: apiserver keeps how it ended (inspect shows the last few),
 * and an event says so unless we stopped it ourselves. Returns <0 when apiserver did not store
 * it: the instance must stay until it did. */
static int record_exit(scheduler_t *s, const deployment_t *d, const instance_t *i) {
        _cleanup_(bus_reply_freep) bus_reply_t *reply = NULL;
        const char *why = i->exit_reason ?: "unknown";
        bool crashed = streq(why, "crashed") || streq(why, "killed") || streq(why, "vanished");
        char what[EVENT_MESSAGE_MAX + 1];
        msgpack_sbuffer buf;
        msgpack_packer pk;
        int r;

        if (streq(d->status, DEPLOYMENT_STATUS_DELETED))
                return 0;
        if (i->exit_reason) {
                msgpack_sbuffer_init(&buf);
                msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
                instance_pack(&pk, i);
                /* Idempotent: apiserver keeps an instance once, however often it is sent. */
                r = call(s, s->apiserver, "deployment.record_exit", &buf, true, &reply);
                msgpack_sbuffer_destroy(&buf);
                if (r < 0 && !(r == -EREMOTEIO && streq(reply->error_code, BUS_ERR_NOT_FOUND)))
                        return r;
        }
        if (streq(why, "stopped"))
                return 0;
        plan_describe_exit(i, what, sizeof(what));
        scheduler_event(s, d->id, EVENT_LEVEL_WARNING, crashed ? EVENT_INSTANCE_CRASHED : EVENT_INSTANCE_EXITED,
                        "%s", what);
        return 0;
}

/* Act on one deployment's plan. Returns <0 when something transient failed and a retry pass
 * is wanted; *wake_at is lowered to when the deployment needs its next pass (back-off). */
static int reconcile_one(scheduler_t *s, const deployment_t *d, const instance_list_t *instances,
                         plan_host_t *host, uint64_t *wake_at) {
        uint32_t created = 0;
        const char *sent_status = NULL; /* what the restart counts were stored with, if they were */
        char sent_message[sizeof(((plan_t *)NULL)->message)];
        plan_t p;
        int r, failed = 0;

        r = scheduler_plan_at(d, instances->items, instances->n, now_realtime_ms(), host, &p);
        if (r < 0)
                return r;
        /* Failures are counted before their instances go: an exit seen but not stored would be
         * forgotten, one stored twice is not (failed_at tells which were counted). */
        if ((p.persist_restarts || p.has_exit_code) && p.status) {
                if (set_status(s, d, &p) < 0) {
                        plan_clear(&p);
                        return -EAGAIN;
                }
                /* Stored: sending the counts again at the end could undo a re-apply since. */
                p.persist_restarts = p.has_exit_code = false;
                sent_status = p.status;
                snprintf(sent_message, sizeof(sent_message), "%s", p.message);
        }
        for (size_t k = 0; k < p.n_remove; k++) {
                if (record_exit(s, d, p.remove[k]) < 0 || instance_op(s, "instance.remove", p.remove[k], false) < 0)
                        failed = -EAGAIN;
        }
        if (p.event_reason)
                scheduler_event(s, d->id, p.event_level, p.event_reason, "%s", p.event_message);
        for (size_t k = 0; k < p.n_stop; k++) {
                scheduler_event(s, d->id, EVENT_LEVEL_INFO, EVENT_INSTANCE_STOPPED, "stopping instance %s (%s)",
                                p.stop[k]->spec.instance_id,
                                streq(d->status, DEPLOYMENT_STATUS_DELETED) ? "deployment deleted"
                                : plan_instance_matches(d, p.stop[k]) ? "scaling down"
                                                                      : "replaced by the new spec");
                if (instance_op(s, "instance.stop", p.stop[k], true) < 0)
                        failed = -EAGAIN;
        }
        for (uint32_t k = 0; k < p.create; k++) {
                char error[512];

                r = create_instance(s, d, error, sizeof(error));
                if (r == -EREMOTEIO) {
                        /* The spec cannot run as it is: say so once, no restarts burned. */
                        p.status = DEPLOYMENT_STATUS_FAILED;
                        snprintf(p.message, sizeof(p.message), "%s", error);
                        scheduler_event(s, d->id, EVENT_LEVEL_ERROR, EVENT_PERMANENT_FAILURE,
                                        "cannot create an instance, not retrying: %s", error);
                        break;
                }
                if (r == -EAGAIN || r == -EADDRINUSE) {
                        /* Refused for now (a port taken, no room): a failed attempt, backed off
                         * like a crash. */
                        char what[600];

                        scheduler_event(s, d->id, EVENT_LEVEL_WARNING,
                                        r == -EADDRINUSE ? EVENT_PORT_ALLOCATION_FAILED : EVENT_CREATE_FAILED,
                                        "cannot create an instance: %s", error);
                        snprintf(what, sizeof(what), "create failed (%s)", error);
                        plan_failures(d, 1, now_realtime_ms(), what, &p);
                        scheduler_event(s, d->id, p.event_level, p.event_reason, "%s", p.event_message);
                        break;
                }
                if (r < 0) {
                        failed = -EAGAIN;
                        break;
                }
                created++;
        }
        /* Charged before the next deployment plans: together they never overcommit. */
        host->memory_used_mib += (uint64_t)created * d->memory_mib;
        host->booting += created;
        if (p.purge && purge(s, d) < 0)
                failed = -EAGAIN;
        if (p.status &&
            (!streq(p.status, sent_status ?: d->status) || (!sent_status && p.ready != d->ready_replicas) ||
             p.persist_restarts || !streq(p.message, sent_status ? sent_message : d->status_message ?: "")) &&
            set_status(s, d, &p) < 0)
                failed = -EAGAIN;
        if (p.wake_at && (!*wake_at || p.wake_at < *wake_at))
                *wake_at = p.wake_at;
        plan_clear(&p);
        return failed;
}

/* Instances whose deployment no longer exists (purged while we were down, or a wiped store). */
static int reap_orphans(scheduler_t *s, const deployment_list_t *deployments, const instance_list_t *instances) {
        int failed = 0;

        for (size_t k = 0; k < instances->n; k++) {
                const instance_t *i = &instances->items[k];
                bool known = false;

                for (size_t j = 0; j < deployments->n && !known; j++)
                        known = streq(deployments->items[j].id, i->spec.deployment_id);
                if (known || streq(i->state, INSTANCE_STATE_STOPPING))
                        continue;
                log_info("Instance %s belongs to no deployment, removing it", i->spec.instance_id);
                if (streq(i->state, INSTANCE_STATE_EXITED) ? instance_op(s, "instance.remove", i, false) < 0
                                                          : instance_op(s, "instance.stop", i, true) < 0)
                        failed = -EAGAIN;
        }
        return failed;
}

static int on_retry_timer(zloop_t *loop, int timer_id, void *arg) {
        scheduler_t *s = arg;

        s->pass_scheduled = false;
        if (scheduler_reconcile_all(s) < 0)
                scheduler_kick(s, NULL);
        return 0;
}

/* An instance whose readiness checks have not all passed is not ready, whatever its agent
 * said: the plan sees it as still booting, so the deployment stays creating and a rolling
 * update keeps the old instances. */
static void hold_back_unready(scheduler_t *s, const deployment_list_t *deployments, instance_list_t *instances) {
        for (size_t k = 0; k < instances->n; k++) {
                instance_t *i = &instances->items[k];
                char *running;

                if (!streq(i->state, INSTANCE_STATE_READY))
                        continue;
                for (size_t j = 0; j < deployments->n; j++) {
                        const deployment_t *d = &deployments->items[j];

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

void scheduler_replace_unhealthy(scheduler_t *s, const char *deployment_id, const char *instance_id,
                                 const char *what, bool stop_only) {
        _cleanup_(bus_reply_freep) bus_reply_t *reply = NULL;
        instance_t victim = { .spec = { .instance_id = (char *)instance_id } };
        deployment_t d = {};
        msgpack_sbuffer buf;
        msgpack_packer pk;
        plan_t p = {};
        int r;

        msgpack_sbuffer_init(&buf);
        msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 1);
        mp_pack_kv_str(&pk, "id", deployment_id);
        r = call(s, s->apiserver, "deployment.get", &buf, true, &reply);
        msgpack_sbuffer_destroy(&buf);
        if (r < 0 || deployment_unpack(reply->result, &d) < 0)
                return; /* logged; the checks keep failing and the next streak tries again */
        p.ready = d.ready_replicas;
        p.status = d.status;
        snprintf(p.message, sizeof(p.message), "%s", what);
        if (stop_only) {
                p.status = DEPLOYMENT_STATUS_FAILED;
                snprintf(p.message, sizeof(p.message), "%s; stopped (on_failure: stop), re-apply to start again", what);
        } else {
                /* A failed check is a failure like a crash: the same count and back-off. */
                plan_failures(&d, 1, now_realtime_ms(), what, &p);
        }
        if (set_status(s, &d, &p) >= 0) {
                if (p.event_reason)
                        scheduler_event(s, d.id, p.event_level, p.event_reason, "%s", p.event_message);
                (void)instance_op(s, "instance.stop", &victim, true);
        }
        deployment_clear(&d);
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

int scheduler_reconcile_all(scheduler_t *s) {
        deployment_list_t deployments = {};
        instance_list_t instances = {};
        uint64_t wake_at = 0;
        plan_host_t host = {};
        int r, failed = 0;

        /* Both lists must be fresh: acting on a partial view could kill healthy instances. */
        r = list_deployments(s, &deployments);
        if (r >= 0)
                r = list_instances(s, &instances);
        if (r < 0)
                goto out;
        scheduler_health_sync(s, deployments.items, deployments.n, instances.items, instances.n);
        hold_back_unready(s, &deployments, &instances);
        host.memory_capacity_mib = host_memory_mib(s);
        host.create_concurrency = s->ctx->config->scheduler.create_concurrency;
        host.progress_deadline_ms = s->ctx->config->scheduler.progress_deadline_ms;
        plan_host_count(&host, instances.items, instances.n, now_realtime_ms());
        for (size_t k = 0; k < deployments.n; k++)
                if (reconcile_one(s, &deployments.items[k], &instances, &host, &wake_at) < 0)
                        failed = -EAGAIN;
        scheduler_wake_at(s, wake_at);
        if (reap_orphans(s, &deployments, &instances) < 0)
                failed = -EAGAIN;
        s->passes++;
        r = failed;
out:
        deployment_list_clear(&deployments);
        instance_list_clear(&instances);
        return r;
}

void scheduler_kick(scheduler_t *s, const char *why) {
        if (s->pass_scheduled)
                return;
        if (why)
                log_debug("Reconcile: %s", why);
        s->pass_scheduled = true;
        /* Immediately for events; after a pause when retrying a failed pass. */
        zloop_timer(s->ctx->loop, why ? 1 : RETRY_AFTER_FAILURE_MS, 1, on_retry_timer, s);
}

/* Tests wait for "two more passes" instead of sleeping before they assert that nothing happened:
 * the request runs between passes (one loop), so every pass counted has ended, and a pass it
 * queues starts after it. */
int scheduler_method_status(bus_request_t *req, msgpack_packer *pk, void *userdata) {
        scheduler_t *s = userdata;
        bool pass = false;
        int r;

        r = mp_get_bool(req->args, "pass", &pass);
        if (r < 0 && r != -ENOENT)
                return bus_request_fail(req, BUS_ERR_INVALID, "pass: must be a boolean");
        if (pass)
                scheduler_kick(s, "scheduler.status asked for a pass");
        msgpack_pack_map(pk, 2);
        mp_pack_kv_u64(pk, "passes", s->passes);
        mp_pack_kv_bool(pk, "pass_scheduled", s->pass_scheduled);
        return 0;
}

/* Readiness is only seen as it happens: a pass knows an instance is ready, not that it just
 * became so. */
static void record_ready(scheduler_t *s, const msgpack_object *body) {
        instance_t i = {};

        if (instance_unpack(body, &i) < 0)
                return;
        scheduler_event(s, i.spec.deployment_id, EVENT_LEVEL_INFO, EVENT_INSTANCE_READY,
                        "instance %s ready %llu ms after its start", i.spec.instance_id,
                        (unsigned long long)(i.ready_at > i.started_at ? i.ready_at - i.started_at : 0));
        instance_clear(&i);
}

static void on_event(const char *type, const msgpack_object *body, void *userdata) {
        if (streq(type, "instance.ready"))
                record_ready(userdata, body);
        scheduler_kick(userdata, type);
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

static int on_resync(zloop_t *loop, int timer_id, void *arg) {
        scheduler_kick(arg, "resync tick");
        return 0;
}

int scheduler_bus_open(scheduler_t *s) {
        const husk_config_t *c = s->ctx->config;
        const char *publishers[] = { c->bus[HUSK_DAEMON_APISERVER].events, c->bus[HUSK_DAEMON_VMM_DRIVER].events };
        int r;

        r = bus_pub_new(c->bus[HUSK_DAEMON_SCHEDULER].events, &s->pub);
        if (r < 0)
                return log_error_errno(r, "Failed to bind %s: %m", c->bus[HUSK_DAEMON_SCHEDULER].events);
        r = bus_client_new(c->bus[HUSK_DAEMON_APISERVER].requests, &s->apiserver);
        if (r >= 0)
                r = bus_client_new(c->bus[HUSK_DAEMON_VMM_DRIVER].requests, &s->vmm);
        if (r < 0)
                return log_error_errno(r, "Failed to connect to the bus: %m");
        r = bus_sub_new(publishers, ELEMENTSOF(publishers), &s->events);
        if (r < 0)
                return log_error_errno(r, "Failed to subscribe to events: %m");
        bus_sub_subscribe(s->events, "deployment.");
        bus_sub_subscribe(s->events, "instance.");
        r = bus_sub_attach(s->events, s->ctx->loop, on_event, s);
        if (r < 0)
                return log_error_errno(r, "Failed to watch events: %m");
        s->resync_timer = zloop_timer(s->ctx->loop, c->scheduler.resync_interval_ms, 0, on_resync, s);
        return scheduler_health_open(s);
}

static bool same(const char *a, const char *b) {
        return (!a && !b) || (a && b && streq(a, b));
}

/* Runs on the loop before the old config is freed. Everything else reads s->ctx->config when
 * it needs a key, on the loop, and keeps no pointer into it: the pass queued here runs after
 * the swap, with the fresh values. */
int scheduler_reload(husk_daemon_ctx_t *ctx, const husk_config_t *fresh) {
        scheduler_t *s = ctx->userdata;
        const husk_config_t *old = ctx->config;

        if (!s)
                return 0;
        for (int d = 0; d < _HUSK_DAEMON_MAX; d++)
                if (!same(old->bus[d].events, fresh->bus[d].events) || !same(old->bus[d].requests, fresh->bus[d].requests)) {
                        log_notice("bus endpoints changed: husk-scheduler uses them from its next restart");
                        break;
                }
        if (fresh->scheduler.resync_interval_ms != old->scheduler.resync_interval_ms) {
                int timer = zloop_timer(ctx->loop, fresh->scheduler.resync_interval_ms, 0, on_resync, s);

                if (timer < 0)
                        return log_error_errno(ENOMEM, "Failed to re-arm the resync timer");
                zloop_timer_end(ctx->loop, s->resync_timer);
                s->resync_timer = timer;
        }
        scheduler_kick(s, "reload");
        return 0;
}

void scheduler_bus_close(scheduler_t *s) {
        scheduler_health_close(s);
        bus_sub_destroy(&s->events);
        bus_client_destroy(&s->apiserver);
        bus_client_destroy(&s->vmm);
        bus_pub_destroy(&s->pub);
}
