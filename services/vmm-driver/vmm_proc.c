/* vmm_proc.c: process identity (pid + start time from /proc) and pidfd helpers. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/log.h"
#include "services/vmm-driver/vmm.h"

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

int vmm_proc_parse_start_time(const char *stat, uint64_t *ret) {
        const char *p;
        char field[32];
        size_t n;

        /* comm is "(...)" and may itself contain ") ": the last ')' ends it. */
        p = strrchr(stat, ')');
        if (!p)
                return -EBADMSG;
        p++;
        /* Fields 3 (state) to 21 precede starttime. */
        for (int k = 3; k < 22; k++) {
                if (*p != ' ')
                        return -EBADMSG;
                p++;
                n = strcspn(p, " \n");
                if (n == 0)
                        return -EBADMSG;
                p += n;
        }
        if (*p != ' ')
                return -EBADMSG;
        p++;
        n = strcspn(p, " \n");
        if (n == 0 || n >= sizeof(field))
                return -EBADMSG;
        memcpy(field, p, n);
        field[n] = '\0';
        return parse_u64(field, ret) < 0 ? -EBADMSG : 0;
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
