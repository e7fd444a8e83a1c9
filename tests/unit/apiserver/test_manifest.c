/* test_manifest.c: every manifest rule, with the exact message a user sees, and Ring's manifests applying unchanged. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/util.h"
#include "services/apiserver/apiserver_manifest.h"
#include "services/apiserver/apiserver_volumes.h"

#define NAME_RULE \
        "use 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit (e.g. \"my-app\")"
#define NOT_ABSOLUTE                                                                                         \
        "is not an absolute path: husk boots VMs, not containers, and wants an absolute path to a raw disk " \
        "image or a rootfs/OCI bundle directory (Docker image references are not supported)"
#define LABEL_KEY_RULE                                                                                          \
        "is not a valid label key: use [prefix/]name, where name is 1-63 letters, digits, '-', '_' or '.' "     \
        "starting and ending with a letter or digit, and the optional prefix is a DNS subdomain (e.g. \"app\" " \
        "or \"example.com/tier\")"
#define CPU_RULE "is not a CPU quantity: use a number of vCPUs (\"2\", 2, 0.5) or millicores (\"500m\")"
#define MEMORY_RULE "is not a memory size: use \"512Mi\", \"1Gi\", \"128M\" or a number of bytes"
#define MEMORY_MIN "is below the minimum of 128Mi: a microVM needs at least 128 MiB of RAM"
#define FIELD_LIST                                                                                                 \
        "name, namespace, runtime, kind, image, kernel, boot, replicas, resources, labels, environment, secrets, " \
        "config, network, command, args, ports, volumes, health_checks"

/* Ring's my-vm.yaml (the Cloud Hypervisor how-to), as `husk apply` sends it. */
static const char ring_my_vm[] = "{'name': 'my-app', 'namespace': 'production', 'runtime': 'cloud-hypervisor',"
                                 " 'image': '/var/lib/ring/images/ubuntu-focal.raw', 'replicas': 1,"
                                 " 'resources': {'limits': {'cpu': '2', 'memory': '512Mi'}},"
                                 " 'health_checks': [{'type': 'tcp', 'port': 8080, 'interval': '10s', 'timeout': '5s',"
                                 " 'threshold': 3, 'on_failure': 'restart'}]}";

/* JSON with single quotes, so the tests stay readable. */
static json_t *J(const char *text) {
        char buf[8192];
        json_error_t error;
        json_t *v;

        assert_true(strlen(text) < sizeof(buf));
        for (size_t i = 0; i <= strlen(text); i++)
                buf[i] = text[i] == '\'' ? '"' : text[i];
        v = json_loads(buf, JSON_DECODE_ANY, &error);
        if (!v)
                fail_msg("test JSON does not parse: %s: %s", buf, error.text);
        return v;
}

static manifest_t parse_ok(const char *text) {
        json_auto_t *in = J(text);
        json_t *violations = NULL;
        manifest_t m = {};
        int r;

        r = manifest_parse(in, &m, &violations);
        if (r != 0) {
                char *dumped = violations ? json_dumps(violations, JSON_INDENT(2)) : NULL;
                print_error("unexpected violations: %s\n", dumped ? dumped : "(none)");
                free(dumped);
                json_decref(violations);
        }
        assert_int_equal(r, 0);
        assert_null(violations);
        return m;
}

static json_t *violations_of(const char *text) {
        json_auto_t *in = J(text);
        json_t *violations = NULL;
        manifest_t m = {};

        assert_int_equal(manifest_parse(in, &m, &violations), -EINVAL);
        assert_non_null(violations);
        assert_null(m.name); /* left cleared */
        assert_null(m.spec);
        return violations;
}

static void assert_violation_at(const json_t *violations, size_t i, const char *field, const char *reason) {
        const json_t *v = json_array_get(violations, i);

        assert_non_null(v);
        assert_int_equal(json_object_size(v), 2); /* exactly field and reason: the CLI prints them */
        assert_string_equal(json_string_value(json_object_get(v, "field")), field);
        assert_string_equal(json_string_value(json_object_get(v, "reason")), reason);
}

static void assert_only(const char *text, const char *field, const char *reason) {
        json_auto_t *violations = violations_of(text);

        if (json_array_size(violations) != 1) {
                char *dumped = json_dumps(violations, JSON_INDENT(2));
                print_error("violations: %s\n", dumped);
                free(dumped);
        }
        assert_int_equal(json_array_size(violations), 1);
        assert_violation_at(violations, 0, field, reason);
}

/* ---- valid manifests ---------------------------------------------------------------------------- */

static void test_minimal_manifest_gets_defaults(void **state) {
        _cleanup_(manifest_clear) manifest_t m = parse_ok("{'name': 'web', 'image': '/srv/rootfs'}");
        json_auto_t *expected = J("{'name': 'web', 'namespace': 'default', 'runtime': 'qemu', 'kind': 'worker',"
                                  " 'image': '/srv/rootfs', 'replicas': 1, 'labels': {},"
                                  " 'resources': {'limits': {'cpu': 1, 'memory': '256Mi'}}}");

        assert_string_equal(m.name, "web");
        assert_string_equal(m.namespace_, "default");
        assert_string_equal(m.runtime, "qemu");
        assert_string_equal(m.kind, "worker");
        assert_string_equal(m.image, "/srv/rootfs");
        assert_null(m.kernel);
        assert_int_equal(m.replicas, 1);
        assert_int_equal(m.cpus, 1);
        assert_int_equal(m.memory_mib, 256);
        assert_int_equal(json_object_size(m.labels), 0);
        assert_true(json_equal(m.spec, expected));
}

static void test_ring_my_vm_example_applies_unchanged(void **state) {
        _cleanup_(manifest_clear) manifest_t m = parse_ok(ring_my_vm);
        json_auto_t *in = J(ring_my_vm);

        assert_string_equal(m.name, "my-app");
        assert_string_equal(m.namespace_, "production");
        assert_string_equal(m.runtime, "cloud-hypervisor");
        assert_string_equal(m.image, "/var/lib/ring/images/ubuntu-focal.raw");
        assert_int_equal(m.cpus, 2);
        assert_int_equal(m.memory_mib, 512);
        assert_int_equal(m.replicas, 1);
        /* health checks are the scheduler's business: stored exactly as given */
        assert_true(json_equal(json_object_get(m.spec, "health_checks"), json_object_get(in, "health_checks")));
}

/* Fields husk refuses (volumes, secretRef, secrets, network) are in test_manifest_fields.c. */
static void test_ring_fields_are_kept_in_spec(void **state) {
        static const char text[] =
                "{'name': 'db', 'namespace': 'production', 'image': '/var/lib/husk/images/pg.raw',"
                " 'kind': 'worker', 'replicas': 1,"
                " 'labels': {'app': 'db'},"
                " 'environment': {'LOG_LEVEL': 'info', 'PORT': 5432},"
                " 'config': {'image_pull_policy': 'Always', 'user': {'id': 1000, 'privileged': false}},"
                " 'volumes': [],"
                " 'ports': [{'published': 5432, 'target': 5432}, {'published': 5353, 'target': 53, 'protocol': 'udp'}],"
                " 'health_checks': [{'type': 'command', 'command': 'pg_isready -U postgres', 'interval': '15s',"
                "                    'timeout': '3s', 'threshold': 3, 'on_failure': 'restart', 'readiness': true}],"
                " 'command': ['postgres', '-c', 'fsync=off'], 'args': ['--verbose'],"
                " 'resources': {'limits': {'cpu': '500m', 'memory': '1Gi'}, 'requests': {'cpu': '100m', 'memory': "
                "'64Mi'}}}";
        static const char *const kept[] = { "environment", "config", "ports", "health_checks", "command", "args" };
        _cleanup_(manifest_clear) manifest_t m = parse_ok(text);
        json_auto_t *in = J(text);
        json_auto_t *resources =
                J("{'limits': {'cpu': 1, 'memory': '1024Mi'}, 'requests': {'cpu': '100m', 'memory': '64Mi'}}");

        for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
                assert_true(json_equal(json_object_get(m.spec, kept[i]), json_object_get(in, kept[i])));
        assert_true(json_equal(json_object_get(m.spec, "resources"), resources));
        assert_int_equal(m.cpus, 1);
        assert_int_equal(m.memory_mib, 1024);
}

static void test_null_fields_count_as_absent(void **state) {
        _cleanup_(manifest_clear) manifest_t m =
                parse_ok("{'name': 'web', 'image': '/img', 'namespace': null, 'ports': null, 'labels': null,"
                         " 'resources': {'limits': null}}");

        assert_string_equal(m.namespace_, "default");
        assert_null(json_object_get(m.spec, "ports"));
}

static void test_explicit_values(void **state) {
        _cleanup_(manifest_clear) manifest_t m =
                parse_ok("{'name': 'batch-1', 'namespace': 'team-a', 'runtime': 'qemu', 'kind': 'job',"
                         " 'image': '/srv/bundle', 'kernel': '/boot/vmlinux', 'boot': 'kit', 'replicas': 0}");

        assert_string_equal(m.kind, "job");
        assert_string_equal(m.kernel, "/boot/vmlinux");
        assert_int_equal(m.replicas, 0);
        assert_string_equal(json_string_value(json_object_get(m.spec, "kernel")), "/boot/vmlinux");
        assert_string_equal(json_string_value(json_object_get(m.spec, "boot")), "kit");
}

static void test_replicas_bounds(void **state) {
        _cleanup_(manifest_clear) manifest_t m = parse_ok("{'name': 'a', 'image': '/i', 'replicas': 100}");

        assert_int_equal(m.replicas, 100);
}

static void test_labels_scalars_become_strings(void **state) {
        _cleanup_(manifest_clear) manifest_t m =
                parse_ok("{'name': 'a', 'image': '/i', 'labels': {'app': 'web', 'version': 2, 'canary': true,"
                         " 'ratio': 0.5, 'example.com/tier': 'front', 'A.b_c-9': ''}}");
        json_auto_t *expected = J("{'app': 'web', 'version': '2', 'canary': 'true', 'ratio': '0.5',"
                                  " 'example.com/tier': 'front', 'A.b_c-9': ''}");

        assert_true(json_equal(m.labels, expected));
        assert_true(json_equal(json_object_get(m.spec, "labels"), expected));
}

static void check_cpu(const char *quantity, uint32_t want) {
        char text[256];
        manifest_t m;

        snprintf(text, sizeof(text), "{'name': 'a', 'image': '/i', 'resources': {'limits': {'cpu': %s}}}", quantity);
        m = parse_ok(text);
        if (m.cpus != want)
                fail_msg("cpu %s: got %u vCPUs, want %u", quantity, m.cpus, want);
        manifest_clear(&m);
}

static void test_cpu_quantities_round_down_with_floor_one(void **state) {
        check_cpu("'2'", 2);
        check_cpu("2", 2);
        check_cpu("'500m'", 1);
        check_cpu("0.5", 1);
        check_cpu("'0.5'", 1);
        check_cpu("'1.5'", 1);
        check_cpu("3.9", 3);
        check_cpu("'2500m'", 2);
        check_cpu("'1m'", 1);
        check_cpu("'256'", 256);
}

static void check_memory(const char *size, uint32_t want) {
        char text[256];
        manifest_t m;

        snprintf(text, sizeof(text), "{'name': 'a', 'image': '/i', 'resources': {'limits': {'memory': %s}}}", size);
        m = parse_ok(text);
        if (m.memory_mib != want)
                fail_msg("memory %s: got %u MiB, want %u", size, m.memory_mib, want);
        manifest_clear(&m);
}

static void test_memory_sizes_in_mib(void **state) {
        check_memory("'512Mi'", 512);
        check_memory("'1Gi'", 1024);
        check_memory("'256M'", 244);
        check_memory("134217728", 128);
        check_memory("'128Mi'", 128);
        check_memory("'1Ti'", 1024 * 1024);
}

static void test_equivalent_manifests_normalize_equal(void **state) {
        _cleanup_(manifest_clear) manifest_t a =
                parse_ok("{'name': 'a', 'image': '/i', 'resources': {'limits': {'cpu': '1500m', 'memory': '512Mi'}}}");
        _cleanup_(manifest_clear) manifest_t b =
                parse_ok("{'image': '/i', 'name': 'a', 'namespace': 'default', 'runtime': 'qemu', 'kind': 'worker',"
                         " 'replicas': 1, 'labels': {}, 'resources': {'limits': {'cpu': 1, 'memory': 536870912}}}");

        assert_true(json_equal(a.spec, b.spec));
}

/* ---- one rule at a time ------------------------------------------------------------------------- */

static void test_name_rules(void **state) {
        char text[256];

        assert_only("{'image': '/i'}", "name",
                    "is required: give the deployment a name of lowercase letters, digits and '-' (e.g. \"my-app\")");
        assert_only("{'name': null, 'image': '/i'}", "name",
                    "is required: give the deployment a name of lowercase letters, digits and '-' (e.g. \"my-app\")");
        assert_only("{'name': 'My_App', 'image': '/i'}", "name", "\"My_App\" is not a valid name: " NAME_RULE);
        assert_only("{'name': '-web', 'image': '/i'}", "name", "\"-web\" is not a valid name: " NAME_RULE);
        assert_only("{'name': 'web-', 'image': '/i'}", "name", "\"web-\" is not a valid name: " NAME_RULE);
        assert_only("{'name': '', 'image': '/i'}", "name", "\"\" is not a valid name: " NAME_RULE);
        assert_only("{'name': 42, 'image': '/i'}", "name", "must be a string, got integer 42");

        snprintf(text, sizeof(text), "{'name': '%064d', 'image': '/i'}", 0);
        assert_only(
                text, "name",
                "\"0000000000000000000000000000000000000000000000000000000000000000\" is not a valid name: " NAME_RULE);
        snprintf(text, sizeof(text), "{'name': '%063d', 'image': '/i'}", 0);
        manifest_t m = parse_ok(text);
        manifest_clear(&m);
}

static void test_namespace_rules(void **state) {
        assert_only("{'name': 'a', 'namespace': 'Prod', 'image': '/i'}", "namespace",
                    "\"Prod\" is not a valid namespace: " NAME_RULE);
        assert_only("{'name': 'a', 'namespace': ['x'], 'image': '/i'}", "namespace", "must be a string, got a list");
}

static void test_runtime_rules(void **state) {
        assert_only("{'name': 'a', 'runtime': 'docker', 'image': '/i'}", "runtime",
                    "\"docker\" is not supported: husk runs every deployment as a microVM; use \"qemu\" (the "
                    "default) or \"cloud-hypervisor\"");
        assert_only("{'name': 'a', 'runtime': 'firecracker', 'image': '/i'}", "runtime",
                    "\"firecracker\" is not a supported runtime: use \"qemu\" (the default) or \"cloud-hypervisor\"");
        assert_only("{'name': 'a', 'runtime': true, 'image': '/i'}", "runtime", "must be a string, got boolean true");
}

static void test_image_rules(void **state) {
        char text[8192];
        size_t n;

        assert_only("{'name': 'a'}", "image",
                    "is required: an absolute path to a raw disk image or a rootfs/OCI bundle directory");
        assert_only("{'name': 'a', 'image': 'nginx:latest'}", "image", "\"nginx:latest\" " NOT_ABSOLUTE);
        assert_only("{'name': 'a', 'image': 'ghcr.io/org/app:1'}", "image", "\"ghcr.io/org/app:1\" " NOT_ABSOLUTE);
        assert_only("{'name': 'a', 'image': 'images/app.raw'}", "image", "\"images/app.raw\" " NOT_ABSOLUTE);
        assert_only("{'name': 'a', 'image': ''}", "image", "\"\" " NOT_ABSOLUTE);
        assert_only("{'name': 'a', 'image': '/var/lib/../../etc/shadow'}", "image",
                    "\"/var/lib/../../etc/shadow\" must not contain \"..\" components: give the path without them");
        assert_only("{'name': 'a', 'image': '/srv/..'}", "image",
                    "\"/srv/..\" must not contain \"..\" components: give the path without them");
        assert_only("{'name': 'a', 'image': {'path': '/i'}}", "image",
                    "must be a string (an absolute path), got a map");

        /* "..." inside a name is not a parent directory */
        manifest_t m = parse_ok("{'name': 'a', 'image': '/srv/a..b/..c/img...raw'}");
        manifest_clear(&m);

        n = (size_t)snprintf(text, sizeof(text), "{'name': 'a', 'image': '/");
        memset(text + n, 'x', 4096);
        snprintf(text + n + 4096, sizeof(text) - n - 4096, "'}");
        assert_only(text, "image", "is 4097 bytes long; paths are limited to 4096 bytes");
}

static void test_kernel_and_boot_rules(void **state) {
        assert_only("{'name': 'a', 'image': '/i', 'kernel': 'vmlinux'}", "kernel",
                    "\"vmlinux\" is not an absolute path: give the absolute path of a kernel image on the host, or "
                    "leave kernel out to boot the guest kit");
        assert_only("{'name': 'a', 'image': '/i', 'boot': 'uefi'}", "boot",
                    "\"uefi\" is not a boot mode: use \"firmware\" or \"kit\"");
        /* Firmware boots the disk's own kernel: a kernel: or a directory beside it contradicts it. */
        assert_only("{'name': 'a', 'image': '/i', 'kernel': '/k', 'boot': 'firmware'}", "boot",
                    "\"firmware\" boots the disk's own kernel: leave kernel: out, or use `boot: kit` to boot the "
                    "kit (or that kernel) with the disk attached");
        assert_only("{'name': 'a', 'image': '/', 'boot': 'firmware'}", "boot",
                    "\"firmware\" needs a disk image: / is a directory, which the guest kit runs (leave boot: out)");
}

/* What the scheduler sends vmm-driver as the instance's boot: the spec's, "kit" for a kernel:. */
static void test_boot_from_spec(void **state) {
        static const struct {
                const char *spec, *want;
        } cases[] = {
                { "{\"image\": \"/d.raw\", \"boot\": \"kit\"}", "kit" },
                { "{\"image\": \"/d.raw\", \"boot\": \"firmware\"}", "firmware" },
                { "{\"image\": \"/d.raw\", \"kernel\": \"/k\"}", "kit" },
                { "{\"image\": \"/d.raw\"}", NULL },
        };

        for (size_t k = 0; k < ELEMENTSOF(cases); k++) {
                _cleanup_free_ char *boot = NULL;
                json_auto_t *spec = json_loads(cases[k].spec, 0, NULL);

                assert_non_null(spec);
                assert_int_equal(manifest_boot_from_spec(spec, &boot), 0);
                if (cases[k].want)
                        assert_string_equal(boot, cases[k].want);
                else
                        assert_null(boot);
        }
}

static void test_replicas_rules(void **state) {
        assert_only("{'name': 'a', 'image': '/i', 'replicas': 101}", "replicas", "must be between 0 and 100, got 101");
        assert_only("{'name': 'a', 'image': '/i', 'replicas': -1}", "replicas", "must be between 0 and 100, got -1");
        assert_only("{'name': 'a', 'image': '/i', 'replicas': '3'}", "replicas",
                    "must be an integer, got string \"3\"");
        assert_only("{'name': 'a', 'image': '/i', 'replicas': 1.5}", "replicas", "must be an integer, got number 1.5");
}

static void test_kind_rules(void **state) {
        assert_only("{'name': 'a', 'image': '/i', 'kind': 'cron'}", "kind",
                    "\"cron\" is not a supported kind: use \"worker\" (the default) or \"job\"");
}

static void test_label_rules(void **state) {
        char text[512];

        assert_only("{'name': 'a', 'image': '/i', 'labels': ['app=web']}", "labels",
                    "must be a map of key: value, got a list");
        assert_only("{'name': 'a', 'image': '/i', 'labels': {'bad key': 'x'}}", "labels.bad key",
                    "\"bad key\" " LABEL_KEY_RULE);
        assert_only("{'name': 'a', 'image': '/i', 'labels': {'-app': 'x'}}", "labels.-app", "\"-app\" " LABEL_KEY_RULE);
        assert_only("{'name': 'a', 'image': '/i', 'labels': {'Example.com/app': 'x'}}", "labels.Example.com/app",
                    "\"Example.com/app\" " LABEL_KEY_RULE);
        assert_only("{'name': 'a', 'image': '/i', 'labels': {'example.com/': 'x'}}", "labels.example.com/",
                    "\"example.com/\" " LABEL_KEY_RULE);
        assert_only("{'name': 'a', 'image': '/i', 'labels': {'app': null}}", "labels.app",
                    "must be a string, number or boolean, got null");
        assert_only("{'name': 'a', 'image': '/i', 'labels': {'app': {'x': 1}}}", "labels.app",
                    "must be a string, number or boolean, got a map");

        snprintf(text, sizeof(text), "{'name': 'a', 'image': '/i', 'labels': {'app': '%064d'}}", 0);
        assert_only(text, "labels.app",
                    "value \"0000000000000000000000000000000000000000000000000000000000000000\" is 64 characters long; "
                    "label values are limited to 63");
        snprintf(text, sizeof(text), "{'name': 'a', 'image': '/i', 'labels': {'%064d': 'x'}}", 0);
        assert_only(text, "labels.0000000000000000000000000000000000000000000000000000000000000000",
                    "\"0000000000000000000000000000000000000000000000000000000000000000\" " LABEL_KEY_RULE);
}

static void test_cpu_rules(void **state) {
        assert_only("{'name': 'a', 'image': '/i', 'resources': {'limits': {'cpu': 'abc'}}}", "resources.limits.cpu",
                    "\"abc\" " CPU_RULE);
        assert_only("{'name': 'a', 'image': '/i', 'resources': {'limits': {'cpu': '2 cores'}}}", "resources.limits.cpu",
                    "\"2 cores\" " CPU_RULE);
        assert_only("{'name': 'a', 'image': '/i', 'resources': {'limits': {'cpu': '1.'}}}", "resources.limits.cpu",
                    "\"1.\" " CPU_RULE);
        assert_only("{'name': 'a', 'image': '/i', 'resources': {'limits': {'cpu': '0'}}}", "resources.limits.cpu",
                    "\"0\" must be greater than zero");
        assert_only("{'name': 'a', 'image': '/i', 'resources': {'limits': {'cpu': -1}}}", "resources.limits.cpu",
                    "-1 must be greater than zero");
        assert_only("{'name': 'a', 'image': '/i', 'resources': {'limits': {'cpu': '0m'}}}", "resources.limits.cpu",
                    "\"0m\" must be greater than zero");
        assert_only("{'name': 'a', 'image': '/i', 'resources': {'limits': {'cpu': 257}}}", "resources.limits.cpu",
                    "257 is more than the maximum of 256 vCPUs");
        assert_only("{'name': 'a', 'image': '/i', 'resources': {'limits': {'cpu': '99999999999999999999999'}}}",
                    "resources.limits.cpu", "\"99999999999999999999999\" is more than the maximum of 256 vCPUs");
        assert_only("{'name': 'a', 'image': '/i', 'resources': {'limits': {'cpu': true}}}", "resources.limits.cpu",
                    "must be a CPU quantity such as \"2\", 2, 0.5 or \"500m\", got boolean true");
}

static void test_memory_rules(void **state) {
        assert_only("{'name': 'a', 'image': '/i', 'resources': {'limits': {'memory': '64Mi'}}}",
                    "resources.limits.memory", "\"64Mi\" " MEMORY_MIN);
        assert_only("{'name': 'a', 'image': '/i', 'resources': {'limits': {'memory': '128M'}}}",
                    "resources.limits.memory", "\"128M\" " MEMORY_MIN);
        assert_only("{'name': 'a', 'image': '/i', 'resources': {'limits': {'memory': 1048576}}}",
                    "resources.limits.memory", "1048576 " MEMORY_MIN);
        assert_only("{'name': 'a', 'image': '/i', 'resources': {'limits': {'memory': 'lots'}}}",
                    "resources.limits.memory", "\"lots\" " MEMORY_RULE);
        assert_only("{'name': 'a', 'image': '/i', 'resources': {'limits': {'memory': '512MB'}}}",
                    "resources.limits.memory", "\"512MB\" " MEMORY_RULE);
        assert_only("{'name': 'a', 'image': '/i', 'resources': {'limits': {'memory': -5}}}", "resources.limits.memory",
                    "-5 " MEMORY_RULE);
        assert_only("{'name': 'a', 'image': '/i', 'resources': {'limits': {'memory': '2Ti'}}}",
                    "resources.limits.memory", "\"2Ti\" is more than the maximum of 1Ti");
        assert_only("{'name': 'a', 'image': '/i', 'resources': {'limits': {'memory': 0.5}}}", "resources.limits.memory",
                    "must be a memory size such as \"512Mi\" or a number of bytes, got number 0.5");
}

/* Volumes: normalized (permission written out), then as the scheduler gets them: Ring's tags by
 * index, config and secret always read-only, a named volume's directory under the state dir. */
static void test_volumes_normalized_and_resolved(void **state) {
        _cleanup_(manifest_clear) manifest_t m =
                parse_ok("{'name': 'web', 'namespace': 'team', 'image': '/i', 'volumes': ["
                         "{'type': 'bind', 'source': '/', 'destination': '/data'},"
                         "{'type': 'volume', 'source': 'app-data', 'destination': '/var/lib/app', 'permission': 'ro'},"
                         "{'type': 'config', 'source': 'nginx', 'key': 'nginx.conf', 'destination': "
                         "'/etc/nginx/nginx.conf', 'permission': 'rw'},"
                         "{'type': 'secret', 'source': 'db', 'destination': '/run/secrets/db'}]}");
        json_auto_t *want =
                J("[{'type': 'bind', 'source': '/', 'destination': '/data', 'permission': 'rw'},"
                  "{'type': 'volume', 'source': 'app-data', 'destination': '/var/lib/app', 'permission': 'ro'},"
                  "{'type': 'config', 'source': 'nginx', 'destination': '/etc/nginx/nginx.conf', 'permission': 'rw', "
                  "'key': 'nginx.conf'},"
                  "{'type': 'secret', 'source': 'db', 'destination': '/run/secrets/db', 'permission': 'rw'}]");
        volume_spec_t *v = NULL;
        size_t n = 0;

        assert_true(json_equal(json_object_get(m.spec, "volumes"), want));
        assert_int_equal(apiserver_volumes_set_dir("/var/lib/husk"), 0);
        assert_int_equal(manifest_volumes_from_spec(m.spec, "team", &v, &n), 0);
        assert_int_equal(n, 4);
        assert_string_equal(v[0].tag, "bind-0");
        assert_false(v[0].readonly);
        assert_string_equal(v[0].source, "/");
        assert_string_equal(v[1].tag, "vol-1");
        assert_true(v[1].readonly);
        assert_string_equal(v[1].source, "/var/lib/husk/volumes/team/app-data");
        assert_string_equal(v[2].tag, "cfg-2");
        assert_true(v[2].readonly);
        assert_string_equal(v[2].source, "nginx");
        assert_string_equal(v[3].tag, "sec-3");
        assert_true(v[3].readonly);
        volumes_free(v, n);
}

/* Each rule with its field and words; every problem reported, not the first only. */
static void test_volume_rules(void **state) {
        json_auto_t *both = violations_of("{'name': 'web', 'image': '/i', 'replicas': 3, 'volumes': ["
                                          "{'type': 'volume', 'source': 'shared', 'destination': '/d'},"
                                          "{'type': 'bind', 'source': '/', 'destination': '/d'}]}");

        assert_int_equal(json_array_size(both), 2);
        assert_violation_at(both, 0, "volumes[1].destination",
                            "\"/d\" is the destination of volumes[0] too: one volume per destination");
        assert_violation_at(both, 1, "volumes[0].permission",
                            "a read-write named volume cannot be used with replicas > 1 (replicas is 3): the "
                            "replicas would write one directory at once; use permission: ro, or one replica");
        assert_only("{'name': 'web', 'image': '/i', 'volumes': [{'type': 'bind', 'source': 'x', 'destination': '/d'}]}",
                    "volumes[0].source", "\"x\" is not an absolute path: give the host directory's absolute path");
        assert_only(
                "{'name': 'web', 'image': '/i', 'volumes': [{'type': 'volume', 'source': 'A_b', 'destination': '/d'}]}",
                "volumes[0].source",
                "\"A_b\" is not a valid name: use 1-63 lowercase letters, digits and '-', starting and ending "
                "with a letter or digit");
        assert_only("{'name': 'web', 'image': '/i', 'volumes': [{'type': 'bind', 'source': '/', 'destination': "
                    "'/a/../b'}]}",
                    "volumes[0].destination", "\"/a/../b\" must be an absolute path other than / and without \"..\"");
        assert_only("{'name': 'web', 'image': '/i', 'volumes': [{'type': 'bind', 'source': '/', 'destination': '/d', "
                    "'mode': 'x'}]}",
                    "volumes[0].mode",
                    "unknown field: a volume has type, source, destination, permission, driver and key");
}

static void test_requests_are_accepted_but_checked(void **state) {
        /* below the limits' minimum is fine: requests size nothing */
        manifest_t m =
                parse_ok("{'name': 'a', 'image': '/i', 'resources': {'requests': {'cpu': '100m', 'memory': '64Mi'}}}");
        assert_int_equal(m.cpus, 1);
        assert_int_equal(m.memory_mib, 256);
        manifest_clear(&m);

        assert_only("{'name': 'a', 'image': '/i', 'resources': {'requests': {'memory': 'much'}}}",
                    "resources.requests.memory", "\"much\" " MEMORY_RULE);
}

static void test_resources_structure(void **state) {
        assert_only("{'name': 'a', 'image': '/i', 'resources': '2 cpus'}", "resources",
                    "must be a map with limits and requests, got string \"2 cpus\"");
        assert_only("{'name': 'a', 'image': '/i', 'resources': {'limit': {'cpu': 1}}}", "resources.limit",
                    "unknown field: resources has limits and requests");
        assert_only("{'name': 'a', 'image': '/i', 'resources': {'limits': {'gpu': 1}}}", "resources.limits.gpu",
                    "unknown field: resources.limits has cpu and memory");
        assert_only("{'name': 'a', 'image': '/i', 'resources': {'limits': [1]}}", "resources.limits",
                    "must be a map with cpu and memory, got a list");
}

static void test_ring_field_types(void **state) {
        assert_only("{'name': 'a', 'image': '/i', 'environment': ['A=1']}", "environment", "must be a map, got a list");
        assert_only("{'name': 'a', 'image': '/i', 'ports': {'published': 80}}", "ports", "must be a list, got a map");
        assert_only("{'name': 'a', 'image': '/i', 'volumes': '/data'}", "volumes",
                    "must be a list, got string \"/data\"");
        assert_only("{'name': 'a', 'image': '/i', 'command': 'nginx -g'}", "command",
                    "must be a list of strings, got string \"nginx -g\"");
        assert_only("{'name': 'a', 'image': '/i', 'command': ['nginx', 8080]}", "command[1]",
                    "must be a string, got integer 8080");
}

static void test_unknown_fields(void **state) {
        assert_only("{'name': 'a', 'image': '/i', 'replica': 2}", "replica",
                    "unknown field: a deployment has " FIELD_LIST);
        assert_only("{'deployments': {'a': {'name': 'a', 'image': '/i'}}, 'name': 'a', 'image': '/i'}", "deployments",
                    "unknown field: send one deployment (the value of one entry under deployments:), not the whole "
                    "manifest");
}

static void test_not_an_object(void **state) {
        assert_only("['name']", "deployment", "must be a map of deployment fields, got a list");
        assert_only("'web'", "deployment", "must be a map of deployment fields, got string \"web\"");
}

static void test_long_values_are_shortened_in_messages(void **state) {
        char text[512], reason[256];

        snprintf(text, sizeof(text), "{'name': 'a', 'image': '/i', 'kind': '%0200d'}", 0);
        snprintf(reason, sizeof(reason), "\"%091d... is not a supported kind: use \"worker\" (the default) or \"job\"",
                 0);
        assert_only(text, "kind", reason);
}

/* ---- everything at once --------------------------------------------------------------------------- */

static void test_all_violations_are_reported(void **state) {
        json_auto_t *v = violations_of("{'name': 'My_App', 'runtime': 'docker', 'image': 'nginx:latest',"
                                       " 'replicas': 101, 'kind': 'daemon',"
                                       " 'resources': {'limits': {'cpu': 'abc', 'memory': '64Mi'}},"
                                       " 'labels': {'bad key': 'x'}, 'foo': 1}");

        assert_int_equal(json_array_size(v), 9);
        /* in the order the manifest has them */
        assert_violation_at(v, 0, "name", "\"My_App\" is not a valid name: " NAME_RULE);
        assert_violation_at(v, 1, "runtime",
                            "\"docker\" is not supported: husk runs every deployment as a microVM; use \"qemu\" (the "
                            "default) or \"cloud-hypervisor\"");
        assert_violation_at(v, 2, "image", "\"nginx:latest\" " NOT_ABSOLUTE);
        assert_violation_at(v, 3, "replicas", "must be between 0 and 100, got 101");
        assert_violation_at(v, 4, "kind",
                            "\"daemon\" is not a supported kind: use \"worker\" (the default) or \"job\"");
        assert_violation_at(v, 5, "resources.limits.cpu", "\"abc\" " CPU_RULE);
        assert_violation_at(v, 6, "resources.limits.memory", "\"64Mi\" " MEMORY_MIN);
        assert_violation_at(v, 7, "labels.bad key", "\"bad key\" " LABEL_KEY_RULE);
        assert_violation_at(v, 8, "foo", "unknown field: a deployment has " FIELD_LIST);
}

static void test_missing_name_and_image_together(void **state) {
        json_auto_t *v = violations_of("{}");

        assert_int_equal(json_array_size(v), 2);
        assert_violation_at(v, 0, "name",
                            "is required: give the deployment a name of lowercase letters, digits and '-' (e.g. "
                            "\"my-app\")");
        assert_violation_at(v, 1, "image",
                            "is required: an absolute path to a raw disk image or a rootfs/OCI bundle directory");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_minimal_manifest_gets_defaults),
                cmocka_unit_test(test_ring_my_vm_example_applies_unchanged),
                cmocka_unit_test(test_ring_fields_are_kept_in_spec),
                cmocka_unit_test(test_null_fields_count_as_absent),
                cmocka_unit_test(test_explicit_values),
                cmocka_unit_test(test_replicas_bounds),
                cmocka_unit_test(test_labels_scalars_become_strings),
                cmocka_unit_test(test_cpu_quantities_round_down_with_floor_one),
                cmocka_unit_test(test_memory_sizes_in_mib),
                cmocka_unit_test(test_equivalent_manifests_normalize_equal),
                cmocka_unit_test(test_name_rules),
                cmocka_unit_test(test_namespace_rules),
                cmocka_unit_test(test_runtime_rules),
                cmocka_unit_test(test_image_rules),
                cmocka_unit_test(test_kernel_and_boot_rules),
                cmocka_unit_test(test_boot_from_spec),
                cmocka_unit_test(test_replicas_rules),
                cmocka_unit_test(test_kind_rules),
                cmocka_unit_test(test_label_rules),
                cmocka_unit_test(test_cpu_rules),
                cmocka_unit_test(test_memory_rules),
                cmocka_unit_test(test_requests_are_accepted_but_checked),
                cmocka_unit_test(test_volumes_normalized_and_resolved),
                cmocka_unit_test(test_volume_rules),
                cmocka_unit_test(test_resources_structure),
                cmocka_unit_test(test_ring_field_types),
                cmocka_unit_test(test_unknown_fields),
                cmocka_unit_test(test_not_an_object),
                cmocka_unit_test(test_long_values_are_shortened_in_messages),
                cmocka_unit_test(test_all_violations_are_reported),
                cmocka_unit_test(test_missing_name_and_image_together),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
