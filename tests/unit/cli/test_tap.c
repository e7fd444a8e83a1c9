/* test_tap.c: `husk tap` patterns. How it renders msgpack bodies (mp_to_json with
 * MP_JSON_SHOW_BYTES) is tested with the converter, in tests/unit/lib/test_mp_json.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "cli/cli_tap.h"
#include "lib/mp.h"
#include "lib/util.h"

static void test_patterns(void **state) {
        char prefix[65];

        assert_true(cli_tap_match(NULL, "instance.exited"));
        assert_true(cli_tap_match("", "instance.exited"));
        assert_true(cli_tap_match("instance", "instance.exited"));
        assert_true(cli_tap_match("instance.", "instance.exited"));
        assert_false(cli_tap_match("instance.", "deployment.created"));
        assert_true(cli_tap_match("instance.*", "instance.exited"));
        assert_false(cli_tap_match("instance.*", "instances"));
        assert_true(cli_tap_match("*.exited", "instance.exited"));
        assert_false(cli_tap_match("*.exited", "instance.ready"));
        assert_true(cli_tap_match("deployment.[cd]*", "deployment.deleted"));
        assert_false(cli_tap_match("deployment.[cd]*", "deployment.status"));
        assert_true(cli_tap_match("instance.?eady", "instance.ready"));

        cli_tap_prefix("instance.*", prefix, sizeof(prefix));
        assert_string_equal(prefix, "instance.");
        cli_tap_prefix("*.exited", prefix, sizeof(prefix));
        assert_string_equal(prefix, "");
        cli_tap_prefix("deployment", prefix, sizeof(prefix));
        assert_string_equal(prefix, "deployment");
        cli_tap_prefix(NULL, prefix, sizeof(prefix));
        assert_string_equal(prefix, "");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_patterns),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
