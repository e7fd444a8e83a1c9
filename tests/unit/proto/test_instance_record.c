/* test_instance_record.c: instance.json's codec against golden text: what vmm-driver writes, and what logd reads of it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/mp.h"
#include "lib/util.h"
#include "proto/instance_record.h"

/* Exactly what vmm-driver writes for a ready kit-mode instance: keys in this order, two spaces. */
static const char golden[] = "{\n"
                             "  \"instance_id\": \"0123456789ab\",\n"
                             "  \"deployment_id\": \"dep-1\",\n"
                             "  \"generation\": 3,\n"
                             "  \"runtime\": \"qemu\",\n"
                             "  \"image\": \"/srv/rootfs\",\n"
                             "  \"kernel\": null,\n"
                             "  \"initrd\": null,\n"
                             "  \"cpus\": 1,\n"
                             "  \"memory_mib\": 256,\n"
                             "  \"state\": \"ready\",\n"
                             "  \"pid\": 4242,\n"
                             "  \"pid_start_time\": 109332,\n"
                             "  \"started_at\": 1795325731226,\n"
                             "  \"ready_at\": 1795325732762,\n"
                             "  \"exited_at\": 0,\n"
                             "  \"exit_reason\": null,\n"
                             "  \"exit_message\": null,\n"
                             "  \"exit_status\": 0,\n"
                             "  \"stop_requested_at\": 0,\n"
                             "  \"remove_on_exit\": false,\n"
                             "  \"shutdown_reason\": null,\n"
                             "  \"kind\": \"job\",\n"
                             "  \"address\": \"10.42.0.2\",\n"
                             "  \"command\": [\n"
                             "    \"/bin/sh\",\n"
                             "    \"-c\",\n"
                             "    \"echo hi\"\n"
                             "  ],\n"
                             "  \"ports\": [\n"
                             "    {\n"
                             "      \"published\": 8080,\n"
                             "      \"target\": 80,\n"
                             "      \"protocol\": \"tcp\"\n"
                             "    }\n"
                             "  ],\n"
                             "  \"console_log\": \"console.log\",\n"
                             "  \"workload_mode\": \"rootfs\",\n"
                             "  \"image_path\": \"/srv/rootfs\",\n"
                             "  \"fs_pid\": 4243,\n"
                             "  \"fs_pid_start_time\": 109333,\n"
                             "  \"workload_started\": true\n"
                             "}";

static void fill(instance_record_t *r) {
        static port_spec_t port = { .published = 8080, .target = 80, .protocol = PORT_TCP };

        *r = (instance_record_t){};
        r->inst.spec.instance_id = strdup("0123456789ab");
        r->inst.spec.deployment_id = strdup("dep-1");
        r->inst.spec.generation = 3;
        r->inst.spec.runtime = strdup("qemu");
        r->inst.spec.image = strdup("/srv/rootfs");
        r->inst.spec.cpus = 1;
        r->inst.spec.memory_mib = 256;
        r->inst.spec.kind = strdup("job");
        r->inst.spec.command = mp_strv_copy((char *[]){ "/bin/sh", "-c", "echo hi", NULL });
        r->inst.spec.ports = calloc(1, sizeof(port_spec_t));
        r->inst.spec.ports[0] = port;
        r->inst.spec.n_ports = 1;
        r->inst.state = strdup(INSTANCE_STATE_READY);
        r->inst.pid = 4242;
        r->inst.started_at = 1795325731226ULL;
        r->inst.ready_at = 1795325732762ULL;
        r->inst.address = strdup("10.42.0.2");
        r->pid_start_time = 109332;
        r->console_log = strdup("console.log");
        r->workload_mode = strdup("rootfs");
        r->image_path = strdup("/srv/rootfs");
        r->fs_pid = 4243;
        r->fs_pid_start_time = 109333;
        r->workload_started = true;
}

static void test_golden(void **state) {
        _cleanup_(instance_record_clear) instance_record_t a = {}, b = {};
        _cleanup_free_ char *text = NULL, *again = NULL;

        fill(&a);
        assert_int_equal(instance_record_to_json(&a, &text), 0);
        assert_string_equal(text, golden);

        /* And back, to the same bytes. */
        assert_int_equal(instance_record_from_json(golden, INSTANCE_RECORD_FULL, &b), 0);
        assert_string_equal(b.inst.spec.deployment_id, "dep-1");
        assert_string_equal(instance_record_console_log(&b), "console.log");
        assert_int_equal(b.fs_pid, 4243);
        assert_true(b.workload_started);
        assert_false(b.workload_exited);
        assert_int_equal(instance_record_to_json(&b, &again), 0);
        assert_string_equal(again, golden);
}

/* instance.json says that the instance had a secret environment (adoption must not start its
 * workload without it), and holds neither the names nor the values. */
static void test_secret_environment_is_not_written(void **state) {
        _cleanup_(instance_record_clear) instance_record_t a = {}, b = {};
        _cleanup_free_ char *text = NULL;

        fill(&a);
        a.inst.spec.secret_environment = mp_strv_copy((char *[]){ "DB_PASSWORD=s3cr3t-value", NULL });
        assert_int_equal(instance_record_to_json(&a, &text), 0);
        assert_null(strstr(text, "s3cr3t"));
        assert_null(strstr(text, "DB_PASSWORD"));
        assert_int_equal(instance_record_from_json(text, INSTANCE_RECORD_FULL, &b), 0);
        assert_true(b.secret_environment);
        assert_null(b.inst.spec.secret_environment);
}

/* What another daemon needs of a record, from a record with little else (logd's tests write
 * such records for the VMMs they play). */
static void test_summary(void **state) {
        static const char minimal[] = "{\"instance_id\": \"0123456789ab\", \"deployment_id\": \"dep-1\", \"runtime\": "
                                      "\"qemu\", \"state\": \"exited\"}";
        _cleanup_(instance_record_clear) instance_record_t r = {};
        instance_record_t none = {};

        assert_int_equal(instance_record_from_json(minimal, INSTANCE_RECORD_FULL, &none), -EBADMSG);
        assert_null(none.inst.spec.instance_id);
        assert_int_equal(instance_record_from_json(minimal, INSTANCE_RECORD_SUMMARY, &r), 0);
        assert_string_equal(r.inst.spec.deployment_id, "dep-1");
        assert_string_equal(r.inst.spec.runtime, "qemu");
        assert_string_equal(r.inst.state, INSTANCE_STATE_EXITED);
        /* Records written before console_log was a key: the console is where it always was. */
        assert_null(r.console_log);
        assert_string_equal(instance_record_console_log(&r), INSTANCE_CONSOLE_LOG_DEFAULT);

        /* Even a summary needs the owner, and what is there must be well-formed. */
        assert_int_equal(instance_record_from_json("{\"state\": \"running\"}", INSTANCE_RECORD_SUMMARY, &none),
                         -EBADMSG);
        assert_int_equal(instance_record_from_json("{\"deployment_id\": \"d\", \"state\": \"zombie\"}",
                                                   INSTANCE_RECORD_SUMMARY, &none),
                         -EBADMSG);
        assert_int_equal(
                instance_record_from_json("{\"deployment_id\": \"d\", \"pid\": \"1\"}", INSTANCE_RECORD_SUMMARY, &none),
                -EBADMSG);
        assert_null(none.inst.spec.deployment_id);
}

/* The console is a file of the instance directory: a reader must never be sent elsewhere. */
static void test_console_log_is_a_name(void **state) {
        static const char *const bad[] = { "../../etc/shadow", "/etc/shadow", "sub/console.log", "..", ".", "" };
        _cleanup_(instance_record_clear) instance_record_t a = {};

        for (size_t k = 0; k < ELEMENTSOF(bad); k++) {
                _cleanup_free_ char *text = NULL;
                instance_record_t b = {};

                assert_true(asprintf(&text, "{\"deployment_id\": \"d\", \"console_log\": \"%s\"}", bad[k]) > 0);
                if (instance_record_from_json(text, INSTANCE_RECORD_SUMMARY, &b) != -EBADMSG)
                        fail_msg("accepted console_log \"%s\"", bad[k]);
        }
        fill(&a);
        free(a.console_log);
        a.console_log = strdup("../x");
        {
                _cleanup_free_ char *text = NULL;
                assert_int_equal(instance_record_to_json(&a, &text), -EINVAL);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_golden),
                cmocka_unit_test(test_summary),
                cmocka_unit_test(test_secret_environment_is_not_written),
                cmocka_unit_test(test_console_log_is_a_name),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
