/* test_exit.c: how a VMM exit is classified (exit_reason) and reported (exit_status). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <string.h>
#include <sys/wait.h>

#include "services/vmm-driver/vmm_qemu.h"

#define EXITED(code) W_EXITCODE((code), 0)
#define KILLED(sig) (sig)

static void test_classify(void **state) {
        static const struct {
                bool stop;
                const char *shutdown;
                bool known;
                int wstatus;
                const char *reason;
                int64_t status;
        } cases[] = {
                /* We asked: whatever happened next is a stop, even the SIGKILL after the timeout. */
                { true, NULL, true, KILLED(SIGKILL), "stopped", 137 },
                { true, "host-qmp-system-powerdown", true, EXITED(0), "stopped", 0 },
                { true, "guest-shutdown", true, EXITED(0), "stopped", 0 },
                { true, NULL, false, 0, "stopped", -1 },
                /* The guest powered off; or it rebooted (-no-reboot makes that an exit) or panicked,
                 * which are not clean ends and keep their own reasons (a job fails on them). */
                { false, "guest-shutdown", true, EXITED(0), "guest-shutdown", 0 },
                { false, "guest-reset", true, EXITED(0), "guest-reset", 0 },
                { false, "guest-panic", true, EXITED(0), "guest-panic", 0 },
                { false, "guest-reset", false, 0, "guest-reset", -1 },
                { false, "guest-shutdown", false, 0, "guest-shutdown", -1 },
                /* Signals. */
                { false, NULL, true, KILLED(SIGKILL), "killed", 137 },
                { false, NULL, true, KILLED(SIGSEGV) | WCOREFLAG, "killed", 128 + SIGSEGV },
                { false, "host-signal", true, EXITED(0), "killed", 0 },
                { false, "host-signal", false, 0, "killed", -1 },
                /* QEMU failed. */
                { false, NULL, true, EXITED(1), "crashed", 1 },
                { false, NULL, true, EXITED(255), "crashed", 255 },
                /* Someone else's QMP quit. */
                { false, "host-qmp-quit", true, EXITED(0), "stopped", 0 },
                /* Clean exit without an event we saw: QEMU only exits 0 when asked to. */
                { false, NULL, true, EXITED(0), "guest-shutdown", 0 },
                /* An adopted VMM gone without a word and without a status. */
                { false, NULL, false, 0, "crashed", -1 },
        };

        for (size_t k = 0; k < ELEMENTSOF(cases); k++) {
                vmm_exit_facts_t f = {
                        .stop_requested = cases[k].stop,
                        .shutdown_reason = cases[k].shutdown,
                        .status_known = cases[k].known,
                        .wstatus = cases[k].wstatus,
                };
                const char *reason = vmm_exit_reason(&f);
                int64_t status = vmm_exit_status(&f);

                if (!streq(reason, cases[k].reason) || status != cases[k].status)
                        fail_msg("case %zu: got %s/%" PRIi64 ", want %s/%" PRIi64, k, reason, status, cases[k].reason,
                                 cases[k].status);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_classify),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
