/* test_mp_json.c: the one msgpack-to-JSON converter, with and without MP_JSON_SHOW_BYTES: the same
 * answer for integers above INT64_MAX, non-finite floats and too-deep input either way. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "lib/mp.h"
#include "lib/mp_json.h"
#include "lib/nesting.h"

/* Pack with fn, convert with flags, and compare the compact JSON text (NULL: refused). */
static void check(void (*fn)(msgpack_packer *pk), unsigned flags, const char *expected) {
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
        j = mp_to_json(&u.data, flags);
        text = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        if (!expected ? text != NULL : !text || strcmp(text, expected) != 0)
                fail_msg("flags %u: got %s, want %s", flags, text ?: "NULL", expected ?: "NULL");
        free(text);
        json_decref(j);
        msgpack_unpacked_destroy(&u);
        msgpack_sbuffer_destroy(&sb);
}

static void pack_scalars(msgpack_packer *pk) {
        msgpack_pack_array(pk, 9);
        msgpack_pack_nil(pk);
        msgpack_pack_true(pk);
        msgpack_pack_int64(pk, -3);
        msgpack_pack_uint64(pk, INT64_MAX);
        msgpack_pack_uint64(pk, UINT64_C(9223372036854775808));
        msgpack_pack_uint64(pk, UINT64_MAX);
        msgpack_pack_double(pk, 1.5);
        msgpack_pack_double(pk, 0.0 / 0.0);
        msgpack_pack_double(pk, 1.0 / 0.0);
}

static void test_scalars_alike_either_way(void **state) {
        static const char want[] = "[null,true,-3,9223372036854775807,\"9223372036854775808\","
                                   "\"18446744073709551615\",1.5,null,null]";

        check(pack_scalars, 0, want);
        check(pack_scalars, MP_JSON_SHOW_BYTES, want);
}

/* msgpack-c's unpacker stops at 32 levels itself: build deeper objects by hand. */
static void test_depth_is_bounded(void **state) {
        msgpack_object nested[HUSK_NESTING_MAX + 3];
        json_t *j;

        for (size_t i = 0; i < ELEMENTSOF(nested); i++)
                nested[i] =
                        (msgpack_object){ .type = MSGPACK_OBJECT_ARRAY,
                                          .via.array = { .size = i + 1 < ELEMENTSOF(nested), .ptr = &nested[i + 1] } };
        for (unsigned flags = 0; flags <= MP_JSON_SHOW_BYTES; flags += MP_JSON_SHOW_BYTES) {
                /* nested[i] is HUSK_NESTING_MAX + 3 - i lists deep. Depth 0 (the value itself) to
                 * HUSK_NESTING_MAX is accepted; one more is refused as a whole, not cut off with a null. */
                assert_null(mp_to_json(&nested[0], flags));
                assert_null(mp_to_json(&nested[1], flags));
                j = mp_to_json(&nested[2], flags);
                assert_non_null(j);
                json_decref(j);
        }
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

/* What husk tap prints (moved here from tests/unit/cli/test_tap.c). */
static void test_tap_bodies(void **state) {
        check(pack_instance_event, MP_JSON_SHOW_BYTES,
              "{\"instance_id\":\"0123456789ab\",\"state\":\"exited\",\"pid\":0,"
              "\"exit_status\":-1,\"ts\":1795325400000,\"ready\":false,\"kernel\":null,"
              "\"cpus\":1.5}");
        check(pack_nested, MP_JSON_SHOW_BYTES, "[{\"a\":[true,null]},\"18446744073709551615\",[]]");
        check(pack_odd, MP_JSON_SHOW_BYTES,
              "{\"7\":\"seven\",\"bin\":\"base64:AAEC/w==\",\"str\":\"base64:YcM=\","
              "\"ext\":{\"ext\":3,\"data\":\"base64:aGVsbG8=\"},\"nan\":null}");
}

static void test_tap_deep_body(void **state) {
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
        j = mp_to_json(&u.data, MP_JSON_SHOW_BYTES);
        for (cur = j; json_is_array(cur); cur = json_array_get(cur, 0))
                depth++;
        assert_int_equal(depth, 30);
        assert_int_equal(json_integer_value(cur), 1);
        json_decref(j);
        msgpack_unpacked_destroy(&u);
        msgpack_sbuffer_destroy(&sb);
}

static void pack_keys(msgpack_packer *pk) {
        static const char bad_utf8[] = { 'a', (char)0xc3 };
        static const char nul_key[] = { 'k', 0, 'y' };

        msgpack_pack_map(pk, 3);
        mp_pack_kv_str(pk, "s", "x");
        msgpack_pack_str(pk, sizeof(nul_key)); /* a key with a NUL byte */
        msgpack_pack_str_body(pk, nul_key, sizeof(nul_key));
        msgpack_pack_int(pk, 1);
        msgpack_pack_str(pk, sizeof(bad_utf8)); /* a key that is not UTF-8: never a JSON key */
        msgpack_pack_str_body(pk, bad_utf8, sizeof(bad_utf8));
        msgpack_pack_int(pk, 2);
}

/* What JSON has no type for: null (or skipped) for the API, shown for husk tap (test_tap_bodies). */
static void test_bytes_null_or_shown(void **state) {
        check(pack_odd, 0, "{\"bin\":null,\"str\":null,\"ext\":null,\"nan\":null}");
        check(pack_keys, 0, "{\"s\":\"x\"}");
        check(pack_keys, MP_JSON_SHOW_BYTES, "{\"s\":\"x\",\"\\\"k\\\\u0000y\\\"\":1}");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_scalars_alike_either_way),
                cmocka_unit_test(test_bytes_null_or_shown),
                cmocka_unit_test(test_depth_is_bounded),
                cmocka_unit_test(test_tap_bodies),
                cmocka_unit_test(test_tap_deep_body),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
