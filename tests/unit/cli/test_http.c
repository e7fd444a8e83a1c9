/* test_http.c: --host normalization, URL escaping, query building, exit codes and how RFC 7807
 * problems (violations, detail) are written for the user. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_http.h"
#include "lib/util.h"

static void test_normalize_host(void **state) {
        static const struct {
                const char *in, *out;
        } good[] = {
                { "127.0.0.1:3030", "http://127.0.0.1:3030" },
                { "localhost", "http://localhost" },
                { "http://127.0.0.1:3030", "http://127.0.0.1:3030" },
                { "http://127.0.0.1:3030/", "http://127.0.0.1:3030" },
                { "HTTPS://api.example:443//", "HTTPS://api.example:443" },
                { "[::1]:3030", "http://[::1]:3030" },
                { "http://host/prefix/", "http://host/prefix" },
        };
        static const char *const bad[] = { "", "ftp://host", "unix:///run/x.sock", "http://", "http:///x" };
        char *out;

        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                assert_int_equal(cli_normalize_host(good[i].in, &out), 0);
                assert_string_equal(out, good[i].out);
                free(out);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                if (cli_normalize_host(bad[i], &out) != -EINVAL)
                        fail_msg("'%s' should be refused", bad[i]);
        assert_int_equal(cli_normalize_host(NULL, &out), -EINVAL);
}

static void test_url_escape_and_query(void **state) {
        char *e, *path = NULL;
        size_t size = 0;
        bool first = true;
        FILE *f;

        e = cli_url_escape("a-b_c.d~e");
        assert_string_equal(e, "a-b_c.d~e");
        free(e);
        e = cli_url_escape("app=web&x y/é");
        assert_string_equal(e, "app%3Dweb%26x%20y%2F%C3%A9");
        free(e);

        f = open_memstream(&path, &size);
        assert_non_null(f);
        fputs("/deployments", f);
        cli_query_add(f, &first, "namespace", "prod");
        cli_query_add(f, &first, "label", "app=web");
        cli_query_add(f, &first, "label", "tier=a b");
        fclose(f);
        assert_string_equal(path, "/deployments?namespace=prod&label=app%3Dweb&label=tier%3Da%20b");
        free(path);
}

static void test_exit_from_status(void **state) {
        assert_int_equal(cli_exit_from_status(200), CLI_EXIT_OK);
        assert_int_equal(cli_exit_from_status(201), CLI_EXIT_OK);
        assert_int_equal(cli_exit_from_status(202), CLI_EXIT_OK);
        assert_int_equal(cli_exit_from_status(404), CLI_EXIT_NOT_FOUND);
        assert_int_equal(cli_exit_from_status(409), CLI_EXIT_CONFLICT);
        assert_int_equal(cli_exit_from_status(400), CLI_EXIT_FAILURE);
        assert_int_equal(cli_exit_from_status(413), CLI_EXIT_FAILURE);
        assert_int_equal(cli_exit_from_status(422), CLI_EXIT_FAILURE);
        assert_int_equal(cli_exit_from_status(500), CLI_EXIT_FAILURE);
        /* Ring's numbers, which scripts depend on. */
        assert_int_equal(CLI_EXIT_USAGE, 2);
        assert_int_equal(CLI_EXIT_CONNECTION, 3);
}

static char *problem_text(const char *json) {
        json_t *p = json_loads(json, 0, NULL);
        char *out = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&out, &size);

        assert_non_null(p);
        assert_non_null(f);
        cli_problem_write(f, p, "  ");
        fclose(f);
        json_decref(p);
        return out;
}

static void test_problem_violations(void **state) {
        char *out;

        out = problem_text(
                "{\"type\": \"urn:husk:problem:invalid-manifest\", \"title\": \"Invalid deployment manifest\","
                " \"status\": 422, \"detail\": \"the deployment manifest has 2 problems to fix\","
                " \"violations\": ["
                "  {\"field\": \"image\", \"reason\": \"must be an absolute path\"},"
                "  {\"field\": \"replicas\", \"reason\": \"must be between 0 and 100, got -1\"}]}");
        /* Every violation, in order; the summary detail is redundant next to them. */
        assert_string_equal(out, "  image: must be an absolute path\n"
                                 "  replicas: must be between 0 and 100, got -1\n");
        free(out);

        /* Ring's own shape, so a Ring server's answers read the same. */
        out = problem_text("{\"title\": \"Validation failed\", \"violations\": ["
                           "{\"property_path\": \"username\", \"message\": \"too short\", \"code\": \"x\"}]}");
        assert_string_equal(out, "  username: too short\n");
        free(out);

        /* Odd entries are still shown rather than dropped. */
        out = problem_text("{\"violations\": [{\"reason\": \"no field\"}, {\"field\": \"f\"}, 3]}");
        assert_string_equal(out, "  no field\n  f: invalid\n  invalid\n");
        free(out);
}

static void test_problem_detail(void **state) {
        char *out;

        out = problem_text("{\"title\": \"Conflict\", \"status\": 409,"
                           " \"detail\": \"deployment a/web is still being deleted; apply again once it is gone\"}");
        assert_string_equal(out, "  deployment a/web is still being deleted; apply again once it is gone\n");
        free(out);
        out = problem_text("{\"title\": \"Not found\", \"detail\": \"Not found\", \"violations\": []}");
        assert_string_equal(out, "");
        free(out);
        out = problem_text("{\"title\": \"Bad request\"}");
        assert_string_equal(out, "");
        free(out);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_normalize_host),   cmocka_unit_test(test_url_escape_and_query),
                cmocka_unit_test(test_exit_from_status), cmocka_unit_test(test_problem_violations),
                cmocka_unit_test(test_problem_detail),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
