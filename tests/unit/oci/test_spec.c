/* test_spec.c: husk-oci's config.json and process.json parser: the fields it takes, its bounds, and refusals that name the field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/oci/oci_spec.h"
#include "lib/util.h"

static int parse(const char *text, oci_spec_t *s, char **error) {
        *error = NULL;
        return oci_spec_parse(text, strlen(text), s, error);
}

/* Refused, with a message that starts with the field's name. */
static void refused(const char *text, const char *field) {
        oci_spec_t s;
        char *error = NULL;

        assert_int_equal(parse(text, &s, &error), -EINVAL);
        assert_non_null(error);
        if (strncmp(error, field, strlen(field)) != 0)
                fail_msg("for %s: expected the error to start with '%s', got '%s'", text, field, error);
        assert_null(s.root_path);
        free(error);
}

static void test_full(void **state) {
        const char *text =
                "{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"rootfs\",\"readonly\":true},"
                "\"process\":{\"terminal\":true,\"consoleSize\":{\"height\":24,\"width\":80},"
                "\"user\":{\"uid\":1000,\"gid\":100,\"additionalGids\":[10,20]},"
                "\"args\":[\"sh\",\"-c\",\"echo hi\"],\"env\":[\"PATH=/bin\",\"A=b=c\"],\"cwd\":\"/tmp\","
                "\"rlimits\":[{\"type\":\"RLIMIT_NOFILE\",\"hard\":1024,\"soft\":512}],\"noNewPrivileges\":true,"
                "\"capabilities\":{\"bounding\":[\"CAP_KILL\"]}},"
                "\"hostname\":\"box\","
                "\"mounts\":[{\"destination\":\"/proc\",\"type\":\"proc\",\"source\":\"proc\"},"
                "{\"destination\":\"/etc/hosts\",\"type\":\"bind\",\"source\":\"/var/lib/x/"
                "hosts\",\"options\":[\"rbind\",\"ro\"]},"
                "{\"destination\":\"/data\",\"source\":\"/srv/data\",\"options\":[\"bind\",\"rw\"]}],"
                "\"linux\":{\"resources\":{\"memory\":{\"limit\":536870912},\"cpu\":{\"quota\":150000,\"period\":"
                "100000}},"
                "\"namespaces\":[{\"type\":\"pid\"},{\"type\":\"network\",\"path\":\"/var/run/netns/n1\"}],"
                "\"seccomp\":{\"defaultAction\":\"SCMP_ACT_ERRNO\"}}}";
        oci_spec_t s;
        char *error;
        uint32_t cpus, mib;

        assert_int_equal(parse(text, &s, &error), 0);
        assert_null(error);
        assert_string_equal(s.oci_version, "1.0.2");
        assert_string_equal(s.root_path, "rootfs");
        assert_true(s.root_readonly);
        assert_true(s.process.terminal);
        assert_int_equal(s.process.rows, 24);
        assert_int_equal(s.process.cols, 80);
        assert_int_equal(s.process.uid, 1000);
        assert_int_equal(s.process.gid, 100);
        assert_int_equal(s.process.n_additional_gids, 2);
        assert_int_equal(s.process.additional_gids[1], 20);
        assert_string_equal(s.process.args[2], "echo hi");
        assert_null(s.process.args[3]);
        assert_string_equal(s.process.env[1], "A=b=c");
        assert_string_equal(s.process.cwd, "/tmp");
        assert_int_equal(s.process.n_rlimits, 1);
        assert_string_equal(s.process.rlimits[0].type, "RLIMIT_NOFILE");
        assert_int_equal(s.process.rlimits[0].soft, 512);
        assert_int_equal(s.process.rlimits[0].hard, 1024);
        assert_true(s.process.no_new_privileges);
        assert_string_equal(s.hostname, "box");
        assert_int_equal(s.n_mounts, 3);
        assert_false(s.mounts[0].bind);
        assert_true(s.mounts[1].bind);
        assert_true(s.mounts[1].readonly);
        assert_true(s.mounts[2].bind); /* no type, option "bind": runc's bind mount */
        assert_false(s.mounts[2].readonly);
        assert_int_equal(s.memory_limit, 536870912);
        assert_true(s.netns);
        assert_string_equal(s.netns_path, "/var/run/netns/n1");
        oci_spec_vm_size(&s, 1, 256, &cpus, &mib);
        assert_int_equal(cpus, 2);
        assert_int_equal(mib, 512);
        oci_spec_done(&s);
}

/* What a minimal bundle leaves unset gets runc's defaults: cwd /, no env, no hostname. */
static void test_minimal_defaults(void **state) {
        oci_spec_t s;
        char *error;
        uint32_t cpus, mib;

        assert_int_equal(parse("{\"root\":{\"path\":\"/abs/rootfs\"},\"process\":{\"args\":[\"true\"]}}", &s, &error),
                         0);
        assert_string_equal(s.process.cwd, "/");
        assert_non_null(s.process.env);
        assert_null(s.process.env[0]);
        assert_null(s.hostname);
        assert_false(s.netns);
        assert_false(s.process.terminal);
        oci_spec_vm_size(&s, 1, 256, &cpus, &mib);
        assert_int_equal(cpus, 1);
        assert_int_equal(mib, 256);
        oci_spec_done(&s);
        /* A tiny limit still boots the kit; -1 is no limit. */
        assert_int_equal(parse("{\"root\":{\"path\":\"r\"},\"process\":{\"args\":[\"true\"]},"
                               "\"linux\":{\"resources\":{\"memory\":{\"limit\":1048576}}}}",
                               &s, &error),
                         0);
        oci_spec_vm_size(&s, 1, 256, &cpus, &mib);
        assert_int_equal(mib, OCI_MEMORY_MIN_MIB);
        oci_spec_done(&s);
        assert_int_equal(parse("{\"root\":{\"path\":\"r\"},\"process\":{\"args\":[\"true\"]},"
                               "\"linux\":{\"resources\":{\"memory\":{\"limit\":-1}}}}",
                               &s, &error),
                         0);
        oci_spec_vm_size(&s, 1, 256, &cpus, &mib);
        assert_int_equal(mib, 256);
        oci_spec_done(&s);
}

static void test_refusals_name_the_field(void **state) {
        refused("[]", "must be a JSON object");
        refused("{", "not JSON");
        refused("{\"process\":{\"args\":[\"sh\"]}}", "root: is required");
        refused("{\"root\":{},\"process\":{\"args\":[\"sh\"]}}", "root.path: is required");
        refused("{\"root\":{\"path\":\"a,b\"},\"process\":{\"args\":[\"sh\"]}}", "root.path");
        refused("{\"root\":{\"path\":\"r\"}}", "process: is required");
        refused("{\"root\":{\"path\":\"r\"},\"process\":{}}", "process.args: must be a non-empty array");
        refused("{\"root\":{\"path\":\"r\"},\"process\":{\"args\":[]}}", "process.args: must be a non-empty array");
        refused("{\"root\":{\"path\":\"r\"},\"process\":{\"args\":[1]}}", "process.args[0]");
        refused("{\"root\":{\"path\":\"r\"},\"process\":{\"args\":[\"sh\"],\"env\":[\"NOEQUALS\"]}}", "process.env[0]");
        refused("{\"root\":{\"path\":\"r\"},\"process\":{\"args\":[\"sh\"],\"cwd\":\"rel\"}}", "process.cwd");
        refused("{\"root\":{\"path\":\"r\"},\"process\":{\"args\":[\"sh\"],\"terminal\":1}}", "process.terminal");
        refused("{\"root\":{\"path\":\"r\"},\"process\":{\"args\":[\"sh\"],\"user\":{\"uid\":-1}}}",
                "process.user.uid");
        refused("{\"root\":{\"path\":\"r\"},\"process\":{\"args\":[\"sh\"],\"user\":{\"uid\":4294967296}}}",
                "process.user.uid");
        refused("{\"root\":{\"path\":\"r\"},\"process\":{\"args\":[\"sh\"],\"user\":{\"additionalGids\":[\"x\"]}}}",
                "process.user.additionalGids[0]");
        refused("{\"root\":{\"path\":\"r\"},\"process\":{\"args\":[\"sh\"],\"rlimits\":[{\"type\":\"NOFILE\"}]}}",
                "process.rlimits[0].type");
        refused("{\"root\":{\"path\":\"r\"},\"process\":{\"args\":[\"sh\"]},\"hostname\":7}", "hostname");
        refused("{\"root\":{\"path\":\"r\"},\"process\":{\"args\":[\"sh\"]},\"mounts\":[{\"type\":\"bind\"}]}",
                "mounts[0].destination");
        refused("{\"root\":{\"path\":\"r\"},\"process\":{\"args\":[\"sh\"]},"
                "\"mounts\":[{\"destination\":\"/x\",\"type\":\"bind\",\"source\":\"rel\"}]}",
                "mounts[0].source");
        refused("{\"root\":{\"path\":\"r\"},\"process\":{\"args\":[\"sh\"]},"
                "\"linux\":{\"resources\":{\"cpu\":{\"quota\":\"x\"}}}}",
                "linux.resources.cpu.quota");
        refused("{\"root\":{\"path\":\"r\"},\"process\":{\"args\":[\"sh\"]},\"linux\":{\"namespaces\":[{}]}}",
                "linux.namespaces[0].type");
        refused("{\"root\":{\"path\":\"r\"},\"root\":{\"path\":\"s\"},\"process\":{\"args\":[\"sh\"]}}", "not JSON");
}

static void test_nesting_bound(void **state) {
        char text[200] = "{\"root\":{\"path\":\"r\"},\"process\":{\"args\":[\"sh\"]},\"x\":";
        size_t n = strlen(text);

        for (int k = 0; k < 40; k++)
                text[n++] = '[';
        text[n] = '\0';
        refused(text, "x");
}

static void test_process_json(void **state) {
        const char *text = "{\"terminal\":false,\"user\":{\"uid\":0,\"gid\":0},\"args\":[\"sh\",\"-c\",\"exit 3\"],"
                           "\"env\":[\"PATH=/bin\"],\"cwd\":\"/\",\"capabilities\":{}}";
        oci_process_t p;
        char *error = NULL;

        assert_int_equal(oci_process_parse_text(text, strlen(text), &p, &error), 0);
        assert_string_equal(p.args[2], "exit 3");
        oci_process_done(&p);
        assert_int_equal(oci_process_parse_text("{\"args\":\"sh\"}", 13, &p, &error), -EINVAL);
        assert_string_equal(error, "process.args: must be a non-empty array of strings");
        free(error);
}

/* husk-oci spec's output parses, and is runc's: sh on a terminal, read-only rootfs. */
static void test_default_spec(void **state) {
        json_t *j = oci_spec_default();
        char *text, *error;
        oci_spec_t s;

        assert_non_null(j);
        text = json_dumps(j, 0);
        assert_int_equal(parse(text, &s, &error), 0);
        assert_string_equal(s.process.args[0], "sh");
        assert_null(s.process.args[1]);
        assert_true(s.process.terminal);
        assert_string_equal(s.root_path, "rootfs");
        assert_string_equal(s.hostname, "runc");
        assert_true(s.netns);
        assert_null(s.netns_path);
        oci_spec_done(&s);
        free(text);
        json_decref(j);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_full),
                cmocka_unit_test(test_minimal_defaults),
                cmocka_unit_test(test_refusals_name_the_field),
                cmocka_unit_test(test_nesting_bound),
                cmocka_unit_test(test_process_json),
                cmocka_unit_test(test_default_spec),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
