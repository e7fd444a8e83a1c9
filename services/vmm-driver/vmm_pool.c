/* vmm_pool.c: the warm pool (vmm_driver.templates.pool): per template, clones restored and paused ahead of need in <instances_dir>/.pool-<name>; an instance takes one, and the pool refills in the background, one clone at a time. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/log.h"
#include "services/vmm-driver/vmm_job.h"
#include "services/vmm-driver/vmm_pool.h"

#define POOL_DIR_PREFIX ".pool-" /* vmm_adopt.c skips dot names: a pool clone is no instance */
#define RETRY_AFTER_FAILURE_MS 60000
/* After a take, the refill waits for the taken clone's ready (vmm_pool_taken_ready), or this
 * long: a clone being made takes a core the taken one needs to take its identity. */
#define REFILL_HOLD_MS 2000

/* A template the pool keeps clones of. */
typedef struct want {
        char key[VMM_TEMPLATE_KEY_LEN + 1];
        const vmm_runtime_t *rt;
        char *template_dir, *kernel, *initrd;
        vmm_profile_t profile;
        uint64_t failed_at_ms; /* the last fill failed then: wait before the next */
} want_t;

/* A clone being made, on a thread: its QEMU starts and loads the template's state. */
typedef struct fill {
        vmm_pool_t *pool;
        vmm_job_t *job;
        const vmm_template_ops_t *ops;
        const void *state;
        vmm_profile_t profile; /* its strings are want's, which outlives the fill (vmm_pool_forget ends it) */
        char *template_dir;
        vmm_pool_clone_t *clone;
        int error;
        char *why;
} fill_t;

struct vmm_pool {
        vmm_t *d;
        uint32_t size;
        zhashx_t *wants; /* key -> want_t* (owned) */
        zlistx_t *ready; /* vmm_pool_clone_t* (owned), oldest first */
        fill_t *fill;    /* the one being made; NULL: none */
        int retry_timer; /* zloop timer id; 0: none */
        int hold_timer;  /* a clone was taken and is not ready yet: no refill meanwhile; 0: none */
};

static void want_free(void **p) {
        want_t *w = *p;

        if (!w)
                return;
        free(w->template_dir);
        free(w->kernel);
        free(w->initrd);
        free(w);
        *p = NULL;
}

/* ---- one clone ----------------------------------------------------------------------------------- */

static void clone_unwatch(vmm_pool_clone_t *c);

void vmm_pool_clone_discard(vmm_pool_clone_t **p) {
        vmm_pool_clone_t *c = *p;

        if (!c)
                return;
        *p = NULL;
        clone_unwatch(c);
        if (c->pid > 0) {
                /* Our unreaped child: its pid is still its. */
                kill(c->pid, SIGKILL);
                (void)waitpid(c->pid, NULL, 0);
        }
        if (c->dir[0])
                (void)rm_rf(c->dir);
        free(c);
}

static int clone_new(vmm_t *d, vmm_pool_clone_t **ret) {
        vmm_pool_clone_t *c = calloc(1, sizeof(*c));
        uint8_t raw[6];

        if (!c)
                return -ENOMEM;
        c->pidfd = -1;
        if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
                free(c);
                return -errno;
        }
        /* "hkp" and 12 hex digits: 15 characters, IFNAMSIZ's limit (netd checks the form). */
        snprintf(c->tap, sizeof(c->tap), "hkp%02x%02x%02x%02x%02x%02x", raw[0], raw[1], raw[2], raw[3], raw[4], raw[5]);
        if (snprintf(c->dir, sizeof(c->dir), "%s/" POOL_DIR_PREFIX "%s", d->instances_dir, c->tap + 3) >=
            (int)sizeof(c->dir)) {
                free(c);
                return -ENAMETOOLONG;
        }
        *ret = c;
        return 0;
}

/* ---- filling ------------------------------------------------------------------------------------- */

static void refill(vmm_pool_t *p);

static void fill_work(void *userdata) {
        fill_t *f = userdata;
        vmm_pool_clone_t *c = f->clone;
        char path[PATH_MAX + 32];

        f->error = mkdir(c->dir, 0700) < 0 ? -errno : 0;
        /* The export QEMU serves and, in it, where the image is bound when the clone is taken. */
        snprintf(path, sizeof(path), "%s/" VMM_POOL_EXPORT "/" VMM_POOL_IMAGE, c->dir);
        if (f->error >= 0)
                f->error = mkdir_p(path, 0755);
        if (f->error < 0)
                (void)error_set(&f->why, f->error, "cannot create %s: %s", path, strerror(-f->error));
        else
                f->error = f->ops->pool_clone(f->state, &f->profile, f->template_dir, c->dir, c->tap, &c->pid, &f->why);
}

static void fill_free(fill_t *f) {
        if (!f)
                return;
        vmm_pool_clone_discard(&f->clone);
        free(f->template_dir);
        free(f->why);
        free(f);
}

/* At shutdown or when its template goes: the clone's QEMU killed (the thread's QMP wait then
 * ends at once), the thread joined, the clone discarded. */
static void fill_end(vmm_pool_t *p) {
        fill_t *f = p->fill;
        pid_t pid;

        if (!f)
                return;
        pid = __atomic_load_n(&f->clone->pid, __ATOMIC_SEQ_CST);
        if (pid > 0)
                kill(pid, SIGKILL);
        vmm_job_wait(&f->job);
        p->fill = NULL;
        fill_free(f);
}

static int on_clone_exit(zloop_t *loop, zmq_pollitem_t *item, void *arg);

static int clone_watch(vmm_pool_t *p, vmm_pool_clone_t *c) {
        zmq_pollitem_t item = { .events = ZMQ_POLLIN };

        c->pidfd = vmm_pidfd_open(c->pid);
        if (c->pidfd < 0)
                return c->pidfd;
        c->loop = p->d->loop;
        item.fd = c->pidfd;
        if (zloop_poller(c->loop, &item, on_clone_exit, p) < 0) {
                close(c->pidfd);
                c->pidfd = -1;
                return -ENOMEM;
        }
        return 0;
}

static void clone_unwatch(vmm_pool_clone_t *c) {
        if (c->pidfd < 0)
                return;
        zloop_poller_end(c->loop, &(zmq_pollitem_t){ .fd = c->pidfd });
        close(c->pidfd);
        c->pidfd = -1;
}

/* A paused clone ended by itself (killed from outside, QEMU failed): it goes, another is made. */
static int on_clone_exit(zloop_t *loop, zmq_pollitem_t *item, void *arg) {
        vmm_pool_t *p = arg;

        for (vmm_pool_clone_t *c = zlistx_first(p->ready); c; c = zlistx_next(p->ready))
                if (c->pidfd == item->fd) {
                        log_warning("Pool: clone %s of template %s (pid %d) ended while waiting; replacing it", c->tap,
                                    c->key, (int)c->pid);
                        zlistx_delete(p->ready, zlistx_cursor(p->ready));
                        break;
                }
        refill(p);
        return 0;
}

static size_t count(vmm_pool_t *p, const char *key) {
        size_t n = 0;

        for (vmm_pool_clone_t *c = zlistx_first(p->ready); c; c = zlistx_next(p->ready))
                n += streq(c->key, key);
        return n;
}

static void fill_done(void *userdata) {
        fill_t *f = userdata;
        vmm_pool_t *p = f->pool;
        want_t *w = zhashx_lookup(p->wants, f->clone->key);
        int r = 0;

        p->fill = NULL;
        if (f->error < 0) {
                log_warning("Pool: cannot make a clone of template %s: %s; retrying in %d s", f->clone->key,
                            f->why ?: strerror(-f->error), RETRY_AFTER_FAILURE_MS / 1000);
                if (w)
                        w->failed_at_ms = now_monotonic_ms();
        } else if (!w || count(p, f->clone->key) >= p->size) {
                /* The pool shrank, or the template went, while this one was made. */
                log_debug("Pool: clone %s of template %s not needed any more", f->clone->tap, f->clone->key);
        } else if ((r = clone_watch(p, f->clone)) < 0 || !zlistx_add_end(p->ready, f->clone)) {
                log_warning_errno(r < 0 ? r : -ENOMEM, "Pool: cannot keep clone %s: %m", f->clone->tap);
        } else {
                log_info("Pool: clone %s of template %s ready (pid %d)", f->clone->tap, f->clone->key,
                         (int)f->clone->pid);
                f->clone = NULL;
        }
        fill_free(f);
        refill(p);
}

static int fill_start(vmm_pool_t *p, want_t *w) {
        fill_t *f = calloc(1, sizeof(*f));
        int r;

        if (!f)
                return -ENOMEM;
        *f = (fill_t){
                .pool = p, .ops = w->rt->templates, .state = vmm_runtime_state(p->d, w->rt), .profile = w->profile
        };
        f->template_dir = strdup(w->template_dir);
        r = f->template_dir ? clone_new(p->d, &f->clone) : -ENOMEM;
        if (r < 0) {
                fill_free(f);
                return r;
        }
        snprintf(f->clone->key, sizeof(f->clone->key), "%s", w->key);
        r = vmm_job_start(p->d->loop, fill_work, fill_done, f, &f->job);
        if (r < 0) {
                fill_free(f);
                return r;
        }
        p->fill = f;
        return 0;
}

static int on_hold_end(zloop_t *loop, int timer_id, void *arg) {
        vmm_pool_t *p = arg;

        p->hold_timer = 0;
        refill(p);
        return 0;
}

static int on_retry(zloop_t *loop, int timer_id, void *arg) {
        vmm_pool_t *p = arg;

        p->retry_timer = 0;
        refill(p);
        return 0;
}

/* One clone at a time, for the first template short of clones: making one is a QEMU start and
 * a state load, which an apply running meanwhile must not wait behind. */
static void refill(vmm_pool_t *p) {
        uint64_t now = now_monotonic_ms();
        bool waiting = false;

        if (p->fill || p->hold_timer)
                return;
        for (want_t *w = zhashx_first(p->wants); w; w = zhashx_next(p->wants)) {
                int r;

                if (count(p, w->key) >= p->size)
                        continue;
                if (w->failed_at_ms && now - w->failed_at_ms < RETRY_AFTER_FAILURE_MS) {
                        waiting = true;
                        continue;
                }
                r = fill_start(p, w);
                if (r < 0) {
                        log_warning_errno(r, "Pool: cannot start a clone of template %s: %m", w->key);
                        w->failed_at_ms = now;
                        waiting = true;
                        continue;
                }
                return;
        }
        if (waiting && !p->retry_timer) {
                p->retry_timer = zloop_timer(p->d->loop, RETRY_AFTER_FAILURE_MS, 1, on_retry, p);
                if (p->retry_timer < 0)
                        p->retry_timer = 0;
        }
}

/* ---- the pool ------------------------------------------------------------------------------------- */

/* Clones an earlier vmm-driver left (it stopped, or was killed): their QEMUs are ended (found by
 * their working directory, the clone's, which vmm_spawn set) and their directories removed. */
void vmm_pool_end_leftovers(vmm_t *d) {
        DIR *dir = opendir(d->instances_dir), *proc;
        struct dirent *de;

        if (!dir)
                return;
        proc = opendir("/proc");
        while ((de = readdir(dir))) {
                char path[PATH_MAX];

                if (strncmp(de->d_name, POOL_DIR_PREFIX, strlen(POOL_DIR_PREFIX)) != 0)
                        continue;
                snprintf(path, sizeof(path), "%s/%s", d->instances_dir, de->d_name);
                for (struct dirent *pe = proc ? (rewinddir(proc), readdir(proc)) : NULL; pe; pe = readdir(proc)) {
                        char link[300], cwd[PATH_MAX];
                        ssize_t n;

                        if (pe->d_name[0] < '1' || pe->d_name[0] > '9')
                                continue;
                        snprintf(link, sizeof(link), "/proc/%s/cwd", pe->d_name);
                        n = readlink(link, cwd, sizeof(cwd) - 1);
                        if (n <= 0)
                                continue;
                        cwd[n] = '\0';
                        if (streq(cwd, path)) {
                                log_info("Pool: ending pid %s, a clone left in %s", pe->d_name, path);
                                kill((pid_t)atoi(pe->d_name), SIGKILL);
                        }
                }
                log_info("Pool: removing %s (left by an earlier vmm-driver)", path);
                (void)rm_rf(path);
        }
        if (proc)
                closedir(proc);
        closedir(dir);
}

static void clone_free(void **p) {
        vmm_pool_clone_t *c = *p;

        vmm_pool_clone_discard(&c);
        *p = NULL;
}

int vmm_pool_new(vmm_t *d, uint32_t size, vmm_pool_t **ret) {
        vmm_pool_t *p;

        *ret = NULL;
        if (size == 0)
                return 0;
        p = calloc(1, sizeof(*p));
        if (!p || !(p->wants = zhashx_new()) || !(p->ready = zlistx_new())) {
                vmm_pool_free(p);
                return -ENOMEM;
        }
        p->d = d;
        p->size = size;
        zhashx_set_destructor(p->wants, want_free);
        zlistx_set_destructor(p->ready, clone_free);
        *ret = p;
        return 0;
}

void vmm_pool_free(vmm_pool_t *p) {
        if (!p)
                return;
        fill_end(p);
        if (p->retry_timer)
                zloop_timer_end(p->d->loop, p->retry_timer);
        if (p->hold_timer)
                zloop_timer_end(p->d->loop, p->hold_timer);
        zlistx_destroy(&p->ready); /* each clone's QEMU killed, its directory removed */
        zhashx_destroy(&p->wants);
        free(p);
}

void vmm_pool_want(vmm_pool_t *p, const vmm_runtime_t *rt, const char *key, const char *template_dir,
                   const vmm_profile_t *profile) {
        want_t *w;

        if (!p || !rt->templates || !rt->templates->pool_clone || zhashx_lookup(p->wants, key))
                return;
        w = calloc(1, sizeof(*w));
        if (!w || !(w->template_dir = strdup(template_dir)) || !(w->kernel = strdup(profile->kernel)) ||
            !(w->initrd = strdup(profile->initrd))) {
                void *q = w;
                want_free(&q);
                log_warning("Pool: out of memory, no clones of template %s", key);
                return;
        }
        snprintf(w->key, sizeof(w->key), "%s", key);
        w->rt = rt;
        w->profile = *profile;
        w->profile.kernel = w->kernel;
        w->profile.initrd = w->initrd;
        if (zhashx_insert(p->wants, w->key, w) < 0) {
                void *q = w;
                want_free(&q);
                return;
        }
        refill(p);
}

void vmm_pool_forget(vmm_pool_t *p, const char *key) {
        vmm_pool_clone_t *c;

        if (!p)
                return;
        if (p->fill && streq(p->fill->clone->key, key))
                fill_end(p);
        c = zlistx_first(p->ready);
        while (c) {
                if (streq(c->key, key)) {
                        zlistx_delete(p->ready, zlistx_cursor(p->ready));
                        c = zlistx_first(p->ready);
                } else
                        c = zlistx_next(p->ready);
        }
        zhashx_delete(p->wants, key);
        refill(p);
}

void vmm_pool_resize(vmm_pool_t *p, uint32_t size) {
        p->size = size;
        /* Beyond the new size, each template's newest clones go: the oldest are the ones whose
         * guests settled longest. */
        for (want_t *w = zhashx_first(p->wants); w; w = zhashx_next(p->wants)) {
                size_t n = count(p, w->key);

                for (vmm_pool_clone_t *c = zlistx_last(p->ready); c && n > size;) {
                        if (streq(c->key, w->key)) {
                                zlistx_delete(p->ready, zlistx_cursor(p->ready));
                                n--;
                                c = zlistx_last(p->ready);
                                continue;
                        }
                        c = zlistx_prev(p->ready);
                }
        }
        refill(p);
}

size_t vmm_pool_count(vmm_pool_t *p, const char *key) { return p ? count(p, key) : 0; }

vmm_pool_clone_t *vmm_pool_take(vmm_pool_t *p, const char *key) {
        vmm_pool_clone_t *c;

        if (!p)
                return NULL;
        for (c = zlistx_first(p->ready); c; c = zlistx_next(p->ready))
                if (streq(c->key, key))
                        break;
        if (!c)
                return NULL;
        c = zlistx_detach_cur(p->ready);
        clone_unwatch(c); /* the instance watches it from now on */
        if (p->hold_timer)
                zloop_timer_end(p->d->loop, p->hold_timer);
        p->hold_timer = zloop_timer(p->d->loop, REFILL_HOLD_MS, 1, on_hold_end, p);
        if (p->hold_timer < 0)
                p->hold_timer = 0;
        refill(p);
        return c;
}

void vmm_pool_taken_ready(vmm_pool_t *p) {
        if (!p || !p->hold_timer)
                return;
        zloop_timer_end(p->d->loop, p->hold_timer);
        p->hold_timer = 0;
        refill(p);
}

/* In the clone's own mount namespace (its QEMU's, which pool_clone made private): bind the image
 * read-only where the 9p export already is. Nothing is mounted in the host's namespace, so
 * nothing can outlive the clone, and removing its directory cannot reach into the image. */
int vmm_pool_bind_image(pid_t pid, const char *image, const char *target) {
        char ns[64];
        int fd, status;
        pid_t child;

        snprintf(ns, sizeof(ns), "/proc/%d/ns/mnt", (int)pid);
        fd = open(ns, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        /* setns(CLONE_NEWNS) needs a single-threaded caller: a child, which only makes syscalls. */
        child = fork();
        if (child < 0) {
                int e = errno;
                close(fd);
                return -e;
        }
        if (child == 0) {
                /* The exit status is the errno of the step that failed. */
                if (setns(fd, CLONE_NEWNS) < 0 || mount(image, target, NULL, MS_BIND | MS_REC, NULL) < 0 ||
                    mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NODEV | MS_NOSUID, NULL) < 0)
                        _exit(errno > 0 && errno < 256 ? errno : EIO);
                _exit(0);
        }
        close(fd);
        if (waitpid(child, &status, 0) < 0)
                return -errno;
        if (!WIFEXITED(status))
                return -EIO;
        return -WEXITSTATUS(status);
}
