/* test_files.c: rotated files read as one stream: tail across file boundaries (lines split across
 * files, empty files, a partial last line), forward reads, and the seek by record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/util.h"
#include "services/logd/logd.h"

typedef struct fixture {
        char dir[256];
        char paths[8][PATH_MAX];
        const char *p[8];
        size_t n;
} fixture_t;

static int setup(void **state) {
        fixture_t *f = calloc(1, sizeof(*f));

        snprintf(f->dir, sizeof(f->dir), "/tmp/husk-test-files-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        *state = f;
        return 0;
}

static int teardown(void **state) {
        fixture_t *f = *state;

        rm_rf(f->dir);
        free(f);
        return 0;
}

/* Files holding the given contents, oldest first; NULL: the file does not exist. */
static void make_files(fixture_t *f, const char *const *contents, const size_t *sizes, size_t n) {
        f->n = n;
        for (size_t i = 0; i < n; i++) {
                snprintf(f->paths[i], PATH_MAX, "%s/f%zu", f->dir, i);
                f->p[i] = f->paths[i];
                unlink(f->paths[i]);
                if (contents[i])
                        assert_int_equal(write_file_atomic(f->paths[i], contents[i],
                                                           sizes ? sizes[i] : strlen(contents[i]), 0600),
                                         0);
        }
}

/* Every line backwards, joined with '|' (partial first one marked with '~'). */
static char *backwards(const logd_files_t *files) {
        logd_rlines_t r;
        char *out = calloc(1, 1 << 16);
        const char *line;
        size_t len, used = 0;
        uint64_t start;
        bool first = true;
        int q;

        assert_int_equal(logd_rlines_init(&r, files), 0);
        while ((q = logd_rlines_prev(&r, &line, &len, &start)) > 0) {
                used += (size_t)snprintf(out + used, (1 << 16) - used, "%s%.*s%s@%" PRIu64, used ? "|" : "", (int)len,
                                         line, first && r.partial ? "~" : "", start);
                first = false;
        }
        assert_int_equal(q, 0);
        logd_rlines_clear(&r);
        return out;
}

static char *forwards(const logd_files_t *files, uint64_t from) {
        logd_flines_t r;
        char *out = calloc(1, 1 << 16);
        const char *line;
        size_t len, used = 0;
        uint64_t start;
        int q;

        assert_int_equal(logd_flines_init(&r, files, from, 3), 0); /* tiny blocks: every boundary */
        while ((q = logd_flines_next(&r, &line, &len, &start)) > 0)
                used += (size_t)snprintf(out + used, (1 << 16) - used, "%s%.*s@%" PRIu64, used ? "|" : "", (int)len,
                                         line, start);
        assert_int_equal(q, 0);
        logd_flines_clear(&r);
        return out;
}

static void test_tail_across_files(void **state) {
        fixture_t *f = *state;
        /* .3 missing (a rotation cut short), a line split over .2 and .1, an empty live file. */
        const char *contents[] = { NULL, "a\nb", "c\nd\n", "" };
        logd_files_t files;
        char *s;

        make_files(f, contents, NULL, 4);
        assert_int_equal(logd_files_open(&files, f->p, 4), 0);
        assert_int_equal(files.n, 3);
        assert_int_equal(files.total, 7);
        s = backwards(&files);
        assert_string_equal(s, "d@5|bc@2|a@0");
        free(s);
        s = forwards(&files, 0);
        assert_string_equal(s, "a@0|bc@2|d@5");
        free(s);
        s = forwards(&files, 2);
        assert_string_equal(s, "bc@2|d@5");
        free(s);
        logd_files_close(&files);
}

static void test_partial_last_line(void **state) {
        fixture_t *f = *state;
        const char *contents[] = { "one\ntwo\n", "thr" };
        logd_files_t files;
        char *s;

        make_files(f, contents, NULL, 2);
        assert_int_equal(logd_files_open(&files, f->p, 2), 0);
        s = backwards(&files);
        assert_string_equal(s, "thr~@8|two@4|one@0");
        free(s);
        /* Forwards never returns a line still being written. */
        s = forwards(&files, 0);
        assert_string_equal(s, "one@0|two@4");
        free(s);
        logd_files_close(&files);
}

static void test_empty_files(void **state) {
        fixture_t *f = *state;
        const char *contents[] = { "", "", "" };
        const char *lone[] = { "\n" };
        logd_files_t files;
        char *s;

        make_files(f, contents, NULL, 3);
        assert_int_equal(logd_files_open(&files, f->p, 3), 0);
        assert_int_equal(files.total, 0);
        s = backwards(&files);
        assert_string_equal(s, "");
        free(s);
        s = forwards(&files, 0);
        assert_string_equal(s, "");
        free(s);
        logd_files_close(&files);

        make_files(f, lone, NULL, 1);
        assert_int_equal(logd_files_open(&files, f->p, 1), 0);
        s = backwards(&files);
        assert_string_equal(s, "@0");
        free(s);
        logd_files_close(&files);
}

/* Many lines over several blocks and files: backwards is forwards reversed. */
static void test_many_lines_both_ways(void **state) {
        fixture_t *f = *state;
        char *contents[3];
        logd_files_t files;
        logd_rlines_t r;
        logd_flines_t w;
        const char *line;
        size_t len, n_back = 0, n_fwd = 0;
        uint64_t start, *starts = calloc(30000, sizeof(uint64_t));
        int q;

        for (int k = 0; k < 3; k++) {
                size_t used = 0;
                contents[k] = malloc(200000);
                for (int i = 0; used < 150000; i++)
                        used += (size_t)sprintf(contents[k] + used, "file %d line %d %.*s\n", k, i, i % 97,
                                                "......................................................................"
                                                "..........................................");
        }
        make_files(f, (const char *const *)contents, NULL, 3);
        assert_int_equal(logd_files_open(&files, f->p, 3), 0);
        assert_int_equal(logd_flines_init(&w, &files, 0, 0), 0);
        while ((q = logd_flines_next(&w, &line, &len, &start)) > 0)
                starts[n_fwd++] = start;
        assert_int_equal(q, 0);
        assert_int_equal(logd_rlines_init(&r, &files), 0);
        while ((q = logd_rlines_prev(&r, &line, &len, &start)) > 0) {
                n_back++;
                assert_int_equal(start, starts[n_fwd - n_back]);
        }
        assert_int_equal(n_back, n_fwd);
        logd_rlines_clear(&r);
        logd_flines_clear(&w);
        logd_files_close(&files);
        for (int k = 0; k < 3; k++)
                free(contents[k]);
        free(starts);
}

/* A line longer than any record is skipped whole, in both directions. */
static void test_oversized_line_skipped(void **state) {
        fixture_t *f = *state;
        size_t big = LOGD_READ_LINE_MAX + 100, n = big + 8;
        char *c = malloc(n);
        const char *contents[1] = { c };
        size_t sizes[1] = { n };
        logd_files_t files;
        char *s;

        memcpy(c, "a\n", 2);
        memset(c + 2, 'x', big);
        memcpy(c + 2 + big, "\nb\nc\n", 5);
        sizes[0] = 2 + big + 5;
        make_files(f, contents, sizes, 1);
        assert_int_equal(logd_files_open(&files, f->p, 1), 0);
        s = backwards(&files);
        assert_string_equal(s, "c@1048681|b@1048679|a@0");
        free(s);
        s = forwards(&files, 0);
        assert_string_equal(s, "a@0|b@1048679|c@1048681");
        free(s);
        logd_files_close(&files);
        free(c);
}

static bool seq_after(const logd_entry_t *e, void *userdata) { return e->seq > *(uint64_t *)userdata; }

static void test_seek_by_seq(void **state) {
        fixture_t *f = *state;
        char *contents[4];
        logd_files_t files;
        uint64_t seq = 1, off, after;
        int n = 0;

        /* 4 files of ~100 KiB of records with seq 1, 2, 3, ... */
        for (int k = 0; k < 4; k++) {
                size_t used = 0;
                contents[k] = malloc(120000);
                while (used < 100000) {
                        used += (size_t)sprintf(contents[k] + used, "%" PRIu64 " %" PRIu64 " is line number %d\n",
                                                1000 + seq, seq, n);
                        seq++;
                        n++;
                }
        }
        make_files(f, (const char *const *)contents, NULL, 4);
        assert_int_equal(logd_files_open(&files, f->p, 4), 0);
        for (after = 0; after < seq + 2; after += 997) {
                logd_flines_t r;
                const char *line;
                size_t len;
                logd_entry_t e;

                assert_int_equal(logd_files_seek(&files, seq_after, &after, &off), 0);
                if (after + 1 >= seq) {
                        assert_int_equal(off, files.total);
                        continue;
                }
                assert_int_equal(logd_flines_init(&r, &files, off, 0), 0);
                assert_int_equal(logd_flines_next(&r, &line, &len, NULL), 1);
                assert_int_equal(logd_record_parse(line, len, &e), 0);
                assert_int_equal(e.seq, after + 1);
                logd_flines_clear(&r);
        }
        logd_files_close(&files);
        for (int k = 0; k < 4; k++)
                free(contents[k]);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_tail_across_files, setup, teardown),
                cmocka_unit_test_setup_teardown(test_partial_last_line, setup, teardown),
                cmocka_unit_test_setup_teardown(test_empty_files, setup, teardown),
                cmocka_unit_test_setup_teardown(test_many_lines_both_ways, setup, teardown),
                cmocka_unit_test_setup_teardown(test_oversized_line_skipped, setup, teardown),
                cmocka_unit_test_setup_teardown(test_seek_by_seq, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
