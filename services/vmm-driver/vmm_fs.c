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
/* virtiofsd listens ~10 ms after exec; under load it can take longer. */
#define FS_LISTEN_TIMEOUT_MS 3000
#define FS_LISTEN_STEP_MS 2

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
 * mount: whatever the guest asks, the host directory cannot change through it. */
static _Noreturn void child(const char *dir, const vmm_fs_export_t *e, char *const *argv) {
        int fd;

        child_reset_signals();
        setsid();
        if (e->readonly && (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
                            mount(e->source, e->source, NULL, MS_BIND | MS_REC, NULL) < 0 ||
                            mount(NULL, e->source, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0))
                _exit(126);
        if (chdir(dir) < 0)
                _exit(126);
        fd = open("/dev/null", O_RDONLY);
        if (fd >= 0 && fd != STDIN_FILENO) {
                dup2(fd, STDIN_FILENO);
                close(fd);
        }
        fd = open(e->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
                dup2(fd, STDOUT_FILENO);
                dup2(fd, STDERR_FILENO);
                if (fd > STDERR_FILENO)
                        close(fd);
        }
        close_range(STDERR_FILENO + 1, ~0u, 0);
        execv(argv[0], argv);
        _exit(127);
}

static bool listening(const char *dir, const char *socket) {
        char path[PATH_MAX];
        struct stat st;

        snprintf(path, sizeof(path), "%s/%s", dir, socket);
        return stat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* Why a virtiofsd that exited before listening did so: its status and the last lines it logged. */
static int exited_early(const char *dir, const char *log, int status, char **ret_error) {
        _cleanup_free_ char *said = NULL;
        char path[PATH_MAX];

        if (WIFEXITED(status) && WEXITSTATUS(status) == 126) {
                if (asprintf(ret_error, "cannot make the read-only mount namespace for virtiofsd") < 0)
                        *ret_error = NULL;
                return -EPERM;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, log);
        if (read_file_tail(path, VMM_OUTPUT_TAIL_MAX, &said) < 0 || !*said) {
                free(said);
                said = strdup("(it logged nothing)");
        }
        if (asprintf(ret_error, "virtiofsd %s %d before listening: %s",
                     WIFEXITED(status) ? "exited with status" : "was killed by signal",
                     WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), said ?: "") < 0)
                *ret_error = NULL;
        return -EIO;
}

struct vmm_fs_wait {
        zloop_t *loop;
        int timer;
        pid_t pid;
        char *dir;
        char *socket, *log;
        uint64_t deadline; /* monotonic ms */
        int64_t *ret_pid;
        uint64_t *ret_start_time;
        vmm_fs_ready_fn fn;
        void *userdata;
        struct vmm_fs_wait *next;
};

/* The waits not ended yet. czmq's zloop may still run a timer it was told to end: a handler that
 * changes the poll set makes it skip its list of ended timers for that turn. So a tick first
 * checks that its wait is still here, by address, before it touches it. */
static vmm_fs_wait_t *live_waits;

static bool wait_live(const vmm_fs_wait_t *w) {
        for (const vmm_fs_wait_t *l = live_waits; l; l = l->next)
                if (l == w)
                        return true;
        return false;
}

static void wait_free(vmm_fs_wait_t *w) {
        if (!w)
                return;
        for (vmm_fs_wait_t **pp = &live_waits; *pp; pp = &(*pp)->next)
                if (*pp == w) {
                        *pp = w->next;
                        break;
                }
        if (w->timer > 0)
                zloop_timer_end(w->loop, w->timer);
        free(w->dir);
        free(w->socket);
        free(w->log);
        free(w);
}

static int on_listen_tick(zloop_t *loop, int timer_id, void *arg);

/* One-shot, armed again on each tick: zloop drops a one-shot timer itself once it ran. */
static int wait_arm(vmm_fs_wait_t *w) {
        w->timer = zloop_timer(w->loop, FS_LISTEN_STEP_MS, 1, on_listen_tick, w);
        if (w->timer < 0) {
                w->timer = 0;
                return -ENOMEM;
        }
        return 0;
}

/* Until virtiofsd listens, exits or runs out of time; every FS_LISTEN_STEP_MS on the loop. */
static int on_listen_tick(zloop_t *loop, int timer_id, void *arg) {
        vmm_fs_wait_t *w = arg;
        _cleanup_free_ char *why = NULL;
        int status, r;

        if (!wait_live(w) || timer_id != w->timer)
                return 0;
        w->timer = 0; /* it ran: nothing to end any more */
        if (listening(w->dir, w->socket)) {
                *w->ret_pid = w->pid;
                if (vmm_proc_start_time(w->pid, w->ret_start_time) < 0)
                        *w->ret_start_time = 0;
                r = 0;
        } else if (waitpid(w->pid, &status, WNOHANG) == w->pid)
                r = exited_early(w->dir, w->log, status, &why);
        else if (now_monotonic_ms() >= w->deadline) {
                kill(w->pid, SIGKILL);
                (void)waitpid(w->pid, NULL, 0);
                if (asprintf(&why, "virtiofsd did not listen within %u ms", FS_LISTEN_TIMEOUT_MS) < 0)
                        why = NULL;
                r = -ETIMEDOUT;
        } else if (wait_arm(w) < 0) {
                kill(w->pid, SIGKILL);
                (void)waitpid(w->pid, NULL, 0);
                r = -ENOMEM;
        } else
                return 0;
        w->fn(r, why, w->userdata);
        wait_free(w);
        return 0;
}

int vmm_fs_spawn_export(zloop_t *loop, const char *dir, const vmm_fs_export_t *e, vmm_fs_ready_fn fn, void *userdata,
                        vmm_fs_wait_t **ret, char **ret_error) {
        char sock_opt[PATH_MAX + 32], source_opt[PATH_MAX + 16];
        char *argv[] = { VIRTIOFSD, sock_opt,         "-o", source_opt,      "-o", "cache=auto",
                         "-o",      "sandbox=chroot", "-o", "no_posix_lock", NULL };
        vmm_fs_wait_t *w;
        pid_t pid;

        *ret_error = NULL;
        if (access(VIRTIOFSD, X_OK) < 0) {
                int err = errno;

                if (asprintf(ret_error, "%s: %s", VIRTIOFSD, strerror(err)) < 0)
                        *ret_error = NULL;
                return -err;
        }
        /* Absolute: virtiofsd names its lock file (/run/virtiofsd/<path>.pid) after the socket
         * path, so relative paths would make every instance's virtiofsd but the first refuse to
         * start. A socket path longer than sun_path cannot be bound anyway. */
        if (strlen(dir) + 1 + strlen(e->socket) + 1 > sizeof(((struct sockaddr_un *)0)->sun_path))
                return -ENAMETOOLONG;
        snprintf(sock_opt, sizeof(sock_opt), "--socket-path=%s/%s", dir, e->socket);
        if (snprintf(source_opt, sizeof(source_opt), "source=%s", e->source) >= (int)sizeof(source_opt))
                return -ENAMETOOLONG;
        /* A comma would end virtiofsd's -o value and start another option. */
        if (strchr(e->source, ','))
                return -EINVAL;
        w = calloc(1, sizeof(*w));
        if (!w || !(w->dir = strdup(dir)) || !(w->socket = strdup(e->socket)) || !(w->log = strdup(e->log))) {
                if (w) {
                        free(w->dir);
                        free(w->socket);
                }
                free(w);
                return -ENOMEM;
        }

        pid = fork();
        if (pid < 0) {
                int err = -errno;

                wait_free(w);
                return err;
        }
        if (pid == 0)
                child(dir, e, argv);

        *w = (vmm_fs_wait_t){ .loop = loop,
                              .pid = pid,
                              .dir = w->dir,
                              .socket = w->socket,
                              .log = w->log,
                              .ret_pid = e->ret_pid,
                              .ret_start_time = e->ret_start_time,
                              .fn = fn,
                              .userdata = userdata,
                              .deadline = now_monotonic_ms() + FS_LISTEN_TIMEOUT_MS,
                              .next = live_waits };
        live_waits = w;
        if (wait_arm(w) < 0) {
                kill(pid, SIGKILL);
                (void)waitpid(pid, NULL, 0);
                wait_free(w);
                return -ENOMEM;
        }
        *ret = w;
        return 0;
}

int vmm_fs_spawn(zloop_t *loop, const char *dir, const char *source, instance_record_t *rec, vmm_fs_ready_fn fn,
                 void *userdata, vmm_fs_wait_t **ret, char **ret_error) {
        vmm_fs_export_t e = { .socket = VMM_FS_SOCKET,
                              .log = FS_LOG,
                              .source = source,
                              .readonly = true,
                              .ret_pid = &rec->fs_pid,
                              .ret_start_time = &rec->fs_pid_start_time };

        return vmm_fs_spawn_export(loop, dir, &e, fn, userdata, ret, ret_error);
}

void vmm_fs_wait_cancel(vmm_fs_wait_t **w) {
        if (!*w)
                return;
        kill((*w)->pid, SIGKILL);
        (void)waitpid((*w)->pid, NULL, 0);
        wait_free(*w);
        *w = NULL;
}

/* The synchronous form, on a loop of its own: for tests and tools, never for the daemon's loop. */
typedef struct sync_wait {
        bool done;
        int error;
        char *why;
} sync_wait_t;

static void on_sync_ready(int error, const char *why, void *userdata) {
        sync_wait_t *s = userdata;

        s->done = true;
        s->error = error;
        s->why = why ? strdup(why) : NULL;
}

static int on_sync_check(zloop_t *loop, int timer_id, void *arg) { return ((sync_wait_t *)arg)->done ? -1 : 0; }

int vmm_fs_start(const char *dir, const char *source, instance_record_t *rec, char **ret_error) {
        vmm_fs_export_t e = { .socket = VMM_FS_SOCKET,
                              .log = FS_LOG,
                              .source = source,
                              .readonly = true,
                              .ret_pid = &rec->fs_pid,
                              .ret_start_time = &rec->fs_pid_start_time };

        return vmm_fs_start_export(dir, &e, ret_error);
}

int vmm_fs_start_export(const char *dir, const vmm_fs_export_t *e, char **ret_error) {
        sync_wait_t s = {};
        vmm_fs_wait_t *w = NULL;
        zloop_t *loop;
        int r;

        *ret_error = NULL;
        loop = zloop_new();
        if (!loop)
                return -ENOMEM;
        r = vmm_fs_spawn_export(loop, dir, e, on_sync_ready, &s, &w, ret_error);
        if (r >= 0 && zloop_timer(loop, 1, 0, on_sync_check, &s) < 0) {
                vmm_fs_wait_cancel(&w);
                r = -ENOMEM;
        }
        if (r >= 0) {
                zloop_start(loop);
                if (!s.done)
                        vmm_fs_wait_cancel(&w); /* interrupted */
                r = s.done ? s.error : -EINTR;
                *ret_error = s.why;
        }
        zloop_destroy(&loop);
        return r;
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
