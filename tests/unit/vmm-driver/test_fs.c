/* test_fs.c: virtiofsd for kit-mode images: a virtiofsd that cannot start says why, in its own words. */
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

#include "lib/util.h"
#include "tests/unit/require.h"
#include "services/vmm-driver/vmm.h"

/* Issue 20: virtiofsd refused its source and the error was "No child processes" (ECHILD, from
 * how its exit was classified). Now the message is virtiofsd's own last line. A regular file as
 * the source makes the real virtiofsd exit at once, as a symlink did before images were resolved. */
static void test_early_exit_reports_virtiofsd_output(void **state) {
        _cleanup_(instance_record_clear) instance_record_t rec = {};
        _cleanup_free_ char *why = NULL;
        char dir[] = "/tmp/husk-test-fs-XXXXXX", file[64];

        require(access("/usr/lib/qemu/virtiofsd", X_OK) == 0 && geteuid() == 0,
                "needs root and /usr/lib/qemu/virtiofsd");
        assert_non_null(mkdtemp(dir));
        snprintf(file, sizeof(file), "%s/not-a-directory", dir);
        assert_int_equal(write_file_atomic(file, "x", 1, 0644), 0);

        assert_int_equal(vmm_fs_start(dir, file, &rec, &why), -EIO);
        assert_non_null(why);
        if (!strstr(why, "virtiofsd exited with status 1") || !strstr(why, "source is not a directory"))
                fail_msg("unexpected message: %s", why);
        assert_int_equal(rec.fs_pid, 0);
        assert_int_equal(rm_rf(dir), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_early_exit_reports_virtiofsd_output),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
