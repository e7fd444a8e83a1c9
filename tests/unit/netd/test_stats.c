/* test_stats.c: net.stats's counters, read from a sysfs tree and swapped into the guest's view. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/metrics.h"
#include "services/netd/netd.h"

static void put(const char *dir, const char *name, const char *value) {
        char path[512];
        FILE *f;

        snprintf(path, sizeof(path), "%s/hk0123456789ab/statistics/%s", dir, name);
        f = fopen(path, "we");
        assert_non_null(f);
        fputs(value, f);
        fclose(f);
}

static void test_swapped(void **state) {
        char dir[] = "/tmp/husk-test-sysfs-XXXXXX", sub[512];
        net_counters_t c = {};

        assert_non_null(mkdtemp(dir));
        snprintf(sub, sizeof(sub), "%s/hk0123456789ab/statistics", dir);
        assert_int_equal(mkdir_p(sub, 0755), 0);
        /* The host's end: it received 1000 bytes in 10 packets from the guest, sent it 5000 in 40. */
        put(dir, "rx_bytes", "1000\n");
        put(dir, "rx_packets", "10\n");
        put(dir, "tx_bytes", "5000\n");
        put(dir, "tx_packets", "40\n");
        assert_int_equal(netd_tap_counters(dir, "hk0123456789ab", &c), 0);
        assert_int_equal(c.rx_bytes, 5000);
        assert_int_equal(c.rx_packets, 40);
        assert_int_equal(c.tx_bytes, 1000);
        assert_int_equal(c.tx_packets, 10);

        put(dir, "rx_packets", "many\n");
        assert_int_equal(netd_tap_counters(dir, "hk0123456789ab", &c), -EBADMSG);
        assert_int_equal(netd_tap_counters(dir, "hkffffffffffff", &c), -ENOENT);

        for (const char *const *n = (const char *const[]){ "rx_bytes", "rx_packets", "tx_bytes", "tx_packets", NULL };
             *n; n++) {
                char path[600];
                snprintf(path, sizeof(path), "%s/%s", sub, *n);
                unlink(path);
        }
        rmdir(sub);
        snprintf(sub, sizeof(sub), "%s/hk0123456789ab", dir);
        rmdir(sub);
        rmdir(dir);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_swapped),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
