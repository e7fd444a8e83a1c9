/* test_doctor.c: husk doctor's verdicts: a KVM too slow to use, free disk; and a check's line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "cli/cli_doctor.h"

static void test_kvm_verdict(void **state) {
        char why[160];

        /* Hardware virtualization: a few microseconds per exit. */
        assert_int_equal(doctor_kvm_verdict(&(doctor_kvm_t){ .setup_us = 900, .exits = 100000, .run_us = 250000 }, why,
                                            sizeof(why)),
                         DOCTOR_OK);
        assert_string_equal(why, "2 us per VM exit (100000 exits in 250 ms)");
        /* Nested without help, as on these machines: hundreds of microseconds each. */
        assert_int_equal(doctor_kvm_verdict(&(doctor_kvm_t){ .setup_us = 5000, .exits = 900, .run_us = 300000 }, why,
                                            sizeof(why)),
                         DOCTOR_WARN);
        assert_string_equal(why, "333 us per VM exit, 5 ms to make a vCPU");
        /* Fast exits but a vCPU that takes a tenth of a second to make. */
        assert_int_equal(doctor_kvm_verdict(&(doctor_kvm_t){ .setup_us = 150000, .exits = 1000, .run_us = 2000 }, why,
                                            sizeof(why)),
                         DOCTOR_WARN);
        /* Not one exit within the budget: the timer interrupted it. */
        assert_int_equal(doctor_kvm_verdict(&(doctor_kvm_t){ .setup_us = 100, .interrupted = true, .run_us = 300000 },
                                            why, sizeof(why)),
                         DOCTOR_WARN);
        assert_string_equal(why, "a VM exit did not come back within 300 ms");
}

static void test_kvm_probe_refuses_what_is_not_kvm(void **state) {
        doctor_kvm_t k;

        assert_int_equal(doctor_kvm_probe("/nonexistent/kvm", &k), -ENOENT);
        /* A device that is not KVM: the first ioctl fails, nothing hangs. */
        assert_true(doctor_kvm_probe("/dev/null", &k) < 0);
}

static void test_disk_verdict(void **state) {
        const uint64_t gib = 1024ULL * 1024 * 1024;

        assert_int_equal(doctor_disk_verdict(100 * gib, 200 * gib), DOCTOR_OK);
        assert_int_equal(doctor_disk_verdict(4 * gib, 20 * gib), DOCTOR_WARN);    /* under 5 GiB */
        assert_int_equal(doctor_disk_verdict(50 * gib, 1000 * gib), DOCTOR_WARN); /* under 10 % */
        assert_int_equal(doctor_disk_verdict(gib / 2, 2 * gib), DOCTOR_FAIL);     /* under 1 GiB */
        assert_int_equal(doctor_disk_verdict(19 * gib, 1000 * gib), DOCTOR_FAIL); /* under 2 % */
}

static void test_add(void **state) {
        doctor_t d = { .checks = json_array() };
        const json_t *row;

        doctor_add(&d, "qemu", DOCTOR_OK, "never shown", "%s works", "qemu");
        assert_false(d.failed);
        doctor_add(&d, "nftables", DOCTOR_WARN, "apt-get install nftables", "nft not found");
        assert_false(d.failed);
        doctor_add(&d, "kit", DOCTOR_FAIL, NULL, "kit.kernel missing");
        assert_true(d.failed);
        row = json_array_get(d.checks, 0);
        assert_string_equal(json_string_value(json_object_get(row, "status")), "ok");
        assert_null(json_object_get(row, "fix")); /* an ok line needs no fix */
        row = json_array_get(d.checks, 1);
        assert_string_equal(json_string_value(json_object_get(row, "fix")), "apt-get install nftables");
        row = json_array_get(d.checks, 2);
        assert_string_equal(json_string_value(json_object_get(row, "status")), "fail");
        assert_string_equal(json_string_value(json_object_get(row, "message")), "kit.kernel missing");
        json_decref(d.checks);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_kvm_verdict),
                cmocka_unit_test(test_kvm_probe_refuses_what_is_not_kvm),
                cmocka_unit_test(test_disk_verdict),
                cmocka_unit_test(test_add),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
