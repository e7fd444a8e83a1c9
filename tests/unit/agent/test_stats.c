/* test_stats.c: the agent's stats answer: /proc/meminfo and /proc/loadavg read into the guest's view. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/mp.h"
#include "proto/schema.h"
#include "services/agent/agent.h"

/* A kit guest with 256 MiB (Linux 6.1). */
static const char meminfo[] = "MemTotal:         231424 kB\n"
                              "MemFree:          190000 kB\n"
                              "MemAvailable:     201012 kB\n"
                              "Buffers:               0 kB\n"
                              "Cached:            14000 kB\n";

static void test_parse(void **state) {
        agent_stats_t s;

        assert_int_equal(agent_stats_parse(meminfo, "0.52 0.14 0.05 1/63 97\n", &s), 0);
        assert_int_equal(s.mem_total, 231424ull * 1024);
        assert_int_equal(s.mem_available, 201012ull * 1024);
        assert_true(s.load[0] > 0.519 && s.load[0] < 0.521);
        assert_true(s.load[2] > 0.049 && s.load[2] < 0.051);
        /* MemAvailable missing (a kernel before 3.14), or more than the total: refused. */
        assert_int_equal(agent_stats_parse("MemTotal: 10 kB\nMemFree: 5 kB\n", "0 0 0 1/1 1\n", &s), -EBADMSG);
        assert_int_equal(agent_stats_parse("MemTotal: 10 kB\nMemAvailable: 11 kB\n", "0 0 0 1/1 1\n", &s), -EBADMSG);
        assert_int_equal(agent_stats_parse(meminfo, "0.5\n", &s), -EBADMSG);
}

/* The answer the host gets from this guest: the schema's agent_stats_answer, strictly. */
static void test_answer(void **state) {
        msgpack_sbuffer buf;
        msgpack_packer pk;
        msgpack_unpacked u;
        proto_error_t e = {};
        uint64_t total = 0, used = 0, avail = 0;
        size_t off = 0;

        msgpack_sbuffer_init(&buf);
        msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
        agent_stats_answer(9, &pk);
        msgpack_unpacked_init(&u);
        assert_int_equal(msgpack_unpack_next(&u, buf.data, buf.size, &off), MSGPACK_UNPACK_SUCCESS);
        if (proto_check(&proto_msg_agent_stats_answer, &u.data, PROTO_CHECK_STRICT, &e) < 0)
                fail_msg("%s", e.message);
        assert_int_equal(mp_get_u64(&u.data, "mem_total_bytes", &total), 0);
        assert_int_equal(mp_get_u64(&u.data, "mem_used_bytes", &used), 0);
        assert_int_equal(mp_get_u64(&u.data, "mem_available_bytes", &avail), 0);
        assert_true(total > 0);
        assert_int_equal(used + avail, total);
        msgpack_unpacked_destroy(&u);
        msgpack_sbuffer_destroy(&buf);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse),
                cmocka_unit_test(test_answer),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
