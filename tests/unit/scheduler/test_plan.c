/* test_plan.c: the scheduler's decisions for every situation a deployment can be in. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "services/scheduler/scheduler.h"

static deployment_t deployment(const char *status, uint32_t replicas, uint64_t generation) {
        return (deployment_t){
                .id = "d1", .namespace_ = "default", .name = "web", .generation = generation,
                .status = (char *)status, .runtime = "qemu", .kind = "worker", .image = "/img",
                .replicas = replicas, .cpus = 1, .memory_mib = 256,
        };
}

static instance_t instance(const char *id, const char *deployment_id, const char *state,
                           uint64_t generation, uint64_t started_at) {
        return (instance_t){
                .spec = { .instance_id = (char *)id, .deployment_id = (char *)deployment_id,
                          .generation = generation, .runtime = "qemu", .image = "/img",
                          .cpus = 1, .memory_mib = 256 },
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
        for (int field = 0; field < 4; field++) {
                deployment_t d = deployment("running", 1, 2);
                switch (field) {
                case 0: d.image = "/other"; break;
                case 1: d.cpus = 2; break;
                case 2: d.memory_mib = 512; break;
                case 3: d.kernel = "/vmlinux2"; break;
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
        plan_clear(&p);

        is[0].exit_status = 3;
        assert_int_equal(scheduler_plan(&d, is, 1, &p), 0);
        assert_string_equal(p.status, "failed");
        assert_string_equal(p.message, "job exited with status 3");
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
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
