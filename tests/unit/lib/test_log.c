/* test_log.c: the log formats: text lines, and json for log shippers (one object per line,
 * whatever the message holds). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"

/* What the logging calls in fn wrote to stderr. */
static char *capture(void (*fn)(void)) {
        FILE *f = tmpfile();
        int saved = dup(STDERR_FILENO);
        char *out;
        long n;

        assert_non_null(f);
        fflush(stderr);
        assert_int_not_equal(dup2(fileno(f), STDERR_FILENO), -1);
        fn();
        fflush(stderr);
        assert_int_not_equal(dup2(saved, STDERR_FILENO), -1);
        close(saved);
        n = ftell(f);
        assert_true(n >= 0);
        out = calloc(1, (size_t)n + 1);
        assert_non_null(out);
        rewind(f);
        assert_int_equal(fread(out, 1, (size_t)n, f), (size_t)n);
        fclose(f);
        return out;
}

static void log_tricky(void) {
        log_info("a \"quoted\" name\nover two lines, tab\there");
        log_warning_errno(-ENOENT, "cannot open %s: %m", "/etc/husk/\xff\xfe.yaml");
        log_debug("not shown at info");
}

static void test_json_lines(void **state) {
        char *out, *line, *save = NULL;
        json_t *o;
        int n = 0;

        unsetenv("JOURNAL_STREAM");
        log_set_ident("husk-test");
        log_set_max_level(LOG_INFO);
        log_set_format(LOG_FORMAT_JSON);
        out = capture(log_tricky);
        log_set_format(LOG_FORMAT_TEXT);

        for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save), n++) {
                o = json_loads(line, 0, NULL);
                assert_non_null(o);
                assert_string_equal(json_string_value(json_object_get(o, "ident")), "husk-test");
                assert_int_equal(json_integer_value(json_object_get(o, "pid")), getpid());
                assert_non_null(json_string_value(json_object_get(o, "timestamp")));
                if (n == 0) {
                        assert_string_equal(json_string_value(json_object_get(o, "level")), "info");
                        assert_string_equal(json_string_value(json_object_get(o, "message")),
                                            "a \"quoted\" name\nover two lines, tab\there");
                        assert_null(json_object_get(o, "errno"));
                } else {
                        /* Not UTF-8: logged anyway, those bytes as '?'. */
                        assert_string_equal(json_string_value(json_object_get(o, "level")), "warning");
                        assert_string_equal(json_string_value(json_object_get(o, "message")),
                                            "cannot open /etc/husk/??.yaml: No such file or directory");
                        assert_int_equal(json_integer_value(json_object_get(o, "errno")), ENOENT);
                }
                json_decref(o);
        }
        assert_int_equal(n, 2); /* the debug line was below the level */
        free(out);
}

static void test_text_lines(void **state) {
        char *out;

        unsetenv("JOURNAL_STREAM");
        log_set_ident("husk-test");
        log_set_format(LOG_FORMAT_TEXT);
        out = capture(log_tricky);
        assert_non_null(strstr(out, " husk-test["));
        assert_non_null(strstr(out, "]: warning: cannot open /etc/husk/\xff\xfe.yaml: No such file or directory\n"));
        free(out);
        assert_int_equal(log_format_from_string("json"), LOG_FORMAT_JSON);
        assert_int_equal(log_format_from_string("text"), LOG_FORMAT_TEXT);
        assert_int_equal(log_format_from_string("JSON"), -EINVAL);
        assert_int_equal(log_format_from_string(NULL), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_json_lines),
                cmocka_unit_test(test_text_lines),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
