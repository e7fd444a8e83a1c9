/* test_output.c: tables, ages, API timestamps, and the deployment list and inspect views. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_deployment.h"
#include "cli/cli_output.h"
#include "lib/util.h"

/* 2026-11-22T05:30:00.000Z */
#define NOW_MS 1795325400000ULL

typedef struct capture {
        char *buf;
        size_t size;
        FILE *f;
} capture_t;

static FILE *capture_start(capture_t *c) {
        *c = (capture_t){};
        c->f = open_memstream(&c->buf, &c->size);
        assert_non_null(c->f);
        return c->f;
}

/* The text written since capture_start (caller frees). */
static char *capture_end(capture_t *c) {
        fclose(c->f);
        return c->buf;
}

static json_t *parse(const char *text) {
        json_error_t e;
        json_t *j = json_loads(text, 0, &e);

        if (!j)
                fail_msg("bad test JSON: %s: %s", e.text, text);
        return j;
}

static void test_table_alignment(void **state) {
        static const char *const headers[] = { "ID", "NAME", "READY" };
        static const char *const row1[] = { "abc", "web", "1/1" };
        static const char *const row2[] = { "d", "a-much-longer-name", NULL };
        static const char *const row3[] = { "é", "ünïcode", "0/0" };
        cli_table_t *t = NULL;
        capture_t c;
        char *out;

        assert_int_equal(cli_table_new(ELEMENTSOF(headers), headers, &t), 0);
        assert_int_equal(cli_table_add_row(t, row1), 0);
        assert_int_equal(cli_table_add_row(t, row2), 0);
        assert_int_equal(cli_table_add_row(t, row3), 0);
        cli_table_write(t, capture_start(&c));
        out = capture_end(&c);
        /* Three spaces between columns, widths in characters (é is one), no trailing blanks. */
        assert_string_equal(out, "ID    NAME                 READY\n"
                                 "abc   web                  1/1\n"
                                 "d     a-much-longer-name\n"
                                 "é     ünïcode              0/0\n");
        free(out);
        cli_table_free(t);
}

static void test_table_many_rows(void **state) {
        static const char *const headers[] = { "N" };
        cli_table_t *t = NULL;
        capture_t c;
        char *out, cell[16];
        const char *cells[1] = { cell };

        assert_int_equal(cli_table_new(1, headers, &t), 0);
        for (int i = 0; i < 100; i++) {
                snprintf(cell, sizeof(cell), "%d", i);
                assert_int_equal(cli_table_add_row(t, cells), 0);
        }
        cli_table_write(t, capture_start(&c));
        out = capture_end(&c);
        assert_non_null(strstr(out, "\n99\n"));
        free(out);
        cli_table_free(t);
}

static void test_ages(void **state) {
        static const struct {
                uint64_t seconds;
                const char *age;
        } cases[] = {
                { 0, "0s" },
                { 45, "45s" },
                { 119, "119s" },
                { 120, "2m" },
                { 252, "4m12s" },
                { 600, "10m" },
                { 37 * 60, "37m" },
                { 179 * 60, "179m" },
                { 3 * 3600, "3h" },
                { 5 * 3600 + 180, "5h3m" },
                { 20 * 3600 + 59, "20h" },
                { 47 * 3600, "47h" },
                { 3 * 86400 + 4 * 3600, "3d4h" },
                { 2 * 86400, "2d" },
                { 41 * 86400, "41d" },
                { 729 * 86400, "729d" },
                { 740 * 86400, "2y10d" },
                { 9 * 365 * 86400ULL, "9y" },
        };
        char buf[32];

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                assert_string_equal(cli_format_age(NOW_MS, NOW_MS - cases[i].seconds * 1000, buf, sizeof(buf)),
                                    cases[i].age);
        /* Clock skew: a creation time in the future is "0s", never a wrapped number. */
        assert_string_equal(cli_format_age(NOW_MS, NOW_MS + 5000, buf, sizeof(buf)), "0s");
}

static void test_format_bytes(void **state) {
        char buf[32];

        assert_string_equal(cli_format_bytes(0, buf, sizeof(buf)), "0 B");
        assert_string_equal(cli_format_bytes(1023, buf, sizeof(buf)), "1023 B");
        assert_string_equal(cli_format_bytes(1536, buf, sizeof(buf)), "1.5 KiB");
        assert_string_equal(cli_format_bytes(160ULL << 20, buf, sizeof(buf)), "160.0 MiB");
        assert_string_equal(cli_format_bytes(24ULL << 30, buf, sizeof(buf)), "24.0 GiB");
        assert_string_equal(cli_format_bytes(UINT64_MAX, buf, sizeof(buf)), "16.0 EiB");
}

static void test_time_from_json(void **state) {
        static const struct {
                const char *json;
                uint64_t ms;
        } good[] = {
                { "\"2026-11-22T05:30:00.000Z\"", NOW_MS },
                { "\"2026-11-22T05:30:00Z\"", NOW_MS },
                { "\"2026-11-22T05:30:00.5Z\"", NOW_MS + 500 },
                { "\"2026-11-22T05:30:00.123456Z\"", NOW_MS + 123 },
                { "\"2026-11-22 05:30:00\"", NOW_MS },
                { "\"2026-11-22T07:30:00+02:00\"", NOW_MS },
                { "\"2026-11-22T00:00:00-05:30\"", NOW_MS },
                { "1795325400000", NOW_MS },
                { "1795325400", NOW_MS },
        };
        static const char *const bad[] = {
                "\"yesterday\"",
                "\"2026-11-22\"",
                "\"2026-13-01T00:00:00Z\"",
                "\"2026-11-22T05:30:00.Z\"",
                "\"2026-11-22T05:30:00Zjunk\"",
                "\"2026-11-22T05:30:00+0200\"",
                "-5",
                "1.5",
                "null",
                "[]",
        };
        uint64_t ms;

        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                json_t *j = json_loads(good[i].json, JSON_DECODE_ANY, NULL);
                assert_int_equal(cli_time_from_json(j, &ms), 0);
                if (ms != good[i].ms)
                        fail_msg("%s: got %llu", good[i].json, (unsigned long long)ms);
                json_decref(j);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                json_t *j = json_loads(bad[i], JSON_DECODE_ANY, NULL);
                if (cli_time_from_json(j, &ms) >= 0)
                        fail_msg("%s should not parse", bad[i]);
                json_decref(j);
        }
        assert_true(cli_time_from_json(NULL, &ms) < 0);
}

static const char deployments_json[] =
        "["
        "{\"id\": \"2bd0eeb9-aa2a-4c48-a7e2-e0b0daed6ae9\", \"namespace\": \"production\", \"name\": \"my-app\","
        " \"runtime\": \"cloud-hypervisor\", \"status\": \"running\", \"replicas\": 3, \"ready_replicas\": 2,"
        " \"created_at\": \"2026-11-22T05:25:48.000Z\", \"labels\": {\"app\": \"web\", \"tier\": \"front\"}},"
        "{\"id\": \"bc870859-acbd-4bd9-af19-8dc380417386\", \"namespace\": \"default\", \"name\": \"hello\","
        " \"runtime\": \"qemu\", \"status\": \"pending\", \"replicas\": 1, \"ready_replicas\": 0,"
        " \"created_at\": \"2026-11-19T01:00:00.000Z\", \"labels\": {\"app\": \"hello\"}},"
        "{\"id\": \"x\", \"name\": \"odd\", \"created_at\": \"garbage\"}"
        "]";

static void test_deployments_table(void **state) {
        json_t *list = parse(deployments_json);
        capture_t c;
        char *out;

        assert_int_equal(cli_deployments_table(capture_start(&c), list, NOW_MS), 0);
        out = capture_end(&c);
        assert_string_equal(out, "ID         NAMESPACE    NAME     RUNTIME            STATUS    READY   AGE\n"
                                 "2bd0eeb9   production   my-app   cloud-hypervisor   running   2/3     4m12s\n"
                                 "bc870859   default      hello    qemu               pending   0/1     3d4h\n"
                                 "x                       odd                                   ?/?     -\n");
        free(out);
        json_decref(list);
}

static void test_list_filters(void **state) {
        json_t *list = parse(deployments_json);
        const json_t *app = json_array_get(list, 0), *hello = json_array_get(list, 1);
        char *running[] = { "running" }, *both[] = { "failed", "pending" };
        char *web[] = { "app=web" }, *web_front[] = { "app=web", "tier=front" },
             *web_back[] = { "app=web", "tier=back" };
        char *empty_value[] = { "app=" };

        assert_true(cli_deployment_matches(app, NULL, NULL, 0, NULL, 0));
        assert_true(cli_deployment_matches(app, "production", NULL, 0, NULL, 0));
        assert_false(cli_deployment_matches(app, "default", NULL, 0, NULL, 0));
        assert_true(cli_deployment_matches(app, NULL, running, 1, NULL, 0));
        assert_false(cli_deployment_matches(hello, NULL, running, 1, NULL, 0));
        assert_true(cli_deployment_matches(hello, NULL, both, 2, NULL, 0));
        assert_true(cli_deployment_matches(app, NULL, NULL, 0, web, 1));
        assert_true(cli_deployment_matches(app, NULL, NULL, 0, web_front, 2));
        assert_false(cli_deployment_matches(app, NULL, NULL, 0, web_back, 2));
        assert_false(cli_deployment_matches(hello, NULL, NULL, 0, web, 1));
        assert_false(cli_deployment_matches(app, NULL, NULL, 0, empty_value, 1));
        json_decref(list);
}

static void test_details_view(void **state) {
        json_t *d = parse(
                "{\"id\": \"2bd0eeb9-aa2a-4c48-a7e2-e0b0daed6ae9\", \"namespace\": \"production\","
                " \"name\": \"my-app\", \"runtime\": \"qemu\", \"kind\": \"worker\", \"image\": \"/srv/a.raw\","
                " \"replicas\": 2, \"ready_replicas\": 1, \"labels\": {\"app\": \"web\", \"tier\": \"front\"},"
                " \"resources\": {\"limits\": {\"cpu\": 2, \"memory\": \"512Mi\"}},"
                " \"status\": \"running\", \"status_message\": \"1 of 2 ready\", \"generation\": 3,"
                " \"restart_count\": 1, \"created_at\": \"2026-11-22T05:25:00.000Z\","
                " \"updated_at\": 1795325395000,"
                " \"instances\": ["
                "  {\"instance_id\": \"0123456789ab\", \"state\": \"ready\", \"pid\": 4242,"
                "   \"address\": \"10.42.7.2\", \"started_at\": 1795325340000, \"ready_at\": 1795325342000},"
                "  {\"instance_id\": \"ba9876543210\", \"state\": \"exited\", \"pid\": 0,"
                "   \"started_at\": 1795325100000, \"ready_at\": 0, \"exit_reason\": \"crashed\", \"exit_status\": 139}"
                " ], \"exited_instances\": ["
                "  {\"id\": \"c0ffee000001\", \"instance_id\": \"c0ffee000001\", \"generation\": 2,"
                "   \"address\": \"10.42.9.6\", \"state\": \"exited\", \"started_at\": 1795324800000,"
                "   \"exited_at\": 1795325040000, \"exit_reason\": \"guest-shutdown\", \"exit_status\": 3}"
                " ]}");
        capture_t c;
        char *out;

        cli_deployment_details(capture_start(&c), d, NOW_MS);
        out = capture_end(&c);
        assert_string_equal(out, "Name:        my-app\n"
                                 "ID:          2bd0eeb9-aa2a-4c48-a7e2-e0b0daed6ae9\n"
                                 "Namespace:   production\n"
                                 "Runtime:     qemu\n"
                                 "Kind:        worker\n"
                                 "Image:       /srv/a.raw\n"
                                 "Status:      running (1 of 2 ready)\n"
                                 "Replicas:    1/2 ready\n"
                                 "Limits:      cpu 2, memory 512Mi\n"
                                 "Generation:  3\n"
                                 "Restarts:    1\n"
                                 "Created:     2026-11-22T05:25:00.000Z (5m ago)\n"
                                 "Updated:     2026-11-22T05:29:55.000Z (5s ago)\n"
                                 "Labels:      app=web\n"
                                 "             tier=front\n"
                                 "\n"
                                 "Instances:\n"
                                 "INSTANCE       STATE    ADDRESS     PID    AGE   READY   EXIT\n"
                                 "0123456789ab   ready    10.42.7.2   4242   60s   58s     -\n"
                                 "ba9876543210   exited   -           0      5m    -       crashed (139)\n"
                                 "\n"
                                 "Exited instances:\n"
                                 "INSTANCE       GENERATION   ADDRESS     STARTED   EXITED   EXIT\n"
                                 "c0ffee000001   2            10.42.9.6   10m       6m       guest-shutdown (3)\n");
        free(out);
        json_decref(d);
}

/* A job that ended shows its exit code under its status; a worker (exit_code null) does not. */
static void test_details_exit_code(void **state) {
        json_t *job = parse("{\"name\": \"j\", \"kind\": \"job\", \"status\": \"failed\","
                            " \"status_message\": \"job exited with status 3\", \"exit_code\": 3}");
        json_t *worker = parse("{\"name\": \"w\", \"status\": \"running\", \"exit_code\": null}");
        capture_t c;
        char *out;

        cli_deployment_details(capture_start(&c), job, NOW_MS);
        out = capture_end(&c);
        assert_non_null(strstr(out, "Status:      failed (job exited with status 3)\nExit code:   3\n"));
        free(out);
        cli_deployment_details(capture_start(&c), worker, NOW_MS);
        out = capture_end(&c);
        assert_null(strstr(out, "Exit code:"));
        free(out);
        json_decref(job);
        json_decref(worker);
}

static void test_details_instances_unknown(void **state) {
        json_t *d = parse("{\"name\": \"x\", \"status\": \"pending\", \"instances\": null,"
                          " \"instances_error\": \"vmm-driver did not answer within 1000 ms\"}");
        json_t *none = parse("{\"name\": \"y\", \"status\": \"pending\", \"instances\": []}");
        capture_t c;
        char *out;

        cli_deployment_details(capture_start(&c), d, NOW_MS);
        out = capture_end(&c);
        assert_non_null(strstr(out, "\nInstances: unknown (vmm-driver did not answer within 1000 ms)\n"));
        free(out);
        cli_deployment_details(capture_start(&c), none, NOW_MS);
        out = capture_end(&c);
        assert_non_null(strstr(out, "\nInstances: none\n"));
        assert_null(strstr(out, "Labels:"));
        free(out);
        json_decref(d);
        json_decref(none);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_table_alignment),
                cmocka_unit_test(test_table_many_rows),
                cmocka_unit_test(test_ages),
                cmocka_unit_test(test_time_from_json),
                cmocka_unit_test(test_deployments_table),
                cmocka_unit_test(test_list_filters),
                cmocka_unit_test(test_details_view),
                cmocka_unit_test(test_details_instances_unknown),
                cmocka_unit_test(test_details_exit_code),
                cmocka_unit_test(test_format_bytes),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
