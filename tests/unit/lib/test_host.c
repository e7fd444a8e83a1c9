/* test_host.c: /proc/meminfo parsing and the disk under a path that does not exist yet. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>

#include "lib/host.h"

static void test_meminfo_parse(void **state) {
        host_memory_t m;

        assert_int_equal(host_meminfo_parse("MemTotal:       24576000 kB\nMemFree:          100 kB\n"
                                            "MemAvailable:   20480000 kB\nBuffers: 1 kB\n",
                                            &m),
                         0);
        assert_int_equal(m.total_bytes, 24576000ULL * 1024);
        assert_int_equal(m.available_bytes, 20480000ULL * 1024);
        /* An old kernel without MemAvailable: MemFree. */
        assert_int_equal(host_meminfo_parse("MemTotal: 2048 kB\nMemFree: 1024 kB\n", &m), 0);
        assert_int_equal(m.available_bytes, 1024 * 1024);
        /* A key that merely starts the same is not the key. */
        assert_int_equal(host_meminfo_parse("MemTotalX: 5 kB\nMemFree: 1 kB\n", &m), -EBADMSG);
        assert_int_equal(host_meminfo_parse("MemTotal: lots\nMemFree: 1 kB\n", &m), -EBADMSG);
        assert_int_equal(host_meminfo_parse("MemTotal: 99999999999999999999 kB\nMemFree: 1 kB\n", &m), -EBADMSG);
        assert_int_equal(host_meminfo_parse("", &m), -EBADMSG);
        assert_int_equal(host_memory(&m), 0);
        assert_true(m.total_bytes > 0 && m.available_bytes <= m.total_bytes);
}

static void test_disk(void **state) {
        host_disk_t a, b;

        assert_int_equal(host_disk("/", &a), 0);
        assert_true(a.total_bytes > 0 && a.available_bytes <= a.total_bytes);
        /* A state dir not made yet: its nearest existing parent's file system. */
        assert_int_equal(host_disk("/tmp/husk-test-host-does-not-exist/state/deeper", &b), 0);
        assert_true(b.total_bytes > 0);
        assert_int_equal(host_disk("no-slash-and-absent", &b), -ENOENT);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_meminfo_parse),
                cmocka_unit_test(test_disk),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
