/* test_plan_ports.c: published ports are part of what an instance runs: a change replaces it, the same ports keep it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "services/scheduler/scheduler.h"

static port_spec_t p8080[] = { { .published = 8080, .target = 80 } };
static port_spec_t p9090[] = { { .published = 9090, .target = 80 } };

static deployment_t deployment(port_spec_t *ports, size_t n) {
        return (deployment_t){
                .id = "d1",
                .namespace_ = "default",
                .name = "web",
                .generation = 2,
                .status = "running",
                .runtime = "qemu",
                .kind = "worker",
                .image = "/img",
                .replicas = 1,
                .cpus = 1,
                .memory_mib = 256,
                .ports = ports,
                .n_ports = n,
        };
}

static instance_t instance(port_spec_t *ports, size_t n) {
        return (instance_t){
                .spec = { .instance_id = "a",
                          .deployment_id = "d1",
                          .generation = 1,
                          .runtime = "qemu",
                          .image = "/img",
                          .cpus = 1,
                          .memory_mib = 256,
                          .ports = ports,
                          .n_ports = n },
                .state = "ready",
                .started_at = 10,
                .exit_status = -1,
        };
}

static void test_same_ports_keep_the_instance(void **state) {
        deployment_t d = deployment(p8080, 1);
        instance_t i = instance(p8080, 1);
        plan_t p;

        assert_int_equal(scheduler_plan(&d, &i, 1, &p), 0);
        assert_int_equal(p.create, 0);
        assert_int_equal(p.n_stop, 0);
        plan_clear(&p);
}

static void test_changed_ports_replace_the_instance(void **state) {
        static const struct {
                port_spec_t *d, *i;
                size_t nd, ni;
        } cases[] = { { p9090, p8080, 1, 1 }, { p8080, NULL, 1, 0 }, { NULL, p8080, 0, 1 } };

        for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
                deployment_t d = deployment(cases[k].d, cases[k].nd);
                instance_t i = instance(cases[k].i, cases[k].ni);
                plan_t p;

                assert_int_equal(scheduler_plan(&d, &i, 1, &p), 0);
                assert_int_equal(p.create, 1); /* a new instance with the new ports */
                plan_clear(&p);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_same_ports_keep_the_instance),
                cmocka_unit_test(test_changed_ports_replace_the_instance),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
