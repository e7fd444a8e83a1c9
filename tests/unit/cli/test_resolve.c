/* test_resolve.c: which deployment an ID, id prefix or NAME means, and when it is ambiguous. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_deployment.h"
#include "lib/util.h"

static const char list_json[] =
        "["
        "{\"id\": \"aaaa1111-0000-4000-8000-000000000001\", \"namespace\": \"default\", \"name\": \"web\", \"status\": "
        "\"running\"},"
        "{\"id\": \"aaaa2222-0000-4000-8000-000000000002\", \"namespace\": \"prod\", \"name\": \"web\", \"status\": "
        "\"running\"},"
        "{\"id\": \"bbbb3333-0000-4000-8000-000000000003\", \"namespace\": \"prod\", \"name\": \"api\", \"status\": "
        "\"running\"},"
        "{\"id\": \"cccc4444-0000-4000-8000-000000000004\", \"namespace\": \"staging\", \"name\": \"api\", \"status\": "
        "\"running\"},"
        "{\"id\": \"dddd5555-0000-4000-8000-000000000005\", \"namespace\": \"prod\", \"name\": \"db\", \"status\": "
        "\"pending\"},"
        "{\"id\": \"eeee6666-0000-4000-8000-000000000006\", \"namespace\": \"a\", \"name\": \"job\", \"status\": "
        "\"deleted\"},"
        "{\"id\": \"ffff7777-0000-4000-8000-000000000007\", \"namespace\": \"b\", \"name\": \"job\", \"status\": "
        "\"running\"},"
        "{\"id\": \"abcd\", \"namespace\": \"odd\", \"name\": \"short-id\", \"status\": \"running\"},"
        "{\"id\": \"9999\", \"namespace\": \"odd\", \"name\": \"cccc\", \"status\": \"running\"}"
        "]";

static int setup(void **state) {
        *state = json_loads(list_json, 0, NULL);
        return *state ? 0 : -1;
}

static int teardown(void **state) {
        json_decref(*state);
        return 0;
}

/* ref (in ns) resolves to the deployment with this id. */
static void check_found(const json_t *list, const char *ref, const char *ns, const char *id) {
        const json_t *found = NULL;
        json_t *candidates = NULL;
        int r = cli_resolve_deployment(list, ref, ns, &found, &candidates);

        if (r < 0)
                fail_msg("'%s' in %s: %s", ref, ns ? ns : "(any)", strerror(-r));
        assert_null(candidates);
        assert_string_equal(json_string_value(json_object_get(found, "id")), id);
}

static void check_none(const json_t *list, const char *ref, const char *ns) {
        const json_t *found = NULL;
        json_t *candidates = NULL;

        assert_int_equal(cli_resolve_deployment(list, ref, ns, &found, &candidates), -ENOENT);
        assert_null(candidates);
}

/* ref is ambiguous between exactly these ids, in list order. */
static void check_ambiguous(const json_t *list, const char *ref, const char *ns, const char *id1, const char *id2) {
        const json_t *found = NULL;
        json_t *candidates = NULL;

        assert_int_equal(cli_resolve_deployment(list, ref, ns, &found, &candidates), -ENOTUNIQ);
        assert_int_equal(json_array_size(candidates), 2);
        assert_string_equal(json_string_value(json_object_get(json_array_get(candidates, 0), "id")), id1);
        assert_string_equal(json_string_value(json_object_get(json_array_get(candidates, 1), "id")), id2);
        json_decref(candidates);
}

static void test_full_id(void **state) {
        assert_true(cli_is_full_id("aaaa1111-0000-4000-8000-000000000001"));
        assert_true(cli_is_full_id("AAAA1111-0000-4000-8000-00000000000F"));
        assert_false(cli_is_full_id("aaaa1111-0000-4000-8000-00000000000"));
        assert_false(cli_is_full_id("aaaa1111-0000-4000-8000-0000000000001"));
        assert_false(cli_is_full_id("aaaa1111x0000-4000-8000-000000000001"));
        assert_false(cli_is_full_id("gaaa1111-0000-4000-8000-000000000001"));
        assert_false(cli_is_full_id("web"));
        assert_false(cli_is_full_id(""));

        check_found(*state, "aaaa2222-0000-4000-8000-000000000002", NULL, "aaaa2222-0000-4000-8000-000000000002");
        check_found(*state, "aaaa2222-0000-4000-8000-000000000002", "prod", "aaaa2222-0000-4000-8000-000000000002");
        /* An id in another namespace than -n says is not found there. */
        check_none(*state, "aaaa2222-0000-4000-8000-000000000002", "default");
}

static void test_names(void **state) {
        /* "default" first, like kubectl... */
        check_found(*state, "web", NULL, "aaaa1111-0000-4000-8000-000000000001");
        check_found(*state, "web", "prod", "aaaa2222-0000-4000-8000-000000000002");
        /* ...else the one namespace that has the name... */
        check_found(*state, "db", NULL, "dddd5555-0000-4000-8000-000000000005");
        /* ...and when several do, the user must choose. */
        check_ambiguous(*state, "api", NULL, "bbbb3333-0000-4000-8000-000000000003",
                        "cccc4444-0000-4000-8000-000000000004");
        check_found(*state, "api", "staging", "cccc4444-0000-4000-8000-000000000004");
        check_none(*state, "api", "default");
        check_none(*state, "nope", NULL);
        check_none(*state, "", NULL);
        /* One being deleted and one alive: the live one is meant. */
        check_found(*state, "job", NULL, "ffff7777-0000-4000-8000-000000000007");
        check_found(*state, "job", "a", "eeee6666-0000-4000-8000-000000000006");
}

static void test_prefixes(void **state) {
        check_found(*state, "bbbb", NULL, "bbbb3333-0000-4000-8000-000000000003");
        check_found(*state, "dddd5555-00", NULL, "dddd5555-0000-4000-8000-000000000005");
        check_found(*state, "aaaa2", NULL, "aaaa2222-0000-4000-8000-000000000002");
        check_ambiguous(*state, "aaaa", NULL, "aaaa1111-0000-4000-8000-000000000001",
                        "aaaa2222-0000-4000-8000-000000000002");
        /* Within -n, a shared prefix can become unique. */
        check_found(*state, "aaaa", "prod", "aaaa2222-0000-4000-8000-000000000002");
        /* Shorter than 4 characters is never a prefix. */
        check_none(*state, "bbb", NULL);
        check_none(*state, "b", NULL);
        check_none(*state, "bbbb", "staging");
}

static void test_precedence(void **state) {
        /* An exact id beats a prefix of a longer one ("abcd" is also no prefix of anything else here). */
        check_found(*state, "abcd", NULL, "abcd");
        /* A name beats an id prefix: "cccc" names a deployment and prefixes another's id. */
        check_found(*state, "cccc", NULL, "9999");
        check_found(*state, "cccc4", NULL, "cccc4444-0000-4000-8000-000000000004");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_full_id, setup, teardown),
                cmocka_unit_test_setup_teardown(test_names, setup, teardown),
                cmocka_unit_test_setup_teardown(test_prefixes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_precedence, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
