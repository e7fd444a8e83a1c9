/* test_metrics.c: instance.metrics's codec: a round trip, the schema's table, and refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "lib/mp.h"
#include "proto/metrics.h"

static void pack(const instance_metrics_t *m, msgpack_sbuffer *buf, msgpack_unpacked *u) {
        msgpack_packer pk;
        size_t off = 0;

        msgpack_sbuffer_init(buf);
        msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
        instance_metrics_pack(&pk, m);
        msgpack_unpacked_init(u);
        assert_int_equal(msgpack_unpack_next(u, buf->data, buf->size, &off), MSGPACK_UNPACK_SUCCESS);
}

static void test_round_trip(void **state) {
        instance_metrics_t m = {
                .ts = 1700000000000, .instance_id = "0123456789ab", .deployment_id = "d-1", .runtime = "qemu",
                .pid = 4242, .interval_ms = 5000, .cpu_seconds = 12.5, .cpu_percent = 37.25,
                .rss_bytes = 200u << 20, .memory_limit_bytes = 256u << 20, .threads = 7,
                .disk_read_bytes = 4096, .disk_write_bytes = 0, .has_network = true,
                .network = { .rx_bytes = 5000, .tx_bytes = 1000, .rx_packets = 40, .tx_packets = 10 },
                .has_guest = true,
                .guest = { .mem_total_bytes = 1000, .mem_available_bytes = 600, .mem_used_bytes = 400, .load1 = 0.5 },
        }, back;
        msgpack_sbuffer buf;
        msgpack_unpacked u;
        proto_error_t e = {};

        pack(&m, &buf, &u);
        if (proto_check(&proto_msg_instance_metrics, &u.data, PROTO_CHECK_STRICT, &e) < 0)
                fail_msg("%s", e.message);
        assert_int_equal(instance_metrics_unpack(&u.data, &back, &e), 0);
        assert_string_equal(back.instance_id, "0123456789ab");
        assert_true(back.cpu_seconds == 12.5 && back.cpu_percent == 37.25);
        assert_int_equal(back.rss_bytes, 200u << 20);
        assert_true(back.has_network && back.network.rx_bytes == 5000 && back.network.tx_packets == 10);
        assert_true(back.has_guest && back.guest.mem_used_bytes == 400 && back.guest.load1 == 0.5);
        assert_string_equal(back.disk_note, "");
        msgpack_unpacked_destroy(&u);
        msgpack_sbuffer_destroy(&buf);

        /* Without the optional parts, and with a note for zeros the kernel forced. */
        m.has_network = m.has_guest = false;
        strcpy(m.disk_note, "/proc/1/io: Permission denied: disk counters are zeros");
        pack(&m, &buf, &u);
        assert_int_equal(instance_metrics_unpack(&u.data, &back, &e), 0);
        assert_false(back.has_network || back.has_guest);
        assert_string_equal(back.disk_note, m.disk_note);
        msgpack_unpacked_destroy(&u);
        msgpack_sbuffer_destroy(&buf);
}

static void test_refused(void **state) {
        instance_metrics_t m = { .instance_id = "not-an-id", .deployment_id = "d", .runtime = "qemu" }, back;
        msgpack_sbuffer buf;
        msgpack_unpacked u;
        proto_error_t e = {};

        pack(&m, &buf, &u);
        assert_int_equal(instance_metrics_unpack(&u.data, &back, &e), -EBADMSG);
        assert_non_null(strstr(e.message, "instance_id"));
        assert_int_equal(back.ts, 0);
        msgpack_unpacked_destroy(&u);
        msgpack_sbuffer_destroy(&buf);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_round_trip),
                cmocka_unit_test(test_refused),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
