/* test_agent.c: husk-agent's pure parts: kernel cmdline, modules.dep, request answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/mp.h"
#include "services/agent/agent.h"

/* ---- kernel command line ------------------------------------------------------------- */

static const char *cmdline = "console=ttyS0 panic=-1 quiet husk.instance=abc123 virtio_mmio.device=512@0xfeb00e00:12 "
                             "virtio-mmio.device=512@0xfeb00c00:13 virtio_mmio_x.y=1 husk.note=\"two words\" "
                             "virtio_console.debug husk.instance=def456\n";

static void test_cmdline_get(void **state) {
        char *v = NULL;

        /* The last one wins, as for the kernel's own parameters. */
        assert_int_equal(cmdline_get(cmdline, "husk.instance", &v), 0);
        assert_string_equal(v, "def456");
        free(v);
        assert_int_equal(cmdline_get(cmdline, "husk.note", &v), 0);
        assert_string_equal(v, "two words");
        free(v);
        assert_int_equal(cmdline_get(cmdline, "panic", &v), 0);
        assert_string_equal(v, "-1");
        free(v);
        assert_int_equal(cmdline_get(cmdline, "husk", &v), -ENOENT);
        assert_int_equal(cmdline_get(cmdline, "quiet", &v), -ENOENT); /* no value */
        assert_int_equal(cmdline_get("", "husk.instance", &v), -ENOENT);
}

static void test_cmdline_module_options(void **state) {
        char *v = NULL;

        /* '-' and '_' are the same in module names; a longer name is another module. */
        assert_int_equal(cmdline_module_options(cmdline, "virtio_mmio", &v), 0);
        assert_string_equal(v, "device=512@0xfeb00e00:12 device=512@0xfeb00c00:13");
        free(v);
        assert_int_equal(cmdline_module_options(cmdline, "virtio_console", &v), 0);
        assert_string_equal(v, "debug");
        free(v);
        assert_int_equal(cmdline_module_options(cmdline, "ext4", &v), 0);
        assert_string_equal(v, "");
        free(v);
        assert_int_equal(cmdline_module_options("a.b=\"x y\"", "a", &v), 0);
        assert_string_equal(v, "b=\"x y\"");
        free(v);
}

static void test_instance_id_valid(void **state) {
        assert_true(agent_hostname_valid("abc123"));
        assert_true(agent_hostname_valid("0123456789ab"));
        assert_true(agent_hostname_valid("web-1"));
        assert_false(agent_hostname_valid(""));
        assert_false(agent_hostname_valid("-x"));
        assert_false(agent_hostname_valid("a.b"));
        assert_false(agent_hostname_valid("a b"));
        assert_false(agent_hostname_valid("a/b"));
        assert_false(agent_hostname_valid("0123456789012345678901234567890123456789012345678901234567890123"));
}

/* ---- modules.dep --------------------------------------------------------------------- */

static const char *dep_text =
        "kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko\n"
        "kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko\n"
        "kernel/drivers/virtio/virtio_ring.ko:\n"
        "kernel/arch/x86/crypto/crc32c-intel.ko:\n"
        "kernel/drivers/virtio/virtio_mmio.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko";

static void test_module_name_from_path(void **state) {
        char n[64];

        module_name_from_path("kernel/arch/x86/crypto/crc32c-intel.ko", n, sizeof(n));
        assert_string_equal(n, "crc32c_intel");
        module_name_from_path("ext4.ko.xz", n, sizeof(n));
        assert_string_equal(n, "ext4");
        module_name_from_path("virtio", n, sizeof(n));
        assert_string_equal(n, "virtio");
}

static void test_modules_dep_lookup(void **state) {
        char *path = NULL, **deps = NULL;
        size_t n = 0;

        /* Last line without a newline; deps in modules.dep order. */
        assert_int_equal(modules_dep_lookup(dep_text, "virtio_mmio", &path, &deps, &n), 0);
        assert_string_equal(path, "kernel/drivers/virtio/virtio_mmio.ko");
        assert_int_equal(n, 2);
        assert_string_equal(deps[0], "kernel/drivers/virtio/virtio.ko");
        assert_string_equal(deps[1], "kernel/drivers/virtio/virtio_ring.ko");
        for (size_t i = 0; i < n; i++)
                free(deps[i]);
        free(deps);
        free(path);

        assert_int_equal(modules_dep_lookup(dep_text, "virtio_ring", &path, &deps, &n), 0);
        assert_int_equal(n, 0);
        free(deps);
        free(path);

        /* Dashes in the file name, underscores in the request, and the other way round. */
        assert_int_equal(modules_dep_lookup(dep_text, "crc32c-intel", &path, &deps, &n), 0);
        assert_string_equal(path, "kernel/arch/x86/crypto/crc32c-intel.ko");
        free(deps);
        free(path);

        /* "virtio" must not match virtio_mmio or virtio_ring. */
        assert_int_equal(modules_dep_lookup(dep_text, "virtio", &path, &deps, &n), 0);
        assert_string_equal(path, "kernel/drivers/virtio/virtio.ko");
        for (size_t i = 0; i < n; i++)
                free(deps[i]);
        free(deps);
        free(path);

        assert_int_equal(modules_dep_lookup(dep_text, "virtio_net", &path, &deps, &n), -ENOENT);
        assert_int_equal(modules_dep_lookup("", "ext4", &path, &deps, &n), -ENOENT);
        assert_int_equal(modules_dep_lookup("garbage without colon\n", "garbage", &path, &deps, &n), -ENOENT);
}

/* ---- protocol ------------------------------------------------------------------------ */

/* Pack a request with msgpack-c, run it through the handler, unpack the answer. */
static void handle(agent_state_t *s, const char *type, const uint64_t *id, const int64_t *grace,
                   msgpack_unpacked *ret) {
        msgpack_sbuffer req, reply;
        msgpack_packer pk;
        msgpack_unpacked u;
        size_t off = 0;

        msgpack_sbuffer_init(&req);
        msgpack_sbuffer_init(&reply);
        msgpack_packer_init(&pk, &req, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 1 + (id != NULL) + (grace != NULL));
        mp_pack_kv_str(&pk, "type", type);
        if (id)
                mp_pack_kv_u64(&pk, "id", *id);
        if (grace)
                mp_pack_kv_i64(&pk, "grace_ms", *grace);

        msgpack_unpacked_init(&u);
        assert_int_equal(msgpack_unpack_next(&u, req.data, req.size, &off), MSGPACK_UNPACK_SUCCESS);
        assert_int_equal(agent_proto_handle(s, &u.data, &reply), 0);
        msgpack_unpacked_destroy(&u);

        /* Read the answer back as the host would: through a frame, which also proves it
         * is one (a map with a str "type"), and into memory of its own. */
        msgpack_sbuffer frame;
        agent_frame_reader_t r;

        msgpack_sbuffer_init(&frame);
        assert_int_equal(agent_frame_encode(reply.data, reply.size, &frame), 0);
        agent_frame_reader_init(&r);
        assert_int_equal(agent_frame_reader_feed(&r, frame.data, frame.size), 0);
        assert_int_equal(agent_frame_reader_next(&r, ret), 1);
        assert_int_equal(r.len, 0);
        agent_frame_reader_clear(&r);
        msgpack_sbuffer_destroy(&frame);
        msgpack_sbuffer_destroy(&req);
        msgpack_sbuffer_destroy(&reply);
}

static void assert_str(const msgpack_object *o, const char *key, const char *want) {
        char *v = NULL;

        assert_int_equal(mp_get_str(o, key, 1024, &v), 0);
        assert_string_equal(v, want);
        free(v);
}

static void assert_u64(const msgpack_object *o, const char *key, uint64_t want) {
        uint64_t v = 0;

        assert_int_equal(mp_get_u64(o, key, &v), 0);
        assert_int_equal(v, want);
}

static void test_hello(void **state) {
        agent_state_t s = { 0 };
        msgpack_unpacked u;
        uint64_t id = 41;
        bool ready = false;

        handle(&s, "hello", &id, NULL, &u);
        assert_int_equal(u.data.via.map.size, 5);
        assert_str(&u.data, "type", "hello");
        assert_u64(&u.data, "id", 41);
        assert_u64(&u.data, "version", AGENT_PROTOCOL_VERSION);
        assert_int_equal(mp_get_bool(&u.data, "ready", &ready), 0);
        assert_true(ready);
        assert_str(&u.data, "agent", "husk-agent " HUSK_VERSION);
        assert_false(s.shutdown_requested);
        msgpack_unpacked_destroy(&u);
}

static void test_ping(void **state) {
        agent_state_t s = { 0 };
        msgpack_unpacked u;
        uint64_t id = UINT64_MAX;

        handle(&s, "ping", &id, NULL, &u);
        assert_int_equal(u.data.via.map.size, 2);
        assert_str(&u.data, "type", "pong");
        assert_u64(&u.data, "id", UINT64_MAX);
        msgpack_unpacked_destroy(&u);
}

static void test_shutdown(void **state) {
        agent_state_t s = { 0 };
        msgpack_unpacked u;
        uint64_t id = 9;
        int64_t grace = 2500, negative = -1, huge = INT64_MAX;

        handle(&s, "shutdown", &id, &grace, &u);
        assert_str(&u.data, "type", "shutdown");
        assert_u64(&u.data, "id", 9);
        assert_true(s.shutdown_requested);
        assert_int_equal(s.shutdown_grace_ms, 2500);
        msgpack_unpacked_destroy(&u);

        s = (agent_state_t){ 0 };
        handle(&s, "shutdown", &id, &huge, &u);
        assert_true(s.shutdown_requested);
        assert_int_equal(s.shutdown_grace_ms, AGENT_SHUTDOWN_GRACE_MAX_MS);
        msgpack_unpacked_destroy(&u);

        /* A shutdown that cannot be understood is refused, not half-done. */
        s = (agent_state_t){ 0 };
        handle(&s, "shutdown", &id, NULL, &u);
        assert_str(&u.data, "type", "error");
        assert_str(&u.data, "code", "invalid");
        assert_str(&u.data, "message", "grace_ms: missing");
        assert_u64(&u.data, "id", 9);
        assert_false(s.shutdown_requested);
        msgpack_unpacked_destroy(&u);

        handle(&s, "shutdown", &id, &negative, &u);
        assert_str(&u.data, "code", "invalid");
        assert_false(s.shutdown_requested);
        msgpack_unpacked_destroy(&u);
}

static void test_unknown_type(void **state) {
        agent_state_t s = { 0 };
        msgpack_unpacked u;
        uint64_t id = 3;

        handle(&s, "reboot-the-host", &id, NULL, &u);
        assert_str(&u.data, "type", "error");
        assert_str(&u.data, "code", "unknown_type");
        assert_str(&u.data, "message", "unknown message type \"reboot-the-host\"");
        assert_u64(&u.data, "id", 3);
        msgpack_unpacked_destroy(&u);

        /* Without an id the error answers no particular request. */
        handle(&s, "nope", NULL, NULL, &u);
        assert_str(&u.data, "code", "unknown_type");
        assert_null(mp_map_get(&u.data, "id"));
        msgpack_unpacked_destroy(&u);
}

static void test_missing_id(void **state) {
        agent_state_t s = { 0 };
        msgpack_unpacked u;

        handle(&s, "ping", NULL, NULL, &u);
        assert_str(&u.data, "type", "error");
        assert_str(&u.data, "code", "invalid");
        assert_str(&u.data, "message", "id: missing");
        assert_null(mp_map_get(&u.data, "id"));
        msgpack_unpacked_destroy(&u);
}

static void test_ready_frame(void **state) {
        msgpack_sbuffer body;
        msgpack_unpacked u;
        size_t off = 0;

        msgpack_sbuffer_init(&body);
        agent_proto_ready(1234, &body);
        msgpack_unpacked_init(&u);
        assert_int_equal(msgpack_unpack_next(&u, body.data, body.size, &off), MSGPACK_UNPACK_SUCCESS);
        assert_int_equal(u.data.via.map.size, 3);
        assert_str(&u.data, "type", "ready");
        assert_u64(&u.data, "version", AGENT_PROTOCOL_VERSION);
        assert_u64(&u.data, "boot_ms", 1234);
        msgpack_unpacked_destroy(&u);
        msgpack_sbuffer_destroy(&body);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_cmdline_get),
                cmocka_unit_test(test_cmdline_module_options),
                cmocka_unit_test(test_instance_id_valid),
                cmocka_unit_test(test_module_name_from_path),
                cmocka_unit_test(test_modules_dep_lookup),
                cmocka_unit_test(test_hello),
                cmocka_unit_test(test_ping),
                cmocka_unit_test(test_shutdown),
                cmocka_unit_test(test_unknown_type),
                cmocka_unit_test(test_missing_id),
                cmocka_unit_test(test_ready_frame),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
