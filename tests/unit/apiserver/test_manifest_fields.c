/* test_manifest_fields.c: every field of a Ring deployment is honoured, refused with a violation naming it, or accepted with an IgnoredField warning: never stored in silence. */
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
#include "services/apiserver/apiserver_manifest.h"

typedef enum {
        HONOURED, /* accepted, in the spec the daemons read, and not on the ignored list */
        WARNED,   /* accepted, and on the ignored list (an IgnoredField warning event at apply) */
        REFUSED,  /* a violation whose field is exactly the field */
} outcome_t;

/* Ring's deployment fields (ring-cloud-hypervisor-runtime.txt, and Ring's Deployment model:
 * config, environment's secretRef), one row each, plus what husk adds (kernel, boot, args). The
 * manifest is the base deployment with `extra` merged in; field is the dotted path a user
 * reads in a message or an event. */
static const struct {
        const char *field;
        const char *extra; /* JSON with single quotes */
        outcome_t want;
} rows[] = {
        { "name", "{}", HONOURED },
        { "namespace", "{'namespace': 'production'}", HONOURED },
        { "runtime", "{'runtime': 'cloud-hypervisor'}", HONOURED },
        { "image", "{}", HONOURED },
        { "replicas", "{'replicas': 1}", HONOURED },
        { "kind", "{'kind': 'job'}", HONOURED },
        { "command", "{'command': ['/bin/app', '-v']}", HONOURED },
        { "labels.app", "{'labels': {'app': 'web'}}", HONOURED },
        { "environment.LOG_LEVEL", "{'environment': {'LOG_LEVEL': 'info'}}", HONOURED },
        { "environment.DB", "{'environment': {'DB': {'secretRef': 'db-url'}}}", HONOURED },
        { "environment.DB", "{'environment': {'DB': {'secretRef': 'db-url', 'key': 'x'}}}", REFUSED },
        { "environment.DB", "{'environment': {'DB': {'secretRef': 'Not_A_Name'}}}", REFUSED },
        { "environment.MAP", "{'environment': {'MAP': {'a': 'b'}}}", REFUSED },
        { "resources.limits.cpu", "{'resources': {'limits': {'cpu': '2'}}}", HONOURED },
        { "resources.limits.memory", "{'resources': {'limits': {'memory': '512Mi'}}}", HONOURED },
        { "resources.requests.cpu", "{'resources': {'requests': {'cpu': '100m'}}}", WARNED },
        { "resources.requests.memory", "{'resources': {'requests': {'memory': '64Mi'}}}", WARNED },
        { "config.image_pull_policy", "{'config': {'image_pull_policy': 'Always'}}", WARNED },
        { "config.server", "{'config': {'server': 'registry.example.com'}}", WARNED },
        { "config.username", "{'config': {'username': 'bob'}}", WARNED },
        { "config.password", "{'config': {'password': 'hunter2'}}", WARNED },
        { "config.user.id", "{'config': {'user': {'id': 1000}}}", WARNED },
        { "config.user.group", "{'config': {'user': {'group': 1000}}}", WARNED },
        { "config.user.privileged", "{'config': {'user': {'privileged': true}}}", WARNED },
        { "config.user.uid", "{'config': {'user': {'uid': 1000}}}", REFUSED },
        { "config.foo", "{'config': {'foo': 'bar'}}", REFUSED },
        { "config.server", "{'config': {'server': {'host': 'x'}}}", REFUSED },
        { "volumes[0].destination",
          "{'volumes': [{'type': 'bind', 'source': '/', 'destination': '/data', 'driver': 'local',"
          " 'permission': 'rw'}]}",
          HONOURED },
        { "volumes[0].source", "{'volumes': [{'type': 'volume', 'source': 'app-data', 'destination': '/data'}]}",
          HONOURED },
        { "volumes[0].key",
          "{'volumes': [{'type': 'config', 'source': 'nginx', 'key': 'nginx.conf',"
          " 'destination': '/etc/nginx/nginx.conf', 'permission': 'ro'}]}",
          HONOURED },
        { "volumes[0].permission",
          "{'volumes': [{'type': 'secret', 'source': 'db-password', 'destination': '/run/secrets/db'}]}", HONOURED },
        { "volumes[0].type", "{'volumes': [{'type': 'nfs', 'source': 'srv:/x', 'destination': '/x'}]}", REFUSED },
        { "volumes[0].source", "{'volumes': [{'type': 'bind', 'source': 'rel', 'destination': '/x'}]}", REFUSED },
        { "volumes[0].destination", "{'volumes': [{'type': 'bind', 'source': '/', 'destination': '/'}]}", REFUSED },
        { "volumes[0].permission",
          "{'volumes': [{'type': 'bind', 'source': '/', 'destination': '/x', 'permission': 'w'}]}", REFUSED },
        { "volumes[0].driver", "{'volumes': [{'type': 'bind', 'source': '/', 'destination': '/x', 'driver': 'nfs'}]}",
          REFUSED },
        { "volumes[0]", "{'volumes': [42]}", REFUSED },
        { "secrets", "{'secrets': {'PASSWORD': 'x'}}", REFUSED },
        { "network.mode", "{'network': {'mode': 'host'}}", REFUSED },
        { "network", "{'network': {'mode': 'bridge'}}", REFUSED },
        { "ports[0].published", "{'ports': [{'published': 8080, 'target': 80}]}", HONOURED },
        { "ports[0].target", "{'ports': [{'published': 8080, 'target': 80}]}", HONOURED },
        { "ports[0].protocol", "{'ports': [{'published': 5353, 'target': 53, 'protocol': 'udp'}]}", HONOURED },
        { "ports[0].host_ip", "{'ports': [{'published': 8080, 'target': 80, 'host_ip': '127.0.0.1'}]}", HONOURED },
        /* TEST-NET-3: no host has it (the check binds a socket; nothing is sent). */
        { "ports[0].host_ip", "{'ports': [{'published': 8080, 'target': 80, 'host_ip': '203.0.113.7'}]}", REFUSED },
        { "health_checks[0].type", "{'health_checks': [{'type': 'tcp', 'port': 8080}]}", HONOURED },
        { "health_checks[0].port", "{'health_checks': [{'type': 'tcp', 'port': 8080}]}", HONOURED },
        { "health_checks[0].url", "{'health_checks': [{'type': 'http', 'url': 'http://localhost:8080/'}]}", HONOURED },
        { "health_checks[0].command", "{'health_checks': [{'type': 'command', 'command': 'true'}]}", HONOURED },
        { "health_checks[0].interval", "{'health_checks': [{'type': 'tcp', 'port': 1, 'interval': '10s'}]}", HONOURED },
        { "health_checks[0].timeout", "{'health_checks': [{'type': 'tcp', 'port': 1, 'timeout': '5s'}]}", HONOURED },
        { "health_checks[0].threshold", "{'health_checks': [{'type': 'tcp', 'port': 1, 'threshold': 3}]}", HONOURED },
        { "health_checks[0].on_failure", "{'health_checks': [{'type': 'tcp', 'port': 1, 'on_failure': 'restart'}]}",
          HONOURED },
        { "health_checks[0].readiness", "{'health_checks': [{'type': 'tcp', 'port': 1, 'readiness': true}]}",
          HONOURED },
        /* husk's own */
        { "kernel", "{'kernel': '/boot/vmlinux'}", HONOURED },
        { "boot", "{'boot': 'kit'}", HONOURED },
        { "args", "{'args': ['-v']}", HONOURED },
};

static json_t *J(const char *text) {
        char *buf = strdup(text);
        json_error_t error;
        json_t *v;

        assert_non_null(buf);
        for (char *p = buf; *p; p++)
                if (*p == '\'')
                        *p = '"';
        v = json_loads(buf, 0, &error);
        if (!v)
                fail_msg("test JSON does not parse: %s: %s", buf, error.text);
        free(buf);
        return v;
}

/* "a.b[0].c" in a spec; NULL when some step is missing. */
static const json_t *lookup(const json_t *v, const char *path) {
        char buf[128], *state = NULL;

        snprintf(buf, sizeof(buf), "%s", path);
        for (char *part = strtok_r(buf, ".", &state); part && v; part = strtok_r(NULL, ".", &state)) {
                char *bracket = strchr(part, '[');

                if (bracket)
                        *bracket = '\0';
                v = json_object_get(v, part);
                for (; bracket && v; bracket = strchr(bracket + 1, '['))
                        v = json_array_get(v, strtoul(bracket + 1, NULL, 10));
        }
        return v;
}

typedef struct seen {
        const char *want;
        bool found;
        char all[512];
} seen_t;

static void on_ignored(const char *field, const char *why, void *userdata) {
        seen_t *s = userdata;
        size_t n = strlen(s->all);

        assert_non_null(why);
        assert_true(*why);
        s->found = s->found || streq(field, s->want);
        snprintf(s->all + n, sizeof(s->all) - n, "%s ", field);
}

static void test_every_ring_field_is_honoured_refused_or_warned(void **state) {
        for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
                json_auto_t *in = J("{'name': 'web', 'image': '/srv/rootfs'}"), *extra = J(rows[i].extra);
                json_t *violations = NULL;
                manifest_t m = {};
                seen_t seen = { .want = rows[i].field };
                int r;

                assert_int_equal(json_object_update(in, extra), 0);
                r = manifest_parse(in, &m, &violations);
                if (rows[i].want == REFUSED) {
                        const json_t *v = json_array_get(violations, 0);

                        if (r != -EINVAL || json_array_size(violations) != 1 ||
                            !streq(json_string_value(json_object_get(v, "field")) ?: "", rows[i].field))
                                fail_msg("%s (%s): want one violation naming it, got r=%d %s", rows[i].field,
                                         rows[i].extra, r, violations ? json_dumps(violations, 0) : "none");
                        json_decref(violations);
                        continue;
                }
                if (r != 0)
                        fail_msg("%s (%s): refused: %s", rows[i].field, rows[i].extra, json_dumps(violations, 0));
                manifest_ignored_fields(m.spec, on_ignored, &seen);
                if (rows[i].want == WARNED && !seen.found)
                        fail_msg("%s: accepted without a warning (warned: %s)", rows[i].field, seen.all);
                if (rows[i].want == HONOURED && seen.all[0])
                        fail_msg("%s: honoured fields draw no warning, got: %s", rows[i].field, seen.all);
                /* Honoured and warned fields are in the spec the daemons (and the warning) read;
                 * resources.limits is normalized (cpu "2" -> 2), so only its presence counts. */
                if (!lookup(m.spec, rows[i].field))
                        fail_msg("%s: accepted but not in the spec", rows[i].field);
                manifest_clear(&m);
        }
}

/* Every top-level field the validator knows has a row above. */
static void test_the_table_covers_every_field(void **state) {
        static const char *const top[] = { "name",        "namespace", "runtime",  "kind",         "image",
                                           "kernel",      "boot",      "replicas", "resources",    "labels",
                                           "environment", "secrets",   "config",   "network",      "command",
                                           "args",        "ports",     "volumes",  "health_checks" };
        json_auto_t *in = J("{'name': 'web', 'image': '/i', 'no_such_field': 1}");
        json_t *violations = NULL;
        manifest_t m = {};
        const char *reason;

        /* The unknown-field message lists what the validator knows: the same list as top[]. */
        assert_int_equal(manifest_parse(in, &m, &violations), -EINVAL);
        reason = json_string_value(json_object_get(json_array_get(violations, 0), "reason"));
        for (size_t t = 0; t < ELEMENTSOF(top); t++) {
                size_t len = strlen(top[t]);
                bool covered = false;

                assert_non_null(strstr(reason, top[t]));
                for (size_t i = 0; i < ELEMENTSOF(rows) && !covered; i++)
                        covered =
                                strncmp(rows[i].field, top[t], len) == 0 &&
                                (rows[i].field[len] == '\0' || rows[i].field[len] == '.' || rows[i].field[len] == '[');
                if (!covered)
                        fail_msg("field %s has no row", top[t]);
        }
        json_decref(violations);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_every_ring_field_is_honoured_refused_or_warned),
                cmocka_unit_test(test_the_table_covers_every_field),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
