/* test_agent_schema.c: the frames husk-agent writes, against proto/schema.yaml's agent frames
 * (strictly: no key the schema does not list, every required one). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "lib/mp.h"
#include "proto/schema.h"
#include "services/agent/agent.h"

static void assert_fits(const proto_message_t *m, const msgpack_sbuffer *body) {
        msgpack_unpacked u;
        proto_error_t e = {};
        size_t off = 0;

        msgpack_unpacked_init(&u);
        assert_int_equal(msgpack_unpack_next(&u, body->data, body->size, &off), MSGPACK_UNPACK_SUCCESS);
        if (proto_check(m, &u.data, PROTO_CHECK_STRICT, &e) < 0)
                fail_msg("%s does not fit the schema: %s", m->name, e.message);
        msgpack_unpacked_destroy(&u);
}

/* The agent's answer to a request of this type with these extra u64 fields. */
static void answer(agent_state_t *s, const char *type, const char *key, uint64_t value, msgpack_sbuffer *reply) {
        msgpack_sbuffer req;
        msgpack_packer pk;
        msgpack_unpacked u;
        size_t off = 0;

        msgpack_sbuffer_init(&req);
        msgpack_packer_init(&pk, &req, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, key ? 3 : 2);
        mp_pack_kv_str(&pk, "type", type);
        mp_pack_kv_u64(&pk, "id", 5);
        if (key)
                mp_pack_kv_u64(&pk, key, value);
        msgpack_unpacked_init(&u);
        assert_int_equal(msgpack_unpack_next(&u, req.data, req.size, &off), MSGPACK_UNPACK_SUCCESS);
        msgpack_sbuffer_init(reply);
        assert_int_equal(agent_proto_handle(s, &u.data, reply), 0);
        msgpack_unpacked_destroy(&u);
        msgpack_sbuffer_destroy(&req);
}

static void test_answers(void **state) {
        agent_state_t s = { 0 };
        msgpack_sbuffer reply;

        answer(&s, AGENT_FRAME_HELLO, NULL, 0, &reply);
        assert_fits(&proto_msg_agent_hello_answer, &reply);
        msgpack_sbuffer_destroy(&reply);

        answer(&s, AGENT_FRAME_PING, NULL, 0, &reply);
        assert_fits(&proto_msg_agent_pong, &reply);
        msgpack_sbuffer_destroy(&reply);

        answer(&s, AGENT_FRAME_SHUTDOWN, "grace_ms", 100, &reply);
        assert_fits(&proto_msg_agent_shutdown_answer, &reply);
        msgpack_sbuffer_destroy(&reply);

        s = (agent_state_t){ 0 };
        answer(&s, AGENT_FRAME_STATUS, NULL, 0, &reply);
        assert_fits(&proto_msg_agent_status_answer, &reply);
        msgpack_sbuffer_destroy(&reply);

        answer(&s, "no-such-type", NULL, 0, &reply);
        assert_fits(&proto_msg_agent_error, &reply);
        msgpack_sbuffer_destroy(&reply);
}

static void test_unsolicited(void **state) {
        msgpack_sbuffer body;
        uint64_t id = 3;

        msgpack_sbuffer_init(&body);
        agent_proto_ready(1234, &body);
        assert_fits(&proto_msg_agent_ready, &body);
        msgpack_sbuffer_destroy(&body);

        msgpack_sbuffer_init(&body);
        agent_proto_error(&id, AGENT_ERR_MALFORMED, "frame too big", &body);
        assert_fits(&proto_msg_agent_error, &body);
        msgpack_sbuffer_destroy(&body);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_answers),
                cmocka_unit_test(test_unsolicited),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
