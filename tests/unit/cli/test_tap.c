/* test_tap.c: `husk tap` patterns and msgpack bodies rendered as JSON. */
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

/* Pack with fn, convert, and compare the compact JSON text. */
static void check_body(void (*fn)(msgpack_packer *pk), const char *expected) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_unpacked u;
        size_t off = 0;
        json_t *j;
        char *text;

        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        fn(&pk);
        msgpack_unpacked_init(&u);
        assert_int_equal(msgpack_unpack_next(&u, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
        j = cli_msgpack_to_json(&u.data);
        assert_non_null(j);
        text = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!streq(text, expected))
                fail_msg("got %s, want %s", text, expected);
        free(text);
        json_decref(j);
        msgpack_unpacked_destroy(&u);
        msgpack_sbuffer_destroy(&sb);
}

static void pack_instance_event(msgpack_packer *pk) {
        msgpack_pack_map(pk, 8);
        mp_pack_kv_str(pk, "instance_id", "0123456789ab");
        mp_pack_kv_str(pk, "state", "exited");
        mp_pack_kv_i64(pk, "pid", 0);
        mp_pack_kv_i64(pk, "exit_status", -1);
        mp_pack_kv_u64(pk, "ts", 1795325400000ULL);
        mp_pack_kv_bool(pk, "ready", false);
        mp_pack_kv_str(pk, "kernel", NULL);
        mp_pack_str(pk, "cpus");
        msgpack_pack_double(pk, 1.5);
}

static void pack_nested(msgpack_packer *pk) {
        msgpack_pack_array(pk, 3);
        msgpack_pack_map(pk, 1);
        mp_pack_str(pk, "a");
        msgpack_pack_array(pk, 2);
        msgpack_pack_true(pk);
        msgpack_pack_nil(pk);
        msgpack_pack_uint64(pk, UINT64_MAX);
        msgpack_pack_array(pk, 0);
}

static void pack_odd(msgpack_packer *pk) {
        static const char bin[] = { 0, 1, 2, (char)0xff };
        static const char bad_utf8[] = { 'a', (char)0xc3 };

        msgpack_pack_map(pk, 5);
        msgpack_pack_int(pk, 7); /* a non-string key */
        mp_pack_str(pk, "seven");
        mp_pack_str(pk, "bin");
        msgpack_pack_bin(pk, sizeof(bin));
        msgpack_pack_bin_body(pk, bin, sizeof(bin));
        mp_pack_str(pk, "str");
        msgpack_pack_str(pk, sizeof(bad_utf8));
        msgpack_pack_str_body(pk, bad_utf8, sizeof(bad_utf8));
        mp_pack_str(pk, "ext");
        msgpack_pack_ext(pk, 5, 3);
        msgpack_pack_ext_body(pk, "hello", 5);
        mp_pack_str(pk, "nan");
        msgpack_pack_double(pk, 0.0 / 0.0);
}

static void pack_deep(msgpack_packer *pk) {
        /* msgpack-c's unpacker stops at 32 levels itself; stay just below. */
        for (int i = 0; i < 30; i++)
                msgpack_pack_array(pk, 1);
        msgpack_pack_int(pk, 1);
}

static void test_msgpack_to_json(void **state) {
        check_body(pack_instance_event, "{\"instance_id\":\"0123456789ab\",\"state\":\"exited\",\"pid\":0,"
                                        "\"exit_status\":-1,\"ts\":1795325400000,\"ready\":false,\"kernel\":null,"
                                        "\"cpus\":1.5}");
        check_body(pack_nested, "[{\"a\":[true,null]},\"18446744073709551615\",[]]");
        check_body(pack_odd, "{\"7\":\"seven\",\"bin\":\"base64:AAEC/w==\",\"str\":\"base64:YcM=\","
                             "\"ext\":{\"ext\":3,\"data\":\"base64:aGVsbG8=\"},\"nan\":null}");
}

static void test_msgpack_deep(void **state) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_unpacked u;
        size_t off = 0, depth = 0;
        json_t *j, *cur;

        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        pack_deep(&pk);
        msgpack_unpacked_init(&u);
        assert_int_equal(msgpack_unpack_next(&u, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
        j = cli_msgpack_to_json(&u.data);
        for (cur = j; json_is_array(cur); cur = json_array_get(cur, 0))
                depth++;
        assert_int_equal(depth, 30);
        assert_int_equal(json_integer_value(cur), 1);
        json_decref(j);
        msgpack_unpacked_destroy(&u);
        msgpack_sbuffer_destroy(&sb);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_patterns),
                cmocka_unit_test(test_msgpack_to_json),
                cmocka_unit_test(test_msgpack_deep),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
