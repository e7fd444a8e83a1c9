/* test_metrics.c: the sampler's readings of /proc/<pid>/{stat,status,io}, from fixtures of real files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "services/vmm-driver/vmm.h"

/* A qemu-system-x86_64 under TCG (Linux 6.1): utime 1500, stime 300, priority -2 (negative
 * fields must not stop the parse), starttime 109332. */
static const char stat_line[] = "4242 (qemu-system-x86) S 1 1234 1234 0 -1 4194560 12345 0 0 0 1500 300 0 0 -2 0 7 0 "
                                "109332 1666244608 44572 18446744073709551615 1 1 0 0 0 0 0 4096 17664 0 0 0 17 1 "
                                "0 0 0 0 0\n";

static const char status_text[] = "Name:\tqemu-system-x86\n"
                                  "Umask:\t0022\n"
                                  "State:\tS (sleeping)\n"
                                  "Tgid:\t4242\n"
                                  "VmPeak:\t 1240148 kB\n"
                                  "VmSize:\t 1174612 kB\n"
                                  "VmHWM:\t  201532 kB\n"
                                  "VmRSS:\t  198436 kB\n"
                                  "RssAnon:\t  150000 kB\n"
                                  "Threads:\t7\n"
                                  "voluntary_ctxt_switches:\t1234\n";

static const char io_text[] = "rchar: 123456789\n"
                              "wchar: 98765\n"
                              "syscr: 4321\n"
                              "syscw: 123\n"
                              "read_bytes: 40960\n"
                              "write_bytes: 8192\n"
                              "cancelled_write_bytes: 0\n";

static void test_stat(void **state) {
        uint64_t ticks = 0, start = 0;

        assert_int_equal(vmm_proc_parse_stat(stat_line, &ticks, &start), 0);
        assert_int_equal(ticks, 1800);
        assert_int_equal(start, 109332);
        /* A comm with ") " in it does not shift the fields. */
        assert_int_equal(
                vmm_proc_parse_stat("7 (a) 1500 (b) S 1 1 1 0 -1 0 0 0 0 0 10 20 0 0 20 0 1 0 5 0\n", &ticks, &start),
                0);
        assert_int_equal(ticks, 30);
        assert_int_equal(start, 5);
        assert_int_equal(vmm_proc_parse_stat("7 (a) S 1 1 1 0 -1 0 0 0 0 0 x 20 0 0 20 0 1 0 5 0", &ticks, &start),
                         -EBADMSG);
        assert_int_equal(vmm_proc_parse_stat("7 (a) S 1 1 1", &ticks, &start), -EBADMSG);
}

static void test_status(void **state) {
        uint64_t rss = 0, threads = 0;

        assert_int_equal(vmm_metrics_parse_status(status_text, &rss, &threads), 0);
        assert_int_equal(rss, 198436ull * 1024);
        assert_int_equal(threads, 7);
        /* VmRSS's neighbours (VmHWM, RssAnon) are not taken for it. */
        assert_int_equal(vmm_metrics_parse_status("Name:\tz\nRssAnon:\t5 kB\nThreads:\t1\n", &rss, &threads), 0);
        assert_int_equal(rss, 0);
        assert_int_equal(threads, 1);
        assert_int_equal(vmm_metrics_parse_status("Name:\tz\nVmRSS:\t5 kB\n", &rss, &threads), -EBADMSG);
        assert_int_equal(vmm_metrics_parse_status("VmRSS:\tlots\nThreads:\t1\n", &rss, &threads), -EBADMSG);
}

static void test_io(void **state) {
        uint64_t rd = 0, wr = 0;

        /* read_bytes, not rchar: what reached the storage layer. */
        assert_int_equal(vmm_metrics_parse_io(io_text, &rd, &wr), 0);
        assert_int_equal(rd, 40960);
        assert_int_equal(wr, 8192);
        assert_int_equal(vmm_metrics_parse_io("rchar: 1\nwchar: 2\n", &rd, &wr), -EBADMSG);
        assert_int_equal(vmm_metrics_parse_io("", &rd, &wr), -EBADMSG);
}

/* The live file of this very process parses: the fixtures are not a format of our own. */
static void test_self(void **state) {
        _cleanup_free_ char *stat = NULL, *status = NULL, *io = NULL;
        uint64_t a, b;

        assert_int_equal(read_file("/proc/self/stat", 4096, &stat, NULL), 0);
        assert_int_equal(vmm_proc_parse_stat(stat, &a, &b), 0);
        assert_int_equal(read_file("/proc/self/status", 16384, &status, NULL), 0);
        assert_int_equal(vmm_metrics_parse_status(status, &a, &b), 0);
        assert_true(a > 0);
        assert_true(b >= 1);
        if (read_file("/proc/self/io", 4096, &io, NULL) == 0)
                assert_int_equal(vmm_metrics_parse_io(io, &a, &b), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_stat),
                cmocka_unit_test(test_status),
                cmocka_unit_test(test_io),
                cmocka_unit_test(test_self),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
