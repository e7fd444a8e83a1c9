/* test_lines.c: console bytes into lines (offsets, CRLF, long lines, partial lines), clean messages and store records. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "services/logd/logd.h"

/* ---- clean ------------------------------------------------------------------------------------ */

static char *clean(const char *raw, size_t len, logd_stream_t *stream) {
        char *out = malloc(LOGD_CLEAN_SIZE(len));

        assert_non_null(out);
        logd_line_clean(raw, len, out, stream);
        return out;
}

static void test_clean_crlf_and_nul(void **state) {
        logd_stream_t s;
        char *m = clean("hello\0 world\r\r", 14, &s);

        assert_string_equal(m, "hello world");
        assert_int_equal(s, LOGD_STREAM_SYSTEM);
        free(m);
}

static void test_clean_workload_prefixes(void **state) {
        logd_stream_t s;
        static const char out[] = "husk-workload: listening on :8080\r";
        static const char err[] = "husk-workload-err: warning: config file missing";
        char *m = clean(out, sizeof(out) - 1, &s);

        assert_string_equal(m, "listening on :8080");
        assert_int_equal(s, LOGD_STREAM_WORKLOAD);
        free(m);
        m = clean(err, sizeof(err) - 1, &s);
        assert_string_equal(m, "warning: config file missing");
        assert_int_equal(s, LOGD_STREAM_WORKLOAD);
        assert_int_equal(logd_classify(m, strlen(m)), LOGD_LEVEL_WARNING);
        free(m);
        /* Only at the start of the line, and the agent's own lines are the system's. */
        m = clean("x husk-workload: y", 18, &s);
        assert_int_equal(s, LOGD_STREAM_SYSTEM);
        free(m);
        m = clean("husk-agent: error: cannot mount /dev/vda", 40, &s);
        assert_int_equal(s, LOGD_STREAM_SYSTEM);
        assert_string_equal(m, "husk-agent: error: cannot mount /dev/vda");
        free(m);
}

static void test_clean_invalid_utf8(void **state) {
        logd_stream_t s;
        /* valid é, a lone continuation byte, an overlong '/', a surrogate, valid 𝄞 */
        const char raw[] = "\xc3\xa9|\x80|\xc0\xaf|\xed\xa0\x80|\xf0\x9d\x84\x9e";
        char *m = clean(raw, sizeof(raw) - 1, &s);

        assert_string_equal(m, "\xc3\xa9|\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd|"
                               "\xf0\x9d\x84\x9e");
        free(m);
}

/* ---- records ------------------------------------------------------------------------------------ */

static void test_record_round_trip(void **state) {
        logd_entry_t e = { .ts = 1732253400123,
                           .seq = 4096,
                           .level = LOGD_LEVEL_WARNING,
                           .stream = LOGD_STREAM_WORKLOAD,
                           .message = "disk 90% full",
                           .message_len = 13 };
        logd_entry_t back;
        char buf[128];
        int n = logd_record_format(&e, buf, sizeof(buf));

        assert_int_equal(n, (int)strlen("1732253400123 4096 ww disk 90% full\n"));
        assert_memory_equal(buf, "1732253400123 4096 ww disk 90% full\n", (size_t)n);
        assert_int_equal(logd_record_parse(buf, (size_t)n - 1, &back), 0);
        assert_true(back.ts == e.ts && back.seq == e.seq && back.level == e.level && back.stream == e.stream);
        assert_int_equal(back.message_len, 13);
        assert_memory_equal(back.message, "disk 90% full", 13);
        assert_int_equal(logd_record_format(&e, buf, 20), -ENOBUFS);
}

static void test_record_rejects(void **state) {
        static const char *const bad[] = {
                "",          "1 2",      "1 2 ",     "1 2 is",  "x 2 is m",
                "1 x is m",  "1 2 qs m", "1 2 iq m", "1 2 ism", "99999999999999999999 2 is m",
                "1  2 is m",
        };
        logd_entry_t e;

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                assert_int_equal(logd_record_parse(bad[i], strlen(bad[i]), &e), -EBADMSG);
        assert_int_equal(logd_record_parse("1 2 us ", 7, &e), 0);
        assert_int_equal(e.message_len, 0);
}

/* ---- splitter ------------------------------------------------------------------------------------ */

typedef struct got {
        char *lines[64];
        size_t len[64];
        uint64_t end[64];
        size_t n;
        int fail_at; /* fail the call with this index (1-based), once */
} got_t;

static int collect(const char *line, size_t len, uint64_t end, void *userdata) {
        got_t *g = userdata;

        if (g->fail_at > 0 && (size_t)g->fail_at == g->n + 1) {
                g->fail_at = 0;
                return -EIO;
        }
        assert_true(g->n < 64);
        g->lines[g->n] = malloc(len + 1);
        memcpy(g->lines[g->n], line, len);
        g->lines[g->n][len] = '\0';
        g->len[g->n] = len;
        g->end[g->n] = end;
        g->n++;
        return 0;
}

static void got_free(got_t *g) {
        for (size_t i = 0; i < g->n; i++)
                free(g->lines[i]);
}

static void test_split_across_chunks(void **state) {
        logd_splitter_t s;
        got_t g = {};

        assert_int_equal(logd_splitter_init(&s, 100), 0);
        assert_int_equal(logd_splitter_feed(&s, "one\r\ntw", 7, collect, &g), 0);
        assert_int_equal(logd_splitter_feed(&s, "o\nthr", 5, collect, &g), 0);
        assert_int_equal(g.n, 2);
        assert_string_equal(g.lines[0], "one\r");
        assert_int_equal(g.end[0], 105);
        assert_string_equal(g.lines[1], "two");
        assert_int_equal(g.end[1], 109);
        assert_int_equal(s.base, 109);
        assert_int_equal(s.len, 3);
        /* The partial line goes out on flush, ending where its bytes end. */
        assert_int_equal(logd_splitter_flush(&s, collect, &g), 0);
        assert_string_equal(g.lines[2], "thr");
        assert_int_equal(g.end[2], 112);
        assert_int_equal(logd_splitter_flush(&s, collect, &g), 0);
        assert_int_equal(g.n, 3);
        logd_splitter_clear(&s);
        got_free(&g);
}

static void test_split_long_line_at_utf8_boundary(void **state) {
        size_t n = LOGD_LINE_MAX + 10;
        char *big = malloc(n + 1);
        logd_splitter_t s;
        got_t g = {};

        /* 'a's, with a 3-byte character straddling the limit. */
        memset(big, 'a', n);
        memcpy(big + LOGD_LINE_MAX - 1, "\xe2\x82\xac", 3);
        big[n] = '\n';
        assert_int_equal(logd_splitter_init(&s, 0), 0);
        assert_int_equal(logd_splitter_feed(&s, big, n + 1, collect, &g), 0);
        assert_int_equal(g.n, 2);
        assert_int_equal(g.len[0], LOGD_LINE_MAX - 1);
        assert_int_equal(g.end[0], LOGD_LINE_MAX - 1);
        assert_memory_equal(g.lines[1], "\xe2\x82\xac", 3);
        assert_int_equal(g.end[1], n + 1);
        logd_splitter_clear(&s);
        got_free(&g);

        /* The same bytes fed one at a time give the same lines. */
        memset(&g, 0, sizeof(g));
        assert_int_equal(logd_splitter_init(&s, 0), 0);
        for (size_t i = 0; i <= n; i++)
                assert_int_equal(logd_splitter_feed(&s, big + i, 1, collect, &g), 0);
        assert_int_equal(g.n, 2);
        assert_int_equal(g.len[0], LOGD_LINE_MAX - 1);
        assert_int_equal(g.end[1], n + 1);
        logd_splitter_clear(&s);
        got_free(&g);
        free(big);
}

/* A failing callback consumes nothing: the same bytes fed again give the line once. */
static void test_split_failure_loses_nothing(void **state) {
        logd_splitter_t s;
        got_t g = { .fail_at = 2 };
        const char *data = "a\nb\nc\n";
        uint64_t off;

        assert_int_equal(logd_splitter_init(&s, 0), 0);
        assert_int_equal(logd_splitter_feed(&s, data, 6, collect, &g), -EIO);
        assert_int_equal(g.n, 1);
        off = s.base + s.len; /* where the caller reads next */
        assert_int_equal(off, 2);
        assert_int_equal(logd_splitter_feed(&s, data + off, 6 - off, collect, &g), 0);
        assert_int_equal(g.n, 3);
        assert_string_equal(g.lines[1], "b");
        assert_int_equal(g.end[1], 4);
        assert_string_equal(g.lines[2], "c");
        logd_splitter_clear(&s);
        got_free(&g);
}

static void test_split_empty_lines(void **state) {
        logd_splitter_t s;
        got_t g = {};

        assert_int_equal(logd_splitter_init(&s, 0), 0);
        assert_int_equal(logd_splitter_feed(&s, "\n\nx\n", 4, collect, &g), 0);
        assert_int_equal(g.n, 3);
        assert_int_equal(g.len[0], 0);
        assert_int_equal(g.end[0], 1);
        assert_int_equal(g.end[1], 2);
        assert_int_equal(g.end[2], 4);
        logd_splitter_clear(&s);
        got_free(&g);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_clean_crlf_and_nul),
                cmocka_unit_test(test_clean_workload_prefixes),
                cmocka_unit_test(test_clean_invalid_utf8),
                cmocka_unit_test(test_record_round_trip),
                cmocka_unit_test(test_record_rejects),
                cmocka_unit_test(test_split_across_chunks),
                cmocka_unit_test(test_split_long_line_at_utf8_boundary),
                cmocka_unit_test(test_split_failure_loses_nothing),
                cmocka_unit_test(test_split_empty_lines),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
