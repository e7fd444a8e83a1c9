/* test_prom.c: GET /metrics's exposition writer: escaping, names, values, histogram shape. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "services/apiserver/apiserver_prom.h"

static const char *text(prom_t *p) {
        size_t size;

        return prom_text(p, &size);
}

static void test_label_escaping(void **state) {
        prom_t p;

        assert_int_equal(prom_open(&p), 0);
        prom_family(&p, "husk_x", "gauge", "Help with a \\ backslash\nand a newline.");
        /* A deployment name cannot hold these, but a label value may come from anywhere. */
        prom_sample(&p, "husk_x", (const char *[]){ "deployment", "a\"b\\c\nd", "namespace", "ns", NULL }, 1);
        assert_string_equal(text(&p), "# HELP husk_x Help with a \\\\ backslash\\nand a newline.\n"
                                      "# TYPE husk_x gauge\n"
                                      "husk_x{deployment=\"a\\\"b\\\\c\\nd\",namespace=\"ns\"} 1\n");
        prom_close(&p);
}

static void test_names_and_values(void **state) {
        prom_t p;

        assert_int_equal(prom_open(&p), 0);
        /* Names from another daemon are made valid rather than trusted. */
        prom_sample(&p, "husk_a-b.c", (const char *[]){ "bad-label", "v", "9x", "w", NULL }, 0.5);
        prom_sample(&p, "9lives", NULL, 12345678901234.0);
        prom_sample(&p, "husk_nan", NULL, NAN);
        prom_sample(&p, "husk_inf", NULL, -INFINITY);
        prom_sample(&p, "husk_neg", NULL, -3);
        assert_string_equal(text(&p), "husk_a_b_c{bad_label=\"v\",_x=\"w\"} 0.5\n"
                                      "_lives 12345678901234\n"
                                      "husk_nan NaN\n"
                                      "husk_inf -Inf\n"
                                      "husk_neg -3\n");
        prom_close(&p);
}

static void test_histogram_shape(void **state) {
        static const double bounds[] = { 0.001, 0.01, 0.1 };
        /* Per bucket, not cumulated: 2 at most 1 ms, 0 in (1, 10] ms, 3 in (10, 100] ms, 1 above. */
        static const uint64_t buckets[] = { 2, 0, 3, 1 };
        prom_t p;

        assert_int_equal(prom_open(&p), 0);
        prom_family(&p, "husk_bus_request_duration_seconds", "histogram", "Latency.");
        prom_histogram(&p, "husk_bus_request_duration_seconds",
                       (const char *[]){ "daemon", "netd", "method", "net.stats", NULL }, bounds, 3, buckets, 0.75, 6);
        assert_string_equal(
                text(&p),
                "# HELP husk_bus_request_duration_seconds Latency.\n"
                "# TYPE husk_bus_request_duration_seconds histogram\n"
                "husk_bus_request_duration_seconds_bucket{daemon=\"netd\",method=\"net.stats\",le=\"0.001\"} 2\n"
                "husk_bus_request_duration_seconds_bucket{daemon=\"netd\",method=\"net.stats\",le=\"0.01\"} 2\n"
                "husk_bus_request_duration_seconds_bucket{daemon=\"netd\",method=\"net.stats\",le=\"0.1\"} 5\n"
                "husk_bus_request_duration_seconds_bucket{daemon=\"netd\",method=\"net.stats\",le=\"+Inf\"} 6\n"
                "husk_bus_request_duration_seconds_sum{daemon=\"netd\",method=\"net.stats\"} 0.75\n"
                "husk_bus_request_duration_seconds_count{daemon=\"netd\",method=\"net.stats\"} 6\n");
        prom_close(&p);

        /* Without labels, le is the only one. */
        assert_int_equal(prom_open(&p), 0);
        prom_histogram(&p, "h", NULL, bounds, 1, (const uint64_t[]){ 0, 0 }, 0, 0);
        assert_string_equal(text(&p), "h_bucket{le=\"0.001\"} 0\nh_bucket{le=\"+Inf\"} 0\nh_sum 0\nh_count 0\n");
        prom_close(&p);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_label_escaping),
                cmocka_unit_test(test_names_and_values),
                cmocka_unit_test(test_histogram_shape),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
