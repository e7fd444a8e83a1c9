/* test_ports.c: the manifest's `ports`: validation, normalization, the replicas rule, the spec
 * round trip to the bus record, and the one-deployment-per-host-port rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "services/apiserver/apiserver_json.h"
#include "services/apiserver/apiserver_manifest.h"
#include "services/apiserver/apiserver_ports.h"
#include "services/apiserver/apiserver_store.h"

static json_t *load(const char *text) {
        json_error_t e;
        json_t *j = json_loads(text, 0, &e);

        if (!j)
                fail_msg("bad test JSON: %s", e.text);
        return j;
}

/* Parses; returns the violations' fields joined by ',' (empty when valid). */
static void parse(const char *text, manifest_t *m, char *fields, size_t size) {
        json_t *in = load(text), *violations = NULL, *v;
        size_t i, len = 0;
        int r;

        fields[0] = '\0';
        r = manifest_parse(in, m, &violations);
        json_decref(in);
        if (r == 0)
                return;
        assert_int_equal(r, -EINVAL);
        json_array_foreach(violations, i, v) len += (size_t)snprintf(fields + len, size - len, "%s%s", i ? "," : "",
                                                                     json_string_value(json_object_get(v, "field")));
        json_decref(violations);
}

static void test_valid_and_normalized(void **state) {
        manifest_t m = {};
        char fields[512], *spec;
        json_auto_t *stored = NULL;
        port_spec_t *ports;
        size_t n;

        parse("{\"name\":\"web\",\"image\":\"/i\",\"ports\":[{\"published\":8080,\"target\":80},"
              "{\"published\":5353,\"target\":53,\"protocol\":\"udp\",\"host_ip\":\"127.0.0.1\"}]}",
              &m, fields, sizeof(fields));
        assert_string_equal(fields, "");
        spec = json_dumps(m.spec, 0);
        stored = stored_json_load(spec); /* as the store reads it back */
        assert_int_equal(manifest_ports_from_spec(stored, &ports, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(ports[0].published, 8080);
        assert_int_equal(ports[0].target, 80);
        assert_int_equal(ports[0].protocol, PORT_TCP);
        assert_int_equal(ports[1].protocol, PORT_UDP);
        assert_string_equal(ports[1].host_ip, "127.0.0.1");
        free(ports);
        free(spec);
        manifest_clear(&m);
}

static void test_refusals(void **state) {
        static const struct {
                const char *ports;
                const char *fields;
        } cases[] = {
                { "[{\"published\":0,\"target\":80}]", "ports[0].published" },
                { "[{\"published\":80,\"target\":70000}]", "ports[0].target" },
                { "[{\"published\":80}]", "ports[0].target" },
                { "[{\"published\":80,\"target\":80,\"protocol\":\"sctp\"}]", "ports[0].protocol" },
                { "[{\"published\":80,\"target\":80,\"host_ip\":\"::1\"}]", "ports[0].host_ip" },
                { "[{\"published\":80,\"target\":80,\"hostPort\":1}]", "ports[0].hostPort" },
                { "[{\"published\":80,\"target\":80},{\"published\":80,\"target\":81}]", "ports[1].published" },
                { "[80]", "ports[0]" },
                { "{\"published\":80}", "ports" },
        };

        for (size_t k = 0; k < ELEMENTSOF(cases); k++) {
                char text[512], fields[512];
                manifest_t m = {};

                snprintf(text, sizeof(text), "{\"name\":\"web\",\"image\":\"/i\",\"ports\":%s}", cases[k].ports);
                parse(text, &m, fields, sizeof(fields));
                if (!streq(fields, cases[k].fields))
                        fail_msg("%s: got violations [%s], want [%s]", cases[k].ports, fields, cases[k].fields);
                manifest_clear(&m);
        }
}

/* As in Ring: ports and replicas > 1 do not go together. */
static void test_replicas(void **state) {
        manifest_t m = {};
        char fields[512];

        parse("{\"name\":\"web\",\"image\":\"/i\",\"replicas\":2,\"ports\":[{\"published\":8080,\"target\":80}]}", &m,
              fields, sizeof(fields));
        assert_string_equal(fields, "ports");
        manifest_clear(&m);
        parse("{\"name\":\"web\",\"image\":\"/i\",\"replicas\":2,\"ports\":[]}", &m, fields, sizeof(fields));
        assert_string_equal(fields, "");
        manifest_clear(&m);
}

static void apply(apiserver_store_t *s, const char *text, int want, char *message, size_t size) {
        manifest_t m = {};
        store_deployment_t d = {};
        char fields[512];

        parse(text, &m, fields, sizeof(fields));
        assert_string_equal(fields, "");
        assert_int_equal(apiserver_ports_conflict(s, &m, message, size), want);
        if (want == 0) {
                assert_true(store_deployment_apply(s, &m, &d) >= 0);
                store_deployment_clear(&d);
        }
        manifest_clear(&m);
}

/* A second deployment may not take a host port the first publishes (same protocol, overlapping
 * address); re-applying the owner is fine, and so are other protocols and other addresses. */
static void test_conflict(void **state) {
        char dir[] = "/tmp/husk-test-ports.XXXXXX", path[128], message[256] = "";
        apiserver_store_t *s = NULL;
        store_deployment_t *all = NULL;
        size_t n;

        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/husk.db", dir);
        assert_int_equal(store_open(path, &s), 0);
        apply(s,
              "{\"name\":\"a\",\"image\":\"/"
              "i\",\"ports\":[{\"published\":8080,\"target\":80,\"host_ip\":\"127.0.0.1\"}]}",
              0, message, sizeof(message));
        /* The record carries the ports to the scheduler (derived from the spec for the bus). */
        assert_int_equal(store_deployment_list(s, NULL, &all, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(store_deployment_derive(&all[0]), 0);
        assert_int_equal(all[0].d.n_ports, 1);
        assert_int_equal(all[0].d.ports[0].published, 8080);
        store_deployment_array_free(all, n);

        apply(s, "{\"name\":\"a\",\"image\":\"/i\",\"ports\":[{\"published\":8080,\"target\":81}]}", 0, message,
              sizeof(message));
        apply(s,
              "{\"name\":\"b\",\"image\":\"/"
              "i\",\"ports\":[{\"published\":9,\"target\":9},{\"published\":8080,\"target\":80}]}",
              -EADDRINUSE, message, sizeof(message));
        assert_string_equal(message, "ports[1].published: 8080/tcp is already published by deployment default/a");
        apply(s,
              "{\"name\":\"c\",\"image\":\"/i\",\"ports\":[{\"published\":8080,\"target\":80,\"protocol\":\"udp\"}]}",
              0, message, sizeof(message));
        store_close(&s);
        assert_int_equal(rm_rf(dir), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_valid_and_normalized),
                cmocka_unit_test(test_refusals),
                cmocka_unit_test(test_replicas),
                cmocka_unit_test(test_conflict),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
