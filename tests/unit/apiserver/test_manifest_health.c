/* test_manifest_health.c: health_checks in a manifest: Ring's fields and defaults, every refusal with its field, and the record on the bus. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/mp.h"
#include "lib/util.h"
#include "proto/deployment.h"
#include "services/apiserver/apiserver_json.h"
#include "services/apiserver/apiserver_manifest.h"

/* Single quotes stand for double quotes, to keep the JSON readable here. */
static json_t *J(const char *text) {
        char buf[4096];
        json_t *j;

        for (size_t i = 0; i <= strlen(text); i++)
                buf[i] = text[i] == '\'' ? '"' : text[i];
        j = json_loads(buf, 0, NULL);
        assert_non_null(j);
        return j;
}

static void checks_of(const char *checks, health_check_t **ret, size_t *n) {
        char text[4096];
        json_auto_t *in = NULL, *stored = NULL;
        json_t *violations = NULL;
        manifest_t m = {};
        char *spec;

        snprintf(text, sizeof(text), "{'name': 'web', 'image': '/img', 'health_checks': %s}", checks);
        in = J(text);
        assert_int_equal(manifest_parse(in, &m, &violations), 0);
        spec = json_dumps(m.spec, JSON_COMPACT);
        assert_non_null(spec);
        /* Through the stored text, as the store reads it back. */
        stored = stored_json_load(spec);
        assert_non_null(stored);
        assert_int_equal(manifest_health_from_spec(stored, ret, n), 0);
        free(spec);
        manifest_clear(&m);
}

static void assert_refused(const char *checks, const char *field, const char *reason_part) {
        char text[4096];
        json_auto_t *in = NULL, *violations = NULL;
        manifest_t m = {};
        const json_t *v;

        snprintf(text, sizeof(text), "{'name': 'web', 'image': '/img', 'health_checks': %s}", checks);
        in = J(text);
        assert_int_equal(manifest_parse(in, &m, &violations), -EINVAL);
        assert_int_equal(json_array_size(violations), 1);
        v = json_array_get(violations, 0);
        assert_string_equal(json_string_value(json_object_get(v, "field")), field);
        assert_non_null(strstr(json_string_value(json_object_get(v, "reason")), reason_part));
}

static void test_ring_example_and_defaults(void **state) {
        health_check_t *a = NULL;
        size_t n = 0;

        checks_of("[{'type': 'tcp', 'port': 8080, 'interval': '10s', 'timeout': '5s', 'threshold': 3, "
                  "'on_failure': 'restart'}, {'type': 'http', 'url': 'http://localhost:8080/healthz', "
                  "'readiness': true, 'interval': '500ms', 'start_period': '30s', 'min_healthy_time': '1m'}, "
                  "{'type': 'command', 'command': 'test -e /tmp/ready', 'on_failure': 'alert', 'interval': 2}]",
                  &a, &n);
        assert_int_equal(n, 3);
        assert_string_equal(a[0].type, "tcp");
        assert_int_equal(a[0].port, 8080);
        assert_int_equal(a[0].interval_ms, 10000);
        assert_int_equal(a[0].timeout_ms, 5000);
        assert_int_equal(a[0].threshold, 3);
        assert_false(a[0].readiness);
        assert_int_equal(a[0].min_healthy_ms, 10000);
        assert_string_equal(a[1].url, "http://localhost:8080/healthz");
        assert_true(a[1].readiness);
        assert_int_equal(a[1].interval_ms, 500);
        assert_int_equal(a[1].timeout_ms, 5000); /* Ring's default */
        assert_int_equal(a[1].threshold, 3);
        assert_string_equal(a[1].on_failure, "restart");
        assert_int_equal(a[1].start_period_ms, 30000);
        assert_int_equal(a[1].min_healthy_ms, 60000);
        assert_string_equal(a[2].command[0], "/bin/sh");
        assert_string_equal(a[2].command[1], "-c");
        assert_string_equal(a[2].command[2], "test -e /tmp/ready");
        assert_null(a[2].command[3]);
        assert_int_equal(a[2].interval_ms, 2000); /* a bare number is seconds */
        assert_string_equal(a[2].on_failure, "alert");
        health_checks_free(a, n);

        checks_of("[{'type': 'command', 'command': ['cat', '/run/ok']}]", &a, &n);
        assert_int_equal(n, 1);
        assert_string_equal(a[0].command[0], "cat");
        health_checks_free(a, n);
}

static void test_refusals_name_the_field(void **state) {
        assert_refused("[{'type': 'grpc'}]", "health_checks[0].type", "tcp, http or command");
        assert_refused("[{'type': 'tcp'}]", "health_checks[0].port", "guest port");
        assert_refused("[{'type': 'tcp', 'port': 70000}]", "health_checks[0].port", "1-65535");
        assert_refused("[{'type': 'http', 'url': '/healthz'}]", "health_checks[0].url", "http://");
        assert_refused("[{'type': 'command'}]", "health_checks[0].command", "shell line");
        assert_refused("[{'type': 'tcp', 'port': 1, 'interval': 'soon'}]", "health_checks[0].interval", "duration");
        assert_refused("[{'type': 'tcp', 'port': 1, 'threshold': 0}]", "health_checks[0].threshold", "1 to 1000");
        assert_refused("[{'type': 'tcp', 'port': 1, 'on_failure': 'explode'}]", "health_checks[0].on_failure",
                       "restart, stop or alert");
        assert_refused("[{'type': 'tcp', 'port': 1, 'readiness': 'yes'}]", "health_checks[0].readiness",
                       "true or false");
        assert_refused("[{'type': 'tcp', 'port': 1}, {'type': 'tcp', 'port': 1, 'retries': 2}]",
                       "health_checks[1].retries", "unknown field");
        assert_refused("{'type': 'tcp'}", "health_checks", "a list");
}

static void test_bus_round_trip(void **state) {
        deployment_t d = { .id = "d1",
                           .namespace_ = "default",
                           .name = "web",
                           .generation = 1,
                           .status = "running",
                           .runtime = "qemu",
                           .kind = "worker",
                           .image = "/img",
                           .replicas = 1,
                           .cpus = 1,
                           .memory_mib = 128 };
        deployment_t out;
        msgpack_sbuffer buf;
        msgpack_packer pk;
        msgpack_unpacked u;

        checks_of(
                "[{'type': 'http', 'url': 'http://x:81/h', 'readiness': true}, {'type': 'command', 'command': 'true'}]",
                &d.health_checks, &d.n_health_checks);
        msgpack_sbuffer_init(&buf);
        msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
        deployment_pack(&pk, &d);
        msgpack_unpacked_init(&u);
        assert_int_equal(msgpack_unpack_next(&u, buf.data, buf.size, NULL), MSGPACK_UNPACK_SUCCESS);
        assert_int_equal(deployment_unpack(&u.data, &out), 0);
        assert_int_equal(out.n_health_checks, 2);
        assert_string_equal(out.health_checks[0].url, "http://x:81/h");
        assert_true(out.health_checks[0].readiness);
        assert_string_equal(out.health_checks[1].command[2], "true");
        assert_int_equal(out.health_checks[1].threshold, 3);
        deployment_clear(&out);
        msgpack_unpacked_destroy(&u);
        msgpack_sbuffer_destroy(&buf);
        health_checks_free(d.health_checks, d.n_health_checks);
}

static void test_url_split(void **state) {
        uint16_t port;
        const char *path;

        assert_int_equal(health_url_split("http://localhost:8080/healthz?x=1", &port, &path), 0);
        assert_int_equal(port, 8080);
        assert_string_equal(path, "/healthz?x=1");
        assert_int_equal(health_url_split("http://guest", &port, &path), 0);
        assert_int_equal(port, 80);
        assert_string_equal(path, "/");
        assert_int_equal(health_url_split("https://guest/", &port, &path), -EINVAL);
        assert_int_equal(health_url_split("http://guest:0/", &port, &path), -EINVAL);
        assert_int_equal(health_url_split("http://guest:/", &port, &path), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ring_example_and_defaults),
                cmocka_unit_test(test_refusals_name_the_field),
                cmocka_unit_test(test_bus_round_trip),
                cmocka_unit_test(test_url_split),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
