/* test_ports.c: the `ports` codec (deployment and instance spec) against golden bytes, and its refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/mp.h"
#include "proto/deployment.h"
#include "proto/instance.h"
#include "proto/port.h"

/* [{published: 8080, target: 80, protocol: "tcp"},
 *  {published: 5353, target: 53, protocol: "udp", host_ip: "127.0.0.1"}]: host_ip left out when empty. */
/* clang-format off */
static const char golden_ports_hex[] =
        "92"
        "83" "a97075626c6973686564" "cd1f90" "a6746172676574" "50" "a870726f746f636f6c" "a3746370"
        "84" "a97075626c6973686564" "cd14e9" "a6746172676574" "35" "a870726f746f636f6c" "a3756470"
        "a7686f73745f6970" "a93132372e302e302e31";
/* clang-format on */

static const port_spec_t fixed_ports[] = {
        { .published = 8080, .target = 80, .protocol = PORT_TCP },
        { .published = 5353, .target = 53, .protocol = PORT_UDP, .host_ip = "127.0.0.1" },
};

static void hex_of(const msgpack_sbuffer *b, char *out) {
        for (size_t i = 0; i < b->size; i++)
                sprintf(out + 2 * i, "%02x", (unsigned char)b->data[i]);
}

static void unpack_hex(const char *hex, char *bytes, size_t *n, msgpack_unpacked *u) {
        size_t off = 0;

        *n = strlen(hex) / 2;
        for (size_t i = 0; i < *n; i++)
                sscanf(hex + 2 * i, "%2hhx", &bytes[i]);
        msgpack_unpacked_init(u);
        assert_int_equal(msgpack_unpack_next(u, bytes, *n, &off), MSGPACK_UNPACK_SUCCESS);
}

static void test_ports_golden(void **state) {
        char hex[1024];
        msgpack_sbuffer buf;
        msgpack_packer pk;

        msgpack_sbuffer_init(&buf);
        msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
        ports_pack(&pk, fixed_ports, 2);
        hex_of(&buf, hex);
        assert_string_equal(hex, golden_ports_hex);
        msgpack_sbuffer_destroy(&buf);
}

static void test_ports_decode(void **state) {
        char bytes[512];
        size_t n, n_ports;
        port_spec_t *ports = NULL;
        msgpack_unpacked u;

        unpack_hex(golden_ports_hex, bytes, &n, &u);
        assert_int_equal(ports_unpack(&u.data, &ports, &n_ports), 0);
        assert_true(ports_equal(ports, n_ports, fixed_ports, 2));
        free(ports);
        msgpack_unpacked_destroy(&u);
}

/* Protocol defaults to tcp; anything out of range or of the wrong type is refused. */
static void test_ports_refusals(void **state) {
        static const char *const bad[] = {
                "[{'published': 0, 'target': 80}]",
                "[{'published': 70000, 'target': 80}]",
                "[{'published': 80}]",
                "[{'published': 80, 'target': 80, 'protocol': 'sctp'}]",
                "[{'published': 80, 'target': 80, 'host_ip': 'localhost'}]",
                "[{'published': 80, 'target': -1}]",
                "[80]",
                "{'published': 80}",
        };
        msgpack_sbuffer buf;
        msgpack_packer pk;
        msgpack_unpacked u;
        port_spec_t *ports = NULL;
        size_t n_ports = 0, off = 0;

        /* Default protocol. */
        msgpack_sbuffer_init(&buf);
        msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 1);
        msgpack_pack_map(&pk, 2);
        mp_pack_kv_u64(&pk, "published", 8080);
        mp_pack_kv_u64(&pk, "target", 80);
        msgpack_unpacked_init(&u);
        assert_int_equal(msgpack_unpack_next(&u, buf.data, buf.size, &off), MSGPACK_UNPACK_SUCCESS);
        assert_int_equal(ports_unpack(&u.data, &ports, &n_ports), 0);
        assert_int_equal(n_ports, 1);
        assert_int_equal(ports[0].protocol, PORT_TCP);
        assert_string_equal(ports[0].host_ip, "");
        free(ports);
        msgpack_unpacked_destroy(&u);
        msgpack_sbuffer_destroy(&buf);

        for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
                /* Each case built by hand below; the strings above document them. */
                msgpack_sbuffer_init(&buf);
                msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
                switch (k) {
                case 0:
                case 1:
                case 2:
                case 3:
                case 4:
                case 5:
                        msgpack_pack_array(&pk, 1);
                        msgpack_pack_map(&pk, k == 2 ? 1 : (k == 3 || k == 4) ? 3 : 2);
                        mp_pack_kv_u64(&pk, "published", k == 0 ? 0 : k == 1 ? 70000 : 80);
                        if (k == 5)
                                mp_pack_kv_i64(&pk, "target", -1);
                        else if (k != 2)
                                mp_pack_kv_u64(&pk, "target", 80);
                        if (k == 3)
                                mp_pack_kv_str(&pk, "protocol", "sctp");
                        if (k == 4)
                                mp_pack_kv_str(&pk, "host_ip", "localhost");
                        break;
                case 6:
                        msgpack_pack_array(&pk, 1);
                        msgpack_pack_uint16(&pk, 80);
                        break;
                default:
                        msgpack_pack_map(&pk, 1);
                        mp_pack_kv_u64(&pk, "published", 80);
                }
                off = 0;
                msgpack_unpacked_init(&u);
                assert_int_equal(msgpack_unpack_next(&u, buf.data, buf.size, &off), MSGPACK_UNPACK_SUCCESS);
                ports = NULL;
                if (ports_unpack(&u.data, &ports, &n_ports) != -EBADMSG)
                        fail_msg("accepted %s", bad[k]);
                assert_null(ports);
                msgpack_unpacked_destroy(&u);
                msgpack_sbuffer_destroy(&buf);
        }
}

/* More than PORTS_MAX entries: refused before anything is allocated. */
static void test_ports_bounded(void **state) {
        msgpack_sbuffer buf;
        msgpack_packer pk;
        msgpack_unpacked u;
        port_spec_t *ports = NULL;
        size_t n_ports, off = 0;

        msgpack_sbuffer_init(&buf);
        msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, PORTS_MAX + 1);
        for (int i = 0; i < PORTS_MAX + 1; i++) {
                msgpack_pack_map(&pk, 2);
                mp_pack_kv_u64(&pk, "published", 1000 + i);
                mp_pack_kv_u64(&pk, "target", 80);
        }
        msgpack_unpacked_init(&u);
        assert_int_equal(msgpack_unpack_next(&u, buf.data, buf.size, &off), MSGPACK_UNPACK_SUCCESS);
        assert_int_equal(ports_unpack(&u.data, &ports, &n_ports), -EBADMSG);
        msgpack_unpacked_destroy(&u);
        msgpack_sbuffer_destroy(&buf);
}

/* The records carry ports (and restart_count) through a round trip; without them the bytes
 * are those of a record that never had them. */
static void test_records_round_trip(void **state) {
        port_spec_t ports[2];
        deployment_t d = { .id = "d1",
                           .namespace_ = "default",
                           .name = "web",
                           .generation = 2,
                           .status = "running",
                           .runtime = "qemu",
                           .kind = "worker",
                           .image = "/i",
                           .replicas = 1,
                           .cpus = 1,
                           .memory_mib = 256,
                           .restart_count = 3,
                           .ports = ports,
                           .n_ports = 2 };
        instance_spec_t s = { .instance_id = "0a1b2c3d4e5f",
                              .deployment_id = "d1",
                              .generation = 2,
                              .runtime = "qemu",
                              .image = "/i",
                              .cpus = 1,
                              .memory_mib = 256,
                              .ports = ports,
                              .n_ports = 2 };
        deployment_t d2;
        instance_spec_t s2;
        msgpack_sbuffer buf;
        msgpack_packer pk;
        msgpack_unpacked u;
        size_t off = 0;

        memcpy(ports, fixed_ports, sizeof(ports));
        msgpack_sbuffer_init(&buf);
        msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
        deployment_pack(&pk, &d);
        instance_spec_pack(&pk, &s);
        msgpack_unpacked_init(&u);
        assert_int_equal(msgpack_unpack_next(&u, buf.data, buf.size, &off), MSGPACK_UNPACK_SUCCESS);
        assert_int_equal(u.data.via.map.size, 14);
        assert_int_equal(deployment_unpack(&u.data, &d2), 0);
        assert_int_equal(d2.restart_count, 3);
        assert_true(ports_equal(d2.ports, d2.n_ports, fixed_ports, 2));
        deployment_clear(&d2);
        deployment_clear(&d2);
        assert_int_equal(msgpack_unpack_next(&u, buf.data, buf.size, &off), MSGPACK_UNPACK_SUCCESS);
        assert_int_equal(u.data.via.map.size, 8);
        assert_int_equal(instance_spec_unpack(&u.data, &s2), 0);
        assert_true(ports_equal(s2.ports, s2.n_ports, fixed_ports, 2));
        instance_spec_clear(&s2);
        msgpack_unpacked_destroy(&u);
        msgpack_sbuffer_destroy(&buf);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ports_golden),       cmocka_unit_test(test_ports_decode),
                cmocka_unit_test(test_ports_refusals),     cmocka_unit_test(test_ports_bounded),
                cmocka_unit_test(test_records_round_trip),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
