/* test_plan.c: the scheduler's decisions for every situation a deployment can be in. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "lib/util.h"
#include "services/scheduler/scheduler.h"

static deployment_t deployment(const char *status, uint32_t replicas, uint64_t generation) {
        return (deployment_t){
                .id = "d1",
                .namespace_ = "default",
                .name = "web",
                .generation = generation,
                .status = (char *)status,
                .runtime = "qemu",
                .kind = "worker",
                .image = "/img",
                .replicas = replicas,
                .cpus = 1,
                .memory_mib = 256,
        };
}

static instance_t instance(const char *id, const char *deployment_id, const char *state, uint64_t generation,
                           uint64_t started_at) {
        return (instance_t){
                .spec = { .instance_id = (char *)id,
                          .deployment_id = (char *)deployment_id,
                          .generation = generation,
                          .runtime = "qemu",
                          .image = "/img",
                          .cpus = 1,
                          .memory_mib = 256 },
                .state = (char *)state,
                .started_at = started_at,
                .exit_status = -1,
        };
}

static bool plan_stops(const plan_t *p, const char *id) {
        for (size_t k = 0; k < p->n_stop; k++)
                if (strcmp(p->stop[k]->spec.instance_id, id) == 0)
                        return true;
        return false;
}

static void test_new_deployment_creates_all_replicas(void **state) {
        deployment_t d = deployment("pending", 3, 1);
        plan_t p;

        assert_int_equal(scheduler_plan(&d, NULL, 0, &p), 0);
        assert_int_equal(p.create, 3);
        assert_int_equal(p.n_stop, 0);
        assert_string_equal(p.status, "creating");
        assert_string_equal(p.message, "0/3 instances ready");
        plan_clear(&p);
}

static void test_all_ready_is_running_and_creates_nothing(void **state) {
        deployment_t d = deployment("creating", 2, 1);
        instance_t is[] = { instance("a", "d1", "ready", 1, 10), instance("b", "d1", "ready", 1, 11),
                            instance("x", "other", "ready", 1, 12) };
        plan_t p;

        assert_int_equal(scheduler_plan(&d, is, 3, &p), 0);
        assert_int_equal(p.create, 0);
        assert_int_equal(p.ready, 2);
        assert_string_equal(p.status, "running");
        plan_clear(&p);
}

static void test_booting_instances_count_as_present(void **state) {
        deployment_t d = deployment("creating", 2, 1);
        instance_t is[] = { instance("a", "d1", "starting", 1, 10), instance("b", "d1", "running", 1, 11) };
        plan_t p;

        assert_int_equal(scheduler_plan(&d, is, 2, &p), 0);
        assert_int_equal(p.create, 0); /* no duplicates while the guests boot */
        assert_string_equal(p.status, "creating");
        plan_clear(&p);
}

static void test_crashed_instance_is_removed_and_replaced(void **state) {
        deployment_t d = deployment("running", 2, 1);
        instance_t is[] = { instance("a", "d1", "ready", 1, 10), instance("b", "d1", "exited", 1, 11) };
        plan_t p;

        assert_int_equal(scheduler_plan(&d, is, 2, &p), 0);
        assert_int_equal(p.n_remove, 1);
        assert_string_equal(p.remove[0]->spec.instance_id, "b");
        assert_int_equal(p.create, 1);
        assert_string_equal(p.status, "creating");
        plan_clear(&p);
}

static void test_scale_down_stops_newest_first(void **state) {
        deployment_t d = deployment("running", 1, 1);
        instance_t is[] = { instance("old", "d1", "ready", 1, 10), instance("new", "d1", "ready", 1, 30),
                            instance("mid", "d1", "ready", 1, 20) };
        plan_t p;

        assert_int_equal(scheduler_plan(&d, is, 3, &p), 0);
        assert_int_equal(p.n_stop, 2);
        assert_true(plan_stops(&p, "new"));
        assert_true(plan_stops(&p, "mid"));
        assert_false(plan_stops(&p, "old"));
        plan_clear(&p);
}

static void test_stopping_instances_are_not_counted_or_stopped_again(void **state) {
        deployment_t d = deployment("running", 1, 1);
        instance_t is[] = { instance("a", "d1", "stopping", 1, 10) };
        plan_t p;

        assert_int_equal(scheduler_plan(&d, is, 1, &p), 0);
        assert_int_equal(p.create, 1);
        assert_int_equal(p.n_stop, 0);
        plan_clear(&p);
}

static void test_deleted_stops_everything_then_purges(void **state) {
        deployment_t d = deployment("deleted", 2, 1);
        instance_t is[] = { instance("a", "d1", "ready", 1, 10), instance("b", "d1", "exited", 1, 11) };
        plan_t p;

        assert_int_equal(scheduler_plan(&d, is, 2, &p), 0);
        assert_int_equal(p.create, 0);
        assert_int_equal(p.n_stop, 1);
        assert_int_equal(p.n_remove, 1);
        assert_false(p.purge);
        assert_null(p.status);
        plan_clear(&p);

        instance_t stopping[] = { instance("a", "d1", "stopping", 1, 10) };
        assert_int_equal(scheduler_plan(&d, stopping, 1, &p), 0);
        assert_false(p.purge); /* wait until the VM is really gone */
        plan_clear(&p);

        assert_int_equal(scheduler_plan(&d, NULL, 0, &p), 0);
        assert_true(p.purge);
        plan_clear(&p);
}

static void test_changed_spec_replaces_old_only_when_ready(void **state) {
        deployment_t d = deployment("running", 1, 2);
        instance_t booting[] = { instance("old", "d1", "ready", 1, 10), instance("new", "d1", "running", 2, 20) };
        instance_t ready[] = { instance("old", "d1", "ready", 1, 10), instance("new", "d1", "ready", 2, 20) };
        plan_t p;

        d.image = "/img2";
        booting[1].spec.image = ready[1].spec.image = "/img2";

        /* Old generation only: start the new one, keep the old serving. */
        assert_int_equal(scheduler_plan(&d, booting, 1, &p), 0);
        assert_int_equal(p.create, 1);
        assert_int_equal(p.n_stop, 0);
        plan_clear(&p);

        assert_int_equal(scheduler_plan(&d, booting, 2, &p), 0);
        assert_int_equal(p.create, 0);
        assert_int_equal(p.n_stop, 0);
        plan_clear(&p);

        assert_int_equal(scheduler_plan(&d, ready, 2, &p), 0);
        assert_int_equal(p.n_stop, 1);
        assert_true(plan_stops(&p, "old"));
        assert_string_equal(p.status, "running");
        plan_clear(&p);
}

static void test_scaling_never_replaces_instances(void **state) {
        /* Changing replicas bumps the generation, but the instances still run the spec. */
        deployment_t d = deployment("running", 3, 2);
        instance_t is[] = { instance("a", "d1", "ready", 1, 10), instance("b", "d1", "ready", 1, 11) };
        plan_t p;

        assert_int_equal(scheduler_plan(&d, is, 2, &p), 0);
        assert_int_equal(p.create, 1);
        assert_int_equal(p.n_stop, 0);
        assert_int_equal(p.ready, 2);
        plan_clear(&p);
}

static void test_each_template_field_change_replaces(void **state) {
        instance_t is[] = { instance("a", "d1", "ready", 1, 10) };
        plan_t p;

        is[0].spec.cpus = 1;
        is[0].spec.memory_mib = 256;
        for (int field = 0; field < 5; field++) {
                deployment_t d = deployment("running", 1, 2);
                switch (field) {
                case 0:
                        d.image = "/other";
                        break;
                case 1:
                        d.cpus = 2;
                        break;
                case 2:
                        d.memory_mib = 512;
                        break;
                case 3:
                        d.kernel = "/vmlinux2";
                        break;
                case 4:
                        d.boot = "kit"; /* the disk was booted by its firmware */
                        break;
                }
                assert_int_equal(scheduler_plan(&d, is, 1, &p), 0);
                assert_int_equal(p.create, 1);
                assert_int_equal(p.ready, 0);
                plan_clear(&p);
        }
}

static void test_zero_replicas_is_running_with_nothing(void **state) {
        deployment_t d = deployment("running", 0, 1);
        instance_t is[] = { instance("a", "d1", "ready", 1, 10) };
        plan_t p;

        assert_int_equal(scheduler_plan(&d, is, 1, &p), 0);
        assert_int_equal(p.n_stop, 1);
        assert_string_equal(p.status, "running");
        plan_clear(&p);
}

static void test_failed_waits_for_new_generation(void **state) {
        deployment_t d = deployment("failed", 2, 1);
        plan_t p;

        assert_int_equal(scheduler_plan(&d, NULL, 0, &p), 0);
        assert_int_equal(p.create, 0);
        assert_null(p.status);
        plan_clear(&p);
}

static void test_job_exit_status_decides_completed_or_failed(void **state) {
        deployment_t d = deployment("running", 1, 1);
        instance_t is[] = { instance("a", "d1", "exited", 1, 10) };
        plan_t p;

        d.kind = "job";
        is[0].exit_status = 0;
        assert_int_equal(scheduler_plan(&d, is, 1, &p), 0);
        assert_int_equal(p.create, 0);
        assert_string_equal(p.status, "completed");
        assert_true(p.has_exit_code);
        assert_int_equal(p.exit_code, 0);
        plan_clear(&p);

        /* The exit code is a field, stored with the status before the instance goes. */
        is[0].exit_status = 3;
        assert_int_equal(scheduler_plan(&d, is, 1, &p), 0);
        assert_string_equal(p.status, "failed");
        assert_string_equal(p.message, "job exited with status 3");
        assert_true(p.has_exit_code);
        assert_int_equal(p.exit_code, 3);
        assert_int_equal(p.n_remove, 1);
        plan_clear(&p);

        /* A worker has none. */
        d.kind = "worker";
        assert_int_equal(scheduler_plan(&d, is, 1, &p), 0);
        assert_false(p.has_exit_code);
        assert_false(p.job_ended);
        plan_clear(&p);
}

/* Issue 11: a job's VM that rebooted, panicked, was killed or crashed failed, whatever the status
 * QEMU exited with (0 for a guest reset): the reason is in the message, and no exit code is made up. */
static void test_job_that_did_not_power_off_failed(void **state) {
        static const struct {
                const char *reason;
                int64_t status;
                const char *message;
        } cases[] = {
                { "guest-reset", 0,
                  "job failed, the guest rebooted instead of powering off: instance a exited (guest-reset, status 0)" },
                { "guest-panic", 0,
                  "job failed, the guest kernel panicked: instance a exited (guest-panic, status 0)" },
                { "killed", 137, "job failed, the VM was killed: instance a exited (killed, status 137)" },
                { "crashed", 1, "job failed, the VMM crashed: instance a exited (crashed, status 1)" },
                { "vanished", -1,
                  "job failed, the VM was gone when vmm-driver came back: instance a exited (vanished, status -1)" },
        };
        deployment_t d = deployment("running", 1, 1);
        instance_t is[] = { instance("a", "d1", "exited", 1, 10) };
        plan_t p;

        d.kind = "job";
        for (size_t k = 0; k < ELEMENTSOF(cases); k++) {
                is[0].exit_reason = (char *)cases[k].reason;
                is[0].exit_status = cases[k].status;
                assert_int_equal(scheduler_plan(&d, is, 1, &p), 0);
                assert_string_equal(p.status, "failed");
                assert_string_equal(p.message, cases[k].message);
                assert_true(p.job_ended);
                assert_false(p.has_exit_code);
                assert_int_equal(p.create, 0);
                assert_int_equal(p.n_remove, 1);
                plan_clear(&p);
        }

        /* Powered off (or the agent did, after the workload): the status decides. */
        is[0].exit_reason = (char *)"guest-shutdown";
        is[0].exit_status = 0;
        assert_int_equal(scheduler_plan(&d, is, 1, &p), 0);
        assert_string_equal(p.status, "completed");
        assert_true(p.job_ended && p.has_exit_code);
        plan_clear(&p);
}

/* ---- restarts and back-off ---------------------------------------------------------------- */

static instance_t exited(const char *id, const char *reason, uint64_t exited_at) {
        instance_t i = instance(id, "d1", "exited", 1, 10);

        i.exit_reason = (char *)reason;
        i.exited_at = exited_at;
        i.exit_status = 1;
        return i;
}

/* Issue 20: what the VMM said last is in the event and, once it loops, in the status message. */
static void test_exit_message_is_quoted(void **state) {
        deployment_t d = deployment("running", 1, 1);
        instance_t is[] = { exited("a", "crashed", 100000) };
        char text[256];
        plan_t p;

        is[0].exit_message = (char *)"qemu: linux kernel too old to load a ram disk";
        plan_describe_exit(&is[0], text, sizeof(text));
        assert_string_equal(text,
                            "instance a exited (crashed, status 1): qemu: linux kernel too old to load a ram disk");
        is[0].exit_message = NULL;
        plan_describe_exit(&is[0], text, sizeof(text));
        assert_string_equal(text, "instance a exited (crashed, status 1)");

        is[0].exit_message = (char *)"qemu: linux kernel too old to load a ram disk";
        d.restart_count = SCHEDULER_MAX_RESTART_COUNT;
        assert_int_equal(scheduler_plan_at(&d, is, 1, 100005, NULL, &p), 0);
        assert_string_equal(p.status, DEPLOYMENT_STATUS_CRASH_LOOP);
        assert_non_null(strstr(p.message, "too old to load a ram disk after 5 restarts"));
        assert_non_null(strstr(p.event_message, "too old to load a ram disk"));
        plan_clear(&p);

        /* Later passes of the crash loop keep that message. */
        d.status = (char *)DEPLOYMENT_STATUS_CRASH_LOOP;
        d.status_message = (char *)"instance a exited (crashed, status 1): qemu: linux kernel too old after 5 restarts";
        assert_int_equal(scheduler_plan_at(&d, NULL, 0, 200000, NULL, &p), 0);
        assert_string_equal(p.status, DEPLOYMENT_STATUS_CRASH_LOOP);
        assert_string_equal(p.message, d.status_message);
        plan_clear(&p);
}

static void test_backoff_doubles_and_caps(void **state) {
        const uint64_t want[] = { 0, 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000 };

        for (uint32_t n = 0; n < 10; n++)
                assert_int_equal(plan_backoff_ms(n), want[n]);
        assert_int_equal(plan_backoff_ms(UINT32_MAX), 60000);
}

static void test_exit_is_counted_then_backed_off(void **state) {
        deployment_t d = deployment("running", 1, 1);
        instance_t is[] = { exited("a", "guest-shutdown", 100000) };
        plan_t p;

        assert_int_equal(scheduler_plan_at(&d, is, 1, 100005, NULL, &p), 0);
        assert_int_equal(p.n_remove, 1);
        assert_true(p.persist_restarts);
        assert_int_equal(p.restart_count, 1);
        assert_int_equal(p.failed_at, 100000);
        assert_int_equal(p.create, 0); /* not before 1 s after the exit */
        assert_int_equal(p.wake_at, 101000);
        assert_string_equal(p.event_reason, "BackOff");
        assert_non_null(strstr(p.event_message, "instance a exited (guest-shutdown, status 1)"));
        assert_string_equal(p.status, "creating");
        plan_clear(&p);

        /* The next pass (the instance removed, the count stored): creates once the delay is over. */
        d.restart_count = 1;
        d.failed_at = 100000;
        assert_int_equal(scheduler_plan_at(&d, NULL, 0, 100999, NULL, &p), 0);
        assert_int_equal(p.create, 0);
        assert_int_equal(p.wake_at, 101000);
        assert_false(p.persist_restarts);
        assert_non_null(strstr(p.message, "back-off"));
        plan_clear(&p);
        assert_int_equal(scheduler_plan_at(&d, NULL, 0, 101000, NULL, &p), 0);
        assert_int_equal(p.create, 1);
        plan_clear(&p);

        /* The third failure in a row waits 4 s. */
        d.restart_count = 2;
        is[0].exited_at = 200000;
        assert_int_equal(scheduler_plan_at(&d, is, 1, 200001, NULL, &p), 0);
        assert_int_equal(p.restart_count, 3);
        assert_int_equal(p.wake_at, 204000);
        plan_clear(&p);
}

static void test_counted_exit_is_not_counted_again(void **state) {
        deployment_t d = deployment("running", 1, 1);
        instance_t is[] = { exited("a", "crashed", 100000) };
        plan_t p;

        d.restart_count = 1;
        d.failed_at = 100000; /* stored, but removing the instance failed last time */
        assert_int_equal(scheduler_plan_at(&d, is, 1, 100500, NULL, &p), 0);
        assert_false(p.persist_restarts);
        assert_int_equal(p.restart_count, 1);
        assert_int_equal(p.n_remove, 1);
        assert_null(p.event_reason);
        plan_clear(&p);
}

static void test_our_stops_are_not_failures(void **state) {
        deployment_t d = deployment("running", 1, 1);
        instance_t is[] = { exited("a", "stopped", 100000) };
        plan_t p;

        assert_int_equal(scheduler_plan_at(&d, is, 1, 100001, NULL, &p), 0);
        assert_false(p.persist_restarts);
        assert_int_equal(p.create, 1);
        plan_clear(&p);
}

static void test_sixth_failure_is_a_crash_loop(void **state) {
        deployment_t d = deployment("creating", 1, 1);
        instance_t is[] = { exited("a", "guest-shutdown", 900000) };
        plan_t p;

        d.restart_count = SCHEDULER_MAX_RESTART_COUNT;
        d.failed_at = 800000;
        assert_int_equal(scheduler_plan_at(&d, is, 1, 900001, NULL, &p), 0);
        assert_string_equal(p.status, "crash_loop_back_off");
        assert_int_equal(p.create, 0);
        assert_int_equal(p.n_remove, 1);
        assert_true(p.persist_restarts);
        assert_int_equal(p.restart_count, SCHEDULER_MAX_RESTART_COUNT);
        assert_int_equal(p.failed_at, 900000);
        assert_string_equal(p.event_reason, "CrashLoopBackOff");
        assert_string_equal(p.event_level, "error");
        plan_clear(&p);

        /* And it stays there, starting nothing, until a re-apply resets it. */
        d.status = "crash_loop_back_off";
        d.failed_at = 900000;
        assert_int_equal(scheduler_plan_at(&d, NULL, 0, 999999, NULL, &p), 0);
        assert_string_equal(p.status, "crash_loop_back_off");
        assert_int_equal(p.create, 0);
        plan_clear(&p);
}

static void test_healthy_for_min_time_resets_the_count(void **state) {
        deployment_t d = deployment("running", 1, 1);
        instance_t is[] = { instance("a", "d1", "ready", 1, 10) };
        plan_t p;

        is[0].ready_at = 50000;
        d.restart_count = 3;
        d.failed_at = 40000;
        assert_int_equal(scheduler_plan_at(&d, is, 1, 55000, NULL, &p), 0);
        assert_false(p.persist_restarts);
        assert_int_equal(p.wake_at, 50000 + SCHEDULER_MIN_HEALTHY_MS);
        plan_clear(&p);
        assert_int_equal(scheduler_plan_at(&d, is, 1, 50000 + SCHEDULER_MIN_HEALTHY_MS, NULL, &p), 0);
        assert_true(p.persist_restarts);
        assert_int_equal(p.restart_count, 0);
        assert_int_equal(p.failed_at, 40000); /* never goes back: it tells counted exits apart */
        plan_clear(&p);
}

static void test_create_failure_counts_as_an_attempt(void **state) {
        deployment_t d = deployment("creating", 1, 1);
        plan_t p = {};

        d.restart_count = 1;
        assert_true(plan_failures(&d, 1, 7000, "create failed (unavailable: port 80 taken)", &p));
        assert_int_equal(p.restart_count, 2);
        assert_int_equal(p.wake_at, 9000);
        assert_string_equal(p.event_reason, "BackOff");
}

/* ---- admission and boot slots --------------------------------------------------------------- */

static void test_memory_admission_creates_what_fits_and_says_why(void **state) {
        deployment_t d = deployment("pending", 3, 1);
        plan_host_t host = { .memory_capacity_mib = 1024, .memory_used_mib = 768 };
        plan_t p;

        assert_int_equal(scheduler_plan_at(&d, NULL, 0, 1000, &host, &p), 0);
        assert_int_equal(p.create, 1);
        assert_string_equal(p.status, "insufficient_resources");
        assert_non_null(strstr(p.message, "2 more need 256 MiB each, 256 of 1024 MiB of host memory free"));
        assert_string_equal(p.event_reason, "InsufficientResources");
        plan_clear(&p);

        /* Said once: no new event while the status stays. */
        d.status = "insufficient_resources";
        host.memory_used_mib = 1024;
        assert_int_equal(scheduler_plan_at(&d, NULL, 0, 1000, &host, &p), 0);
        assert_int_equal(p.create, 0);
        assert_string_equal(p.status, "insufficient_resources");
        assert_null(p.event_reason);
        plan_clear(&p);

        /* Room again: back to creating. */
        host.memory_used_mib = 0;
        assert_int_equal(scheduler_plan_at(&d, NULL, 0, 1000, &host, &p), 0);
        assert_int_equal(p.create, 3);
        assert_string_equal(p.status, "creating");
        plan_clear(&p);
}

static void test_boot_slots_bound_the_creates(void **state) {
        deployment_t d = deployment("pending", 5, 1);
        plan_host_t host = { .create_concurrency = 2, .booting = 1 };
        plan_t p;

        assert_int_equal(scheduler_plan_at(&d, NULL, 0, 1000, &host, &p), 0);
        assert_int_equal(p.create, 1);
        assert_string_equal(p.status, "creating");
        plan_clear(&p);
        host.create_concurrency = 0;
        assert_int_equal(scheduler_plan_at(&d, NULL, 0, 1000, &host, &p), 0);
        assert_int_equal(p.create, 5);
        plan_clear(&p);
}

static void test_host_count(void **state) {
        instance_t is[] = {
                instance("a", "d1", "ready", 1, 500000),    instance("b", "d2", "starting", 1, 590000),
                instance("c", "d1", "running", 1, 100000),  instance("d", "d1", "exited", 1, 590000),
                instance("e", "d3", "stopping", 1, 590000),
        };
        plan_host_t host = {};

        plan_host_count(&host, is, 5, 600000);
        assert_int_equal(host.memory_used_mib, 4 * 256); /* every live one, stopping included */
        assert_int_equal(host.booting, 1);               /* b; c has been booting too long to count */
}

static void test_stalled_rolling_update_keeps_the_old_and_says_why(void **state) {
        deployment_t d = deployment("running", 1, 2);
        instance_t is[] = { instance("old", "d1", "ready", 1, 10), instance("new", "d1", "running", 2, 1000) };
        plan_host_t host = { .progress_deadline_ms = 60000 };
        plan_t p;

        is[0].spec.image = "/old-img";
        assert_int_equal(scheduler_plan_at(&d, is, 2, 30000, &host, &p), 0);
        assert_int_equal(p.n_stop, 0); /* the new one is not ready: the old one serves */
        assert_int_equal(p.create, 0);
        assert_int_equal(p.wake_at, 61000);
        assert_null(strstr(p.message, "stalled"));
        plan_clear(&p);

        assert_int_equal(scheduler_plan_at(&d, is, 2, 61000, &host, &p), 0);
        assert_int_equal(p.n_stop, 0);
        assert_non_null(strstr(p.message, "rolling update stalled: 0/1 new instances ready after the 60 s deadline; "
                                          "1 old instance keeps serving"));
        plan_clear(&p);

        /* Ready at last: the old one goes. */
        is[1].state = "ready";
        assert_int_equal(scheduler_plan_at(&d, is, 2, 62000, &host, &p), 0);
        assert_int_equal(p.n_stop, 1);
        assert_string_equal(p.stop[0]->spec.instance_id, "old");
        assert_string_equal(p.status, "running");
        plan_clear(&p);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_new_deployment_creates_all_replicas),
                cmocka_unit_test(test_all_ready_is_running_and_creates_nothing),
                cmocka_unit_test(test_booting_instances_count_as_present),
                cmocka_unit_test(test_crashed_instance_is_removed_and_replaced),
                cmocka_unit_test(test_scale_down_stops_newest_first),
                cmocka_unit_test(test_stopping_instances_are_not_counted_or_stopped_again),
                cmocka_unit_test(test_deleted_stops_everything_then_purges),
                cmocka_unit_test(test_changed_spec_replaces_old_only_when_ready),
                cmocka_unit_test(test_scaling_never_replaces_instances),
                cmocka_unit_test(test_each_template_field_change_replaces),
                cmocka_unit_test(test_zero_replicas_is_running_with_nothing),
                cmocka_unit_test(test_failed_waits_for_new_generation),
                cmocka_unit_test(test_job_exit_status_decides_completed_or_failed),
                cmocka_unit_test(test_job_that_did_not_power_off_failed),
                cmocka_unit_test(test_backoff_doubles_and_caps),
                cmocka_unit_test(test_exit_message_is_quoted),
                cmocka_unit_test(test_exit_is_counted_then_backed_off),
                cmocka_unit_test(test_counted_exit_is_not_counted_again),
                cmocka_unit_test(test_our_stops_are_not_failures),
                cmocka_unit_test(test_sixth_failure_is_a_crash_loop),
                cmocka_unit_test(test_healthy_for_min_time_resets_the_count),
                cmocka_unit_test(test_create_failure_counts_as_an_attempt),
                cmocka_unit_test(test_memory_admission_creates_what_fits_and_says_why),
                cmocka_unit_test(test_boot_slots_bound_the_creates),
                cmocka_unit_test(test_host_count),
                cmocka_unit_test(test_stalled_rolling_update_keeps_the_old_and_says_why),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
