/* test_nesting.c: the nesting bound of JSON text found without recursion, and msgpack-c holding the same bound. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/nesting.h"

/* prefix + n times open + leaf + n times close + suffix, in a new string. */
static char *nest(const char *prefix, const char *open, const char *leaf, const char *close, unsigned n,
                  const char *suffix) {
        size_t size = strlen(prefix) + n * (strlen(open) + strlen(close)) + strlen(leaf) + strlen(suffix) + 1;
        char *s = malloc(size), *p = s;

        assert_non_null(s);
        p += sprintf(p, "%s", prefix);
        for (unsigned i = 0; i < n; i++)
                p += sprintf(p, "%s", open);
        p += sprintf(p, "%s", leaf);
        for (unsigned i = 0; i < n; i++)
                p += sprintf(p, "%s", close);
        sprintf(p, "%s", suffix);
        return s;
}

static int check(const char *text, char *path, size_t size) {
        return json_nesting_check(text, strlen(text), path, size);
}

static void test_bound_is_exact(void **state) {
        char path[256];
        char *at = nest("", "[", "1", "]", HUSK_NESTING_MAX, ""),
             *over = nest("", "[", "1", "]", HUSK_NESTING_MAX + 1, "");

        assert_int_equal(check(at, path, sizeof(path)), 0);
        assert_int_equal(check(over, path, sizeof(path)), 1);
        free(at);
        free(over);

        /* A deployment's own map counts: config at 31 more levels is the most it may hold. */
        at = nest("{\"config\":", "{\"a\":", "1", "}", HUSK_NESTING_MAX - 1, "}");
        over = nest("{\"config\":", "{\"a\":", "1", "}", HUSK_NESTING_MAX, "}");
        assert_int_equal(check(at, path, sizeof(path)), 0);
        assert_int_equal(check(over, path, sizeof(path)), 1);
        assert_string_equal(path, "config.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a");
        free(at);
        free(over);
}

static void test_path_names_the_field(void **state) {
        char path[256], *s;

        s = nest("{\"name\":\"x\",\"labels\":{\"b\":1,\"a\":", "[", "1", "]", 1000, "}}");
        assert_int_equal(check(s, path, sizeof(path)), 1);
        assert_string_equal(path,
                            "labels.a[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0]"
                            "[0][0][0][0]");
        free(s);

        /* List indexes count the items before, and strings holding brackets or quotes are no
         * structure. */
        s = nest("{\"x\":\"[{[{\\\"\",\"env\":[1,\"]]\",{},", "[", "", "]", HUSK_NESTING_MAX, "]}");
        assert_int_equal(check(s, path, sizeof(path)), 1);
        assert_true(strncmp(path, "env[3][0][0]", 12) == 0);
        free(s);

        /* Bytes a message cannot show are replaced. */
        s = nest("{\"k\\\"ey\\n\":", "[", "", "]", HUSK_NESTING_MAX, "}");
        assert_int_equal(check(s, path, sizeof(path)), 1);
        assert_true(strncmp(path, "k?\"ey?n[0]", 10) == 0);
        free(s);
}

static void test_long_path_is_cut(void **state) {
        char path[40], *s = nest("", "{\"abcdefghij\":", "1", "}", 100, "");

        assert_int_equal(check(s, path, sizeof(path)), 1);
        assert_string_equal(path, "abcdefghij.abcdefghij.abcdefghij...");
        assert_int_equal(check(s, path, 4), 1);
        assert_string_equal(path, "...");
        free(s);
}

static void test_not_json_is_left_to_the_parser(void **state) {
        static const char *const texts[] = { "", "]]]]", "}", "\"unterminated [[[[", "{\"a\":\\", "nul\0l" };
        char path[64];

        for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
                assert_int_equal(check(texts[i], path, sizeof(path)), 0);
        /* Closers that do not match still count as closing: the parser refuses such text. */
        assert_int_equal(check("[}[}[}", path, sizeof(path)), 0);
}

/* The bus and agent frames rely on msgpack-c's unpacker for the same bound; this is what the
 * static assertion in lib/mp.c stands for. */
static void test_msgpack_unpacker_holds_the_bound(void **state) {
        for (unsigned depth = HUSK_NESTING_MAX - 1; depth <= HUSK_NESTING_MAX + 2; depth++) {
                msgpack_sbuffer sb;
                msgpack_packer pk;
                msgpack_unpacked u;
                size_t off = 0;
                int r;

                msgpack_sbuffer_init(&sb);
                msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
                for (unsigned i = 0; i < depth; i++)
                        msgpack_pack_array(&pk, i + 1 < depth ? 1 : 0);
                msgpack_unpacked_init(&u);
                r = msgpack_unpack_next(&u, sb.data, sb.size, &off);
                if (depth <= HUSK_NESTING_MAX)
                        assert_int_equal(r, MSGPACK_UNPACK_SUCCESS);
                else
                        assert_int_not_equal(r, MSGPACK_UNPACK_SUCCESS);
                msgpack_unpacked_destroy(&u);
                msgpack_sbuffer_destroy(&sb);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_bound_is_exact),
                cmocka_unit_test(test_path_names_the_field),
                cmocka_unit_test(test_long_path_is_cut),
                cmocka_unit_test(test_not_json_is_left_to_the_parser),
                cmocka_unit_test(test_msgpack_unpacker_holds_the_bound),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
