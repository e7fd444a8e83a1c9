/* test_agent_answer.c: which agent answers may complete which calls. After a vmm-driver restart
 * the guest's answers to the old connection's calls arrive on the new one: a stale "pong" must
 * never complete an "exec" that happens to carry the same id. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "services/vmm-driver/vmm.h"

static void test_answer_kinds(void **state) {
        static const char *const same[] = { "hello", "shutdown", "start", "exec", "signal", "status" };

        for (size_t k = 0; k < sizeof(same) / sizeof(same[0]); k++)
                assert_true(vmm_agent_answers(same[k], same[k]));
        assert_true(vmm_agent_answers("ping", "pong"));
        /* A stale answer of another kind is not ours. */
        assert_false(vmm_agent_answers("exec", "pong"));
        assert_false(vmm_agent_answers("exec", "hello"));
        assert_false(vmm_agent_answers("exec", "start"));
        assert_false(vmm_agent_answers("ping", "ping"));
        assert_false(vmm_agent_answers("pong", "ping"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_answer_kinds),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
