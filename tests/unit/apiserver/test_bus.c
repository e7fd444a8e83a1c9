/* test_bus.c: the deployment.* methods called through their table, as the bus server would, and msgpack results as JSON. */
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
#include "proto/instance.h"
#include "services/apiserver/apiserver_bus.h"
#include "services/apiserver/apiserver_json.h"

typedef struct fixture {
        char dir[64];
        apiserver_t api; /* store only: no sockets, so nothing is published */
        msgpack_sbuffer out;
        msgpack_unpacked result;
        bus_request_t req;
} fixture_t;

static int setup(void **state) {
        fixture_t *f = calloc(1, sizeof(*f));
        char path[128];

        assert_non_null(f);
        snprintf(f->dir, sizeof(f->dir), "/tmp/husk-test-bus.XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(path, sizeof(path), "%s/husk.db", f->dir);
        assert_int_equal(store_open(path, &f->api.store), 0);
        msgpack_sbuffer_init(&f->out);
        msgpack_unpacked_init(&f->result);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        fixture_t *f = *state;

        store_close(&f->api.store);
        msgpack_sbuffer_destroy(&f->out);
        msgpack_unpacked_destroy(&f->result);
        assert_int_equal(rm_rf(f->dir), 0);
        free(f);
        return 0;
}

static bus_method_fn method(const char *name) {
        for (const bus_method_t *m = apiserver_bus_methods; m->name; m++)
                if (streq(m->name, name))
                        return m->handler;
        fail_msg("no method %s", name);
        return NULL;
}

/* Call name with args packed by the caller into a map; returns the handler's value. On
 * success the result is unpacked in f->result. */
static int call(fixture_t *f, const char *name, const msgpack_sbuffer *args) {
        msgpack_unpacked in;
        msgpack_packer pk;
        int r;

        msgpack_unpacked_init(&in);
        assert_int_equal(msgpack_unpack_next(&in, args->data, args->size, NULL), MSGPACK_UNPACK_SUCCESS);
        f->req = (bus_request_t){ .method = name, .id = 1, .deadline_ms = now_realtime_ms() + 1000, .args = &in.data };
        msgpack_sbuffer_clear(&f->out);
        msgpack_packer_init(&pk, &f->out, msgpack_sbuffer_write);
        r = method(name)(&f->req, &pk, &f->api);
        if (r >= 0) {
                msgpack_unpacked_destroy(&f->result);
                msgpack_unpacked_init(&f->result);
                assert_int_equal(msgpack_unpack_next(&f->result, f->out.data, f->out.size, NULL),
                                 MSGPACK_UNPACK_SUCCESS);
        }
        msgpack_unpacked_destroy(&in);
        return r;
}

static void assert_fails(fixture_t *f, const char *name, const msgpack_sbuffer *args, const char *code,
                         const char *message) {
        assert_true(call(f, name, args) < 0);
        assert_string_equal(f->req.error_code, code);
        assert_string_equal(f->req.error_message, message);
}

typedef struct args {
        msgpack_sbuffer buf;
        msgpack_packer pk;
} args_t;

static args_t *args_new(size_t n) {
        args_t *a = calloc(1, sizeof(*a));

        assert_non_null(a);
        msgpack_sbuffer_init(&a->buf);
        msgpack_packer_init(&a->pk, &a->buf, msgpack_sbuffer_write);
        msgpack_pack_map(&a->pk, n);
        return a;
}

static void args_free(args_t *a) {
        msgpack_sbuffer_destroy(&a->buf);
        free(a);
}

static char *create(fixture_t *f, const char *name) {
        char text[256];
        json_t *in, *violations = NULL;
        manifest_t m = {};
        store_deployment_t d = {};
        char *id;

        snprintf(text, sizeof(text), "{\"name\": \"%s\", \"image\": \"/img\", \"replicas\": 2}", name);
        in = json_loads(text, 0, NULL);
        assert_int_equal(manifest_parse(in, &m, &violations), 0);
        assert_int_equal(store_deployment_apply(f->api.store, &m, &d), STORE_APPLY_CREATED);
        id = strdup(d.d.id);
        store_deployment_clear(&d);
        manifest_clear(&m);
        json_decref(in);
        return id;
}

static void test_list_round_trips_through_the_proto_codec(void **state) {
        fixture_t *f = *state;
        _cleanup_free_ char *a = create(f, "web"), *b = create(f, "api");
        args_t *args = args_new(0);
        deployment_t d;

        assert_int_equal(call(f, "deployment.list", &args->buf), 0);
        assert_int_equal(f->result.data.type, MSGPACK_OBJECT_ARRAY);
        assert_int_equal(f->result.data.via.array.size, 2);
        assert_int_equal(deployment_unpack(&f->result.data.via.array.ptr[0], &d), 0);
        assert_string_equal(d.name, "api");
        assert_string_equal(d.id, b);
        assert_int_equal(d.replicas, 2);
        assert_int_equal(d.cpus, 1);
        assert_int_equal(d.memory_mib, 256);
        assert_string_equal(d.status, "pending");
        deployment_clear(&d);
        args_free(args);
}

static void test_get(void **state) {
        fixture_t *f = *state;
        _cleanup_free_ char *id = create(f, "web");
        args_t *none = args_new(0), *wrong = args_new(1), *unknown = args_new(1), *ok = args_new(1);
        deployment_t d;

        assert_fails(f, "deployment.get", &none->buf, BUS_ERR_INVALID, "id: required string is missing");
        mp_pack_kv_u64(&wrong->pk, "id", 7);
        assert_fails(f, "deployment.get", &wrong->buf, BUS_ERR_INVALID, "id: must be a string");
        mp_pack_kv_str(&unknown->pk, "id", "nope");
        assert_fails(f, "deployment.get", &unknown->buf, BUS_ERR_NOT_FOUND, "deployment nope not found");
        mp_pack_kv_str(&ok->pk, "id", id);
        assert_int_equal(call(f, "deployment.get", &ok->buf), 0);
        assert_int_equal(deployment_unpack(&f->result.data, &d), 0);
        assert_string_equal(d.name, "web");
        assert_int_equal(d.generation, 1);
        deployment_clear(&d);
        args_free(none);
        args_free(wrong);
        args_free(unknown);
        args_free(ok);
}

static args_t *status_args(const char *id, const char *status, const char *message, uint64_t ready) {
        args_t *a = args_new(message ? 4 : 3);

        mp_pack_kv_str(&a->pk, "id", id);
        mp_pack_kv_str(&a->pk, "status", status);
        if (message)
                mp_pack_kv_str(&a->pk, "message", message);
        mp_pack_kv_u64(&a->pk, "ready_replicas", ready);
        return a;
}

static bool changed(fixture_t *f) {
        const msgpack_object *o = mp_map_get(&f->result.data, "changed");

        assert_non_null(o);
        assert_int_equal(o->type, MSGPACK_OBJECT_BOOLEAN);
        return o->via.boolean;
}

static void test_set_status(void **state) {
        fixture_t *f = *state;
        _cleanup_free_ char *id = create(f, "web");
        args_t *a = status_args(id, "creating", "1/2 instances ready", 1);
        args_t *bad = status_args(id, "zombie", NULL, 0);
        args_t *huge = status_args(id, "running", NULL, UINT64_C(1) << 33);
        args_t *deleted = status_args(id, "deleted", NULL, 0);
        store_deployment_t d = {};
        char message[256];

        assert_int_equal(call(f, "deployment.set_status", &a->buf), 0);
        assert_true(changed(f));
        assert_int_equal(call(f, "deployment.set_status", &a->buf), 0);
        assert_false(changed(f));
        assert_int_equal(store_deployment_get(f->api.store, id, &d), 0);
        assert_string_equal(d.d.status, "creating");
        assert_string_equal(d.status_message, "1/2 instances ready");
        assert_int_equal(d.d.ready_replicas, 1);
        store_deployment_clear(&d);

        assert_fails(f, "deployment.set_status", &bad->buf, BUS_ERR_INVALID,
                     "status: \"zombie\" is not one of pending, creating, running, completed, failed, "
                     "crash_loop_back_off, insufficient_resources");
        assert_fails(f, "deployment.set_status", &huge->buf, BUS_ERR_INVALID,
                     "ready_replicas: must be an unsigned integer below 2^32");
        snprintf(message, sizeof(message),
                 "deployment %s: only DELETE marks a deployment deleted, and a deleted one keeps that status until "
                 "purged",
                 id);
        assert_fails(f, "deployment.set_status", &deleted->buf, BUS_ERR_CONFLICT, message);
        args_free(a);
        args_free(bad);
        args_free(huge);
        args_free(deleted);
}

static void test_purge(void **state) {
        fixture_t *f = *state;
        _cleanup_free_ char *id = create(f, "web");
        args_t *a = args_new(1);
        store_deployment_t d = {};
        char message[256];

        mp_pack_kv_str(&a->pk, "id", id);
        snprintf(message, sizeof(message), "deployment %s is not deleted; DELETE it first", id);
        assert_fails(f, "deployment.purge", &a->buf, BUS_ERR_CONFLICT, message);

        assert_int_equal(store_deployment_mark_deleted(f->api.store, id, &d), 1);
        store_deployment_clear(&d);
        assert_int_equal(call(f, "deployment.purge", &a->buf), 0);
        assert_int_equal(f->result.data.type, MSGPACK_OBJECT_MAP);
        assert_int_equal(f->result.data.via.map.size, 0);

        snprintf(message, sizeof(message), "deployment %s not found", id);
        assert_fails(f, "deployment.purge", &a->buf, BUS_ERR_NOT_FOUND, message);
        args_free(a);
}

/* A job's exit code rides on set_status; how removed instances ended on record_exit, whose
 * args are the instance record as vmm-driver lists it. */
static void test_exit_code_and_record_exit(void **state) {
        fixture_t *f = *state;
        _cleanup_free_ char *id = create(f, "web");
        args_t *st = args_new(4), *bad_code = args_new(3), *rec = NULL, *alive = NULL, *junk = args_new(1);
        instance_t i = { .spec = { .instance_id = "0a1b2c3d4e5f",
                                   .deployment_id = id,
                                   .generation = 1,
                                   .runtime = "qemu",
                                   .image = "/img",
                                   .cpus = 1,
                                   .memory_mib = 256 },
                         .state = INSTANCE_STATE_EXITED,
                         .started_at = 1795325400000ULL,
                         .exited_at = 1795325460000ULL,
                         .exit_reason = "guest-shutdown",
                         .exit_status = 3,
                         .address = "10.42.1.2" };
        store_deployment_t d = {};
        store_exit_t *a = NULL;
        size_t n = 0;

        mp_pack_kv_str(&st->pk, "id", id);
        mp_pack_kv_str(&st->pk, "status", "failed");
        mp_pack_kv_str(&st->pk, "message", "job exited with status 3");
        mp_pack_kv_i64(&st->pk, "exit_code", 3);
        assert_int_equal(call(f, "deployment.set_status", &st->buf), 0);
        assert_int_equal(store_deployment_get(f->api.store, id, &d), 0);
        assert_true(d.has_exit_code);
        assert_int_equal(d.exit_code, 3);
        store_deployment_clear(&d);
        mp_pack_kv_str(&bad_code->pk, "id", id);
        mp_pack_kv_str(&bad_code->pk, "status", "failed");
        mp_pack_kv_str(&bad_code->pk, "exit_code", "3");
        assert_fails(f, "deployment.set_status", &bad_code->buf, BUS_ERR_INVALID, "exit_code: must be an integer");

        rec = args_new(0);
        msgpack_sbuffer_clear(&rec->buf);
        instance_pack(&rec->pk, &i);
        assert_int_equal(call(f, "deployment.record_exit", &rec->buf), 0);
        assert_int_equal(call(f, "deployment.record_exit", &rec->buf), 0); /* idempotent */
        assert_int_equal(store_exit_list(f->api.store, id, &a, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(a[0].instance_id, "0a1b2c3d4e5f");
        assert_string_equal(a[0].address, "10.42.1.2");
        assert_int_equal(a[0].exit_status, 3);
        store_exit_array_free(a, n);

        i.state = INSTANCE_STATE_RUNNING;
        alive = args_new(0);
        msgpack_sbuffer_clear(&alive->buf);
        instance_pack(&alive->pk, &i);
        assert_fails(f, "deployment.record_exit", &alive->buf, BUS_ERR_INVALID,
                     "state: only an exited instance (with an exit_reason)");
        mp_pack_kv_str(&junk->pk, "instance_id", "x");
        assert_fails(f, "deployment.record_exit", &junk->buf, BUS_ERR_INVALID,
                     "not an instance record (see proto/SCHEMA.md)");
        args_free(st);
        args_free(bad_code);
        args_free(rec);
        args_free(alive);
        args_free(junk);
}

/* event.record's invalid answer names the field that is wrong (proto/schema.yaml's table). */
static void test_event_record_names_the_field(void **state) {
        fixture_t *f = *state;
        args_t *a = args_new(4);

        mp_pack_kv_str(&a->pk, "deployment_id", "d-1");
        mp_pack_kv_str(&a->pk, "component", "scheduler");
        mp_pack_kv_str(&a->pk, "reason", "BackOff");
        mp_pack_kv_u64(&a->pk, "message", 7);
        assert_fails(f, "event.record", &a->buf, BUS_ERR_INVALID, "level: missing");
        args_free(a);
}

static void test_msgpack_to_json(void **state) {
        msgpack_sbuffer buf;
        msgpack_packer pk;
        msgpack_unpacked u;
        json_t *j;
        char *text;

        msgpack_sbuffer_init(&buf);
        msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 7);
        mp_pack_kv_str(&pk, "s", "x");
        mp_pack_kv_i64(&pk, "neg", -3);
        mp_pack_kv_bool(&pk, "b", true);
        mp_pack_str(&pk, "nil");
        msgpack_pack_nil(&pk);
        mp_pack_str(&pk, "bin");
        msgpack_pack_bin(&pk, 2);
        msgpack_pack_bin_body(&pk, "\x00\x01", 2);
        msgpack_pack_int(&pk, 5); /* a non-string key: skipped */
        msgpack_pack_int(&pk, 6);
        mp_pack_str(&pk, "a");
        msgpack_pack_array(&pk, 2);
        msgpack_pack_double(&pk, 1.5);
        msgpack_pack_uint64(&pk, UINT64_C(7));

        msgpack_unpacked_init(&u);
        assert_int_equal(msgpack_unpack_next(&u, buf.data, buf.size, NULL), MSGPACK_UNPACK_SUCCESS);
        j = msgpack_to_json(&u.data);
        assert_non_null(j);
        text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
        assert_string_equal(text, "{\"a\":[1.5,7],\"b\":true,\"bin\":null,\"neg\":-3,\"nil\":null,\"s\":\"x\"}");
        free(text);
        json_decref(j);
        msgpack_unpacked_destroy(&u);

        msgpack_sbuffer_destroy(&buf);
}

/* msgpack-c stops at 32 levels itself; the converter holds the line on its own too. */
static void test_msgpack_to_json_depth_is_bounded(void **state) {
        msgpack_object nested[40];
        json_t *j;

        for (size_t i = 0; i < ELEMENTSOF(nested); i++)
                nested[i] =
                        (msgpack_object){ .type = MSGPACK_OBJECT_ARRAY,
                                          .via.array = { .size = i + 1 < ELEMENTSOF(nested), .ptr = &nested[i + 1] } };
        assert_null(msgpack_to_json(&nested[0]));
        j = msgpack_to_json(&nested[10]);
        assert_non_null(j);
        json_decref(j);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_list_round_trips_through_the_proto_codec, setup, teardown),
                cmocka_unit_test_setup_teardown(test_get, setup, teardown),
                cmocka_unit_test_setup_teardown(test_set_status, setup, teardown),
                cmocka_unit_test_setup_teardown(test_purge, setup, teardown),
                cmocka_unit_test_setup_teardown(test_exit_code_and_record_exit, setup, teardown),
                cmocka_unit_test_setup_teardown(test_event_record_names_the_field, setup, teardown),
                cmocka_unit_test(test_msgpack_to_json),
                cmocka_unit_test(test_msgpack_to_json_depth_is_bounded),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
