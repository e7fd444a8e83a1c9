/* test_util.c: checked number parsing, timestamps, random ids and the small file helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/util.h"

/* ---- numbers ---------------------------------------------------------------------------- */

/* logs and events take the same since=. */
static void test_parse_since(void **state) {
        static const char *const bad[] = { "",
                                           "yesterday",
                                           "10 m",
                                           "2026-11-22",
                                           "2026-11-22T05:30:00",
                                           "2026-11-22T05:30:00+1:00",
                                           "2026-11-22T05:30:00Zx",
                                           "-5m" };
        uint64_t v = 0;

        assert_int_equal(parse_since_ms("10m", 1000000000, &v), 0);
        assert_int_equal(v, 1000000000 - 600000);
        assert_int_equal(parse_since_ms("30s", 1000000000, &v), 0);
        assert_int_equal(v, 1000000000 - 30000);
        assert_int_equal(parse_since_ms("1h", 1000, &v), 0);
        assert_int_equal(v, 1); /* before the epoch: everything */
        assert_int_equal(parse_since_ms("2026-11-22T05:30:00Z", 0, &v), 0);
        assert_int_equal(v, 1795325400000ULL);
        assert_int_equal(parse_since_ms("2026-11-22T07:30:00.5+02:00", 0, &v), 0);
        assert_int_equal(v, 1795325400500ULL);
        assert_int_equal(parse_rfc3339_ms("2026-11-22 05:30:00z", &v), 0);
        assert_int_equal(v, 1795325400000ULL);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                if (parse_since_ms(bad[i], 1000000000, &v) != -EINVAL)
                        fail_msg("\"%s\" accepted", bad[i]);
}

static void test_parse_u64(void **state) {
        static const char *const bad[] = {
                "", "-1", "+1", " 1", "1 ", "12abc", "0x10", "1.0", "1e3", "abc", "-0",
        };
        uint64_t v = 0;

        assert_int_equal(parse_u64("0", &v), 0);
        assert_int_equal(v, 0);
        assert_int_equal(parse_u64("42", &v), 0);
        assert_int_equal(v, 42);
        assert_int_equal(parse_u64("007", &v), 0);
        assert_int_equal(v, 7);
        assert_int_equal(parse_u64("18446744073709551615", &v), 0);
        assert_true(v == UINT64_MAX);

        assert_int_equal(parse_u64("18446744073709551616", &v), -ERANGE);
        assert_int_equal(parse_u64("99999999999999999999999", &v), -ERANGE);
        assert_int_equal(parse_u64(NULL, &v), -EINVAL);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                v = 12345;
                if (parse_u64(bad[i], &v) != -EINVAL)
                        fail_msg("parse_u64(\"%s\") accepted", bad[i]);
                /* A rejected input leaves the output alone. */
                assert_int_equal(v, 12345);
        }
}

static void test_parse_i64(void **state) {
        static const char *const bad[] = {
                "", "-", "+1", "--1", " 1", "1 ", "-1x", "0x10", "1.5", "- 1", "abc",
        };
        int64_t v = 0;

        assert_int_equal(parse_i64("0", &v), 0);
        assert_int_equal(v, 0);
        assert_int_equal(parse_i64("-17", &v), 0);
        assert_int_equal(v, -17);
        assert_int_equal(parse_i64("9223372036854775807", &v), 0);
        assert_true(v == INT64_MAX);
        assert_int_equal(parse_i64("-9223372036854775808", &v), 0);
        assert_true(v == INT64_MIN);

        assert_int_equal(parse_i64("9223372036854775808", &v), -ERANGE);
        assert_int_equal(parse_i64("-9223372036854775809", &v), -ERANGE);
        assert_int_equal(parse_i64(NULL, &v), -EINVAL);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                if (parse_i64(bad[i], &v) != -EINVAL)
                        fail_msg("parse_i64(\"%s\") accepted", bad[i]);
}

static void test_parse_duration(void **state) {
        static const struct {
                const char *s;
                uint64_t ms;
        } good[] = {
                { "250ms", 250 },
                { "0ms", 0 },
                { "10s", 10000 },
                { "2m", 120000 },
                { "1h", 3600000 },
                { "5", 5000 },
                { "0", 0 },
                { "90m", 5400000 },
                { "18446744073709551615ms", UINT64_MAX },
                { "5124095576030h", 5124095576030ULL * 3600000ULL },
        };
        static const char *const bad[] = {
                "",    "ms",  "s",    "10x",   "10 s",  " 10s", "10s ",  "1.5s",  "-1s",
                "+1s", "10S", "10MS", "10sec", "10min", "1d",   "10ms5", "1h30m",
        };
        uint64_t v;

        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                v = 1;
                if (parse_duration_ms(good[i].s, &v) != 0)
                        fail_msg("parse_duration_ms(\"%s\") rejected", good[i].s);
                if (v != good[i].ms)
                        fail_msg("parse_duration_ms(\"%s\") = %llu", good[i].s, (unsigned long long)v);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                if (parse_duration_ms(bad[i], &v) != -EINVAL)
                        fail_msg("parse_duration_ms(\"%s\") did not fail with -EINVAL", bad[i]);
        assert_int_equal(parse_duration_ms(NULL, &v), -EINVAL);

        /* Overflow of the number itself and of the multiplication by the unit. */
        assert_int_equal(parse_duration_ms("18446744073709551616ms", &v), -ERANGE);
        assert_int_equal(parse_duration_ms("18446744073709551615s", &v), -ERANGE);
        assert_int_equal(parse_duration_ms("18446744073709552", &v), -ERANGE); /* bare = seconds */
        assert_int_equal(parse_duration_ms("307445734561826m", &v), -ERANGE);
        assert_int_equal(parse_duration_ms("5124095576031h", &v), -ERANGE);
        assert_int_equal(parse_duration_ms("999999999999999999999999999999999999999h", &v), -ERANGE);
}

static void test_parse_size(void **state) {
        static const struct {
                const char *s;
                uint64_t bytes;
        } good[] = {
                { "0", 0 },
                { "1048576", 1048576 },
                { "1Ki", 1024 },
                { "512Mi", 512ULL << 20 },
                { "1Gi", 1ULL << 30 },
                { "2Ti", 2ULL << 40 },
                { "64K", 64000 },
                { "64k", 64000 },
                { "128M", 128000000 },
                { "1G", 1000000000 },
                { "3T", 3000000000000ULL },
                { "18446744073709551615", UINT64_MAX },
                { "16777215Ti", 16777215ULL << 40 },
        };
        static const char *const bad[] = {
                "",      "Mi", "1KiB", "1Kb", "1kb", "1mi", "1m",    "1g", "1 Mi",
                "1.5Gi", "-1", "+1",   "1Pi", "1P",  "1B",  "1MiMi", " 1",
        };
        uint64_t v;

        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                v = 1;
                if (parse_size_bytes(good[i].s, &v) != 0)
                        fail_msg("parse_size_bytes(\"%s\") rejected", good[i].s);
                if (v != good[i].bytes)
                        fail_msg("parse_size_bytes(\"%s\") = %llu", good[i].s, (unsigned long long)v);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                if (parse_size_bytes(bad[i], &v) != -EINVAL)
                        fail_msg("parse_size_bytes(\"%s\") did not fail with -EINVAL", bad[i]);
        assert_int_equal(parse_size_bytes(NULL, &v), -EINVAL);

        assert_int_equal(parse_size_bytes("18446744073709551616", &v), -ERANGE);
        assert_int_equal(parse_size_bytes("16777216Ti", &v), -ERANGE); /* exactly 2^64 */
        assert_int_equal(parse_size_bytes("18446744073709552K", &v), -ERANGE);
        assert_int_equal(parse_size_bytes("99999999999999999999999999999999999999Gi", &v), -ERANGE);
}

/* ---- clocks and ids -------------------------------------------------------------------------- */

static void test_format_timestamp(void **state) {
        char buf[32];

        assert_ptr_equal(format_timestamp_ms(0, buf, sizeof(buf)), buf);
        assert_string_equal(buf, "1970-01-01T00:00:00.000Z");
        assert_string_equal(format_timestamp_ms(1795325400123ULL, buf, sizeof(buf)), "2026-11-22T05:30:00.123Z");
        assert_string_equal(format_timestamp_ms(951782400999ULL, buf, sizeof(buf)), "2000-02-29T00:00:00.999Z");
        assert_string_equal(format_timestamp_ms(7, buf, sizeof(buf)), "1970-01-01T00:00:00.007Z");
        assert_string_equal(format_timestamp_ms(4107542399000ULL, buf, sizeof(buf)), "2100-02-28T23:59:59.000Z");
        assert_string_equal(format_timestamp_ms(4107542400000ULL, buf, sizeof(buf)), "2100-03-01T00:00:00.000Z");
        /* Past year 9999 (a bad stored value): all its digits, still within the buffer. */
        assert_string_equal(format_timestamp_ms(253402300800000ULL, buf, sizeof(buf)), "10000-01-01T00:00:00.000Z");

        /* The same date as gmtime_r's over three centuries (leap years, 2000, 2100, year ends). */
        for (uint64_t s = 0; s < 10413792000ULL; s += 86400 * 7 + 3607) {
                time_t t = (time_t)s;
                struct tm tm;
                char want[32];

                gmtime_r(&t, &tm);
                strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%S.042Z", &tm);
                assert_string_equal(format_timestamp_ms(s * 1000 + 42, buf, sizeof(buf)), want);
        }

        /* A short buffer is truncated, never overrun. */
        memset(buf, 'x', sizeof(buf));
        format_timestamp_ms(1795325400123ULL, buf, 11);
        assert_string_equal(buf, "2026-11-22");
        assert_int_equal(buf[11], 'x');
}

static void test_clocks(void **state) {
        uint64_t m1 = now_monotonic_ms(), m2;
        uint64_t rt = now_realtime_ms();

        /* Later than 2020-01-01 and earlier than 2200: milliseconds, not seconds or µs. */
        assert_true(rt > 1577836800000ULL);
        assert_true(rt < 7258118400000ULL);
        usleep(20 * 1000);
        m2 = now_monotonic_ms();
        assert_true(m2 >= m1 + 19);
        assert_true(m2 < m1 + 5000);
}

static bool is_lower_hex(const char *s, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return true;
}

static void test_random_hex(void **state) {
        char a[129], b[129];

        /* The instance id: 12 lowercase hex digits. */
        memset(a, 'X', sizeof(a));
        assert_int_equal(random_hex(a, 6), 0);
        assert_int_equal(strlen(a), 12);
        assert_true(is_lower_hex(a, 12));

        assert_int_equal(random_hex(a, 64), 0);
        assert_int_equal(random_hex(b, 64), 0);
        assert_int_equal(strlen(a), 128);
        assert_true(is_lower_hex(a, 128));
        assert_string_not_equal(a, b);

        assert_int_equal(random_hex(a, 65), -EINVAL);
}

/* ---- files --------------------------------------------------------------------------------- */

typedef struct tmp {
        char dir[64];
} tmp_t;

static int tmp_setup(void **state) {
        tmp_t *t = calloc(1, sizeof(*t));

        snprintf(t->dir, sizeof(t->dir), "/tmp/husk-test-util.XXXXXX");
        if (!mkdtemp(t->dir))
                return -1;
        umask(022);
        *state = t;
        return 0;
}

static int tmp_teardown(void **state) {
        tmp_t *t = *state;
        char cmd[PATH_MAX];

        /* Not rm_rf: the cleanup must not depend on the code under test. */
        snprintf(cmd, sizeof(cmd), "%s", t->dir);
        if (access(t->dir, F_OK) == 0) {
                pid_t pid = fork();
                if (pid == 0) {
                        execl("/bin/rm", "rm", "-rf", "--", cmd, (char *)NULL);
                        _exit(127);
                }
                if (pid > 0)
                        waitpid(pid, NULL, 0);
        }
        free(t);
        return 0;
}

static const char *at(tmp_t *t, const char *rel) {
        static char buf[4][PATH_MAX];
        static int n;
        char *b = buf[n++ % 4];

        snprintf(b, PATH_MAX, "%s/%s", t->dir, rel);
        return b;
}

static void put(const char *path, const char *content) {
        FILE *f = fopen(path, "we");

        assert_non_null(f);
        fputs(content, f);
        assert_int_equal(fclose(f), 0);
}

static bool exists(const char *path) {
        struct stat st;

        return lstat(path, &st) == 0;
}

static void test_mkdir_p(void **state) {
        tmp_t *t = *state;
        struct stat st;

        assert_int_equal(mkdir_p(at(t, "a/b/c"), 0750), 0);
        assert_int_equal(stat(at(t, "a/b/c"), &st), 0);
        assert_true(S_ISDIR(st.st_mode));
        assert_int_equal(st.st_mode & 07777, 0750);
        assert_int_equal(stat(at(t, "a"), &st), 0);
        assert_int_equal(st.st_mode & 07777, 0750);

        /* Existing directories are fine, with or without a trailing slash. */
        assert_int_equal(mkdir_p(at(t, "a/b/c"), 0750), 0);
        assert_int_equal(mkdir_p(at(t, "a/b/c/"), 0750), 0);
        assert_int_equal(mkdir_p(at(t, "a//b/d"), 0700), 0);
        assert_int_equal(stat(at(t, "a/b/d"), &st), 0);
        assert_true(S_ISDIR(st.st_mode));

        /* A regular file in the way is an error, wherever it is. */
        put(at(t, "file"), "x");
        assert_int_equal(mkdir_p(at(t, "file/sub"), 0755), -ENOTDIR);
        assert_int_equal(mkdir_p(at(t, "file"), 0755), -ENOTDIR);

        /* A symlink to a directory counts as the directory, as with mkdir -p. */
        assert_int_equal(symlink(at(t, "a/b"), at(t, "link")), 0);
        assert_int_equal(mkdir_p(at(t, "link"), 0755), 0);
        assert_int_equal(mkdir_p(at(t, "link/e"), 0755), 0);
        assert_true(exists(at(t, "a/b/e")));

        assert_int_equal(mkdir_p("", 0755), -EINVAL);
}

static void test_rm_rf(void **state) {
        tmp_t *t = *state;

        /* tree/ with nested dirs, files, an empty dir and symlinks to things outside it. */
        assert_int_equal(mkdir_p(at(t, "outside/keep"), 0755), 0);
        put(at(t, "outside/keep/precious"), "do not delete");
        put(at(t, "outside/file"), "do not delete either");
        assert_int_equal(mkdir_p(at(t, "tree/a/b/c"), 0755), 0);
        assert_int_equal(mkdir_p(at(t, "tree/empty"), 0755), 0);
        put(at(t, "tree/top"), "1");
        put(at(t, "tree/a/b/c/deep"), "2");
        assert_int_equal(symlink(at(t, "outside/keep"), at(t, "tree/a/dirlink")), 0);
        assert_int_equal(symlink(at(t, "outside/file"), at(t, "tree/filelink")), 0);
        assert_int_equal(symlink("/nonexistent", at(t, "tree/dangling")), 0);

        assert_int_equal(rm_rf(at(t, "tree")), 0);
        assert_false(exists(at(t, "tree")));
        assert_true(exists(at(t, "outside/keep/precious")));
        assert_true(exists(at(t, "outside/file")));

        /* Missing is success; a symlink given directly is removed, not its target. */
        assert_int_equal(rm_rf(at(t, "tree")), 0);
        assert_int_equal(symlink(at(t, "outside"), at(t, "toplink")), 0);
        assert_int_equal(rm_rf(at(t, "toplink")), 0);
        assert_false(exists(at(t, "toplink")));
        assert_true(exists(at(t, "outside/keep/precious")));

        /* A plain file. */
        assert_int_equal(rm_rf(at(t, "outside/file")), 0);
        assert_false(exists(at(t, "outside/file")));
}

static size_t count_entries(const char *dir) {
        DIR *d = opendir(dir);
        struct dirent *de;
        size_t n = 0;

        assert_non_null(d);
        while ((de = readdir(d)))
                if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
                        n++;
        closedir(d);
        return n;
}

static void test_write_read(void **state) {
        tmp_t *t = *state;
        _cleanup_free_ char *data = NULL;
        size_t size = 99;
        struct stat st;

        assert_int_equal(write_file_atomic(at(t, "f"), "hello", 5, 0600), 0);
        assert_int_equal(stat(at(t, "f"), &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(read_file(at(t, "f"), 1024, &data, &size), 0);
        assert_int_equal(size, 5);
        assert_string_equal(data, "hello");
        free(TAKE_PTR(data));

        /* Replacing keeps no temp file behind and leaves exactly the new content. */
        assert_int_equal(write_file_atomic(at(t, "f"), "hi", 2, 0644), 0);
        assert_int_equal(read_file(at(t, "f"), 1024, &data, NULL), 0);
        assert_string_equal(data, "hi");
        free(TAKE_PTR(data));
        assert_int_equal(count_entries(t->dir), 1);

        /* Binary content with NUL bytes round-trips; the buffer is NUL-terminated after it. */
        assert_int_equal(write_file_atomic(at(t, "bin"), "a\0b\0", 4, 0644), 0);
        assert_int_equal(read_file(at(t, "bin"), 1024, &data, &size), 0);
        assert_int_equal(size, 4);
        assert_memory_equal(data, "a\0b\0\0", 5);
        free(TAKE_PTR(data));

        /* Empty file. */
        assert_int_equal(write_file_atomic(at(t, "empty"), "", 0, 0644), 0);
        assert_int_equal(read_file(at(t, "empty"), 0, &data, &size), 0);
        assert_int_equal(size, 0);
        assert_string_equal(data, "");
        free(TAKE_PTR(data));

        assert_int_equal(read_file(at(t, "missing"), 1024, &data, &size), -ENOENT);
        assert_null(data);
        assert_int_equal(write_file_atomic(at(t, "nodir/f"), "x", 1, 0644), -ENOENT);
}

static void check_tail(tmp_t *t, const char *content, size_t max, const char *want) {
        _cleanup_free_ char *got = NULL;

        assert_int_equal(write_file_atomic(at(t, "log"), content, strlen(content), 0644), 0);
        assert_int_equal(read_file_tail(at(t, "log"), max, &got), 0);
        assert_string_equal(got, want);
}

/* What a VMM said last, as one line for an event: its log's last lines, bounded. */
static void test_read_file_tail(void **state) {
        tmp_t *t = *state;
        _cleanup_free_ char *got = NULL;

        check_tail(t, "", 64, "");
        check_tail(t, "one line\n", 64, "one line");
        check_tail(t, "a\n\nb  \r\nc", 64, "a; b; c");
        /* Cut at 12 bytes from the end: "...line two\n" is whole, the piece before it is dropped. */
        check_tail(t, "line one\nline two\nend\n", 13, "line two; end");
        /* One long line: its end is all there is, so it is kept. */
        check_tail(t, "xxxxxxxxxxyyyy", 4, "yyyy");
        /* Control bytes, NUL and non-ASCII never reach a message. */
        assert_int_equal(write_file_atomic(at(t, "log"), "bad\0\x1b[0m\xc3\xa9\n", 11, 0644), 0);
        assert_int_equal(read_file_tail(at(t, "log"), 64, &got), 0);
        assert_string_equal(got, "bad??[0m??");
        free(TAKE_PTR(got));
        /* The worst case for the joined length: many one-byte lines. */
        check_tail(t, "a\na\na\na\na\na\na\na\n", 16, "a; a; a; a; a; a; a; a");
        assert_int_equal(read_file_tail(at(t, "missing"), 64, &got), -ENOENT);
}

static void check_read_limit(tmp_t *t, size_t file_size) {
        _cleanup_free_ char *content = malloc(file_size + 1);
        _cleanup_free_ char *data = NULL;
        size_t size = 0;

        assert_non_null(content);
        for (size_t i = 0; i < file_size; i++)
                content[i] = (char)('a' + i % 26);
        assert_int_equal(write_file_atomic(at(t, "sized"), content, file_size, 0644), 0);

        /* At most max bytes: a file of exactly max is read whole, one byte more is refused. */
        assert_int_equal(read_file(at(t, "sized"), file_size, &data, &size), 0);
        assert_int_equal(size, file_size);
        assert_memory_equal(data, content, file_size);
        assert_int_equal(data[file_size], '\0');
        free(TAKE_PTR(data));

        assert_int_equal(read_file(at(t, "sized"), file_size + 1000, &data, &size), 0);
        assert_int_equal(size, file_size);
        free(TAKE_PTR(data));

        if (file_size > 0) {
                assert_int_equal(read_file(at(t, "sized"), file_size - 1, &data, &size), -EFBIG);
                assert_null(data);
        }
        if (file_size > 100)
                assert_int_equal(read_file(at(t, "sized"), file_size / 2, &data, &size), -EFBIG);
}

static void test_read_file_max(void **state) {
        /* Around the internal 4 KiB buffer and its doublings, and well below it. */
        static const size_t sizes[] = { 1, 10, 4095, 4096, 4097, 8192, 10000, 100000 };

        for (size_t i = 0; i < ELEMENTSOF(sizes); i++)
                check_read_limit(*state, sizes[i]);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_since),
                cmocka_unit_test(test_parse_u64),
                cmocka_unit_test(test_parse_i64),
                cmocka_unit_test(test_parse_duration),
                cmocka_unit_test(test_parse_size),
                cmocka_unit_test(test_format_timestamp),
                cmocka_unit_test(test_clocks),
                cmocka_unit_test(test_random_hex),
                cmocka_unit_test_setup_teardown(test_mkdir_p, tmp_setup, tmp_teardown),
                cmocka_unit_test_setup_teardown(test_rm_rf, tmp_setup, tmp_teardown),
                cmocka_unit_test_setup_teardown(test_read_file_tail, tmp_setup, tmp_teardown),
                cmocka_unit_test_setup_teardown(test_write_read, tmp_setup, tmp_teardown),
                cmocka_unit_test_setup_teardown(test_read_file_max, tmp_setup, tmp_teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
