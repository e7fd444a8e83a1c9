/* test_run.c: run_tool: a tool's exit status and output come back, a missing tool is -ENOENT, the
 * tool is looked up in the fixed path (not the caller's PATH) and gets the given environment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "lib/run.h"
#include "lib/util.h"

static void test_output_and_status(void **state) {
        _cleanup_free_ char *out = NULL, *err = NULL;
        char *const ok[] = { "sh", "-c", "echo hello; echo world >&2", NULL };
        char *const bad[] = { "sh", "-c", "echo 'mkfs: no space left' >&2; exit 3", NULL };

        assert_int_equal(run_tool(ok, NULL, &out), 0);
        assert_string_equal(out, "hello\nworld");
        assert_int_equal(run_tool(bad, NULL, &err), -EIO);
        assert_string_equal(err, "mkfs: no space left");
}

static void test_missing_tool(void **state) {
        _cleanup_free_ char *out = NULL, *path = NULL;
        char *const argv[] = { "husk-no-such-tool", NULL };

        assert_int_equal(run_tool(argv, NULL, &out), -ENOENT);
        assert_null(out);
        assert_int_equal(run_find_tool("husk-no-such-tool", &path), -ENOENT);
        assert_int_equal(run_find_tool("a/b", &path), -EINVAL);
}

/* The caller's PATH does not decide where a tool comes from; the environment is the one given. */
static void test_fixed_path_and_env(void **state) {
        _cleanup_free_ char *out = NULL, *out2 = NULL;
        char *const argv[] = { "sh", "-c", "printf %s \"$PATH|$X|$HOME\"", NULL };
        char *const env[] = { "PATH=/nowhere", "X=1", NULL };
        const char *old = getenv("PATH");
        _cleanup_free_ char *saved = old ? strdup(old) : NULL;

        setenv("PATH", "/nonexistent", 1);
        assert_int_equal(run_tool(argv, env, &out), 0);
        assert_string_equal(out, "/nowhere|1|");
        assert_int_equal(run_tool(argv, NULL, &out2), 0);
        assert_string_equal(out2, RUN_TOOL_PATH "||");
        if (saved)
                setenv("PATH", saved, 1);
}

/* A tool killed by a signal is a failure, not a success with no output. */
static void test_killed(void **state) {
        _cleanup_free_ char *out = NULL;
        char *const argv[] = { "sh", "-c", "kill -KILL $$", NULL };

        assert_int_equal(run_tool(argv, NULL, &out), -EIO);
}

/* A chatty tool: the output is bounded. */
static void test_output_bounded(void **state) {
        _cleanup_free_ char *out = NULL;
        char *const argv[] = { "sh", "-c", "i=0; while [ $i -lt 2000 ]; do echo 0123456789; i=$((i+1)); done", NULL };

        assert_int_equal(run_tool(argv, NULL, &out), 0);
        assert_true(strlen(out) <= RUN_OUTPUT_MAX);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_output_and_status),  cmocka_unit_test(test_missing_tool),
                cmocka_unit_test(test_fixed_path_and_env), cmocka_unit_test(test_killed),
                cmocka_unit_test(test_output_bounded),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
