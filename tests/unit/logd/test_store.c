/* test_store.c: the per-instance store: rotation bounds, recovery of the newest record, torn tails, no-backup rotation. */
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
#include <sys/stat.h>
#include <unistd.h>

#include "lib/util.h"
#include "services/logd/logd.h"

static int setup(void **state) {
        char *dir = strdup("/tmp/husk-test-store-XXXXXX");

        assert_non_null(mkdtemp(dir));
        *state = dir;
        return 0;
}

static int teardown(void **state) {
        rm_rf(*state);
        free(*state);
        return 0;
}

static void append(logd_store_t *s, uint64_t seq) {
        char msg[64];
        logd_entry_t e = { .ts = 1000 + seq, .seq = seq, .level = LOGD_LEVEL_INFO, .message = msg };

        e.message_len = (size_t)snprintf(msg, sizeof(msg), "message number %" PRIu64 " padding padding", seq);
        assert_int_equal(logd_store_append(s, &e), 0);
}

static uint64_t file_size(const char *dir, const char *name) {
        char path[PATH_MAX];
        struct stat st;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        return stat(path, &st) == 0 ? (uint64_t)st.st_size : UINT64_MAX;
}

/* Every record of the store, in order: their seqs must be consecutive up to last. */
static void assert_consecutive(const char *dir, unsigned backups, uint64_t last, uint64_t *ret_first) {
        logd_files_t files;
        logd_flines_t r;
        const char *line;
        size_t len;
        uint64_t prev = 0;
        int q;

        assert_int_equal(logd_files_open_store(&files, dir, backups), 0);
        assert_int_equal(logd_flines_init(&r, &files, 0, 0), 0);
        while ((q = logd_flines_next(&r, &line, &len, NULL)) > 0) {
                logd_entry_t e;

                assert_int_equal(logd_record_parse(line, len, &e), 0);
                if (prev)
                        assert_int_equal(e.seq, prev + 1);
                else
                        *ret_first = e.seq;
                prev = e.seq;
        }
        assert_int_equal(q, 0);
        assert_int_equal(prev, last);
        logd_flines_clear(&r);
        logd_files_close(&files);
}

static void test_rotation_bounds_files(void **state) {
        const char *dir = *state;
        logd_store_t s;
        uint64_t first = 0;

        assert_int_equal(logd_store_open(&s, dir, 1000, 2), 0);
        for (uint64_t seq = 1; seq <= 200; seq++) {
                append(&s, seq);
                assert_int_equal(logd_store_flush(&s), 0);
        }
        assert_true(file_size(dir, "console.log") <= 1000);
        assert_true(file_size(dir, "console.log.1") <= 1000 && file_size(dir, "console.log.1") > 900);
        assert_true(file_size(dir, "console.log.2") <= 1000 && file_size(dir, "console.log.2") > 900);
        assert_int_equal(file_size(dir, "console.log.3"), UINT64_MAX);
        assert_consecutive(dir, 2, 200, &first);
        assert_true(first > 100); /* the oldest went */
        logd_store_close(&s);
}

static void test_reopen_finds_newest_and_cuts_torn_record(void **state) {
        const char *dir = *state;
        char path[PATH_MAX];
        logd_store_t s;
        uint64_t first;
        int fd;

        assert_int_equal(logd_store_open(&s, dir, 0, 3), 0);
        for (uint64_t seq = 1; seq <= 10; seq++)
                append(&s, seq);
        logd_store_close(&s);

        /* A crash in the middle of writing record 11. */
        snprintf(path, sizeof(path), "%s/console.log", dir);
        fd = open(path, O_WRONLY | O_APPEND);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, "1011 11 is mess", 15), 15);
        close(fd);

        assert_int_equal(logd_store_open(&s, dir, 0, 3), 0);
        assert_int_equal(s.last_seq, 10);
        assert_int_equal(s.last_ts, 1010);
        append(&s, 11);
        logd_store_close(&s);
        assert_consecutive(dir, 3, 11, &first);
        assert_int_equal(first, 1);
}

/* With no backups a rotation empties the store: the seq file still knows where we were. */
static void test_no_backups_remembers_offset(void **state) {
        const char *dir = *state;
        logd_store_t s;

        assert_int_equal(logd_store_open(&s, dir, 200, 0), 0);
        for (uint64_t seq = 1; seq <= 4; seq++)
                append(&s, seq);
        assert_int_equal(logd_store_flush(&s), 0);
        assert_true(file_size(dir, "console.log") <= 200);
        logd_store_close(&s);
        assert_int_equal(logd_store_open(&s, dir, 200, 0), 0);
        assert_int_equal(s.last_seq, 4);
        logd_store_close(&s);

        /* Exactly at a rotation: the live file is empty. */
        assert_int_equal(logd_store_open(&s, dir, 200, 0), 0);
        assert_int_equal(logd_store_rotate(&s), 0);
        assert_int_equal(file_size(dir, "console.log"), 0);
        logd_store_close(&s);
        assert_int_equal(logd_store_open(&s, dir, 200, 0), 0);
        assert_int_equal(s.last_seq, 4);
        logd_store_close(&s);
}

static void test_fewer_backups_drops_extra(void **state) {
        const char *dir = *state;
        logd_store_t s;

        assert_int_equal(logd_store_open(&s, dir, 300, 4), 0);
        for (uint64_t seq = 1; seq <= 40; seq++)
                append(&s, seq);
        logd_store_close(&s);
        assert_true(file_size(dir, "console.log.4") != UINT64_MAX);
        assert_int_equal(logd_store_open(&s, dir, 300, 1), 0);
        assert_int_equal(file_size(dir, "console.log.2"), UINT64_MAX);
        assert_int_equal(file_size(dir, "console.log.4"), UINT64_MAX);
        assert_true(file_size(dir, "console.log.1") != UINT64_MAX);
        assert_int_equal(s.last_seq, 40);
        logd_store_close(&s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_rotation_bounds_files, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reopen_finds_newest_and_cuts_torn_record, setup, teardown),
                cmocka_unit_test_setup_teardown(test_no_backups_remembers_offset, setup, teardown),
                cmocka_unit_test_setup_teardown(test_fewer_backups_drops_extra, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
