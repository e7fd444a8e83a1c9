/* test_ch_body.c: the cloud-hypervisor runtime's vm.create bodies (field by field), command line, event records and exit reasons.
 *
 * With HUSK_CH_BODY_DIR set, every body built here is also written there (one JSON file each) for
 * tests/integration/test_ch_contract.py, which checks them against CH's OpenAPI spec. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "services/vmm-driver/vmm_ch.h"

static const vmm_net_t net = {
        .attached = true,
        .tap = "husk-0123456789",
        .mac = "52:54:00:12:34:56",
        .host_ip = "10.42.0.1",
        .guest_ip = "10.42.0.2",
        .prefix = 30,
};

static const vmm_ch_params_t kit = {
        .instance_id = "0123456789ab",
        .cpus = 2,
        .memory_mib = 512,
        .kernel = "/kit/vmlinux",
        .initrd = "/kit/initrd.gz",
        .net = &net,
        .fs_socket = "/var/lib/husk/instances/0123456789ab/vfs.sock",
        .console = "/var/lib/husk/instances/0123456789ab/console.log",
        .vsock_socket = "/var/lib/husk/instances/0123456789ab/vsock.sock",
};

static const vmm_ch_params_t firmware = {
        .instance_id = "0123456789ab",
        .cpus = 1,
        .memory_mib = 256,
        .firmware = "/usr/share/cloud-hypervisor/hypervisor-fw",
        .net = &net,
        .boot_disk = "/var/lib/husk/instances/0123456789ab/disk.qcow2",
        .boot_disk_format = "qcow2",
        .seed = "/var/lib/husk/instances/0123456789ab/seed.img",
        .console = "/var/lib/husk/instances/0123456789ab/console.log",
        .vsock_socket = "/var/lib/husk/instances/0123456789ab/vsock.sock",
};

/* The body as CH receives it: built, dumped, parsed back. */
static json_t *body_of(const vmm_ch_params_t *p, const char *name) {
        json_t *c = NULL, *back;
        const char *dir = getenv("HUSK_CH_BODY_DIR");
        char *text;

        assert_int_equal(vmm_ch_vm_config(p, &c), 0);
        text = json_dumps(c, JSON_COMPACT);
        assert_non_null(text);
        if (dir) {
                char path[4096];
                FILE *f;

                snprintf(path, sizeof(path), "%s/%s.json", dir, name);
                f = fopen(path, "we");
                assert_non_null(f);
                fputs(text, f);
                fclose(f);
        }
        back = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
        assert_non_null(back);
        free(text);
        json_decref(c);
        return back;
}

static json_int_t int_at(json_t *o, const char *a, const char *b) {
        json_t *v = json_object_get(json_object_get(o, a), b);

        assert_true(json_is_integer(v));
        return json_integer_value(v);
}

static const char *str_at(json_t *o, const char *key) {
        json_t *v = json_object_get(o, key);

        assert_true(json_is_string(v));
        return json_string_value(v);
}

static void assert_keys(json_t *o, const char *const *keys) {
        size_t n = 0;

        for (; keys[n]; n++)
                assert_non_null(json_object_get(o, keys[n]));
        /* Nothing besides: CH would take an extra field for a device or setting we did not mean. */
        assert_int_equal(json_object_size(o), n);
}

static void test_kit(void **state) {
        json_t *c = body_of(&kit, "kit");
        json_t *payload, *net0, *fs0, *vsock;

        assert_keys(c, (const char *const[]){ "cpus", "memory", "payload", "net", "fs", "serial", "console", "vsock",
                                              "pvpanic", NULL });
        assert_int_equal(int_at(c, "cpus", "boot_vcpus"), 2);
        assert_int_equal(int_at(c, "cpus", "max_vcpus"), 2);
        assert_int_equal(int_at(c, "memory", "size"), 512ll << 20);
        /* virtiofsd maps guest RAM. */
        assert_true(json_is_true(json_object_get(json_object_get(c, "memory"), "shared")));

        payload = json_object_get(c, "payload");
        assert_keys(payload, (const char *const[]){ "kernel", "initramfs", "cmdline", NULL });
        assert_string_equal(str_at(payload, "kernel"), "/kit/vmlinux");
        assert_string_equal(str_at(payload, "initramfs"), "/kit/initrd.gz");
        assert_string_equal(str_at(payload, "cmdline"),
                            "console=ttyS0 panic=-1 quiet console_msg_format=syslog husk.transport=vsock "
                            "husk.instance=0123456789ab husk.ip=10.42.0.2/30 husk.gw=10.42.0.1");

        /* The TAP netd made: no ip/mask, so CH configures nothing on the host. */
        assert_int_equal(json_array_size(json_object_get(c, "net")), 1);
        net0 = json_array_get(json_object_get(c, "net"), 0);
        assert_keys(net0, (const char *const[]){ "tap", "mac", "id", NULL });
        assert_string_equal(str_at(net0, "tap"), "husk-0123456789");
        assert_string_equal(str_at(net0, "mac"), "52:54:00:12:34:56");

        fs0 = json_array_get(json_object_get(c, "fs"), 0);
        assert_keys(fs0, (const char *const[]){ "tag", "socket", "num_queues", "queue_size", "id", NULL });
        assert_string_equal(str_at(fs0, "tag"), "rootfs");
        assert_string_equal(str_at(fs0, "socket"), "/var/lib/husk/instances/0123456789ab/vfs.sock");
        assert_int_equal(json_integer_value(json_object_get(fs0, "num_queues")), 1);
        assert_int_equal(json_integer_value(json_object_get(fs0, "queue_size")), 1024);

        assert_string_equal(str_at(json_object_get(c, "serial"), "mode"), "File");
        assert_string_equal(str_at(json_object_get(c, "serial"), "file"),
                            "/var/lib/husk/instances/0123456789ab/console.log");
        assert_keys(json_object_get(c, "console"), (const char *const[]){ "mode", NULL });
        assert_string_equal(str_at(json_object_get(c, "console"), "mode"), "Off");

        vsock = json_object_get(c, "vsock");
        assert_int_equal(json_integer_value(json_object_get(vsock, "cid")), 3);
        assert_string_equal(str_at(vsock, "socket"), "/var/lib/husk/instances/0123456789ab/vsock.sock");
        assert_null(json_object_get(c, "disks"));
        json_decref(c);
}

static void test_kit_disk_no_net(void **state) {
        vmm_ch_params_t p = kit;
        json_t *c, *d;

        /* The kit with a disk image ("disk" mode): read-only, no virtio-fs, RAM not shared. */
        p.net = NULL;
        p.fs_socket = NULL;
        p.disk = "/images/app.img";
        p.disk_format = "raw";
        c = body_of(&p, "kit-disk");
        assert_null(json_object_get(c, "net"));
        assert_null(json_object_get(c, "fs"));
        assert_true(json_is_false(json_object_get(json_object_get(c, "memory"), "shared")));
        assert_string_equal(str_at(json_object_get(c, "payload"), "cmdline"),
                            "console=ttyS0 panic=-1 quiet console_msg_format=syslog husk.transport=vsock "
                            "husk.instance=0123456789ab");
        assert_int_equal(json_array_size(json_object_get(c, "disks")), 1);
        d = json_array_get(json_object_get(c, "disks"), 0);
        assert_keys(d, (const char *const[]){ "path", "readonly", "image_type", "id", NULL });
        assert_string_equal(str_at(d, "path"), "/images/app.img");
        assert_true(json_is_true(json_object_get(d, "readonly")));
        assert_string_equal(str_at(d, "image_type"), "Raw");
        json_decref(c);
}

static void test_firmware(void **state) {
        json_t *c = body_of(&firmware, "firmware");
        json_t *payload, *disks, *d;

        payload = json_object_get(c, "payload");
        assert_keys(payload, (const char *const[]){ "firmware", NULL });
        assert_string_equal(str_at(payload, "firmware"), "/usr/share/cloud-hypervisor/hypervisor-fw");
        assert_false(json_is_true(json_object_get(json_object_get(c, "memory"), "shared")));
        assert_int_equal(int_at(c, "memory", "size"), 256ll << 20);

        /* The instance's disk first (the firmware boots it), read-write; the seed read-only. */
        disks = json_object_get(c, "disks");
        assert_int_equal(json_array_size(disks), 2);
        d = json_array_get(disks, 0);
        assert_string_equal(str_at(d, "path"), "/var/lib/husk/instances/0123456789ab/disk.qcow2");
        assert_true(json_is_false(json_object_get(d, "readonly")));
        assert_string_equal(str_at(d, "image_type"), "Qcow2");
        d = json_array_get(disks, 1);
        assert_string_equal(str_at(d, "path"), "/var/lib/husk/instances/0123456789ab/seed.img");
        assert_true(json_is_true(json_object_get(d, "readonly")));
        assert_string_equal(str_at(d, "image_type"), "Raw");
        assert_null(json_object_get(c, "fs"));
        assert_non_null(json_object_get(c, "vsock"));
        json_decref(c);
}

/* Volumes: one fs device per tag after the image's, and guest RAM shared for their virtiofsd,
 * on a firmware boot too. */
static void test_volumes(void **state) {
        static const vmm_launch_volume_t volumes[] = {
                { .tag = "bind-0", .socket = "/var/lib/husk/instances/0123456789ab/bind-0.sock" },
                { .tag = "sec-1", .socket = "/var/lib/husk/instances/0123456789ab/sec-1.sock" },
        };
        vmm_ch_params_t p = firmware;
        json_t *c, *fs, *v;

        p.volumes = volumes;
        p.n_volumes = ELEMENTSOF(volumes);
        c = body_of(&p, "volumes");
        assert_true(json_is_true(json_object_get(json_object_get(c, "memory"), "shared")));
        fs = json_object_get(c, "fs");
        assert_int_equal(json_array_size(fs), 2);
        v = json_array_get(fs, 1);
        assert_keys(v, (const char *const[]){ "tag", "socket", "num_queues", "queue_size", "id", NULL });
        assert_string_equal(str_at(v, "tag"), "sec-1");
        assert_string_equal(str_at(v, "socket"), "/var/lib/husk/instances/0123456789ab/sec-1.sock");
        assert_string_equal(str_at(v, "id"), "vol1");
        json_decref(c);

        p = kit;
        p.volumes = volumes;
        p.n_volumes = 1;
        c = body_of(&p, "kit-volumes");
        fs = json_object_get(c, "fs");
        assert_int_equal(json_array_size(fs), 2);
        assert_string_equal(str_at(json_array_get(fs, 0), "tag"), "rootfs");
        assert_string_equal(str_at(json_array_get(fs, 1), "tag"), "bind-0");
        json_decref(c);
}

static void test_refused(void **state) {
        vmm_ch_params_t p = kit;
        vmm_net_t bad = net;
        json_t *c = NULL;

        p.cpus = 0;
        assert_int_equal(vmm_ch_vm_config(&p, &c), -EINVAL);
        p = kit;
        p.kernel = NULL;
        assert_int_equal(vmm_ch_vm_config(&p, &c), -EINVAL);
        p = firmware;
        p.boot_disk = NULL;
        assert_int_equal(vmm_ch_vm_config(&p, &c), -EINVAL);
        p = kit;
        p.vsock_socket = NULL;
        assert_int_equal(vmm_ch_vm_config(&p, &c), -EINVAL);
        p = kit;
        bad.tap[0] = '\0';
        p.net = &bad;
        assert_int_equal(vmm_ch_vm_config(&p, &c), -EINVAL);
        assert_null(c);
}

static void test_argv(void **state) {
        char **v = NULL;

        assert_int_equal(vmm_ch_argv("/usr/bin/cloud-hypervisor", "log", &v), 0);
        assert_string_equal(v[0], "/usr/bin/cloud-hypervisor");
        assert_string_equal(v[1], "--api-socket");
        assert_string_equal(v[2], "path=ch-api.sock");
        assert_string_equal(v[3], "--event-monitor");
        assert_string_equal(v[4], "path=ch-events.json");
        assert_string_equal(v[5], "--seccomp");
        assert_string_equal(v[6], "log");
        assert_null(v[7]);
        vmm_strv_free(v);
}

typedef struct seen {
        char what[8][100];
        unsigned n;
} seen_t;

static void record(const vmm_ch_event_t *e, void *userdata) {
        seen_t *s = userdata;

        if (s->n < 8)
                snprintf(s->what[s->n++], sizeof(s->what[0]), "%s %s", e->source, e->event);
}

static void test_events(void **state) {
        /* As serde_json's pretty printer writes them, each followed by an empty line. */
        static const char text[] = "{\n  \"timestamp\": {\n    \"secs\": 0,\n    \"nanos\": 35211\n  },\n"
                                   "  \"source\": \"vmm\",\n  \"event\": \"starting\",\n  \"properties\": null\n}\n\n"
                                   "{\n  \"timestamp\": {\n    \"secs\": 1,\n    \"nanos\": 5\n  },\n"
                                   "  \"source\": \"guest\",\n  \"event\": \"panic\",\n  \"properties\": {\n"
                                   "    \"event\": \"panicked\"\n  }\n}\n\n"
                                   "{ not json }\n\n"
                                   "{\n  \"timestamp\": {\n    \"secs\": 2,\n";
        seen_t s = {};
        unsigned bad = 0;
        size_t used;

        used = vmm_ch_events_parse(text, strlen(text), record, &s, &bad);
        assert_int_equal(s.n, 2);
        assert_string_equal(s.what[0], "vmm starting");
        assert_string_equal(s.what[1], "guest panic");
        assert_int_equal(bad, 1);
        /* The record still being written waits for the rest. */
        assert_string_equal(text + used, "{\n  \"timestamp\": {\n    \"secs\": 2,\n");
}

static void test_exit_reason(void **state) {
        vmm_exit_facts_t f = { .status_known = true, .wstatus = W_EXITCODE(0, 0) };

        f.shutdown_reason = "guest-shutdown";
        assert_string_equal(vmm_exit_reason(&f), "guest-shutdown");
        /* A reset or panic is no clean end, on this runtime as on qemu. */
        f.shutdown_reason = "guest-reset";
        assert_string_equal(vmm_exit_reason(&f), "guest-reset");
        f.shutdown_reason = "guest-panic";
        assert_string_equal(vmm_exit_reason(&f), "guest-panic");
        f.stop_requested = true;
        assert_string_equal(vmm_exit_reason(&f), "stopped");
        f.stop_requested = false;
        f.shutdown_reason = NULL;
        f.wstatus = SIGKILL;
        assert_string_equal(vmm_exit_reason(&f), "killed");
        f.wstatus = W_EXITCODE(1, 0);
        assert_string_equal(vmm_exit_reason(&f), "crashed");
        f.shutdown_reason = "host-shutdown";
        f.wstatus = W_EXITCODE(0, 0);
        assert_string_equal(vmm_exit_reason(&f), "stopped");
        f.status_known = false;
        f.shutdown_reason = NULL;
        assert_string_equal(vmm_exit_reason(&f), "crashed");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_kit),     cmocka_unit_test(test_kit_disk_no_net), cmocka_unit_test(test_firmware),
                cmocka_unit_test(test_refused), cmocka_unit_test(test_volumes),         cmocka_unit_test(test_argv),
                cmocka_unit_test(test_events),  cmocka_unit_test(test_exit_reason),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
