/* child.c: signals back at their defaults in a child before exec (see child.h). */
#include "lib/child.h"

void child_default_signals(sigset_t *set) {
        sigfillset(set);
        sigdelset(set, SIGKILL);
        sigdelset(set, SIGSTOP);
}

/* sigemptyset, sigfillset, sigdelset, sigismember, sigprocmask and signal are all on POSIX's
 * async-signal-safe list: nothing here may take a lock another thread held at fork. */
void child_reset_signals(void) {
        sigset_t none, defaults;

        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        child_default_signals(&defaults);
        for (int sig = 1; sig < NSIG; sig++)
                if (sigismember(&defaults, sig) == 1)
                        signal(sig, SIG_DFL);
}

int child_spawnattr_reset_signals(posix_spawnattr_t *attr, short flags) {
        sigset_t none, defaults;
        int r;

        sigemptyset(&none);
        child_default_signals(&defaults);
        r = posix_spawnattr_setflags(attr, flags | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
        if (r == 0)
                r = posix_spawnattr_setsigmask(attr, &none);
        if (r == 0)
                r = posix_spawnattr_setsigdefault(attr, &defaults);
        return -r;
}
