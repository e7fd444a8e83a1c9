/* test_agent_identity.c: the identity request's body, as husk-agent reads it: with and without a network, a gateway only when given. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "lib/mp.h"
#include "proto/agent_identity.h"

/* The request as a host sends it: {type, id, <the identity's keys>}, unpacked into u. */
static void pack_request(const agent_identity_t *id, msgpack_sbuffer *buf, msgpack_unpacked *u) {
        msgpack_packer pk;

        msgpack_sbuffer_init(buf);
        msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 2 + agent_identity_keys(id));
        mp_pack_kv_str(&pk, "type", "identity");
        mp_pack_kv_u64(&pk, "id", 9);
        agent_identity_pack(&pk, id);
        msgpack_unpacked_init(u);
        assert_int_equal(msgpack_unpack_next(u, buf->data, buf->size, NULL), MSGPACK_UNPACK_SUCCESS);
        assert_int_equal(u->data.type, MSGPACK_OBJECT_MAP);
        assert_int_equal(u->data.via.map.size, 2 + agent_identity_keys(id));
}

static void assert_str(const msgpack_object *o, const char *key, const char *want) {
        char *got = NULL;

        assert_int_equal(mp_get_str(o, key, 64, &got), 0);
        assert_string_equal(got, want);
        free(got);
}

static void test_with_a_network(void **state) {
        uint8_t entropy[64];
        agent_identity_t id = { .hostname = "abc123",
                                .entropy = entropy,
                                .entropy_size = sizeof(entropy),
                                .time_ns = 1796668000123456789ull,
                                .mac = "02:00:00:00:00:07",
                                .ip = "10.42.0.6",
                                .prefix = 30,
                                .gw = "10.42.0.5" };
        const msgpack_object *e;
        msgpack_sbuffer buf;
        msgpack_unpacked u;
        uint64_t v;

        memset(entropy, 0x5a, sizeof(entropy));
        pack_request(&id, &buf, &u);
        assert_int_equal(agent_identity_keys(&id), 7);
        assert_str(&u.data, "hostname", "abc123");
        e = mp_map_get(&u.data, "entropy");
        assert_non_null(e);
        assert_int_equal(e->type, MSGPACK_OBJECT_BIN);
        assert_memory_equal(e->via.bin.ptr, entropy, sizeof(entropy));
        assert_int_equal(mp_get_u64(&u.data, "time_ns", &v), 0);
        assert_true(v == 1796668000123456789ull);
        assert_str(&u.data, "mac", "02:00:00:00:00:07");
        assert_str(&u.data, "ip", "10.42.0.6");
        assert_int_equal(mp_get_u64(&u.data, "prefix", &v), 0);
        assert_int_equal(v, 30);
        assert_str(&u.data, "gw", "10.42.0.5");
        msgpack_unpacked_destroy(&u);
        msgpack_sbuffer_destroy(&buf);
}

static void test_no_gateway_and_no_network(void **state) {
        uint8_t entropy[32] = { 1 };
        agent_identity_t id = { .hostname = "h",
                                .entropy = entropy,
                                .entropy_size = sizeof(entropy),
                                .mac = "02:00:00:00:00:07",
                                .ip = "10.42.0.6",
                                .prefix = 30,
                                .gw = "" };
        msgpack_sbuffer buf;
        msgpack_unpacked u;

        /* A network namespace without a default route: no gw key (the agent adds no route). */
        pack_request(&id, &buf, &u);
        assert_int_equal(agent_identity_keys(&id), 6);
        assert_null(mp_map_get(&u.data, "gw"));
        assert_non_null(mp_map_get(&u.data, "ip"));
        msgpack_unpacked_destroy(&u);
        msgpack_sbuffer_destroy(&buf);

        /* No NIC: hostname, entropy and the clock only. */
        id.mac = NULL;
        pack_request(&id, &buf, &u);
        assert_int_equal(agent_identity_keys(&id), 3);
        assert_null(mp_map_get(&u.data, "mac"));
        assert_null(mp_map_get(&u.data, "ip"));
        assert_null(mp_map_get(&u.data, "prefix"));
        msgpack_unpacked_destroy(&u);
        msgpack_sbuffer_destroy(&buf);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_with_a_network),
                cmocka_unit_test(test_no_gateway_and_no_network),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
