/* scheduler_bus.c: the scheduler's side of the bus: its clients and their one call helper, the events it
 * reacts to, the request server's method table, reload. */
#include "services/scheduler/scheduler.h"

#include <errno.h>
#include <string.h>

#include "lib/log.h"
#include "lib/mp.h"
#include "proto/event.h"

/* One scheduler_call() in flight. */
typedef struct call {
        scheduler_t *s;
        pass_t *pass; /* held until fn ran */
        scheduler_reply_fn fn;
        void *userdata;
        char method[BUS_TYPE_MAX + 1];
} call_t;

static void call_end(call_t *c, int r, const bus_reply_t *reply) {
        if (r < 0 && r != -ECANCELED)
                log_warning_errno(r, "%s: no answer: %m", c->method);
        else if (r == 0 && reply->error_code) {
                log_warning("%s failed: %s: %s", c->method, reply->error_code, reply->error_message ?: "");
                r = -EREMOTEIO;
        }
        if (c->fn)
                c->fn(c->s, r, r == -EREMOTEIO || r == 0 ? reply : NULL, c->userdata);
        scheduler_pass_release(c->pass);
        free(c);
}

static void on_reply(int error, const bus_reply_t *reply, void *userdata) { call_end(userdata, error, reply); }

int scheduler_call(scheduler_t *s, bus_client_t *client, pass_t *pass, const char *method, const msgpack_sbuffer *args,
                   bool idempotent, scheduler_reply_fn fn, void *userdata) {
        bus_call_opts_t opts = { .timeout_ms = s->ctx->config->scheduler.request_timeout_ms, .idempotent = idempotent };
        call_t *c = calloc(1, sizeof(*c));
        int r;

        if (!c) {
                if (fn)
                        fn(s, -ENOMEM, NULL, userdata);
                return -ENOMEM;
        }
        *c = (call_t){ .s = s, .pass = pass, .fn = fn, .userdata = userdata };
        snprintf(c->method, sizeof(c->method), "%s", method);
        scheduler_pass_hold(pass);
        r = s->closing || !client ? -ECANCELED : bus_call_async(client, method, args, &opts, on_reply, c, NULL);
        if (r < 0)
                call_end(c, r, NULL);
        return r;
}

/* ---- events in -------------------------------------------------------------------------------- */

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

/* Every deployment.* and instance.* event queues a pass; these do something first. */
static const struct {
        const char *type;
        void (*fn)(scheduler_t *s, const msgpack_object *body);
} event_handlers[] = {
        { BUS_EVENT_INSTANCE_READY, record_ready },
};

static void on_event(const char *type, const msgpack_object *body, void *userdata) {
        /* A sample is no change of state: no pass for it (one per instance every interval). */
        if (streq(type, BUS_EVENT_INSTANCE_METRICS))
                return;
        for (size_t k = 0; k < ELEMENTSOF(event_handlers); k++)
                if (streq(type, event_handlers[k].type))
                        event_handlers[k].fn(userdata, body);
        scheduler_kick(userdata, type);
}

static int on_resync(zloop_t *loop, int timer_id, void *arg) {
        scheduler_kick(arg, "resync tick");
        return 0;
}

/* ---- requests in ------------------------------------------------------------------------------ */

/* scheduler.status: {pass: bool optional} -> {passes: uint, pass_scheduled: bool}. Tests wait
 * for "more passes" instead of sleeping before they assert that nothing happened: every pass
 * counted has ended (its calls too), and a pass this queues starts after it (after the one in
 * flight, if any). */
static int method_status(bus_request_t *req, msgpack_packer *pk, void *userdata) {
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

/* daemon.stats's metrics: the reconcile passes. */
static void pack_stats(msgpack_packer *pk, void *userdata) {
        scheduler_t *s = userdata;

        msgpack_pack_array(pk, 1);
        stats_pack_hist(pk, "scheduler_pass_duration_seconds",
                        "Reconcile passes (both lists seen, every call ended), from start to end.", &s->pass_duration);
}

static const bus_method_t methods[] = {
        { BUS_METHOD_HEALTH_LIST, scheduler_method_health_list },
        { BUS_METHOD_SCHEDULER_STATUS, method_status },
        {},
};

/* ---- life cycle ------------------------------------------------------------------------------- */

static int client_open(scheduler_t *s, const char *endpoint, bus_client_t **ret) {
        int r;

        r = bus_client_new(endpoint, ret);
        if (r >= 0)
                r = bus_client_attach(*ret, s->ctx->loop);
        return r;
}

int scheduler_bus_open(scheduler_t *s) {
        const husk_config_t *c = s->ctx->config;
        const char *publishers[] = { c->bus[HUSK_DAEMON_APISERVER].events, c->bus[HUSK_DAEMON_VMM_DRIVER].events };
        int r;

        s->pass_timer = s->wake_timer = s->resync_timer = -1;
        r = bus_pub_new(c->bus[HUSK_DAEMON_SCHEDULER].events, &s->pub);
        if (r < 0)
                return log_error_errno(r, "Failed to bind %s: %m", c->bus[HUSK_DAEMON_SCHEDULER].events);
        r = client_open(s, c->bus[HUSK_DAEMON_APISERVER].requests, &s->apiserver);
        if (r >= 0)
                r = client_open(s, c->bus[HUSK_DAEMON_VMM_DRIVER].requests, &s->vmm);
        if (r < 0)
                return log_error_errno(r, "Failed to connect to the bus: %m");
        if (c->bus[HUSK_DAEMON_NETD].requests) {
                r = client_open(s, c->bus[HUSK_DAEMON_NETD].requests, &s->netd);
                if (r < 0)
                        log_warning_errno(r, "Cannot connect to netd (%s): %m; tcp and http checks will fail, ignoring",
                                          c->bus[HUSK_DAEMON_NETD].requests);
        }
        r = bus_sub_new(publishers, ELEMENTSOF(publishers), &s->events);
        if (r < 0)
                return log_error_errno(r, "Failed to subscribe to events: %m");
        bus_sub_subscribe(s->events, "deployment.");
        bus_sub_subscribe(s->events, "instance.");
        r = bus_sub_attach(s->events, s->ctx->loop, on_event, s);
        if (r < 0)
                return log_error_errno(r, "Failed to watch events: %m");
        s->resync_timer = zloop_timer(s->ctx->loop, c->scheduler.resync_interval_ms, 0, on_resync, s);
        r = bus_server_new(c->bus[HUSK_DAEMON_SCHEDULER].requests, methods, s, &s->server);
        if (r < 0)
                return log_error_errno(r, "Failed to bind %s: %m", c->bus[HUSK_DAEMON_SCHEDULER].requests);
        bus_server_set_stats(s->server, pack_stats, s);
        r = bus_server_attach(s->server, s->ctx->loop);
        if (r < 0)
                return log_error_errno(r, "Failed to attach the request socket: %m");
        return 0;
}

static bool same(const char *a, const char *b) { return (!a && !b) || (a && b && streq(a, b)); }

/* Runs on the loop before the old config is freed. Everything else reads s->ctx->config when
 * it needs a key, on the loop, and keeps no pointer into it: the pass queued here runs after
 * the swap, with the fresh values. */
int scheduler_reload(husk_daemon_ctx_t *ctx, const husk_config_t *fresh) {
        scheduler_t *s = ctx->userdata;
        const husk_config_t *old = ctx->config;

        if (!s)
                return 0;
        for (int d = 0; d < _HUSK_DAEMON_MAX; d++)
                if (!same(old->bus[d].events, fresh->bus[d].events) ||
                    !same(old->bus[d].requests, fresh->bus[d].requests)) {
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

/* Probes first (they cancel their own calls), then the clients: the calls still waiting end
 * with -ECANCELED, and with closing set their callbacks only free what they hold. */
void scheduler_bus_close(scheduler_t *s) {
        s->closing = true;
        if (s->resync_timer >= 0)
                zloop_timer_end(s->ctx->loop, s->resync_timer);
        s->resync_timer = -1;
        scheduler_health_close(s);
        bus_client_destroy(&s->vmm);
        bus_client_destroy(&s->apiserver);
        bus_client_destroy(&s->netd);
        scheduler_reconcile_close(s);
        scheduler_inflight_free(s);
        bus_server_destroy(&s->server);
        bus_sub_destroy(&s->events);
        bus_pub_destroy(&s->pub);
}
