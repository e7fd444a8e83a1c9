/* vmm_proc.c: processes: finding and spawning a VMM, identity (pid + start time from /proc), pidfd helpers. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/child.h"
#include "lib/log.h"
#include "lib/run.h"
#include "services/vmm-driver/vmm.h"

extern char **environ;

/* PIDFD_GET_INFO (Linux 6.15, <linux/pidfd.h>), defined here because Debian 12's headers
 * predate it. The first version of the struct is 64 bytes and already carries exit_code. */
struct vmm_pidfd_info {
        uint64_t mask;
        uint64_t cgroupid;
        uint32_t pid, tgid, ppid, ruid, rgid, euid, egid, suid, sgid, fsuid, fsgid;
        int32_t exit_code;
};
#define VMM_PIDFD_GET_INFO _IOWR(0xFF, 11, struct vmm_pidfd_info)
#define VMM_PIDFD_INFO_EXIT (1ULL << 3)

int vmm_proc_parse_stat(const char *stat, uint64_t *ret_ticks, uint64_t *ret_start) {
        const char *p = strrchr(stat, ')');
        uint64_t v[22] = {};
        char field[32];
        size_t n;

        /* comm may hold spaces and ')': fields start after the last ')'. */
        if (!p)
                return -EBADMSG;
        p++;
        for (int k = 3; k <= 22; k++) {
                if (*p != ' ')
                        return -EBADMSG;
                p++;
                n = strcspn(p, " \n");
                if (n == 0 || n >= sizeof(field))
                        return -EBADMSG;
                /* Only the fields we read are numbers to us: priority and nice may be negative. */
                if (k == 14 || k == 15 || k == 22) {
                        memcpy(field, p, n);
                        field[n] = '\0';
                        if (parse_u64(field, &v[k - 1]) < 0)
                                return -EBADMSG;
                }
                p += n;
        }
        *ret_ticks = v[13] + v[14]; /* utime (14) + stime (15) */
        *ret_start = v[21];         /* starttime (22) */
        return 0;
}

int vmm_proc_parse_start_time(const char *stat, uint64_t *ret) {
        uint64_t ticks;

        return vmm_proc_parse_stat(stat, &ticks, ret);
}

int vmm_proc_start_time(pid_t pid, uint64_t *ret) {
        _cleanup_free_ char *text = NULL;
        char path[64];
        int r;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        r = read_file(path, 4096, &text, NULL);
        if (r < 0)
                return r == -ENOENT ? -ESRCH : r;
        return vmm_proc_parse_start_time(text, ret);
}

int vmm_pidfd_open(pid_t pid) {
        int fd = (int)syscall(SYS_pidfd_open, pid, 0);

        /* pidfds are close-on-exec by definition. */
        return fd < 0 ? -errno : fd;
}

int vmm_pidfd_kill(int pidfd, int sig) {
        if (syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) < 0)
                return -errno;
        return 0;
}

bool vmm_pidfd_exited(int pidfd) {
        struct pollfd p = { .fd = pidfd, .events = POLLIN };

        return poll(&p, 1, 0) > 0;
}

int vmm_pidfd_exit_status(int pidfd, int *ret_wstatus) {
        struct vmm_pidfd_info info = { .mask = VMM_PIDFD_INFO_EXIT };

        if (ioctl(pidfd, VMM_PIDFD_GET_INFO, &info) < 0)
                return errno == ENOTTY || errno == EINVAL ? -EOPNOTSUPP : -errno;
        if (!(info.mask & VMM_PIDFD_INFO_EXIT))
                return -ENODATA;
        *ret_wstatus = info.exit_code;
        return 0;
}

void vmm_strv_free(char **v) {
        if (!v)
                return;
        for (char **p = v; *p; p++)
                free(*p);
        free(v);
}

int vmm_find_executable(const char *name, const char *path_env, char **ret) {
        _cleanup_free_ char *copy = NULL;
        char *save = NULL;

        if (!name || !*name)
                return -EINVAL;
        if (strchr(name, '/')) {
                if (access(name, X_OK) < 0)
                        return -errno;
                *ret = strdup(name);
                return *ret ? 0 : -ENOMEM;
        }
        copy = strdup(path_env && *path_env ? path_env : "/usr/local/bin:/usr/bin:/bin");
        if (!copy)
                return -ENOMEM;
        for (char *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
                char path[PATH_MAX];
                struct stat st;

                if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
                        continue;
                if (stat(path, &st) < 0 || !S_ISREG(st.st_mode) || access(path, X_OK) < 0)
                        continue;
                *ret = strdup(path);
                return *ret ? 0 : -ENOMEM;
        }
        return -ENOENT;
}

int vmm_spawn(const char *dir, char *const *argv, const char *output, pid_t *ret_pid) {
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        pid_t pid;
        int r;

        r = posix_spawnattr_init(&attr);
        if (r != 0)
                return -r;
        r = posix_spawn_file_actions_init(&fa);
        if (r != 0) {
                posix_spawnattr_destroy(&attr);
                return -r;
        }
        /* The daemon blocks its stop signals for the signalfd: the VMM must get them back, and
         * its own session keeps it out of our process group and terminal's signals. */
        r = -child_spawnattr_reset_signals(&attr, POSIX_SPAWN_SETSID);
        if (r == 0)
                r = posix_spawn_file_actions_addchdir_np(&fa, dir);
        if (r == 0)
                r = posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
        if (r == 0)
                r = posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, output, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (r == 0)
                r = posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
        /* Our sockets (bus, control and agent connections of other VMs) must not leak into the VMM,
         * even those some library opened without O_CLOEXEC. */
        if (r == 0)
                r = posix_spawn_file_actions_addclosefrom_np(&fa, STDERR_FILENO + 1);
        /* posix_spawn reports exec failures itself (glibc uses CLONE_VFORK and a status pipe). */
        if (r == 0)
                r = posix_spawn(&pid, argv[0], &fa, &attr, argv, environ);

        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&attr);
        if (r != 0)
                return -r;
        *ret_pid = pid;
        return 0;
}

int vmm_binary_version(const char *binary, char **ret) {
        char *const argv[] = { (char *)binary, (char *)"--version", NULL };
        _cleanup_free_ char *out = NULL;
        int r;

        r = run_tool(argv, NULL, &out);
        if (r < 0)
                return r;
        out[strcspn(out, "\n")] = '\0';
        if (!*out)
                return -ENODATA;
        *ret = TAKE_PTR(out);
        return 0;
}
