/* test_mp_check.c: the allocation-free scan every msgpack body from outside passes before msgpack-c unpacks it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/mp.h"
#include "lib/nesting.h"

#define CHECK(want, ...)                                          \
        do {                                                      \
                static const uint8_t b_[] = { __VA_ARGS__ };      \
                assert_int_equal(mp_check(b_, sizeof(b_)), want); \
        } while (0)

/* Everything msgpack-c packs is accepted: every type, as the packer writes it. */
static void test_what_msgpack_packs_is_accepted(void **state) {
        static char blob[300], text[70000]; /* bin16, str32 */
        msgpack_sbuffer sb;
        msgpack_packer pk;

        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 3);
        mp_pack_kv_str(&pk, "s", "x");
        mp_pack_str(&pk, "all");
        msgpack_pack_array(&pk, 16);
        msgpack_pack_nil(&pk);
        msgpack_pack_true(&pk);
        msgpack_pack_false(&pk);
        msgpack_pack_int8(&pk, -100);
        msgpack_pack_uint16(&pk, 60000);
        msgpack_pack_uint32(&pk, 4000000000u);
        msgpack_pack_uint64(&pk, UINT64_MAX);
        msgpack_pack_int64(&pk, INT64_MIN);
        msgpack_pack_float(&pk, 1.5f);
        msgpack_pack_double(&pk, 2.5);
        msgpack_pack_bin(&pk, sizeof(blob));
        msgpack_pack_bin_body(&pk, blob, sizeof(blob));
        msgpack_pack_str(&pk, sizeof(text));
        msgpack_pack_str_body(&pk, text, sizeof(text));
        msgpack_pack_ext(&pk, 1, 7);
        msgpack_pack_ext_body(&pk, "", 1);
        msgpack_pack_ext(&pk, 4, 7);
        msgpack_pack_ext_body(&pk, "abcd", 4);
        msgpack_pack_ext(&pk, 20, 7);
        msgpack_pack_ext_body(&pk, "01234567890123456789", 20);
        msgpack_pack_array(&pk, 0);
        mp_pack_str(&pk, "empty");
        msgpack_pack_map(&pk, 0);
        assert_int_equal(mp_check(sb.data, sb.size), 0);
        /* Not one object: one byte short, one byte more. */
        assert_int_equal(mp_check(sb.data, sb.size - 1), -EBADMSG);
        msgpack_sbuffer_write(&sb, "\xc0", 1);
        assert_int_equal(mp_check(sb.data, sb.size), -EBADMSG);
        msgpack_sbuffer_destroy(&sb);
}

/* Containers that claim more entries than there are bytes left: msgpack-c would allocate for the
 * claim first (a map32 of 0xdfdfdfdf entries is 100+ GiB) and only then find the bytes missing. */
static void test_counts_beyond_the_bytes_are_refused(void **state) {
        CHECK(-EBADMSG, 0xdf, 0xdf, 0xdf, 0xdf, 0xdf, 0xdf, 0xdf, 0xdf);
        CHECK(-EBADMSG, 0xdd, 0x10, 0x00, 0x00, 0x00, 0xc0, 0xc0);
        CHECK(-EBADMSG, 0x92, 0xc0);                        /* fixarray 2, one element */
        CHECK(-EBADMSG, 0xdb, 0xff, 0xff, 0xff, 0xff, 'a'); /* str32 longer than the body */
        CHECK(-EBADMSG, 0xc7, 0x05, 0x01, 'a');             /* ext8 longer than the body */
        CHECK(-EBADMSG, 0xcf, 0x00, 0x01);                  /* uint64 cut short */
        CHECK(-EBADMSG, 0xc1);                              /* never used */
        CHECK(0, 0x92, 0xc0, 0xc0);
        CHECK(0, 0x81, 0xa1, 'k', 0x90);
        assert_int_equal(mp_check("", 0), -EBADMSG);
}

/* Nesting: HUSK_NESTING_MAX containers deep is the most. */
static void test_nesting_bound(void **state) {
        uint8_t b[HUSK_NESTING_MAX + 2];

        memset(b, 0x91, sizeof(b)); /* [[[...]]] */
        b[HUSK_NESTING_MAX] = 0xc0;
        assert_int_equal(mp_check(b, HUSK_NESTING_MAX + 1), 0);
        b[HUSK_NESTING_MAX] = 0x91;
        b[HUSK_NESTING_MAX + 1] = 0xc0;
        assert_int_equal(mp_check(b, HUSK_NESTING_MAX + 2), -ELOOP);
}

/* A body of small objects: bounded by count, so a frame of nils cannot become 24x its size. */
static void test_object_count_bound(void **state) {
        size_t n = MP_MAX_MESSAGE_OBJECTS, size = 5 + n;
        uint8_t *b = malloc(size);

        assert_non_null(b);
        b[0] = 0xdd;
        b[1] = (uint8_t)(n >> 24), b[2] = (uint8_t)(n >> 16), b[3] = (uint8_t)(n >> 8), b[4] = (uint8_t)n;
        memset(b + 5, 0xc0, n);
        /* The array itself is one object: n nils inside make n + 1. */
        assert_int_equal(mp_check(b, size), -E2BIG);
        b[4] = (uint8_t)(n - 1);
        b[3] = (uint8_t)((n - 1) >> 8), b[2] = (uint8_t)((n - 1) >> 16), b[1] = (uint8_t)((n - 1) >> 24);
        assert_int_equal(mp_check(b, size - 1), 0);
        assert_int_equal(mp_check(b, MP_MAX_MESSAGE_BYTES + 1), -EMSGSIZE); /* refused before any read */
        free(b);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_what_msgpack_packs_is_accepted),
                cmocka_unit_test(test_counts_beyond_the_bytes_are_refused),
                cmocka_unit_test(test_nesting_bound),
                cmocka_unit_test(test_object_count_bound),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
