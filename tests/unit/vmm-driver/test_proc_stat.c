/* test_proc_stat.c: the start time (field 22) of /proc/<pid>/stat, the pid-reuse guard of adoption. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "services/vmm-driver/vmm.h"

/* Fields 3..21 of a real line (qemu-system-x86_64 on Linux 6.1), then starttime, then the rest. */
#define MID "S 1 1234 1234 0 -1 4194560 12345 0 0 0 1500 300 0 0 20 0 7 0"
#define TAIL " 1666244608 44572 18446744073709551615 1 1 0 0 0 0 0 4096 17664 0 0 0 17 1 0 0 0 0 0\n"

static void test_parse_plain(void **state) {
        uint64_t t = 0;

        assert_int_equal(vmm_proc_parse_start_time("4242 (qemu-system-x86) " MID " 109332" TAIL, &t), 0);
        assert_int_equal(t, 109332);
        /* Last field of the line too (no trailing fields, no newline). */
        assert_int_equal(vmm_proc_parse_start_time("1 (init) " MID " 7", &t), 0);
        assert_int_equal(t, 7);
}

static void test_parse_tricky_comm(void **state) {
        /* comm is chosen by the process (prctl PR_SET_NAME): spaces, parentheses and digits in it
         * must not shift the fields. */
        static const char *const comms[] = {
                "(a b c)", "(x) 1 2 3 (y)", "())", "((", ") ) )", "(1 2 3 4 5 6 7 8 9 10 11)", "( )",
        };
        char line[512];
        uint64_t t;

        for (size_t k = 0; k < ELEMENTSOF(comms); k++) {
                snprintf(line, sizeof(line), "77 (%s) " MID " 987654321" TAIL, comms[k]);
                t = 0;
                if (vmm_proc_parse_start_time(line, &t) != 0 || t != 987654321)
                        fail_msg("comm \"%s\": got %" PRIu64, comms[k], t);
        }
}

static void test_parse_malformed(void **state) {
        static const char *const bad[] = {
                "",
                "4242 qemu " MID " 5" TAIL,                                                    /* no parentheses */
                "4242 (qemu) S 1 2 3",                                                         /* truncated */
                "4242 (qemu) " MID,                                                            /* starttime missing */
                "4242 (qemu) " MID " ",                                                        /* empty starttime */
                "4242 (qemu) " MID " -5" TAIL,                                                 /* negative */
                "4242 (qemu) " MID " 12ab" TAIL,                                               /* not a number */
                "4242 (qemu) " MID " 99999999999999999999999" TAIL,                            /* overflow */
                "4242 (qemu)  S 1 1234 1234 0 -1 4194560 12345 0 0 0 1500 300 0 0 20 0 7 0 5", /* double space */
        };
        uint64_t t = 31337;

        for (size_t k = 0; k < ELEMENTSOF(bad); k++)
                if (vmm_proc_parse_start_time(bad[k], &t) != -EBADMSG)
                        fail_msg("accepted: \"%s\"", bad[k]);
        assert_int_equal(t, 31337);
}

static void test_real_processes(void **state) {
        uint64_t self = 0, again = 0, child = 0;
        pid_t pid;
        int status;

        assert_int_equal(vmm_proc_start_time(getpid(), &self), 0);
        assert_true(self > 0);
        assert_int_equal(vmm_proc_start_time(getpid(), &again), 0);
        assert_int_equal(self, again);

        /* A child started later has a later (or equal, within a tick) start time. */
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                pause();
                _exit(0);
        }
        assert_int_equal(vmm_proc_start_time(pid, &child), 0);
        assert_true(child >= self);
        kill(pid, SIGKILL);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_int_equal(vmm_proc_start_time(pid, &child), -ESRCH);
}

static void test_pidfd(void **state) {
        siginfo_t si = {};
        pid_t pid;
        int fd, wstatus = 0, r;

        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                pause();
                _exit(0);
        }
        fd = vmm_pidfd_open(pid);
        assert_true(fd >= 0);
        assert_false(vmm_pidfd_exited(fd));
        r = vmm_pidfd_exit_status(fd, &wstatus);
        assert_true(r == -ENODATA || r == -EOPNOTSUPP);
        assert_int_equal(vmm_pidfd_kill(fd, SIGKILL), 0);
        while (!vmm_pidfd_exited(fd))
                usleep(1000);
        assert_int_equal(waitid(P_PIDFD, fd, &si, WEXITED), 0);
        assert_int_equal(si.si_code, CLD_KILLED);
        assert_int_equal(si.si_status, SIGKILL);
        /* Once reaped, newer kernels keep the status for pidfd holders. */
        r = vmm_pidfd_exit_status(fd, &wstatus);
        if (r == 0) {
                assert_true(WIFSIGNALED(wstatus));
                assert_int_equal(WTERMSIG(wstatus), SIGKILL);
        } else
                assert_true(r == -EOPNOTSUPP || r == -ESRCH);
        close(fd);
        assert_int_equal(vmm_pidfd_open(pid), -ESRCH);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_plain),     cmocka_unit_test(test_parse_tricky_comm),
                cmocka_unit_test(test_parse_malformed), cmocka_unit_test(test_real_processes),
                cmocka_unit_test(test_pidfd),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
