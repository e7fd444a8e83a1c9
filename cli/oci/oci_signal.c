/* oci_signal.c: signal names as `runc kill` takes them (a number, TERM or SIGTERM in any case, SIGRTMIN+N), and the signals a holder forwards. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/signalfd.h>

#include "cli/oci/oci.h"

static const struct {
        const char *name;
        int sig;
} signals[] = {
        { "ABRT", SIGABRT }, { "ALRM", SIGALRM },     { "BUS", SIGBUS },       { "CHLD", SIGCHLD },
        { "CONT", SIGCONT }, { "FPE", SIGFPE },       { "HUP", SIGHUP },       { "ILL", SIGILL },
        { "INT", SIGINT },   { "IO", SIGIO },         { "IOT", SIGIOT },       { "KILL", SIGKILL },
        { "PIPE", SIGPIPE }, { "POLL", SIGPOLL },     { "PROF", SIGPROF },     { "PWR", SIGPWR },
        { "QUIT", SIGQUIT }, { "SEGV", SIGSEGV },     { "STKFLT", SIGSTKFLT }, { "STOP", SIGSTOP },
        { "SYS", SIGSYS },   { "TERM", SIGTERM },     { "TRAP", SIGTRAP },     { "TSTP", SIGTSTP },
        { "TTIN", SIGTTIN }, { "TTOU", SIGTTOU },     { "URG", SIGURG },       { "USR1", SIGUSR1 },
        { "USR2", SIGUSR2 }, { "VTALRM", SIGVTALRM }, { "WINCH", SIGWINCH },   { "XCPU", SIGXCPU },
        { "XFSZ", SIGXFSZ },
};

/* The guest kernel's SIGRTMIN/SIGRTMAX: the host libc reserves some for itself (its SIGRTMIN is
 * 34), the kernel's are 32 and 64. */
#define KERNEL_SIGRTMIN 32
#define KERNEL_SIGRTMAX 64

int oci_signal_parse(const char *s) {
        uint64_t n;

        if (!s || !*s)
                return -EINVAL;
        if (parse_u64(s, &n) == 0)
                return n >= 1 && n <= KERNEL_SIGRTMAX ? (int)n : -EINVAL;
        if (strncasecmp(s, "SIG", 3) == 0)
                s += 3;
        for (size_t k = 0; k < ELEMENTSOF(signals); k++)
                if (strcasecmp(s, signals[k].name) == 0)
                        return signals[k].sig;
        if (strncasecmp(s, "RTMIN", 5) == 0 || strncasecmp(s, "RTMAX", 5) == 0) {
                bool max = strncasecmp(s, "RTMAX", 5) == 0;
                const char *off = s + 5;
                int sig = max ? KERNEL_SIGRTMAX : KERNEL_SIGRTMIN;

                if (!*off)
                        return sig;
                if ((*off != '+' && *off != '-') || (max ? *off != '-' : *off != '+') || parse_u64(off + 1, &n) < 0 ||
                    n > KERNEL_SIGRTMAX - KERNEL_SIGRTMIN)
                        return -EINVAL;
                return max ? sig - (int)n : sig + (int)n;
        }
        return -EINVAL;
}

int oci_signals_to_forward(int *ret_sfd) {
        sigset_t all;

        *ret_sfd = -1;
        sigfillset(&all);
        sigdelset(&all, SIGKILL);
        sigdelset(&all, SIGSTOP);
        /* Faults stay faults. */
        sigdelset(&all, SIGSEGV);
        sigdelset(&all, SIGBUS);
        sigdelset(&all, SIGILL);
        sigdelset(&all, SIGFPE);
        sigdelset(&all, SIGABRT);
        /* SIGPIPE: the shim closing our stdout is a write error, not a signal for the guest. */
        sigdelset(&all, SIGPIPE);
        signal(SIGPIPE, SIG_IGN);
        if (sigprocmask(SIG_BLOCK, &all, NULL) < 0)
                return -errno;
        *ret_sfd = signalfd(-1, &all, SFD_CLOEXEC | SFD_NONBLOCK);
        return *ret_sfd < 0 ? -errno : 0;
}
