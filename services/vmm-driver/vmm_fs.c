/* vmm_fs.c: the virtiofsd processes of an instance: the kit's image directory (read-only, tag "rootfs") and one per volume. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/child.h"
#include "lib/log.h"
#include "services/vmm-driver/vmm.h"

#define VIRTIOFSD "/usr/lib/qemu/virtiofsd"
#define FS_LOG "virtiofsd.log"
#define SOCKET_FD 3 /* where virtiofsd finds its listening socket */

int vmm_fs_workload_mode(const char *image, const char **ret_mode) {
        char path[PATH_MAX];
        struct stat st;

        *ret_mode = NULL;
        if (stat(image, &st) < 0)
                return -errno;
        if (!S_ISDIR(st.st_mode))
                return 0;
        if (snprintf(path, sizeof(path), "%s/config.json", image) < (int)sizeof(path) && access(path, F_OK) == 0) {
                if (snprintf(path, sizeof(path), "%s/rootfs", image) >= (int)sizeof(path) || stat(path, &st) < 0 ||
                    !S_ISDIR(st.st_mode))
                        return -ENOTDIR; /* config.json without rootfs/: not a bundle we can run */
                *ret_mode = "bundle";
        } else
                *ret_mode = "rootfs";
        return 0;
}

/* In the child, between fork and exec: only syscalls. C virtiofsd has no read-only export,
 * so a read-only one gets a mount namespace of its own in which the source is a read-only bind
 * mount: whatever the guest asks, the host directory cannot change through it. The listening
 * socket becomes fd 3 (--fd=3). */
static _Noreturn void child(const char *dir, const vmm_fs_export_t *e, int listen_fd, char *const *argv) {
        int fd;

        child_reset_signals();
        setsid();
        if (e->readonly && (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
                            mount(e->source, e->source, NULL, MS_BIND | MS_REC, NULL) < 0 ||
                            mount(NULL, e->source, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0))
                _exit(126);
        if (chdir(dir) < 0)
                _exit(126);
        /* dup2 clears close-on-exec on the copy; a socket that is fd 3 already keeps its own. */
        if (listen_fd == SOCKET_FD ? fcntl(listen_fd, F_SETFD, 0) < 0 : dup2(listen_fd, SOCKET_FD) < 0)
                _exit(126);
        fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd >= 0 && fd != STDIN_FILENO) {
                dup2(fd, STDIN_FILENO);
                close(fd);
        }
        fd = open(e->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd >= 0) {
                dup2(fd, STDOUT_FILENO);
                dup2(fd, STDERR_FILENO);
                if (fd > STDERR_FILENO)
                        close(fd);
        }
        close_range(SOCKET_FD + 1, ~0u, 0);
        execv(argv[0], argv);
        _exit(127);
}

/* Why a virtiofsd ended, into *ret_why: its status and the last lines it logged. */
static void ended_because(const char *dir, const char *log, int status, char **ret_why) {
        _cleanup_free_ char *said = NULL;
        char path[PATH_MAX];

        /* 126: child() could not set the process up, before virtiofsd ran. */
        if (WIFEXITED(status) && WEXITSTATUS(status) == 126) {
                if (asprintf(ret_why, "could not set up virtiofsd's process (its read-only mount namespace, its "
                                      "directory or its socket)") < 0)
                        *ret_why = NULL;
                return;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, log);
        if (read_file_tail(path, VMM_OUTPUT_TAIL_MAX, &said) < 0 || !*said) {
                free(said);
                said = strdup("(it logged nothing)");
        }
        if (asprintf(ret_why, "virtiofsd %s %d: %s", WIFEXITED(status) ? "exited with status" : "was killed by signal",
                     WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), said ?: "") < 0)
                *ret_why = NULL;
}

/* The socket virtiofsd serves, made and listening before virtiofsd runs (it is handed over as
 * --fd): the VMM may connect at once. Its connection waits in the backlog and its first
 * vhost-user request in the socket until virtiofsd, still starting, accepts and answers, so
 * nothing waits for virtiofsd to listen. Only root may connect (mode 0600, as virtiofsd's own). */
static int listen_on(const char *path) {
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        int fd, err;

        if (strlen(path) >= sizeof(a.sun_path))
                return -ENAMETOOLONG;
        strcpy(a.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if ((unlink(path) < 0 && errno != ENOENT) || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
            chmod(path, 0600) < 0 || listen(fd, 1) < 0) {
                err = -errno;
                close(fd);
                return err;
        }
        return fd;
}

int vmm_fs_start_export(const char *dir, const vmm_fs_export_t *e, char **ret_error) {
        char path[PATH_MAX], source_opt[PATH_MAX + 16];
        char *argv[] = { VIRTIOFSD, "--fd=" STRINGIFY(SOCKET_FD),
                         "-o",      source_opt,
                         "-o",      "cache=auto",
                         "-o",      "sandbox=chroot",
                         "-o",      "no_posix_lock",
                         NULL };
        struct stat st;
        pid_t pid;
        int fd, err;

        *ret_error = NULL;
        if (access(VIRTIOFSD, X_OK) < 0) {
                err = -errno;
                return error_set(ret_error, err, "%s: %s", VIRTIOFSD, strerror(-err));
        }
        /* What virtiofsd would refuse at its start is refused here, in our words: once the VMM
         * runs, a virtiofsd that failed says why only through the VMM's exit (vmm_fs_failed). */
        if (stat(e->source, &st) < 0) {
                err = -errno;
                return error_set(ret_error, err, "%s: %s", e->source, strerror(-err));
        }
        if (!S_ISDIR(st.st_mode))
                return error_set(ret_error, -ENOTDIR, "%s is not a directory", e->source);
        /* A comma would end virtiofsd's -o value and start another option. */
        if (strchr(e->source, ','))
                return error_set(ret_error, -EINVAL, "%s: a ',' cannot be passed to virtiofsd", e->source);
        if (snprintf(source_opt, sizeof(source_opt), "source=%s", e->source) >= (int)sizeof(source_opt) ||
            snprintf(path, sizeof(path), "%s/%s", dir, e->socket) >= (int)sizeof(path))
                return error_set(ret_error, -ENAMETOOLONG, "%s: path too long", e->source);
        fd = listen_on(path);
        if (fd < 0)
                return error_set(ret_error, fd, "cannot listen on %s: %s", path, strerror(-fd));
        pid = fork();
        if (pid < 0) {
                err = -errno;
                close(fd);
                (void)unlink(path);
                return error_set(ret_error, err, "cannot start virtiofsd: %s", strerror(-err));
        }
        if (pid == 0)
                child(dir, e, fd, argv);
        close(fd);
        /* Our unreaped child: the pid stays its own until we wait for it. */
        *e->ret_pid = pid;
        if (vmm_proc_start_time(pid, e->ret_start_time) < 0)
                *e->ret_start_time = 0;
        return 0;
}

int vmm_fs_start(const char *dir, const char *source, instance_record_t *rec, char **ret_error) {
        vmm_fs_export_t e = { .socket = VMM_FS_SOCKET,
                              .log = FS_LOG,
                              .source = source,
                              .readonly = true,
                              .ret_pid = &rec->fs_pid,
                              .ret_start_time = &rec->fs_pid_start_time };

        return vmm_fs_start_export(dir, &e, ret_error);
}

/* One recorded virtiofsd that failed: reaped (so the record forgets it), and why. Only our own
 * children tell how they ended; one adopted after a restart is left to vmm_fs_stop. One that
 * exited with status 0 did so because its VMM went: reaped, but no cause. */
static int one_failed(const char *dir, const char *log, int64_t *pid_p, char **ret_why) {
        int status;

        if (*pid_p <= 0 || waitpid((pid_t)*pid_p, &status, WNOHANG) != (pid_t)*pid_p)
                return 0;
        *pid_p = 0;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                return 0;
        ended_because(dir, log, status, ret_why);
        return 1;
}

void vmm_fs_volume_log(const char *tag, char *buf, size_t size) { snprintf(buf, size, "virtiofsd-%s.log", tag); }

int vmm_fs_failed(const char *dir, instance_record_t *rec, char **ret_why) {
        char log[96];

        *ret_why = NULL;
        if (one_failed(dir, FS_LOG, &rec->fs_pid, ret_why))
                return 1;
        for (size_t k = 0; k < rec->inst.spec.n_volumes && k < VOLUMES_MAX; k++) {
                vmm_fs_volume_log(rec->inst.spec.volumes[k].tag, log, sizeof(log));
                if (one_failed(dir, log, &rec->volume_fs[k].pid, ret_why))
                        return 1;
        }
        return 0;
}

/* Kill one recorded virtiofsd if it is still the one we started, and reap it if it is our child. */
static void stop_one(int64_t *pid_p, uint64_t start_time) {
        uint64_t now_start;
        pid_t pid = (pid_t)*pid_p;

        if (pid <= 0)
                return;
        *pid_p = 0;
        /* After a vmm-driver restart the pid may belong to someone else by now. */
        if (vmm_proc_start_time(pid, &now_start) < 0 || now_start != start_time)
                return;
        /* It ends by itself once the VMM disconnects; SIGKILL covers a wedged one. */
        (void)kill(pid, SIGKILL);
        /* Our child unless we were restarted since; then init reaps it. */
        (void)waitpid(pid, NULL, 0);
}

void vmm_fs_stop(instance_record_t *rec) {
        stop_one(&rec->fs_pid, rec->fs_pid_start_time);
        for (size_t k = 0; k < VOLUMES_MAX; k++)
                stop_one(&rec->volume_fs[k].pid, rec->volume_fs[k].start_time);
}
