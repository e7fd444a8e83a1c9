/* test_level.c: the level classifier, one test per rule, each with a line as the console shows it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "services/logd/logd.h"

static logd_level_t level_of(const char *line) { return logd_classify(line, strlen(line)); }

#define assert_level(line, want) assert_string_equal(logd_level_name(level_of(line)), logd_level_name(want))

/* Rule: kernel <N> priority at the start of the line (dmesg -r, /dev/kmsg through a console). */
static void test_kernel_priority(void **state) {
        assert_level("<0>Kernel panic - not syncing: VFS: Unable to mount root fs", LOGD_LEVEL_ERROR);
        assert_level("<3>virtio_blk virtio0: [vda] failed to read partition table", LOGD_LEVEL_ERROR);
        assert_level("<4>ACPI: _OSC evaluation for CPUs failed, trying _PDC", LOGD_LEVEL_WARNING);
        assert_level("<5>Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org)", LOGD_LEVEL_INFO);
        assert_level("<6>virtio_net virtio1 eth0: renamed from eth0", LOGD_LEVEL_INFO);
        assert_level("<7>PM: Registered nosave memory: [mem 0x00000000-0x00000fff]", LOGD_LEVEL_DEBUG);
        /* A syslog PRI with a facility (daemon.err = 3*8+3) keeps its priority. */
        assert_level("<27>systemd[1]: Failed to start Network Service.", LOGD_LEVEL_ERROR);
}

/* Rule: the <N> priority after a printk.time "[ts]" prefix. */
static void test_kernel_priority_after_timestamp(void **state) {
        assert_level("[    0.000000] <6>Linux version 6.1.0-18-amd64", LOGD_LEVEL_INFO);
        assert_level("[    1.234567] <4>clocksource: tsc: mask: 0xffffffffffffffff", LOGD_LEVEL_WARNING);
        assert_level("[   12.000001] <3>EXT4-fs (vda): VFS: Can't find ext4 filesystem", LOGD_LEVEL_ERROR);
}

/* Rule: kernel crash markers: BUG:, Oops:, Kernel panic. */
static void test_crash_markers(void **state) {
        assert_level("[    2.345678] BUG: kernel NULL pointer dereference, address: 0000000000000000",
                     LOGD_LEVEL_ERROR);
        assert_level("[    2.345700] Oops: 0002 [#1] PREEMPT SMP NOPTI", LOGD_LEVEL_ERROR);
        assert_level("[    3.141592] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100",
                     LOGD_LEVEL_ERROR);
        assert_level("[    3.141600] ---[ end Kernel panic - not syncing: Attempted to kill init! ]---",
                     LOGD_LEVEL_ERROR);
        assert_level("BUG: soft lockup - CPU#0 stuck for 22s! [swapper/0:1]", LOGD_LEVEL_ERROR);
}

/* Rule: uppercase level words, as cloud-init and systemd print them. */
static void test_uppercase_words(void **state) {
        assert_level("2024-05-01 10:00:00,123 - util.py - ERROR - failed to read /dev/sr0", LOGD_LEVEL_ERROR);
        assert_level("CRITICAL: unable to find a datasource", LOGD_LEVEL_ERROR);
        assert_level("WARNING: cloud-init could not find a datasource, retrying", LOGD_LEVEL_WARNING);
        assert_level("WARN: no IPv6 route", LOGD_LEVEL_WARNING);
        assert_level("NOTICE: running in safe mode", LOGD_LEVEL_INFO);
        assert_level("INFO Starting up with 2 workers", LOGD_LEVEL_INFO);
        assert_level("DEBUG handler=health path=/healthz", LOGD_LEVEL_DEBUG);
        /* Words only: "ERRORS", "WARN_ON" or "INFOrmation" are not level words. */
        assert_level("[    0.100000] ERRORS seen: 0", LOGD_LEVEL_UNKNOWN);
        assert_level("[    0.200000] WARN_ON_ONCE hit in mm/slab.c", LOGD_LEVEL_UNKNOWN);
}

/* Rule: bracketed markers, either case: web servers and the hypervisor firmware. */
static void test_bracketed_markers(void **state) {
        assert_level("[INFO] Page tables setup", LOGD_LEVEL_INFO); /* hypervisor-fw */
        assert_level("[WARN] No EFI system partition found", LOGD_LEVEL_WARNING);
        assert_level("[ERROR] Failed to load kernel from disk", LOGD_LEVEL_ERROR);
        assert_level("[DEBUG] PCI: enumerating bus 0", LOGD_LEVEL_DEBUG);
        assert_level("2024/05/01 10:00:00 [error] 7#7: *1 open() \"/usr/share/nginx/html/x\" failed (2: No such file "
                     "or directory)",
                     LOGD_LEVEL_ERROR);
        assert_level(
                "2024/05/01 10:00:00 [warn] 1#1: the \"user\" directive makes sense only if the master process runs",
                LOGD_LEVEL_WARNING);
        assert_level("2024/05/01 10:00:00 [notice] 1#1: start worker processes", LOGD_LEVEL_INFO);
        assert_level("[NOTICE] ready to accept connections", LOGD_LEVEL_INFO);
        assert_level("[2024-05-01 10:00:00 +0000] [8] [info] Booting worker with pid: 8", LOGD_LEVEL_INFO);
        assert_level(
                "2024-05-01 10:00:00,123 - util.py[WARNING]: Failed to get raw userdata in module rightscale_userdata",
                LOGD_LEVEL_WARNING);
        /* systemd on a serial console colours its status words. */
        assert_level("[\x1b[0;1;31mFAILED\x1b[0m] Failed to start Network Time Synchronization.", LOGD_LEVEL_ERROR);
}

/* Rule: lowercase "word:" markers, e.g. "info:". */
static void test_colon_markers(void **state) {
        assert_level("info: applying network configuration from cmdline", LOGD_LEVEL_INFO);
        assert_level("husk-agent: error: cannot mount /dev/vda: No such device", LOGD_LEVEL_ERROR);
        assert_level("warning: clock skew detected", LOGD_LEVEL_WARNING);
        assert_level("debug: poll interval 500ms", LOGD_LEVEL_DEBUG);
}

/* Rule: nothing matches -> unknown. */
static void test_unknown(void **state) {
        assert_level("[    0.000000] Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org)",
                     LOGD_LEVEL_UNKNOWN);
        assert_level("Welcome to husk", LOGD_LEVEL_UNKNOWN);
        assert_level("", LOGD_LEVEL_UNKNOWN);
        assert_level("[  OK  ] Started Journal Service.", LOGD_LEVEL_UNKNOWN);
        assert_level("<9999>not a priority", LOGD_LEVEL_UNKNOWN);
}

/* The first marker in the line wins. */
static void test_first_marker_wins(void **state) {
        assert_level("[INFO] retrying after ERROR 503", LOGD_LEVEL_INFO);
        assert_level("ERROR while handling [info] request", LOGD_LEVEL_ERROR);
}

static void test_level_names(void **state) {
        assert_int_equal(logd_level_from_name("warning"), LOGD_LEVEL_WARNING);
        assert_int_equal(logd_level_from_name("unknown"), LOGD_LEVEL_UNKNOWN);
        assert_true(logd_level_from_name("warn") < 0);
        assert_true(logd_level_from_name(NULL) < 0);
        assert_string_equal(logd_stream_name(LOGD_STREAM_WORKLOAD), "workload");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_kernel_priority),   cmocka_unit_test(test_kernel_priority_after_timestamp),
                cmocka_unit_test(test_crash_markers),     cmocka_unit_test(test_uppercase_words),
                cmocka_unit_test(test_bracketed_markers), cmocka_unit_test(test_colon_markers),
                cmocka_unit_test(test_unknown),           cmocka_unit_test(test_first_marker_wins),
                cmocka_unit_test(test_level_names),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
