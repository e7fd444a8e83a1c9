/* test_record.c: instance.json, what a restarted vmm-driver re-adopts from. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/mp.h"
#include "lib/util.h"
#include "services/vmm-driver/vmm.h"

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static void fill(instance_record_t *r, bool with_kit_override) {
        *r = (instance_record_t){};
        r->inst.spec.instance_id = strdup("0123456789ab");
        r->inst.spec.deployment_id = strdup("6f1c2d3e-aaaa-bbbb-cccc-0123456789ab");
        r->inst.spec.generation = 7;
        r->inst.spec.runtime = strdup("qemu");
        r->inst.spec.image = strdup("/srv/images/app \"quoted\"\\dir");
        r->inst.spec.kernel = dup_or_null(with_kit_override ? "/opt/kit/vmlinux" : NULL);
        r->inst.spec.initrd = dup_or_null(with_kit_override ? "/opt/kit/initrd.gz" : NULL);
        r->inst.spec.cpus = 2;
        r->inst.spec.memory_mib = 512;
        r->inst.state = strdup(INSTANCE_STATE_EXITED);
        r->inst.pid = 4242;
        r->inst.started_at = 1795325731226ULL;
        r->inst.ready_at = 1795325732762ULL;
        r->inst.exited_at = 1795325741856ULL;
        r->inst.exit_reason = strdup("killed");
        r->inst.exit_message = strdup("qemu-system-x86_64: terminating on signal 9; \"quoted\"");
        r->inst.exit_status = -1;
        r->pid_start_time = 109332;
        r->stop_requested_at = 1795325740000ULL;
        r->remove_on_exit = true;
        r->shutdown_reason = dup_or_null(with_kit_override ? "guest-shutdown" : NULL);
        r->image_path = strdup("/srv/images/app-1.2");
        /* Every other field of the spec, set: the scheduler compares them all with the deployment. */
        r->inst.spec.kind = strdup("worker");
        r->inst.spec.command = mp_strv_copy((char *[]){ "/bin/httpd", "-f", "-p", "80", NULL });
        r->inst.spec.environment = mp_strv_copy((char *[]){ "MODE=prod", "EMPTY=", NULL });
        r->inst.spec.n_ports = 2;
        r->inst.spec.ports = calloc(2, sizeof(port_spec_t));
        r->inst.spec.ports[0] = (port_spec_t){ .published = 18123, .target = 80, .protocol = PORT_TCP };
        r->inst.spec.ports[1] =
                (port_spec_t){ .published = 5353, .target = 53, .protocol = PORT_UDP, .host_ip = "127.0.0.1" };
        /* netd's address survives a restart: adopted instances keep showing it. */
        r->inst.address = dup_or_null(with_kit_override ? "10.42.3.10" : NULL);
        /* The benchmark's timestamps: present in one variant, absent (a record from before them) in the other. */
        r->inst.spawned_at_ns = with_kit_override ? 1795325731229123456ULL : 0;
        r->inst.ready_at_ns = with_kit_override ? 1795325732762654321ULL : 0;
}

/* The instance as the bus carries it, packed: what the scheduler sees of a record. */
static char *packed(const instance_record_t *r, size_t *len) {
        msgpack_sbuffer sb;
        msgpack_packer pk;

        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        instance_pack(&pk, &r->inst);
        *len = sb.size;
        return sb.data;
}

static void assert_str_or_null(const char *a, const char *b) {
        if (!a || !b)
                assert_ptr_equal(a, b);
        else
                assert_string_equal(a, b);
}

static void assert_same(const instance_record_t *a, const instance_record_t *b) {
        assert_string_equal(a->inst.spec.instance_id, b->inst.spec.instance_id);
        assert_string_equal(a->inst.spec.deployment_id, b->inst.spec.deployment_id);
        assert_int_equal(a->inst.spec.generation, b->inst.spec.generation);
        assert_string_equal(a->inst.spec.runtime, b->inst.spec.runtime);
        assert_string_equal(a->inst.spec.image, b->inst.spec.image);
        assert_str_or_null(a->inst.spec.kernel, b->inst.spec.kernel);
        assert_str_or_null(a->inst.spec.initrd, b->inst.spec.initrd);
        assert_int_equal(a->inst.spec.cpus, b->inst.spec.cpus);
        assert_int_equal(a->inst.spec.memory_mib, b->inst.spec.memory_mib);
        assert_string_equal(a->inst.state, b->inst.state);
        assert_int_equal(a->inst.pid, b->inst.pid);
        assert_int_equal(a->inst.started_at, b->inst.started_at);
        assert_int_equal(a->inst.ready_at, b->inst.ready_at);
        assert_int_equal(a->inst.exited_at, b->inst.exited_at);
        assert_int_equal(a->inst.spawned_at_ns, b->inst.spawned_at_ns);
        assert_int_equal(a->inst.ready_at_ns, b->inst.ready_at_ns);
        assert_str_or_null(a->inst.exit_reason, b->inst.exit_reason);
        assert_int_equal(a->inst.exit_status, b->inst.exit_status);
        assert_int_equal(a->pid_start_time, b->pid_start_time);
        assert_int_equal(a->stop_requested_at, b->stop_requested_at);
        assert_int_equal(a->remove_on_exit, b->remove_on_exit);
        assert_str_or_null(a->shutdown_reason, b->shutdown_reason);
        assert_str_or_null(a->image_path, b->image_path);
        assert_int_equal(a->inst.firmware_boot, b->inst.firmware_boot);
        assert_str_or_null(a->inst.template, b->inst.template);
        assert_int_equal(a->identity_given, b->identity_given);
        {
                size_t na, nb;
                _cleanup_free_ char *pa = packed(a, &na), *pb = packed(b, &nb);

                /* Byte for byte: a spec field the record drops would make an adopted VM "not match". */
                assert_int_equal(na, nb);
                assert_memory_equal(pa, pb, na);
        }
        assert_str_or_null(a->inst.address, b->inst.address);
}

static void roundtrip(bool with_kit_override) {
        _cleanup_(instance_record_clear) instance_record_t a = {}, b = {};
        _cleanup_free_ char *text = NULL;

        fill(&a, with_kit_override);
        assert_int_equal(instance_record_to_json(&a, &text), 0);
        assert_int_equal(instance_record_from_json(text, INSTANCE_RECORD_FULL, &b), 0);
        assert_same(&a, &b);
}

static void test_roundtrip(void **state) {
        roundtrip(true);
        roundtrip(false);
}

static char *edit(const char *text, const char *from, const char *to);

/* Kit mode: what a restarted vmm-driver needs to resume the workload's side. */
static void test_roundtrip_kit_mode(void **state) {
        _cleanup_(instance_record_clear) instance_record_t a = {}, b = {}, c = {};
        _cleanup_free_ char *text = NULL, *bad = NULL;
        char *command[] = { "/bin/sh", "-c", "exit 3", NULL }, *env[] = { "A=1", "B=x=y", NULL };

        fill(&a, false);
        free(a.inst.spec.kind);
        mp_strv_free(a.inst.spec.command);
        mp_strv_free(a.inst.spec.environment);
        a.inst.spec.kind = strdup("job");
        a.inst.spec.command = mp_strv_copy(command);
        a.inst.spec.environment = mp_strv_copy(env);
        a.workload_mode = strdup("bundle");
        a.fs_pid = 4343;
        a.fs_pid_start_time = 109333;
        a.workload_started = true;
        a.workload_exited = true;
        a.workload_status = 137;
        assert_int_equal(instance_record_to_json(&a, &text), 0);
        assert_int_equal(instance_record_from_json(text, INSTANCE_RECORD_FULL, &b), 0);
        assert_same(&a, &b);
        assert_string_equal(b.inst.spec.kind, "job");
        assert_int_equal(mp_strv_len(b.inst.spec.command), 3);
        assert_string_equal(b.inst.spec.command[2], "exit 3");
        assert_string_equal(b.inst.spec.environment[1], "B=x=y");
        assert_string_equal(b.workload_mode, "bundle");
        assert_int_equal(b.fs_pid, 4343);
        assert_int_equal(b.fs_pid_start_time, 109333);
        assert_true(b.workload_started && b.workload_exited);
        assert_int_equal(b.workload_status, 137);

        /* A status no process can have is not adopted. */
        bad = edit(text, "\"workload_status\": 137", "\"workload_status\": 300");
        assert_int_equal(instance_record_from_json(bad, INSTANCE_RECORD_FULL, &c), -EBADMSG);
}

/* Firmware boot: written only when true, so older records (and readers) see the kit. */
static void test_roundtrip_firmware_boot(void **state) {
        _cleanup_(instance_record_clear) instance_record_t a = {}, b = {}, c = {};
        _cleanup_free_ char *text = NULL, *kit = NULL, *bad = NULL;

        fill(&a, false);
        assert_int_equal(instance_record_to_json(&a, &kit), 0);
        assert_null(strstr(kit, "firmware_boot"));
        a.inst.firmware_boot = true;
        assert_int_equal(instance_record_to_json(&a, &text), 0);
        assert_non_null(strstr(text, "\"firmware_boot\": true"));
        assert_int_equal(instance_record_from_json(text, INSTANCE_RECORD_FULL, &b), 0);
        assert_same(&a, &b);
        assert_true(b.inst.firmware_boot);
        bad = edit(text, "\"firmware_boot\": true", "\"firmware_boot\": \"yes\"");
        assert_int_equal(instance_record_from_json(bad, INSTANCE_RECORD_FULL, &c), -EBADMSG);
}

/* A clone: its template and whether it took its identity, so that an adopted clone that had not
 * is not called ready before it did; a cold boot's record has neither. */
static void test_roundtrip_template(void **state) {
        _cleanup_(instance_record_clear) instance_record_t a = {}, b = {}, c = {};
        _cleanup_free_ char *text = NULL, *cold = NULL, *bad = NULL;

        fill(&a, false);
        assert_int_equal(instance_record_to_json(&a, &cold), 0);
        assert_null(strstr(cold, "template"));
        assert_null(strstr(cold, "identity_given"));
        a.inst.template = strdup("0123456789abcdef");
        a.identity_given = true;
        assert_int_equal(instance_record_to_json(&a, &text), 0);
        assert_int_equal(instance_record_from_json(text, INSTANCE_RECORD_FULL, &b), 0);
        assert_same(&a, &b);
        assert_string_equal(b.inst.template, "0123456789abcdef");
        assert_true(b.identity_given);
        bad = edit(text, "\"identity_given\": true", "\"identity_given\": 1");
        assert_int_equal(instance_record_from_json(bad, INSTANCE_RECORD_FULL, &c), -EBADMSG);
}

static void test_roundtrip_running(void **state) {
        _cleanup_(instance_record_clear) instance_record_t a = {}, b = {};
        _cleanup_free_ char *text = NULL;

        fill(&a, false);
        free(a.inst.state);
        a.inst.state = strdup(INSTANCE_STATE_RUNNING);
        free(a.inst.exit_reason);
        a.inst.exit_reason = NULL;
        a.inst.exit_status = 0;
        a.inst.exited_at = 0;
        a.remove_on_exit = false;
        assert_int_equal(instance_record_to_json(&a, &text), 0);
        assert_int_equal(instance_record_from_json(text, INSTANCE_RECORD_FULL, &b), 0);
        assert_same(&a, &b);
}

/* Replace the first occurrence of from in text by to. */
static char *edit(const char *text, const char *from, const char *to) {
        const char *p = strstr(text, from);
        char *out;

        assert_non_null(p);
        assert_true(asprintf(&out, "%.*s%s%s", (int)(p - text), text, to, p + strlen(from)) > 0);
        return out;
}

static void test_rejects(void **state) {
        static const struct {
                const char *from, *to;
        } edits[] = {
                { "\"0123456789ab\"", "\"../../etc\"" },    /* a path, not an id */
                { "\"0123456789ab\"", "\"0123456789AB\"" }, /* uppercase */
                { "\"0123456789ab\"", "12" },               /* wrong type */
                { "\"state\": \"exited\"", "\"state\": \"zombie\"" },
                { "\"pid\": 4242", "\"pid\": -3" },
                { "\"pid\": 4242", "\"pid\": \"4242\"" },
                { "\"cpus\": 2", "\"cpus\": 0" },
                { "\"memory_mib\": 512", "\"memory_mib\": 1.5" },
                { "\"remove_on_exit\": true", "\"remove_on_exit\": 1" },
                { "\"runtime\": \"qemu\"", "\"runtime\": null" },                  /* required */
                { "\"image\"", "\"imag\"" },                                       /* missing */
                { "\"generation\": 7,", "\"generation\": 7, \"generation\": 8," }, /* duplicate key */
                { "\"published\": 18123", "\"published\": 0" },
                { "\"target\": 80", "\"target\": 65536" },
                { "\"protocol\": \"udp\"", "\"protocol\": \"sctp\"" },
                { "\"host_ip\": \"127.0.0.1\"", "\"host_ip\": \"localhost\"" },
                { "\"ports\": [", "\"ports\": [42, " },
                { "\"spawned_at_ns\": 1795325731229123456", "\"spawned_at_ns\": -1" },
                { "\"ready_at_ns\": 1795325732762654321", "\"ready_at_ns\": \"soon\"" },
        };
        _cleanup_(instance_record_clear) instance_record_t a = {};
        _cleanup_free_ char *text = NULL;

        fill(&a, true);
        assert_int_equal(instance_record_to_json(&a, &text), 0);
        for (size_t k = 0; k < ELEMENTSOF(edits); k++) {
                _cleanup_free_ char *bad = edit(text, edits[k].from, edits[k].to);
                instance_record_t b = {};

                if (instance_record_from_json(bad, INSTANCE_RECORD_FULL, &b) != -EBADMSG)
                        fail_msg("accepted edit %zu: %s", k, bad);
                assert_null(b.inst.spec.instance_id); /* nothing handed out on failure */
        }
        {
                static const char *const garbage[] = { "", "{", "[]", "null", "\"x\"", "{}", "{\"instance_id\": 1}" };
                for (size_t k = 0; k < ELEMENTSOF(garbage); k++) {
                        instance_record_t b = {};
                        if (instance_record_from_json(garbage[k], INSTANCE_RECORD_FULL, &b) != -EBADMSG)
                                fail_msg("accepted \"%s\"", garbage[k]);
                }
        }
}

static void test_unknown_keys_ignored(void **state) {
        _cleanup_(instance_record_clear) instance_record_t a = {}, b = {};
        _cleanup_free_ char *text = NULL, *more = NULL;

        fill(&a, true);
        assert_int_equal(instance_record_to_json(&a, &text), 0);
        more = edit(text, "{", "{\"written_by\": \"a newer vmm-driver\", \"extra\": [1, 2],");
        assert_int_equal(instance_record_from_json(more, INSTANCE_RECORD_FULL, &b), 0);
        assert_same(&a, &b);
}

static void test_save_load(void **state) {
        _cleanup_(instance_record_clear) instance_record_t a = {}, b = {};
        char dir[] = "/tmp/husk-test-record-XXXXXX";
        char path[64];
        struct stat st;

        assert_non_null(mkdtemp(dir));
        fill(&a, false);
        assert_int_equal(vmm_record_load(dir, &b), -ENOENT);
        assert_int_equal(vmm_record_save(dir, &a), 0);
        snprintf(path, sizeof(path), "%s/instance.json", dir);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        assert_int_equal(vmm_record_load(dir, &b), 0);
        assert_same(&a, &b);
        /* Saving again replaces it whole. */
        a.inst.pid = 99;
        assert_int_equal(vmm_record_save(dir, &a), 0);
        instance_record_clear(&b);
        assert_int_equal(vmm_record_load(dir, &b), 0);
        assert_int_equal(b.inst.pid, 99);
        assert_int_equal(rm_rf(dir), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_roundtrip),
                cmocka_unit_test(test_roundtrip_running),
                cmocka_unit_test(test_roundtrip_kit_mode),
                cmocka_unit_test(test_roundtrip_firmware_boot),
                cmocka_unit_test(test_roundtrip_template),
                cmocka_unit_test(test_rejects),
                cmocka_unit_test(test_unknown_keys_ignored),
                cmocka_unit_test(test_save_load),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
