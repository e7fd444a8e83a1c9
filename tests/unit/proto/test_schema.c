/* test_schema.c: every proto codec against proto/schema.yaml (the drift test). Each codec packs a
 * message with every field filled, and the result must fit the schema's table strictly: no key
 * the schema does not list, every required key, each of its type and within its bounds. A codec
 * that packs a new field fails here until the schema lists it; one that drops a required field
 * fails too. Also proto_check's own answers, which name the field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/mp.h"
#include "lib/util.h"
#include "proto/agent_frame.h"
#include "proto/attachment.h"
#include "proto/deployment.h"
#include "proto/event.h"
#include "proto/health.h"
#include "proto/instance.h"
#include "proto/resolve.h"
#include "proto/port.h"
#include "proto/schema.h"

typedef struct packed {
        msgpack_sbuffer buf;
        msgpack_packer pk;
        msgpack_unpacked u;
} packed_t;

static msgpack_packer *packed_begin(packed_t *p) {
        msgpack_sbuffer_init(&p->buf);
        msgpack_packer_init(&p->pk, &p->buf, msgpack_sbuffer_write);
        msgpack_unpacked_init(&p->u);
        return &p->pk;
}

static const msgpack_object *packed_end(packed_t *p) {
        size_t off = 0;

        assert_int_equal(msgpack_unpack_next(&p->u, p->buf.data, p->buf.size, &off), MSGPACK_UNPACK_SUCCESS);
        assert_int_equal(off, p->buf.size);
        return &p->u.data;
}

static void packed_free(packed_t *p) {
        msgpack_unpacked_destroy(&p->u);
        msgpack_sbuffer_destroy(&p->buf);
}

static void assert_fits(const proto_message_t *m, const msgpack_object *o) {
        proto_error_t e = {};
        int r = proto_check(m, o, PROTO_CHECK_STRICT, &e);

        if (r < 0)
                fail_msg("%s does not fit the schema: %s", m->name, e.message);
}

/* Every key the table lists appears in o: the fixture fills every field, so a table field the
 * codec never packs (a schema row without a codec) shows up too. */
static void assert_covers(const proto_message_t *m, const msgpack_object *o, const char *const *unpacked) {
        for (size_t k = 0; k < m->n_fields; k++) {
                bool skip = false;

                for (const char *const *u = unpacked; u && *u; u++)
                        skip = skip || streq(*u, m->fields[k].name);
                if (!skip && !mp_map_get(o, m->fields[k].name))
                        fail_msg("%s: the codec never packs %s", m->name, m->fields[k].name);
        }
}

static char *cmd[] = { "/bin/sh", "-c", "echo hi", NULL };
static char *env[] = { "A=1", "B=two", NULL };
static char *secret_env[] = { "DB_PASSWORD=s3cr3t-in-the-spec", NULL };

static port_spec_t ports[] = {
        { .published = 8080, .target = 80, .protocol = PORT_TCP, .host_ip = "127.0.0.1" },
        { .published = 5353, .target = 53, .protocol = PORT_UDP },
};

static health_check_t checks[] = {
        { .type = "tcp",
          .port = 80,
          .interval_ms = 10000,
          .timeout_ms = 5000,
          .threshold = 3,
          .on_failure = "restart",
          .readiness = true,
          .start_period_ms = 0,
          .min_healthy_ms = 10000 },
        { .type = "http",
          .url = "http://web:8080/healthz",
          .interval_ms = 1,
          .timeout_ms = 1,
          .threshold = 1000,
          .on_failure = "stop",
          .min_healthy_ms = 1 },
        { .type = "command", .command = cmd, .interval_ms = 1, .timeout_ms = 1, .threshold = 1, .on_failure = "alert" },
};

static uint8_t secret_data[] = "s3cr3t";
static volume_file_t secret_files[] = { { .name = "db-password", .mode = 0400, .data = secret_data, .size = 6 } };
static volume_spec_t volumes[] = {
        { .type = VOLUME_BIND, .tag = "bind-0", .destination = "/data", .source = "/srv/data" },
        { .type = VOLUME_SECRET,
          .tag = "sec-1",
          .destination = "/run/secrets/db-password",
          .readonly = true,
          .source = "db-password",
          .files = secret_files,
          .n_files = 1 },
};

static void test_deployment(void **state) {
        deployment_t d = {
                .id = "5f0c7b9e-2d4a-4c1e-9a3b-7e6d8f1a2b3c",
                .namespace_ = "default",
                .name = "web",
                .generation = 3,
                .status = DEPLOYMENT_STATUS_CRASH_LOOP,
                .runtime = "qemu",
                .kind = "worker",
                .image = "/srv/images/web.img",
                .kernel = "/srv/vmlinux",
                .boot = "kit",
                .replicas = 1,
                .cpus = 2,
                .memory_mib = 512,
                .ready_replicas = 1,
                .command = cmd,
                .environment = env,
                .restart_count = 4,
                .failed_at = 1700000000000,
                .status_message = "back-off 8s",
                .health_checks = checks,
                .n_health_checks = ELEMENTSOF(checks),
                .ports = ports,
                .n_ports = ELEMENTSOF(ports),
                .resolve = true,
                .volumes = volumes,
                .n_volumes = ELEMENTSOF(volumes),
        };
        packed_t p;
        const msgpack_object *o;

        deployment_pack(packed_begin(&p), &d);
        o = packed_end(&p);
        assert_fits(&proto_msg_deployment, o);
        assert_covers(&proto_msg_deployment, o, NULL);
        /* Each check packs only its own target (tcp port, http url or command argv). */
        const msgpack_object *hc = mp_map_get(o, "health_checks");
        for (uint32_t i = 0; i < hc->via.array.size; i++)
                assert_fits(&proto_msg_health_check, &hc->via.array.ptr[i]);
        assert_covers(&proto_msg_health_check, &hc->via.array.ptr[0], (const char *const[]){ "url", "command", NULL });
        packed_free(&p);
}

static void test_deployment_event(void **state) {
        deployment_event_t e = { .ts = 1,
                                 .deployment_id = "d-1",
                                 .namespace_ = "default",
                                 .name = "web",
                                 .generation = 2,
                                 .status = "running",
                                 .message = "ok" };
        packed_t p;

        deployment_event_pack(packed_begin(&p), &e);
        assert_fits(&proto_msg_deployment_event, packed_end(&p));
        assert_covers(&proto_msg_deployment_event, packed_end(&p), NULL);
        packed_free(&p);
}

static void test_event(void **state) {
        event_t e = { .id = 7,
                      .deployment_id = "d-1",
                      .timestamp = 1700000000000,
                      .level = EVENT_LEVEL_WARNING,
                      .component = "scheduler",
                      .reason = EVENT_PORT_ALLOCATION_FAILED,
                      .message = "taken" };
        packed_t p;
        const msgpack_object *o;

        event_pack(packed_begin(&p), &e);
        o = packed_end(&p);
        assert_fits(&proto_msg_event, o);
        assert_fits(&proto_msg_event_record, o); /* what event.record takes */
        assert_covers(&proto_msg_event, o, NULL);
        packed_free(&p);
}

static instance_t full_instance(void) {
        return (instance_t){
                .spec = { .instance_id = "0123456789ab",
                          .deployment_id = "d-1",
                          .generation = 2,
                          .runtime = "qemu",
                          .image = "/srv/rootfs",
                          .kernel = "/k",
                          .initrd = "/i",
                          .boot = "kit",
                          .cpus = 1,
                          .memory_mib = 256,
                          .kind = "job",
                          .command = cmd,
                          .environment = env,
                          .ports = ports,
                          .n_ports = ELEMENTSOF(ports),
                          .secret_environment = secret_env,
                          .volumes = volumes,
                          .n_volumes = ELEMENTSOF(volumes) },
                .state = INSTANCE_STATE_EXITED,
                .pid = 0,
                .started_at = 1,
                .ready_at = 2,
                .exited_at = 3,
                .exit_reason = "crashed",
                .exit_status = -1,
                .exit_message = "qemu: boom",
                .address = "10.42.0.2",
                .firmware_boot = true,
                .template = "0123456789abcdef",
        };
}

static void test_instance(void **state) {
        instance_t i = full_instance();
        packed_t p;
        const msgpack_object *o;

        instance_spec_pack(packed_begin(&p), &i.spec);
        o = packed_end(&p);
        assert_fits(&proto_msg_instance_spec, o);
        assert_covers(&proto_msg_instance_spec, o, NULL);
        /* instance.create is the one body with the files of a secret volume. */
        const msgpack_object *vols = mp_map_get(o, "volumes");
        assert_fits(&proto_msg_volume, &vols->via.array.ptr[1]);
        assert_covers(&proto_msg_volume, &vols->via.array.ptr[1], NULL);
        assert_covers(&proto_msg_volume_file, &mp_map_get(&vols->via.array.ptr[1], "files")->via.array.ptr[0], NULL);
        assert_null(mp_map_get(&vols->via.array.ptr[0], "files")); /* a bind volume has none */
        packed_free(&p);

        /* What is published and listed leaves the secret environment out, not its key, not a
         * byte of its value, and carries the volumes without their files. */
        instance_pack(packed_begin(&p), &i);
        o = packed_end(&p);
        assert_fits(&proto_msg_instance, o);
        assert_covers(&proto_msg_instance, o, (const char *const[]){ "secret_environment", NULL });
        assert_null(mp_map_get(o, "secret_environment"));
        assert_null(mp_map_get(&mp_map_get(o, "volumes")->via.array.ptr[1], "files"));
        assert_null(memmem(p.buf.data, p.buf.size, "s3cr3t", 6));
        packed_free(&p);

        instance_event_pack(packed_begin(&p), &i, 42);
        o = packed_end(&p);
        assert_fits(&proto_msg_instance_event, o);
        assert_covers(&proto_msg_instance_event, o, (const char *const[]){ "secret_environment", NULL });
        assert_null(memmem(p.buf.data, p.buf.size, "s3cr3t", 6));
        packed_free(&p);
}

/* deployment.resolve's answer fits the schema, covers it, and reads back as it was packed. */
static void test_resolve_result(void **state) {
        resolved_file_t files[] = {
                { .name = "nginx.conf", .mode = 0444, .data = (uint8_t *)"worker_processes 1;\n", .size = 20 },
                { .name = "token", .mode = 0400, .data = (uint8_t *)"s3cr3t", .size = 6 },
        };
        resolved_volume_t resolved[] = { { .index = 2, .files = files, .n_files = ELEMENTSOF(files) } };
        resolve_result_t r = { .generation = 4,
                               .secret_environment = secret_env,
                               .volumes = resolved,
                               .n_volumes = ELEMENTSOF(resolved) },
                         back;
        packed_t p;
        const msgpack_object *o;

        resolve_result_pack(packed_begin(&p), &r);
        o = packed_end(&p);
        assert_fits(&proto_msg_resolve_result, o);
        assert_covers(&proto_msg_resolve_result, o, NULL);
        assert_fits(&proto_msg_resolved_volume, &mp_map_get(o, "volumes")->via.array.ptr[0]);
        assert_int_equal(resolve_result_unpack(o, &back), 0);
        assert_int_equal(back.generation, 4);
        assert_string_equal(back.secret_environment[0], secret_env[0]);
        assert_int_equal(back.n_volumes, 1);
        assert_int_equal(back.volumes[0].index, 2);
        assert_int_equal(back.volumes[0].n_files, 2);
        assert_string_equal(back.volumes[0].files[1].name, "token");
        assert_int_equal(back.volumes[0].files[1].mode, 0400);
        assert_memory_equal(back.volumes[0].files[1].data, "s3cr3t", 6);
        resolve_result_clear(&back);
        packed_free(&p);

        /* A file name that would leave its volume's directory is refused. */
        files[0].name = "../etc/passwd";
        resolve_result_pack(packed_begin(&p), &r);
        assert_int_equal(resolve_result_unpack(packed_end(&p), &back), -EBADMSG);
        assert_null(back.volumes);
        packed_free(&p);
}

/* The decoder takes what the packer gives, files and all, and refuses what the schema bounds. */
static void test_volumes_roundtrip(void **state) {
        instance_t i = full_instance();
        instance_spec_t back = {};
        packed_t p;

        instance_spec_pack(packed_begin(&p), &i.spec);
        assert_int_equal(instance_spec_unpack(packed_end(&p), &back), 0);
        assert_int_equal(back.n_volumes, 2);
        assert_int_equal(back.volumes[0].type, VOLUME_BIND);
        assert_false(back.volumes[0].readonly);
        assert_string_equal(back.volumes[0].source, "/srv/data");
        assert_int_equal(back.volumes[1].type, VOLUME_SECRET);
        assert_int_equal(back.volumes[1].n_files, 1);
        assert_int_equal(back.volumes[1].files[0].mode, 0400);
        assert_memory_equal(back.volumes[1].files[0].data, "s3cr3t", 6);
        instance_spec_clear(&back);
        packed_free(&p);

        /* A relative destination, "/", a bad tag, a bind without source: -EBADMSG. */
        static const char *const bad[][3] = { { "data", "bind-0", "/srv" },
                                              { "/", "bind-0", "/srv" },
                                              { "/d", "Bind_0", "/srv" },
                                              { "/d", "bind-0", NULL } };
        for (size_t k = 0; k < ELEMENTSOF(bad); k++) {
                volume_spec_t v = { .type = VOLUME_BIND,
                                    .destination = (char *)bad[k][0],
                                    .tag = (char *)bad[k][1],
                                    .source = (char *)bad[k][2] };

                i.spec.volumes = &v;
                i.spec.n_volumes = 1;
                instance_spec_pack(packed_begin(&p), &i.spec);
                assert_int_equal(instance_spec_unpack(packed_end(&p), &back), -EBADMSG);
                packed_free(&p);
        }
}

static void test_ports(void **state) {
        packed_t p;
        const msgpack_object *o;

        ports_pack(packed_begin(&p), ports, ELEMENTSOF(ports));
        o = packed_end(&p);
        for (uint32_t i = 0; i < o->via.array.size; i++)
                assert_fits(&proto_msg_port, &o->via.array.ptr[i]);
        assert_covers(&proto_msg_port, &o->via.array.ptr[0], NULL);
        packed_free(&p);
}

static void test_attachment(void **state) {
        attachment_t a = { .instance_id = "0123456789ab",
                           .tap = "hk0123456789ab",
                           .mac = "02:01:02:03:04:05",
                           .host_ip = "10.42.0.1",
                           .guest_ip = "10.42.0.2",
                           .prefix = 30,
                           .ports = ports,
                           .n_ports = ELEMENTSOF(ports) };
        _cleanup_(attachment_clear) attachment_t back = {};
        proto_error_t e = {};
        packed_t p;
        const msgpack_object *o;

        attachment_pack(packed_begin(&p), &a, 0);
        o = packed_end(&p);
        assert_fits(&proto_msg_attachment, o);
        assert_covers(&proto_msg_attachment, o, NULL);
        assert_int_equal(attachment_unpack(o, &back, &e), 0);
        assert_string_equal(back.tap, a.tap);
        assert_string_equal(back.mac, a.mac);
        assert_string_equal(back.guest_ip, "10.42.0.2");
        assert_int_equal(back.prefix, 30);
        assert_true(ports_equal(back.ports, back.n_ports, ports, ELEMENTSOF(ports)));
        attachment_clear(&back);
        packed_free(&p);

        /* With an event's ts after it: net.attached's body. */
        msgpack_packer *pk = packed_begin(&p);
        attachment_pack(pk, &a, 1);
        mp_pack_kv_u64(pk, "ts", 5);
        assert_fits(&proto_msg_attachment_event, packed_end(&p));
        packed_free(&p);

        /* The decoder names what is wrong. */
        pk = packed_begin(&p);
        attachment_t bad = a;
        snprintf(bad.guest_ip, sizeof(bad.guest_ip), "10.42.0.999");
        attachment_pack(pk, &bad, 0);
        assert_int_equal(attachment_unpack(packed_end(&p), &back, &e), -EBADMSG);
        assert_string_equal(e.message, "guest_ip: must be a dotted IPv4 address");
        packed_free(&p);

        pk = packed_begin(&p);
        msgpack_pack_map(pk, 1);
        mp_pack_kv_str(pk, "instance_id", "0123456789ab");
        assert_int_equal(attachment_unpack(packed_end(&p), &back, &e), -EBADMSG);
        assert_string_equal(e.message, "tap: missing");
        packed_free(&p);
}

/* agent_frame.c carries any map with a str "type": what crosses is each frame's body, held here
 * against the schema after a trip through the framing (the agent's own answers are checked in
 * tests/unit/agent/test_agent_schema.c). */
static void test_agent_frame(void **state) {
        msgpack_sbuffer frame;
        agent_frame_reader_t r;
        msgpack_unpacked u;
        packed_t p;
        msgpack_packer *pk = packed_begin(&p);

        msgpack_pack_map(pk, 7);
        mp_pack_kv_str(pk, "type", AGENT_FRAME_EXEC);
        mp_pack_kv_u64(pk, "id", 3);
        mp_pack_kv_strv(pk, "argv", cmd);
        mp_pack_kv_env(pk, "env", env);
        mp_pack_kv_str(pk, "cwd", NULL);
        mp_pack_kv_u64(pk, "timeout_ms", 1000);
        mp_pack_str(pk, "stdin");
        msgpack_pack_bin(pk, 2);
        msgpack_pack_bin_body(pk, "hi", 2);
        msgpack_sbuffer_init(&frame);
        assert_int_equal(agent_frame_encode(p.buf.data, p.buf.size, &frame), 0);
        agent_frame_reader_init(&r);
        assert_int_equal(agent_frame_reader_feed(&r, frame.data, frame.size), 0);
        assert_int_equal(agent_frame_reader_next(&r, &u), 1);
        assert_fits(&proto_msg_agent_exec, &u.data);
        msgpack_unpacked_destroy(&u);
        agent_frame_reader_clear(&r);
        msgpack_sbuffer_destroy(&frame);
        packed_free(&p);

        /* Every frame type of the schema has a body for each direction it goes. */
        for (size_t k = 0; k < PROTO_N_AGENT_FRAMES; k++) {
                const proto_field_t *type = &proto_agent_frames[k].body->fields[0];

                assert_string_equal(type->name, "type");
                assert_non_null(type->values);
        }
}

static void test_check_names_the_field(void **state) {
        proto_error_t e = {};
        packed_t p;
        msgpack_packer *pk = packed_begin(&p);

        msgpack_pack_map(pk, 3);
        mp_pack_kv_str(pk, "instance_id", "0123456789ab");
        mp_pack_kv_str(pk, "deployment_id", "d-1");
        mp_pack_str(pk, "ports");
        msgpack_pack_array(pk, 1);
        msgpack_pack_map(pk, 2);
        mp_pack_kv_u64(pk, "published", 70000);
        mp_pack_kv_u64(pk, "target", 80);
        assert_int_equal(proto_check(&proto_msg_net_attach_args, packed_end(&p), 0, &e), -EBADMSG);
        assert_string_equal(e.message, "ports[0].published: must be between 1 and 65535");
        packed_free(&p);

        pk = packed_begin(&p);
        msgpack_pack_map(pk, 2);
        mp_pack_kv_u64(pk, "instance_id", 7);
        mp_pack_kv_str(pk, "novel", "x");
        assert_int_equal(proto_check(&proto_msg_instance_stop_args, packed_end(&p), 0, &e), -EBADMSG);
        assert_string_equal(e.message, "instance_id: must be a string");
        packed_free(&p);

        /* Unknown keys: ignored by decoders, refused by the strict (drift) check. */
        pk = packed_begin(&p);
        msgpack_pack_map(pk, 3);
        mp_pack_kv_str(pk, "instance_id", "0123456789ab");
        mp_pack_kv_str(pk, "novel", "x");
        mp_pack_kv_str(pk, "remove", NULL); /* nil: absent */
        assert_int_equal(proto_check(&proto_msg_instance_stop_args, packed_end(&p), 0, &e), 0);
        assert_int_equal(proto_check(&proto_msg_instance_stop_args, packed_end(&p), PROTO_CHECK_STRICT, &e), -EBADMSG);
        assert_string_equal(e.message, "novel: not in the schema of instance_stop_args");
        packed_free(&p);

        pk = packed_begin(&p);
        msgpack_pack_map(pk, 1);
        mp_pack_kv_str(pk, "deployment_id", "d-1");
        assert_int_equal(proto_check(&proto_msg_instance_spec, packed_end(&p), 0, &e), -EBADMSG);
        assert_string_equal(e.message, "instance_id: missing");
        packed_free(&p);
}

static void test_tables(void **state) {
        /* Every method and event has its tables; names match the constants. */
        assert_non_null(proto_method_find(BUS_METHOD_INSTANCE_CREATE));
        assert_ptr_equal(proto_method_find(BUS_METHOD_INSTANCE_CREATE)->args, &proto_msg_instance_spec);
        assert_ptr_equal(proto_event_find(BUS_EVENT_INSTANCE_EXITED)->body, &proto_msg_instance_event);
        assert_ptr_equal(proto_event_find("log.5f0c7b9e")->body, &proto_msg_log_event);
        assert_null(proto_event_find("instance.exploded"));
        assert_ptr_equal(proto_message_find("port"), &proto_msg_port);
        for (size_t k = 0; k < PROTO_N_METHODS; k++)
                assert_true(proto_methods[k].args && proto_methods[k].result && proto_methods[k].server);
        for (size_t k = 0; k < PROTO_N_EVENTS; k++)
                assert_true(proto_events[k].body && proto_events[k].publisher);
        assert_int_equal(PROTO_ID_MAX, 64);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_deployment),     cmocka_unit_test(test_deployment_event),
                cmocka_unit_test(test_event),          cmocka_unit_test(test_instance),
                cmocka_unit_test(test_resolve_result), cmocka_unit_test(test_volumes_roundtrip),
                cmocka_unit_test(test_ports),          cmocka_unit_test(test_attachment),
                cmocka_unit_test(test_agent_frame),    cmocka_unit_test(test_check_names_the_field),
                cmocka_unit_test(test_tables),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
