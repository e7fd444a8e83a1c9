/* test_child.c: a child gets every signal back at its default, none blocked, by fork+exec
 * (child_reset_signals) and by posix_spawn (child_spawnattr_reset_signals) alike. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/child.h"

extern char **environ;

static void on_usr2(int sig) { (void)sig; }

/* What a daemon does to itself: stop signals blocked, one ignored, one handled. */
static void parent_signals(sigset_t *old) {
        sigset_t block;

        sigemptyset(&block);
        sigaddset(&block, SIGTERM);
        sigaddset(&block, SIGHUP);
        assert_int_equal(sigprocmask(SIG_BLOCK, &block, old), 0);
        signal(SIGUSR1, SIG_IGN);
        signal(SIGUSR2, on_usr2);
}

static void parent_restore(const sigset_t *old) {
        signal(SIGUSR1, SIG_DFL);
        signal(SIGUSR2, SIG_DFL);
        sigprocmask(SIG_SETMASK, old, NULL);
}

static void test_fork_child_resets(void **state) {
        sigset_t old;
        int status;
        pid_t pid;

        parent_signals(&old);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                sigset_t mask;
                struct sigaction sa;

                child_reset_signals();
                sigprocmask(SIG_SETMASK, NULL, &mask);
                if (sigismember(&mask, SIGTERM) || sigismember(&mask, SIGHUP))
                        _exit(1);
                if (sigaction(SIGUSR1, NULL, &sa) < 0 || sa.sa_handler != SIG_DFL)
                        _exit(2);
                if (sigaction(SIGUSR2, NULL, &sa) < 0 || sa.sa_handler != SIG_DFL)
                        _exit(3);
                _exit(0);
        }
        parent_restore(&old);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
}

/* The spawned shell reads its own /proc status: nothing blocked, nothing of 1..31 ignored (glibc
 * itself ignores its internal signals 32 and 33 in a spawned child when the parent handles them). */
static void test_spawn_attr_resets(void **state) {
        char *argv[] = { "/bin/sh", "-c",
                         "b=$(sed -n 's/^SigBlk:[[:space:]]*//p' /proc/self/status); "
                         "i=$(sed -n 's/^SigIgn:[[:space:]]*//p' /proc/self/status); "
                         "[ $((0x$b)) -eq 0 ] && [ $((0x$i & 0x7fffffff)) -eq 0 ]",
                         NULL };
        posix_spawnattr_t attr;
        sigset_t old;
        int status;
        pid_t pid;

        parent_signals(&old);
        assert_int_equal(posix_spawnattr_init(&attr), 0);
        assert_int_equal(child_spawnattr_reset_signals(&attr, 0), 0);
        assert_int_equal(posix_spawn(&pid, argv[0], NULL, &attr, argv, environ), 0);
        posix_spawnattr_destroy(&attr);
        parent_restore(&old);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_fork_child_resets),
                cmocka_unit_test(test_spawn_attr_resets),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
