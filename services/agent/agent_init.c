/* agent_init.c: what PID 1 sets up before anything else: file systems, console, hostname. */
#include "services/agent/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const struct mount_spec {
        const char *what, *where, *type;
        unsigned long flags;
        const char *options;
        bool required; /* without it the agent cannot find its port */
} mounts[] = {
        { "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, true },
        { "sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, true },
        { "devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755", true },
        /* No tty group in the initramfs: gid stays 0. */
        { "devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "mode=0620,ptmxmode=0666", false },
        { "tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", false },
        { "tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755", false },
};

/* The kernel opens /dev/console for init from the initramfs; if that failed (no node in
 * the archive) fds 0-2 are closed and everything we print would vanish. */
static void ensure_console(void) {
        int fd;

        if (fcntl(STDIN_FILENO, F_GETFD) >= 0 && fcntl(STDOUT_FILENO, F_GETFD) >= 0 &&
            fcntl(STDERR_FILENO, F_GETFD) >= 0)
                return;
        fd = open("/dev/console", O_RDWR | O_NOCTTY);
        if (fd < 0)
                return;
        for (int i = 0; i <= 2; i++)
                if (fcntl(i, F_GETFD) < 0)
                        dup2(fd, i);
        if (fd > 2)
                close(fd);
}

/* What shells and programs expect beside the device nodes devtmpfs makes. */
static void dev_symlinks(void) {
        static const char *const links[][2] = {
                { "/proc/self/fd", "/dev/fd" },
                { "/proc/self/fd/0", "/dev/stdin" },
                { "/proc/self/fd/1", "/dev/stdout" },
                { "/proc/self/fd/2", "/dev/stderr" },
        };

        for (size_t i = 0; i < ELEMENTSOF(links); i++)
                if (symlink(links[i][0], links[i][1]) < 0 && errno != EEXIST)
                        log_agent_debug_errno(errno, "Failed to link %s, ignoring: %m", links[i][1]);
}

int agent_init_mounts(void) {
        for (size_t i = 0; i < ELEMENTSOF(mounts); i++) {
                const struct mount_spec *m = &mounts[i];

                if (mkdir(m->where, 0755) < 0 && errno != EEXIST) {
                        if (m->required)
                                return log_agent_error_errno(errno, "Failed to create %s: %m", m->where);
                        log_agent_warning_errno(errno, "Failed to create %s, ignoring: %m", m->where);
                        continue;
                }
                if (mount(m->what, m->where, m->type, m->flags, m->options) < 0 && errno != EBUSY) {
                        if (m->required)
                                return log_agent_error_errno(errno, "Failed to mount %s on %s: %m", m->type, m->where);
                        log_agent_warning_errno(errno, "Failed to mount %s on %s, ignoring: %m", m->type, m->where);
                }
                if (streq(m->where, "/dev")) {
                        ensure_console();
                        dev_symlinks();
                }
        }
        return 0;
}

int agent_init_hostname(const char *instance) {
        if (sethostname(instance, strlen(instance)) < 0)
                return -errno;
        return 0;
}

uint64_t agent_uptime_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_BOOTTIME, &ts);
        return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
