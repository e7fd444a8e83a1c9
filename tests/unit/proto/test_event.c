/* test_event.c: the event codec: round trip, a record request without id/timestamp, and refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "lib/mp.h"
#include "proto/event.h"

static int decode(const msgpack_sbuffer *buf, event_t *e) {
        msgpack_unpacked u;
        int r;

        msgpack_unpacked_init(&u);
        assert_int_equal(msgpack_unpack_next(&u, buf->data, buf->size, NULL), MSGPACK_UNPACK_SUCCESS);
        r = event_unpack(&u.data, e);
        msgpack_unpacked_destroy(&u);
        return r;
}

static void test_round_trip(void **state) {
        event_t in = { .id = 7,
                       .deployment_id = (char *)"d1",
                       .timestamp = 1234,
                       .level = (char *)"warning",
                       .component = (char *)"scheduler",
                       .reason = (char *)"BackOff",
                       .message = (char *)"2 s" };
        event_t out;
        msgpack_sbuffer buf;
        msgpack_packer pk;

        msgpack_sbuffer_init(&buf);
        msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
        event_pack(&pk, &in);
        assert_int_equal(decode(&buf, &out), 0);
        assert_int_equal(out.id, 7);
        assert_int_equal(out.timestamp, 1234);
        assert_string_equal(out.deployment_id, "d1");
        assert_string_equal(out.level, "warning");
        assert_string_equal(out.component, "scheduler");
        assert_string_equal(out.reason, "BackOff");
        assert_string_equal(out.message, "2 s");
        event_clear(&out);
        msgpack_sbuffer_destroy(&buf);
}

static void pack_request(msgpack_sbuffer *buf, const char *level, const char *reason) {
        msgpack_packer pk;

        msgpack_sbuffer_init(buf);
        msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 5);
        mp_pack_kv_str(&pk, "deployment_id", "d1");
        mp_pack_kv_str(&pk, "level", level);
        mp_pack_kv_str(&pk, "component", "netd");
        mp_pack_kv_str(&pk, "reason", reason);
        mp_pack_kv_str(&pk, "message", "port 80 taken");
}

static void test_request_and_refusals(void **state) {
        msgpack_sbuffer buf;
        event_t e;

        pack_request(&buf, "error", "PortAllocationFailed");
        assert_int_equal(decode(&buf, &e), 0);
        assert_int_equal(e.id, 0);
        assert_int_equal(e.timestamp, 0);
        assert_string_equal(e.component, "netd");
        event_clear(&e);
        msgpack_sbuffer_destroy(&buf);

        pack_request(&buf, "loud", "X");
        assert_int_equal(decode(&buf, &e), -EBADMSG);
        msgpack_sbuffer_destroy(&buf);

        pack_request(&buf, "info", "");
        assert_int_equal(decode(&buf, &e), -EBADMSG);
        msgpack_sbuffer_destroy(&buf);

        assert_int_equal(event_level_rank("error"), 2);
        assert_int_equal(event_level_rank("nope"), -1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_round_trip),
                cmocka_unit_test(test_request_and_refusals),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
