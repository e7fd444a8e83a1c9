/* test_reconcile.c: the reconciler's acting half against a fake apiserver and vmm-driver: real lib/bus
 * servers on ipc endpoints in this process, served by the same loop as the scheduler (which
 * would deadlock if the scheduler ever waited for them). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/mp.h"
#include "services/scheduler/scheduler.h"

#define MAX_CALLS 512

typedef struct recorded {
        char method[BUS_TYPE_MAX + 1];
        msgpack_sbuffer args; /* the call's args map, packed again */
        msgpack_unpacked u;   /* args unpacked, for the assertions */
} recorded_t;

/* The world the fake daemons report, and what was asked of them. */
typedef struct fake {
        char dir[64];
        husk_daemon_ctx_t ctx;
        scheduler_t s;
        bus_server_t *apiserver, *vmm;
        deployment_t deployments[2];
        size_t n_deployments;
        instance_t instances[8];
        size_t n_instances;
        const char *create_error_code; /* instance.create refuses with this (NULL: accepts) */
        const char *create_error_message;
        recorded_t calls[MAX_CALLS];
        size_t n_calls;
        uint64_t ticks;         /* 10 ms loop ticks: the loop kept turning */
        int kicks_in_list;      /* deployment.list kicks the scheduler this often, once */
        bool apiserver_stopped; /* as if SIGSTOPped: requests are taken and never answered */
        bool vmm_stalls_stops;  /* instance.stop is taken and never answered */
        bus_deferred_t *stalled[64];
        size_t n_stalled;
} fake_t;

static fake_t *F;

static void record(bus_request_t *req) {
        recorded_t *c;
        msgpack_packer pk;

        assert_true(F->n_calls < MAX_CALLS);
        c = &F->calls[F->n_calls++];
        snprintf(c->method, sizeof(c->method), "%s", req->method);
        msgpack_sbuffer_init(&c->args);
        msgpack_packer_init(&pk, &c->args, msgpack_sbuffer_write);
        msgpack_pack_object(&pk, *req->args);
        msgpack_unpacked_init(&c->u);
        assert_int_equal(msgpack_unpack_next(&c->u, c->args.data, c->args.size, NULL), MSGPACK_UNPACK_SUCCESS);
}

/* A stopped apiserver: the request waits in its socket, unanswered. */
static int stall(bus_request_t *req) {
        assert_true(F->n_stalled < ELEMENTSOF(F->stalled));
        F->stalled[F->n_stalled] = bus_request_defer(req);
        assert_non_null(F->stalled[F->n_stalled]);
        F->n_stalled++;
        return BUS_DEFERRED;
}

/* SIGCONT: what waited is answered, long after its caller gave up on it. */
static void apiserver_continue(void) {
        F->apiserver_stopped = false;
        for (size_t k = 0; k < F->n_stalled; k++)
                bus_deferred_fail(&F->stalled[k], BUS_ERR_UNAVAILABLE, "too late");
        F->n_stalled = 0;
}

static int fake_ok(bus_request_t *req, msgpack_packer *pk, void *userdata) {
        if (userdata && F->apiserver_stopped)
                return stall(req);
        record(req);
        if (!userdata && F->vmm_stalls_stops && streq(req->method, "instance.stop"))
                return stall(req);
        msgpack_pack_true(pk);
        return 0;
}

static int fake_deployment_list(bus_request_t *req, msgpack_packer *pk, void *userdata) {
        if (F->apiserver_stopped)
                return stall(req);
        record(req);
        for (; F->kicks_in_list > 0; F->kicks_in_list--)
                scheduler_kick(&F->s, "an event while a pass is in flight");
        msgpack_pack_array(pk, F->n_deployments);
        for (size_t k = 0; k < F->n_deployments; k++)
                deployment_pack(pk, &F->deployments[k]);
        return 0;
}

static int fake_deployment_get(bus_request_t *req, msgpack_packer *pk, void *userdata) {
        if (F->apiserver_stopped)
                return stall(req);
        record(req);
        deployment_pack(pk, &F->deployments[0]);
        return 0;
}

static int fake_instance_list(bus_request_t *req, msgpack_packer *pk, void *userdata) {
        record(req);
        msgpack_pack_array(pk, F->n_instances);
        for (size_t k = 0; k < F->n_instances; k++)
                instance_pack(pk, &F->instances[k]);
        return 0;
}

static int fake_instance_create(bus_request_t *req, msgpack_packer *pk, void *userdata) {
        record(req);
        if (F->create_error_code)
                return bus_request_fail(req, F->create_error_code, "%s", F->create_error_message);
        msgpack_pack_true(pk);
        return 0;
}

static const bus_method_t apiserver_methods[] = {
        { "deployment.list", fake_deployment_list },
        { "deployment.get", fake_deployment_get },
        { "deployment.set_status", fake_ok },
        { "deployment.record_exit", fake_ok },
        { "deployment.purge", fake_ok },
        { "event.record", fake_ok },
        {},
};

static const bus_method_t vmm_methods[] = {
        { "instance.list", fake_instance_list },
        { "instance.create", fake_instance_create },
        { "instance.stop", fake_ok },
        { "instance.remove", fake_ok },
        {},
};

static void apiserver_up(void) {
        assert_int_equal(
                bus_server_new(F->ctx.config->bus[HUSK_DAEMON_APISERVER].requests, apiserver_methods, F, &F->apiserver),
                0);
        assert_int_equal(bus_server_attach(F->apiserver, F->ctx.loop), 0);
}

static deployment_t deployment(const char *id, const char *status, uint32_t replicas) {
        return (deployment_t){
                .id = (char *)id,
                .namespace_ = "default",
                .name = (char *)id,
                .generation = 1,
                .status = (char *)status,
                .runtime = "qemu",
                .kind = "worker",
                .image = "/img",
                .replicas = replicas,
                .cpus = 1,
                .memory_mib = 128,
        };
}

static instance_t instance(const char *id, const char *deployment_id, const char *state, uint64_t started_at) {
        return (instance_t){
                .spec = { .instance_id = (char *)id,
                          .deployment_id = (char *)deployment_id,
                          .generation = 1,
                          .runtime = "qemu",
                          .image = "/img",
                          .cpus = 1,
                          .memory_mib = 128,
                          .kind = "worker" },
                .state = (char *)state,
                .started_at = started_at,
                .ready_at = streq(state, "ready") ? started_at + 1 : 0,
                .exit_status = -1,
        };
}

static int setup(void **state) {
        char path[128], yaml[512];
        FILE *f;

        F = calloc(1, sizeof(*F));
        assert_non_null(F);
        snprintf(F->dir, sizeof(F->dir), "/tmp/husk-test-reconcile-XXXXXX");
        assert_non_null(mkdtemp(F->dir));
        snprintf(path, sizeof(path), "%s/config.yaml", F->dir);
        snprintf(yaml, sizeof(yaml),
                 "state_dir: %s/state\nruntime_dir: %s/run\n"
                 "scheduler:\n  request_timeout: 300ms\n  host_memory: 8Gi\n  resync_interval: 1h\n",
                 F->dir, F->dir);
        f = fopen(path, "w");
        assert_non_null(f);
        fputs(yaml, f);
        fclose(f);
        assert_int_equal(husk_config_load(path, &F->ctx.config, NULL), 0);
        F->ctx.loop = zloop_new();
        assert_non_null(F->ctx.loop);
        apiserver_up();
        assert_int_equal(
                bus_server_new(F->ctx.config->bus[HUSK_DAEMON_VMM_DRIVER].requests, vmm_methods, NULL, &F->vmm), 0);
        assert_int_equal(bus_server_attach(F->vmm, F->ctx.loop), 0);
        F->s = (scheduler_t){ .ctx = &F->ctx, .wake_timer = -1, .pass_timer = -1, .resync_timer = -1 };
        assert_int_equal(scheduler_bus_open(&F->s), 0);
        *state = F;
        return 0;
}

static int teardown(void **state) {
        char cmd[128];

        scheduler_bus_close(&F->s);
        apiserver_continue();
        bus_server_destroy(&F->apiserver);
        bus_server_destroy(&F->vmm);
        zloop_destroy(&F->ctx.loop);
        husk_config_free(F->ctx.config);
        for (size_t k = 0; k < F->n_calls; k++) {
                msgpack_unpacked_destroy(&F->calls[k].u);
                msgpack_sbuffer_destroy(&F->calls[k].args);
        }
        snprintf(cmd, sizeof(cmd), "%s/state", F->dir);
        (void)rmdir(cmd);
        snprintf(cmd, sizeof(cmd), "%s/config.yaml", F->dir);
        (void)unlink(cmd);
        free(F);
        F = NULL;
        return 0;
}

/* ---- running the loop -------------------------------------------------------------------------- */

typedef bool (*cond_fn)(void);
static cond_fn until;
static uint64_t until_passes;

static int on_tick(zloop_t *loop, int timer_id, void *arg) {
        F->ticks++;
        return until() ? -1 : 0;
}

static int on_deadline(zloop_t *loop, int timer_id, void *arg) {
        fail_msg("the condition did not hold in time");
        return -1;
}

/* Run the loop until cond holds (checked every 10 ms), failing after timeout_ms. */
static void run_until(cond_fn cond, uint64_t timeout_ms) {
        int tick, deadline;

        until = cond;
        tick = zloop_timer(F->ctx.loop, 10, 0, on_tick, NULL);
        deadline = zloop_timer(F->ctx.loop, timeout_ms, 1, on_deadline, NULL);
        zloop_start(F->ctx.loop);
        zloop_timer_end(F->ctx.loop, tick);
        zloop_timer_end(F->ctx.loop, deadline);
}

static bool passes_reached(void) { return F->s.passes >= until_passes; }

/* Kick a pass and run until n more passes completed. */
static void run_passes(uint64_t n) {
        until_passes = F->s.passes + n;
        scheduler_kick(&F->s, "test");
        run_until(passes_reached, 10000);
}

static size_t count(const char *method) {
        size_t n = 0;

        for (size_t k = 0; k < F->n_calls; k++)
                n += streq(F->calls[k].method, method);
        return n;
}

/* The args of the n-th (0-based) call of method, NULL when there is none. */
static const msgpack_object *args_of(const char *method, size_t n) {
        for (size_t k = 0; k < F->n_calls; k++)
                if (streq(F->calls[k].method, method) && n-- == 0)
                        return &F->calls[k].u.data;
        return NULL;
}

static char *str_of(const msgpack_object *o, const char *key) {
        static char buf[4][256];
        static int slot;
        char *v = NULL;

        if (!o || mp_get_str(o, key, 255, &v) < 0)
                return NULL;
        slot = (slot + 1) % 4;
        snprintf(buf[slot], sizeof(buf[slot]), "%s", v);
        free(v);
        return buf[slot];
}

static uint64_t u64_of(const msgpack_object *o, const char *key) {
        uint64_t v = UINT64_MAX;

        assert_non_null(o);
        (void)mp_get_u64(o, key, &v);
        return v;
}

/* An event.record with this reason; its message, NULL when there is none. */
static const char *event_message(const char *reason) {
        for (size_t k = 0; args_of("event.record", k); k++) {
                const msgpack_object *e = args_of("event.record", k);
                const char *r = str_of(e, "reason");

                if (r && streq(r, reason))
                        return str_of(e, "message");
        }
        return NULL;
}

/* ---- tests ------------------------------------------------------------------------------------- */

static void test_scale_up_creates_the_missing_replicas(void **state) {
        F->deployments[0] = deployment("d1", "pending", 3);
        F->n_deployments = 1;
        F->instances[0] = instance("aaaaaaaaaaaa", "d1", "ready", now_realtime_ms() - 5000);
        F->n_instances = 1;

        run_passes(1);
        assert_int_equal(count("instance.create"), 2);
        for (size_t k = 0; k < 2; k++) {
                assert_string_equal(str_of(args_of("instance.create", k), "deployment_id"), "d1");
                assert_true(instance_id_valid(str_of(args_of("instance.create", k), "instance_id")));
        }
        assert_int_equal(count("instance.stop"), 0);
        assert_string_equal(str_of(args_of("deployment.set_status", 0), "status"), "creating");
        assert_non_null(event_message("InstanceStarted"));
        /* Every call of the pass ended before it counted. */
        assert_int_equal(bus_client_pending(F->s.vmm) + bus_client_pending(F->s.apiserver), 0);
}

static void test_scale_down_stops_the_newest(void **state) {
        uint64_t now = now_realtime_ms();

        F->deployments[0] = deployment("d1", "running", 1);
        F->deployments[0].ready_replicas = 1;
        F->n_deployments = 1;
        F->instances[0] = instance("aaaaaaaaaaa1", "d1", "ready", now - 9000);
        F->instances[1] = instance("aaaaaaaaaaa3", "d1", "ready", now - 1000);
        F->instances[2] = instance("aaaaaaaaaaa2", "d1", "ready", now - 5000);
        F->n_instances = 3;

        run_passes(1);
        assert_int_equal(count("instance.create"), 0);
        assert_int_equal(count("instance.stop"), 2);
        for (size_t k = 0; k < 2; k++) {
                const char *id = str_of(args_of("instance.stop", k), "instance_id");

                assert_true(streq(id, "aaaaaaaaaaa3") || streq(id, "aaaaaaaaaaa2"));
        }
        assert_non_null(strstr(event_message("InstanceStopped"), "scaling down"));

        /* The next pass still sees them (the fake never stops anything) and asks again: a stop is
         * only held back while one for the same instance is in flight. */
        run_passes(1);
        assert_int_equal(count("instance.stop"), 4);
}

static bool creates_seen(void) { return count("instance.create") > 0; }

static void test_crash_is_replaced_after_the_back_off(void **state) {
        uint64_t exited, created_at;

        F->deployments[0] = deployment("d1", "running", 1);
        F->deployments[0].ready_replicas = 1;
        F->n_deployments = 1;
        exited = now_realtime_ms();
        F->instances[0] = instance("aaaaaaaaaaa1", "d1", "exited", exited - 4000);
        F->instances[0].exited_at = exited;
        F->instances[0].exit_reason = "killed";
        F->instances[0].exit_status = 137;
        F->n_instances = 1;

        /* The failure is stored before its instance goes; nothing starts during the back-off. */
        run_passes(1);
        assert_int_equal(u64_of(args_of("deployment.set_status", 0), "restart_count"), 1);
        assert_int_equal(u64_of(args_of("deployment.set_status", 0), "failed_at"), exited);
        assert_string_equal(str_of(args_of("deployment.record_exit", 0), "instance_id"), "aaaaaaaaaaa1");
        assert_string_equal(str_of(args_of("instance.remove", 0), "instance_id"), "aaaaaaaaaaa1");
        assert_non_null(strstr(event_message("InstanceCrashed"), "killed"));
        assert_non_null(strstr(event_message("BackOff"), "restart 1/5 in 1000 ms"));
        assert_int_equal(count("instance.create"), 0);

        /* apiserver stored it and vmm-driver removed it; the wake-up timer starts the replacement. */
        F->deployments[0].restart_count = 1;
        F->deployments[0].failed_at = exited;
        F->deployments[0].status = "creating";
        F->n_instances = 0;
        run_until(creates_seen, 5000);
        created_at = now_realtime_ms();
        assert_true(created_at >= exited + 1000);
        assert_int_equal(count("instance.create"), 1);
}

static void test_job_exit_is_recorded(void **state) {
        F->deployments[0] = deployment("j1", "running", 1);
        F->deployments[0].kind = "job";
        F->n_deployments = 1;
        F->instances[0] = instance("bbbbbbbbbbb1", "j1", "exited", now_realtime_ms() - 3000);
        F->instances[0].spec.kind = "job";
        F->instances[0].exited_at = now_realtime_ms();
        F->instances[0].exit_reason = "guest-shutdown";
        F->instances[0].exit_status = 3;
        F->n_instances = 1;

        run_passes(1);
        {
                const msgpack_object *a = args_of("deployment.set_status", 0);
                int64_t code = 0;

                assert_string_equal(str_of(a, "status"), "failed");
                assert_int_equal(mp_get_i64(a, "exit_code", &code), 0);
                assert_int_equal(code, 3);
                assert_int_equal(u64_of(a, "generation"), 1);
        }
        assert_int_equal(count("deployment.record_exit"), 1);
        assert_int_equal(count("instance.remove"), 1);
        assert_int_equal(count("instance.create"), 0);
}

static void test_create_refused_for_a_taken_port_is_backed_off(void **state) {
        F->deployments[0] = deployment("d1", "pending", 1);
        F->n_deployments = 1;
        F->n_instances = 0;
        F->create_error_code = "port_allocation_failed";
        F->create_error_message = "PortAllocationFailed: ports[0].published: 127.0.0.1:8080/tcp: in use";

        run_passes(1);
        assert_int_equal(count("instance.create"), 1);
        assert_non_null(strstr(event_message("PortAllocationFailed"), "ports[0].published"));
        assert_non_null(strstr(event_message("BackOff"), "create failed"));
        /* Counted like a crash: restart_count 1, back-off before the next try. */
        assert_int_equal(u64_of(args_of("deployment.set_status", 0), "restart_count"), 1);
        assert_null(event_message("InstanceStarted"));

        /* Refused as invalid: a permanent failure, no restarts burned. */
        F->create_error_code = BUS_ERR_INVALID;
        F->create_error_message = "image: no such file";
        F->deployments[0] = deployment("d1", "pending", 1);
        run_passes(1);
        assert_non_null(strstr(event_message("PermanentFailure"), "image: no such file"));
        assert_string_equal(str_of(args_of("deployment.set_status", 1), "status"), "failed");
}

static bool replacement_created(void) { return count("instance.create") > 0; }

static bool apiserver_answered(void) { return F->s.passes >= until_passes; }

static void test_apiserver_down_crash_still_replaced_and_retried(void **state) {
        uint64_t exited, ticks_before;

        F->deployments[0] = deployment("d1", "running", 1);
        F->deployments[0].ready_replicas = 1;
        F->n_deployments = 1;
        F->instances[0] = instance("aaaaaaaaaaa1", "d1", "ready", now_realtime_ms() - 10000);
        F->n_instances = 1;
        run_passes(1);
        assert_int_equal(count("instance.create"), 0);

        /* apiserver goes; the VM dies long enough ago that no back-off holds the replacement. */
        F->apiserver_stopped = true;
        exited = now_realtime_ms() - 3000;
        F->instances[0].state = "exited";
        F->instances[0].exited_at = exited;
        F->instances[0].exit_reason = "killed";
        ticks_before = F->ticks;
        scheduler_kick(&F->s, "instance.exited");
        run_until(replacement_created, 5000);
        /* Acted from the last list apiserver gave; the loop kept turning while it waited. */
        assert_int_equal(count("instance.create"), 1);
        assert_true(F->ticks - ticks_before >= 20); /* 300 ms of request_timeout in 10 ms ticks */
        /* Nothing that needs apiserver's word went out: the exit stays until it is stored. */
        assert_int_equal(count("instance.remove"), 0);
        assert_int_equal(count("instance.stop"), 0);

        /* apiserver is back: a retried pass stores the failure, records the exit and removes it. */
        F->instances[1] = instance("ccccccccccc1", "d1", "running", now_realtime_ms());
        F->n_instances = 2;
        until_passes = F->s.passes + 1;
        apiserver_continue();
        run_until(apiserver_answered, 10000);
        assert_int_equal(count("instance.create"), 1); /* the replacement counts: no second one */
        assert_int_equal(u64_of(args_of("deployment.set_status", count("deployment.set_status") - 1), "restart_count"),
                         1);
        assert_string_equal(str_of(args_of("instance.remove", 0), "instance_id"), "aaaaaaaaaaa1");
}

static bool stop_sent(void) { return count("instance.stop") > 0; }

static void test_a_stop_in_flight_is_not_sent_twice(void **state) {
        uint64_t now = now_realtime_ms();
        const msgpack_object *a = NULL;

        F->deployments[0] = deployment("d1", "running", 1);
        F->deployments[0].ready_replicas = 1;
        F->n_deployments = 1;
        F->instances[0] = instance("aaaaaaaaaaa1", "d1", "ready", now - 9000);
        F->instances[1] = instance("aaaaaaaaaaa2", "d1", "ready", now - 1000);
        F->n_instances = 2;
        F->vmm_stalls_stops = true;

        /* The pass stops the newest; vmm-driver takes its time. */
        until_passes = F->s.passes + 1;
        scheduler_kick(&F->s, "test");
        run_until(stop_sent, 5000);
        assert_null(F->s.pass == NULL ? "the pass ended" : NULL);
        /* Meanwhile its health check gives up on it: counted, but not stopped a second time. */
        scheduler_replace_unhealthy(&F->s, "d1", "aaaaaaaaaaa2", "tcp :80 failed 3 times in a row", false);
        run_until(passes_reached, 5000);
        for (size_t k = 0; (a = args_of("deployment.set_status", k)); k++)
                if (u64_of(a, "restart_count") == 1)
                        break;
        assert_non_null(a);
        assert_int_equal(count("instance.stop"), 1);
}

static uint64_t quiet_until;

static bool quiet_over(void) { return now_monotonic_ms() >= quiet_until; }

static void test_kick_during_a_pass_runs_one_more_after_it(void **state) {
        uint64_t passes;

        F->deployments[0] = deployment("d1", "running", 0);
        F->n_deployments = 1;
        F->n_instances = 0;
        /* Three kicks while the pass is in flight (its deployment.list is being answered). */
        F->kicks_in_list = 3;
        passes = F->s.passes;
        run_passes(2);
        assert_int_equal(count("deployment.list"), 2);
        assert_int_equal(count("instance.list"), 2);
        /* ... and no third pass. */
        quiet_until = now_monotonic_ms() + 200;
        run_until(quiet_over, 5000);
        assert_int_equal(F->s.passes, passes + 2);
        assert_false(F->s.pass_scheduled);
        assert_null(F->s.pass);
}

int main(void) {
        const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
                T(test_scale_up_creates_the_missing_replicas),
                T(test_scale_down_stops_the_newest),
                T(test_crash_is_replaced_after_the_back_off),
                T(test_job_exit_is_recorded),
                T(test_create_refused_for_a_taken_port_is_backed_off),
                T(test_apiserver_down_crash_still_replaced_and_retried),
                T(test_a_stop_in_flight_is_not_sent_twice),
                T(test_kick_during_a_pass_runs_one_more_after_it),
        };

        log_set_max_level(LOG_ERR);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
