/* agent_spawn.c: the agent's one way to start a process: fork, set it up in the child (session, fds, tty, limits, user, cwd), find the executable, then exec at once or wait for a start. */
#include "services/agent/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/child.h"

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define EXE_MAX 4096

/* What the child reports on the close-on-exec pipe: the step that failed and its errno, or
 * STEP_READY (waiting at the gate). EOF without a report means it executed. */
enum {
        STEP_READY,
        STEP_FDS,
        STEP_TTY,
        STEP_RLIMIT,
        STEP_GROUPS,
        STEP_GID,
        STEP_UID,
        STEP_CWD,
        STEP_NNP,
        STEP_LOOKUP,
        STEP_EXEC,
};

typedef struct report {
        int step;
        int error;
} report_t;

static bool executable(const char *path, int *error) {
        struct stat st;

        if (stat(path, &st) < 0) {
                *error = errno;
                return false;
        }
        if (!S_ISREG(st.st_mode) || access(path, X_OK) < 0) {
                *error = EACCES;
                return false;
        }
        return true;
}

/* execvp's search, done before the exec so that a missing program is known while the process
 * still waits at its gate. EACCES when something of that name exists but cannot be run, else
 * ENOENT. */
static int lookup(const char *name, char *const *env, char *buf, size_t size) {
        const char *path = DEFAULT_PATH;
        int error = ENOENT, e;

        if (strchr(name, '/')) {
                snprintf(buf, size, "%s", name);
                return executable(buf, &e) ? 0 : e;
        }
        for (size_t k = 0; env && env[k]; k++)
                if (strncmp(env[k], "PATH=", 5) == 0)
                        path = env[k] + 5;
        while (*path) {
                size_t n = strcspn(path, ":");

                /* An empty element is the cwd, as for execvp. */
                snprintf(buf, size, "%.*s%s%s", (int)n, n ? path : ".", "/", name);
                if (executable(buf, &e))
                        return 0;
                if (e == EACCES)
                        error = EACCES;
                path += n + (path[n] == ':');
        }
        return error;
}

_Noreturn static void child_fail(int fd, int step, int error) {
        report_t rep = { step, error };
        ssize_t n = write(fd, &rep, sizeof(rep));

        (void)n;
        _exit(error == ENOENT ? 127 : 126);
}

/* Close every fd above stderr but a and b (-1: none). */
static void close_all_but(int a, int b) {
        int keep[2] = { a < b ? a : b, a < b ? b : a };
        unsigned from = STDERR_FILENO + 1;

        for (size_t k = 0; k < ELEMENTSOF(keep); k++) {
                if (keep[k] < (int)from)
                        continue;
                if ((unsigned)keep[k] > from)
                        close_range(from, (unsigned)keep[k] - 1, 0);
                from = (unsigned)keep[k] + 1;
        }
        close_range(from, ~0u, 0);
}

_Noreturn static void child(const agent_spawn_t *sp, int report_fd) {
        char exe[EXE_MAX];
        int in_fd = sp->in_fd, out_fd = sp->out_fd, err_fd = sp->err_fd, r;

        child_reset_signals();
        setsid();
        if (sp->tty_fd >= 0) {
                /* A session leader without a controlling tty takes this one. */
                if (ioctl(sp->tty_fd, TIOCSCTTY, 0) < 0)
                        child_fail(report_fd, STEP_TTY, errno);
                in_fd = out_fd = err_fd = sp->tty_fd;
        }
        if (in_fd < 0) {
                int fd = open("/dev/null", O_RDONLY);
                in_fd = fd >= 0 ? fd : STDIN_FILENO;
        }
        if (dup2(in_fd, STDIN_FILENO) < 0 || dup2(out_fd, STDOUT_FILENO) < 0 || dup2(err_fd, STDERR_FILENO) < 0)
                child_fail(report_fd, STEP_FDS, errno);
        /* Closed now, not at execve: a process waiting at its gate must not hold the agent's other
         * fds (another proc's stdin would never see EOF). The report pipe and the gate stay
         * (close-on-exec). */
        close_all_but(report_fd, sp->gate_fd);
        /* Limits first: raising a hard limit needs the privileges dropped below. */
        for (size_t k = 0; k < sp->n_rlimits; k++) {
                struct rlimit l = { .rlim_cur = sp->rlimits[k].soft, .rlim_max = sp->rlimits[k].hard };

                if (setrlimit(sp->rlimits[k].resource, &l) < 0)
                        child_fail(report_fd, STEP_RLIMIT, errno);
        }
        if (sp->set_user) {
                if (setgroups(sp->n_gids, (const gid_t *)sp->gids) < 0)
                        child_fail(report_fd, STEP_GROUPS, errno);
                if (setresgid(sp->gid, sp->gid, sp->gid) < 0)
                        child_fail(report_fd, STEP_GID, errno);
                if (setresuid(sp->uid, sp->uid, sp->uid) < 0)
                        child_fail(report_fd, STEP_UID, errno);
        }
        if (chdir(sp->cwd ?: "/") < 0)
                child_fail(report_fd, STEP_CWD, errno);
        if (sp->no_new_privileges && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                child_fail(report_fd, STEP_NNP, errno);
        /* As the user it runs as: access() checks the real ids, which are now theirs. */
        r = lookup(sp->argv[0], sp->env, exe, sizeof(exe));
        if (r != 0)
                child_fail(report_fd, STEP_LOOKUP, r);
        if (sp->gate_fd >= 0) {
                report_t ready = { STEP_READY, 0 };
                char go;
                ssize_t n = write(report_fd, &ready, sizeof(ready));

                (void)n;
                close(report_fd);
                do
                        n = read(sp->gate_fd, &go, 1);
                while (n < 0 && errno == EINTR);
                /* The agent forgot us (EOF): we were never started. */
                if (n != 1)
                        _exit(126);
                execve(exe, sp->argv, sp->env);
                /* Nobody reads reports any more: the exit status says it. */
                _exit(errno == ENOENT ? 127 : 126);
        }
        execve(exe, sp->argv, sp->env);
        child_fail(report_fd, STEP_EXEC, errno);
}

static const char *step_name(int step) {
        switch (step) {
        case STEP_FDS:
                return "cannot set up stdio";
        case STEP_TTY:
                return "cannot make the pty the controlling terminal";
        case STEP_RLIMIT:
                return "cannot set rlimits";
        case STEP_GROUPS:
                return "cannot set additional_gids";
        case STEP_GID:
                return "cannot set gid";
        case STEP_UID:
                return "cannot set uid";
        case STEP_CWD:
                return "cannot change to cwd";
        case STEP_NNP:
                return "cannot set no_new_privileges";
        default:
                return "cannot run";
        }
}

int agent_spawn_run(const agent_spawn_t *sp, pid_t *ret_pid, bool *ret_cannot_run, char *msg, size_t msg_size) {
        int report[2];
        report_t rep = {};
        pid_t pid;
        ssize_t n;

        if (pipe2(report, O_CLOEXEC) < 0)
                return -errno;
        pid = fork();
        if (pid < 0) {
                int r = -errno;

                close(report[0]);
                close(report[1]);
                snprintf(msg, msg_size, "fork: %s", strerror(-r));
                return r;
        }
        if (pid == 0) {
                close(report[0]);
                child(sp, report[1]);
        }
        close(report[1]);
        do
                n = read(report[0], &rep, sizeof(rep));
        while (n < 0 && errno == EINTR);
        close(report[0]);
        if (ret_cannot_run)
                *ret_cannot_run = false;
        if (n == sizeof(rep) && rep.step != STEP_READY) {
                if (ret_cannot_run)
                        *ret_cannot_run = rep.step == STEP_LOOKUP || rep.step == STEP_EXEC;
                /* The child exited; the loop's SIGCHLD handling reaps it. */
                if (rep.step == STEP_LOOKUP || rep.step == STEP_EXEC)
                        snprintf(msg, msg_size, "cannot run %s: %s", sp->argv[0], strerror(rep.error));
                else if (rep.step == STEP_CWD)
                        snprintf(msg, msg_size, "%s %s: %s", step_name(rep.step), sp->cwd ?: "/", strerror(rep.error));
                else
                        snprintf(msg, msg_size, "%s: %s", step_name(rep.step), strerror(rep.error));
                return rep.error > 0 ? -rep.error : -EIO;
        }
        *ret_pid = pid;
        return 0;
}

int agent_spawn(char *const *argv, char *const *env, const char *cwd, int in_fd, int out_fd, int err_fd,
                pid_t *ret_pid) {
        agent_spawn_t sp = { .argv = argv,
                             .env = env,
                             .cwd = cwd,
                             .in_fd = in_fd,
                             .out_fd = out_fd,
                             .err_fd = err_fd,
                             .tty_fd = -1,
                             .gate_fd = -1 };
        char msg[256];

        return agent_spawn_run(&sp, ret_pid, NULL, msg, sizeof(msg));
}
