/* test_state.c: husk-oci's state.json round trip, the JSON `state` and `ps --format json` print, signal names, and --log lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/oci/oci.h"
#include "lib/util.h"

static char *dumps(json_t *o) {
        char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);

        json_decref(o);
        assert_non_null(text);
        return text;
}

/* runc's keys in runc's order; pid is the holder's while it lives. */
static void test_state_json_running(void **state) {
        oci_state_t s = { .id = "c1",
                          .bundle = "/b",
                          .rootfs = "/b/rootfs",
                          .created = "2026-12-07T11:29:04.000000001Z",
                          .owner = "",
                          .status = OCI_STATUS_RUNNING,
                          .pid = getpid() };
        char *text;

        assert_int_equal(oci_pid_start_time(getpid(), &s.pid_start), 0);
        text = dumps(oci_state_json(&s));
        char want[512];
        snprintf(want, sizeof(want),
                 "{\"ociVersion\":\"1.0.2-dev\",\"id\":\"c1\",\"pid\":%d,\"status\":\"running\",\"bundle\":\"/b\","
                 "\"rootfs\":\"/b/rootfs\",\"created\":\"2026-12-07T11:29:04.000000001Z\",\"owner\":\"\"}",
                 (int)getpid());
        assert_string_equal(text, want);
        free(text);
}

/* A holder that is gone (or whose pid was reused: another start time) is a stopped container, pid 0. */
static void test_state_json_holder_gone(void **state) {
        oci_state_t s = { .id = "c1",
                          .bundle = "/b",
                          .rootfs = "/b/rootfs",
                          .created = "t",
                          .owner = "",
                          .status = OCI_STATUS_RUNNING,
                          .pid = getpid(),
                          .pid_start = 1 };
        char *text;

        assert_int_equal(oci_state_status(&s), OCI_STATUS_STOPPED);
        text = dumps(oci_state_json(&s));
        assert_non_null(strstr(text, "\"pid\":0,\"status\":\"stopped\""));
        free(text);
}

static void test_state_file_round_trip(void **state) {
        char dir[] = "/tmp/test_oci_state.XXXXXX";
        oci_state_t s = { .id = "c\"x",
                          .bundle = "/b",
                          .rootfs = "/b/r",
                          .created = "t",
                          .owner = "",
                          .status = OCI_STATUS_PAUSED,
                          .pid = 42,
                          .pid_start = 7,
                          .exit_status = -1 },
                    r;

        assert_non_null(mkdtemp(dir));
        assert_int_equal(oci_state_write(dir, &s), 0);
        assert_int_equal(oci_state_read(dir, &r), 0);
        assert_string_equal(r.id, "c\"x");
        assert_string_equal(r.rootfs, "/b/r");
        assert_int_equal(r.status, OCI_STATUS_PAUSED);
        assert_int_equal(r.pid, 42);
        assert_int_equal(r.pid_start, 7);
        assert_int_equal(r.exit_status, -1);
        oci_state_done(&r);
        assert_int_equal(rm_rf(dir), 0);
        assert_int_equal(oci_state_read(dir, &r), -ENOENT);
}

static void test_ids(void **state) {
        assert_true(oci_id_valid("abc-1_2.x"));
        assert_false(oci_id_valid(""));
        assert_false(oci_id_valid("."));
        assert_false(oci_id_valid(".."));
        assert_false(oci_id_valid("a/b"));
        assert_false(oci_id_valid("a\nb"));
}

static void test_ps_json(void **state) {
        pid_t pids[] = { 12, 345 };
        char *text;

        text = oci_ps_json(pids, 2);
        assert_string_equal(text, "[12,345]");
        free(text);
        text = oci_ps_json(NULL, 0);
        assert_string_equal(text, "[]");
        free(text);
}

static void test_signals(void **state) {
        assert_int_equal(oci_signal_parse("15"), SIGTERM);
        assert_int_equal(oci_signal_parse("9"), SIGKILL);
        assert_int_equal(oci_signal_parse("TERM"), SIGTERM);
        assert_int_equal(oci_signal_parse("SIGTERM"), SIGTERM);
        assert_int_equal(oci_signal_parse("sigkill"), SIGKILL);
        assert_int_equal(oci_signal_parse("SIGWINCH"), SIGWINCH);
        assert_int_equal(oci_signal_parse("RTMIN"), 32);
        assert_int_equal(oci_signal_parse("SIGRTMIN+3"), 35);
        assert_int_equal(oci_signal_parse("RTMAX-1"), 63);
        assert_int_equal(oci_signal_parse("64"), 64);
        assert_int_equal(oci_signal_parse("0"), -EINVAL);
        assert_int_equal(oci_signal_parse("65"), -EINVAL);
        assert_int_equal(oci_signal_parse("-15"), -EINVAL);
        assert_int_equal(oci_signal_parse("SIG"), -EINVAL);
        assert_int_equal(oci_signal_parse("FOO"), -EINVAL);
        assert_int_equal(oci_signal_parse("RTMIN+40"), -EINVAL);
        assert_int_equal(oci_signal_parse(""), -EINVAL);
}

/* The shim parses --log's json lines: level, msg, time, the message escaped. */
static void test_log_lines(void **state) {
        char *line;

        line = oci_log_line("error", "container \"x\" not running", 1795325400000ULL, true);
        assert_string_equal(
                line,
                "{\"level\":\"error\",\"msg\":\"container \\\"x\\\" not running\",\"time\":\"2026-11-22T05:30:00Z\"}");
        free(line);
        line = oci_log_line("error", "boom", 1795325400000ULL, false);
        assert_string_equal(line, "time=\"2026-11-22T05:30:00Z\" level=error msg=\"boom\"");
        free(line);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_state_json_running),
                cmocka_unit_test(test_state_json_holder_gone),
                cmocka_unit_test(test_state_file_round_trip),
                cmocka_unit_test(test_ids),
                cmocka_unit_test(test_ps_json),
                cmocka_unit_test(test_signals),
                cmocka_unit_test(test_log_lines),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
