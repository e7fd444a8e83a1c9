/* vmm_instance.c: the instance life cycle (create, state transitions, stop, remove) and its directory. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "lib/disk_image.h"
#include "lib/log.h"
#include "services/vmm-driver/vmm.h"
#include "services/vmm-driver/vmm_disk.h"
#include "services/vmm-driver/vmm_seed.h"
#include "services/vmm-driver/vmm_job.h"
#include "services/vmm-driver/vmm_pool.h"
#include "services/vmm-driver/vmm_template.h"

#define CPUS_MAX 64
#define MEMORY_MIB_MIN 128
#define MEMORY_MIB_MAX (1024u * 1024u)

static const char *id_of(const vmm_instance_t *i) { return i->rec.inst.spec.instance_id; }

int vmm_instance_new(vmm_t *d, const char *dir, vmm_instance_t **ret) {
        vmm_instance_t *i = calloc(1, sizeof(*i));

        if (!i)
                return -ENOMEM;
        i->dir = strdup(dir);
        if (!i->dir) {
                free(i);
                return -ENOMEM;
        }
        i->vmm = d;
        i->pidfd = -1;
        i->agent.fd = -1;
        agent_frame_reader_init(&i->agent.reader);
        msgpack_sbuffer_init(&i->agent.out);
        *ret = i;
        return 0;
}

/* Immediate: only for instances no zloop callback can reach any more. */
static void instance_destroy(vmm_instance_t *i) {
        if (i->runtime)
                i->runtime->release(i);
        instance_record_clear(&i->rec);
        agent_frame_reader_clear(&i->agent.reader);
        msgpack_sbuffer_destroy(&i->agent.out);
        free(i->agent.calls);
        free(i->dir);
        free(i);
}

static int on_reap(zloop_t *loop, int timer_id, void *arg) {
        vmm_t *d = arg;
        vmm_instance_t *i;

        d->reap_timer = 0;
        while ((i = zlistx_detach(d->graveyard, NULL)))
                instance_destroy(i);
        return 0;
}

/* Closes everything now; the memory goes on the next loop iteration, because zloop may still
 * call a timer of this instance that expired in the current one (its handler sees its id
 * cancelled and returns). */
void vmm_instance_free(vmm_instance_t *i) {
        vmm_t *d;

        if (!i)
                return;
        d = i->vmm;
        vmm_watch_stop(i);
        if (i->runtime)
                i->runtime->disconnect(i);
        vmm_agent_stop(i);
        if (!d->loop || !zlistx_add_end(d->graveyard, i)) {
                instance_destroy(i);
                return;
        }
        if (!d->reap_timer) {
                d->reap_timer = zloop_timer(d->loop, 0, 1, on_reap, d);
                if (d->reap_timer < 0)
                        d->reap_timer = 0;
        }
}

void vmm_reap_now(vmm_t *d) {
        vmm_instance_t *i;

        while (d->graveyard && (i = zlistx_detach(d->graveyard, NULL)))
                instance_destroy(i);
}

vmm_instance_t *vmm_instance_get(vmm_t *d, const char *id) { return id ? zhashx_lookup(d->instances, id) : NULL; }

bool vmm_instance_alive(const vmm_instance_t *i) {
        return i->rec.inst.state && !streq(i->rec.inst.state, INSTANCE_STATE_EXITED);
}

int vmm_instance_connect(vmm_instance_t *i, const char *name) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -1, dirfd = -1;

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", i->dir, name) >= (int)sizeof(sa.sun_path)) {
                /* sun_path holds 108 bytes: reach a deep directory through its fd instead. */
                dirfd = open(i->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (dirfd < 0)
                        return -errno;
                snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/%s", dirfd, name);
        }
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return -errno;
        return TAKE_FD(fd);
}

int vmm_instance_save(vmm_instance_t *i) {
        int r = vmm_record_save(i->dir, &i->rec);

        if (r < 0)
                log_warning_errno(r, "Failed to save %s/" INSTANCE_RECORD_FILE ", ignoring: %m", i->dir);
        return r;
}

static int set_state(vmm_instance_t *i, const char *state) {
        char *s = strdup(state);

        if (!s)
                return -ENOMEM;
        free(i->rec.inst.state);
        i->rec.inst.state = s;
        return 0;
}

static bool state_is(const vmm_instance_t *i, const char *state) {
        return i->rec.inst.state && streq(i->rec.inst.state, state);
}

/* ---- create --------------------------------------------------------------------------------- */

static int check_file(const char *field, const char *path, char **ret_error) {
        struct stat st;

        if (!path || path[0] != '/')
                return error_set(ret_error, -EINVAL, "%s: must be an absolute path", field);
        if (stat(path, &st) < 0)
                return error_set(ret_error, -EINVAL, "%s: %s: %s", field, path, strerror(errno));
        return 0;
}

/* The checks every runtime shares, the runtime's row, and the defaults. */
static int check_spec(vmm_t *d, instance_spec_t *s, const vmm_runtime_t **ret_runtime, char **ret_error) {
        const husk_config_t *c = vmm_config(d);
        int r;

        if (!instance_id_valid(s->instance_id))
                return error_set(ret_error, -EINVAL, "instance_id: must be 12 lowercase hex digits");
        if (!s->deployment_id || !*s->deployment_id)
                return error_set(ret_error, -EINVAL, "deployment_id: must not be empty");
        r = vmm_runtime_lookup(c, s->runtime, ret_runtime, ret_error);
        if (r < 0)
                return -EINVAL;
        if (s->cpus == 0)
                s->cpus = c->vmm_driver.default_cpus ? c->vmm_driver.default_cpus : 1;
        if (s->memory_mib == 0)
                s->memory_mib = c->vmm_driver.default_memory_mib ? c->vmm_driver.default_memory_mib : 256;
        if (s->cpus > CPUS_MAX)
                return error_set(ret_error, -EINVAL, "cpus: must be between 1 and %d", CPUS_MAX);
        if (s->memory_mib < MEMORY_MIB_MIN || s->memory_mib > MEMORY_MIB_MAX)
                return error_set(ret_error, -EINVAL, "memory_mib: must be between %u and %u", MEMORY_MIB_MIN,
                                 MEMORY_MIB_MAX);
        /* The image is not attached yet (kit mode comes later) but a missing one is an error now,
         * not when it finally gets used. */
        r = check_file("image", s->image, ret_error);
        if (r < 0)
                return r;
        if (strchr(s->image, ','))
                return error_set(ret_error, -EINVAL, "image: must not contain ',' (virtiofsd and VMM option syntax)");
        if (s->kernel && (r = check_file("kernel", s->kernel, ret_error)) < 0)
                return r;
        if (s->initrd && (r = check_file("initrd", s->initrd, ret_error)) < 0)
                return r;
        if (s->boot && !streq(s->boot, "firmware") && !streq(s->boot, "kit"))
                return error_set(ret_error, -EINVAL, "boot: must be \"firmware\" or \"kit\"");
        if (s->boot && streq(s->boot, "firmware") && (s->kernel || s->command))
                return error_set(ret_error, -EINVAL,
                                 "boot: \"firmware\" boots the disk's own kernel and init: no kernel or command "
                                 "with it (use \"kit\")");
        return vmm_volumes_check(s, ret_error);
}

/* The kernel and initrd to boot: the spec's, else the kit's. */
static int boot_files(vmm_t *d, const instance_spec_t *s, vmm_launch_t *l, char **ret_error) {
        const husk_config_t *c = vmm_config(d);
        int r;

        l->kernel = s->kernel ?: c->kit.kernel;
        l->initrd = s->initrd ?: c->kit.initrd;
        if (!l->kernel)
                return error_set(ret_error, -EINVAL, "kernel: none given and kit.kernel is not configured");
        if (!l->initrd)
                return error_set(ret_error, -EINVAL, "initrd: none given and kit.initrd is not configured");
        if (!s->kernel && (r = check_file("kernel (kit.kernel)", l->kernel, ret_error)) < 0)
                return r;
        if (!s->initrd && (r = check_file("initrd (kit.initrd)", l->initrd, ret_error)) < 0)
                return r;
        return 0;
}

/* What the image is and how it boots. A directory: kit mode (rootfs or bundle). A file with
 * `boot: kit` or a command: the kit boots with it as the guest's disk and the agent makes its
 * root file system the workload's ("disk" mode: the command, if any, runs from it, and so do
 * execs; any file with a file system, a bare ext4 too). A file with only `kernel:`: the kit
 * boots with the disk attached as /dev/vda and nothing mounted (apiserver sends `boot: kit`
 * with a kernel: unless told otherwise). Any other file boots by its own firmware, so it must
 * be a disk that firmware can boot: otherwise refused with disk_image_probe's words, as
 * apiserver says them at apply (never a kit boot that ignores the image). */
static int image_mode(const instance_spec_t *s, const char *image_path, const char **ret_mode,
                      const char **ret_disk_format, bool *ret_firmware, char **ret_error) {
        char err[DISK_IMAGE_ERROR_MAX];
        disk_image_kind_t kind;
        int r;

        *ret_mode = *ret_disk_format = NULL;
        *ret_firmware = false;
        /* The user's path in the message, as apiserver words it (the probe follows links). */
        r = disk_image_probe(s->image, &kind, err, sizeof(err));
        if (r >= 0 && kind == DISK_IMAGE_DIRECTORY) {
                if (s->boot && streq(s->boot, "firmware"))
                        return error_set(ret_error, -EINVAL,
                                         "boot: \"firmware\" needs a disk image: %s is a directory, which the kit runs",
                                         s->image);
                r = vmm_fs_workload_mode(image_path, ret_mode);
                if (r == -ENOTDIR)
                        return error_set(ret_error, -EINVAL,
                                         "image: %s has a config.json but no rootfs/ directory: not an OCI bundle",
                                         s->image);
                if (r < 0)
                        return error_set(ret_error, -EINVAL, "image: %s: %s", s->image, strerror(-r));
                return 0;
        }
        if (s->kernel || s->command || (s->boot && streq(s->boot, "kit"))) {
                if (r < 0 && r != -ENOEXEC)
                        return error_set(ret_error, -EINVAL, "image: %s",
                                         strncmp(err, "image ", 6) == 0 ? err + 6 : err);
                *ret_mode = s->command || (s->boot && streq(s->boot, "kit")) ? "disk" : NULL;
                *ret_disk_format = r >= 0 && kind == DISK_IMAGE_QCOW2 ? "qcow2" : "raw";
                return 0;
        }
        if (r < 0)
                /* err reads "image PATH: why". */
                return error_set(ret_error, -EINVAL, "image: %s", strncmp(err, "image ", 6) == 0 ? err + 6 : err);
        *ret_disk_format = disk_image_kind_name(kind);
        *ret_firmware = true;
        return 0;
}

/* The volumes as cloud-init mounts them in a firmware-booted guest (points into s). */
static size_t seed_mounts(const instance_spec_t *s, vmm_seed_mount_t *m) {
        for (size_t k = 0; k < s->n_volumes && k < VOLUMES_MAX; k++)
                m[k] = (vmm_seed_mount_t){ .tag = s->volumes[k].tag,
                                           .destination = s->volumes[k].destination,
                                           .readonly = s->volumes[k].readonly,
                                           .file = vmm_volume_single_file(&s->volumes[k]) };
        return s->n_volumes < VOLUMES_MAX ? s->n_volumes : VOLUMES_MAX;
}

/* One create between its checks and its end: waiting for netd, then for a seed or a restore. */
typedef struct create {
        vmm_t *d;
        instance_spec_t *spec; /* until the instance exists, then i->rec has it */
        vmm_instance_t *i;     /* once its directory exists */
        char id[INSTANCE_ID_LEN + 1];
        const vmm_runtime_t *rt;
        char *image_path;
        const char *mode;
        const char *disk_format; /* the image is a disk: "raw" or "qcow2"; NULL: a directory */
        bool firmware;           /* the disk boots by its own firmware, not the kit */
        char *kernel, *initrd;   /* copies: a SIGHUP may change the config meanwhile */
        bool attached;           /* netd gave a network: detach it on failure */
        bool has_net;
        vmm_net_t net;                     /* netd's answer, kept for the launch */
        vmm_disk_t disk;                   /* firmware boot: the instance's disk, once made */
        struct seed_job *seed;             /* firmware boot: the seed being written off the loop */
        char *seed_path;                   /* ... and where it was written */
        char *template_key, *template_dir; /* a clone of this template (vmm_template.h); NULL: cold */
        vmm_restore_t *restore;            /* the clone's state being loaded */
        vmm_pool_clone_t *pooled;          /* a paused clone from the warm pool, until the instance owns its QEMU */
        vmm_create_fn fn;
        void *userdata;
} create_t;

static void create_free(create_t *c) {
        if (!c)
                return;
        if (c->spec) {
                instance_spec_clear(c->spec);
                free(c->spec);
        }
        free(c->image_path);
        free(c->seed_path);
        free(c->kernel);
        free(c->initrd);
        free(c->template_key);
        free(c->template_dir);
        vmm_pool_clone_discard(&c->pooled);
        free(c);
}

static void seed_job_end(create_t *c);

/* The end, success or not: forget the create, answer, free. */
static void create_done(create_t *c, int error, const char *why) {
        vmm_t *d = c->d;
        vmm_instance_t *i = error < 0 ? NULL : c->i;

        zhashx_delete(d->creating, c->id);
        seed_job_end(c);
        if (error < 0 && c->i) {
                vmm_restore_cancel(&c->restore);
                vmm_fs_stop(&c->i->rec);
                vmm_volumes_remove_files(d, &c->i->rec.inst.spec);
                (void)rm_rf(c->i->dir);
                vmm_instance_free(c->i);
                c->i = NULL;
        }
        if (error < 0 && c->attached)
                vmm_net_detach(d, c->id);
        c->fn(d, i, error, why, c->userdata);
        create_free(c);
}

static void create_fail(create_t *c, int error, const char *fmt, ...) _printf_(3, 4);
static void create_fail(create_t *c, int error, const char *fmt, ...) {
        _cleanup_free_ char *why = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&why, fmt, ap) < 0)
                why = NULL;
        va_end(ap);
        create_done(c, error, why);
}

static void create_track(create_t *c, pid_t pid);
static void on_restored(int error, const char *why, void *userdata);

static void create_spawn(create_t *c) {
        _cleanup_free_ char *why = NULL;
        vmm_instance_t *i = c->i;
        pid_t pid;
        int r;

        r = c->rt->spawn(i, &pid, &why);
        if (r < 0) {
                create_done(c, r, why);
                return;
        }
        i->rec.inst.spawned_at_ns = now_realtime_ns();
        i->rec.inst.pid = pid;
        if (!c->template_dir) {
                create_track(c, pid);
                return;
        }
        /* A clone: it runs once the template's state is in (on_restored). */
        r = vmm_restore_start(i, c->rt, c->template_dir, pid, on_restored, c, &c->restore);
        if (r < 0) {
                kill(pid, SIGKILL);
                (void)waitpid(pid, NULL, 0);
                create_fail(c, r, "cannot restore the template: %s", strerror(-r));
        }
}

/* The VMM runs: watch it, record it, publish it, talk to it. */
static void create_track(create_t *c, pid_t pid) {
        vmm_instance_t *i = c->i;
        vmm_t *d = c->d;
        int r;

        i->is_child = true;
        /* Our unreaped child: its pid cannot be reused under us, so these cannot race. */
        i->pidfd = vmm_pidfd_open(pid);
        r = i->pidfd < 0 ? i->pidfd : vmm_proc_start_time(pid, &i->rec.pid_start_time);
        if (r >= 0)
                r = vmm_record_save(i->dir, &i->rec);
        if (r >= 0)
                r = vmm_watch_start(i);
        if (r < 0) {
                /* A VMM we could not re-adopt after a restart must not run at all. */
                kill(pid, SIGKILL);
                (void)waitpid(pid, NULL, 0);
                create_fail(c, r, "cannot track pid %d: %s", (int)pid, strerror(-r));
                return;
        }
        if (zhashx_insert(d->instances, id_of(i), i) < 0) {
                vmm_pidfd_kill(i->pidfd, SIGKILL);
                (void)waitpid(pid, NULL, 0);
                create_fail(c, -ENOMEM, "out of memory");
                return;
        }

        log_info("Instance %s: started %s pid %d (%u cpus, %u MiB)", id_of(i), c->rt->name, (int)pid,
                 i->rec.inst.spec.cpus, i->rec.inst.spec.memory_mib);
        vmm_publish(d, BUS_EVENT_INSTANCE_CREATED, i);
        if (i->rec.pooled)
                /* The clone's QEMU runs already, as an adopted VMM does; QMP's first answer resumes
                 * it (vmm_qemu_qmp.c). */
                (void)c->rt->adopt(i);
        else
                c->rt->connect(i);
        vmm_agent_start(i);
        create_done(c, 0, NULL);
}

static void create_launch(create_t *c);

/* A clone that does not restore boots cold instead (a template is an optimisation, never a
 * reason for a create to fail): its template goes, a warning says so. */
static void on_restored(int error, const char *why, void *userdata) {
        create_t *c = userdata;
        vmm_instance_t *i = c->i;
        pid_t pid = (pid_t)i->rec.inst.pid;
        char w[1024];

        c->restore = NULL; /* the wait ended with this call */
        if (error >= 0) {
                create_track(c, pid);
                return;
        }
        kill(pid, SIGKILL);
        (void)waitpid(pid, NULL, 0);
        snprintf(w, sizeof(w), "template %s did not restore (%s): booting cold", c->template_key,
                 why ?: strerror(-error));
        log_warning("Instance %s: %s", id_of(i), w);
        vmm_publish_warning(i, w);
        vmm_template_failed(c->d, c->template_key, why ?: strerror(-error));
        free(TAKE_PTR(c->template_key));
        free(TAKE_PTR(c->template_dir));
        free(TAKE_PTR(i->rec.inst.template));
        i->rec.inst.pid = 0;
        i->rec.inst.spawned_at_ns = 0;
        c->rt->release(i);
        create_launch(c);
}

/* The VMM connects to every virtiofsd's socket at its start: each socket listens once its
 * virtiofsd is started (vmm_fs.c), so all start before the spawn, without waiting for them. */
static void create_start_volumes_fs(create_t *c) {
        vmm_instance_t *i = c->i;

        /* A clone's volumes are 9p devices of QEMU's own (clone_volumes): no virtiofsd. */
        for (size_t k = 0; k < i->rec.inst.spec.n_volumes && k < VOLUMES_MAX && !c->template_key; k++) {
                _cleanup_free_ char *why = NULL;
                char socket[64], log[96], files_dir[PATH_MAX];
                vmm_fs_export_t e;
                int r;

                r = vmm_volume_export(c->d, i->dir, &i->rec, k, socket, sizeof(socket), log, sizeof(log), files_dir,
                                      sizeof(files_dir), &e, &why);
                if (r >= 0)
                        r = vmm_fs_start_export(i->dir, &e, &why);
                if (r < 0) {
                        create_fail(c, r, "cannot start virtiofsd for volumes[%zu] (%s): %s", k,
                                    i->rec.inst.spec.volumes[k].tag, why ?: strerror(-r));
                        return;
                }
        }
        create_spawn(c);
}

/* The seed, written by a thread of its own (vmm_job): mkfs.fat and mcopy take ~200 ms on a
 * loaded host, which the loop (exits, QMP, the agents) must not wait for. The thread touches
 * only the job. */
typedef struct seed_job {
        vmm_job_t *job;
        create_t *c;
        char dir[PATH_MAX];
        vmm_seed_spec_t spec; /* points into the instance's spec and the job's copies */
        char address[16], gateway[16];
        vmm_seed_mount_t mounts[VOLUMES_MAX];
        int error;
        char *path, *why;
} seed_job_t;

static void seed_work(void *userdata) {
        seed_job_t *j = userdata;

        j->error = vmm_seed_write(j->dir, &j->spec, &j->path, &j->why);
}

static void seed_job_free(seed_job_t *j) {
        free(j->path);
        free(j->why);
        free(j);
}

/* Wait for the thread (it ends on its own, within a second) and free the job. */
static void seed_job_end(create_t *c) {
        seed_job_t *j = c->seed;

        if (!j)
                return;
        c->seed = NULL;
        vmm_job_wait(&j->job);
        seed_job_free(j);
}

static void create_launch(create_t *c);

static void seed_done(void *userdata) {
        seed_job_t *j = userdata;
        create_t *c = j->c;
        _cleanup_free_ char *why = TAKE_PTR(j->why);
        int error = j->error;

        c->seed = NULL;
        c->seed_path = TAKE_PTR(j->path);
        seed_job_free(j);
        if (error < 0) {
                create_fail(c, error, "cannot write the cloud-init seed: %s", why ?: strerror(-error));
                return;
        }
        create_launch(c);
}

/* Firmware boot: the instance's own copy-on-write disk of the image (O(1), here) and its
 * cloud-init seed (rebuilt at every start, by a thread), both in the directory, going with it. */
static int create_firmware_files(create_t *c, char **ret_why) {
        vmm_instance_t *i = c->i;
        const instance_spec_t *s = &i->rec.inst.spec;
        _cleanup_free_ char *why = NULL;
        seed_job_t *j;
        int r;

        r = vmm_disk_create(i->dir, i->rec.image_path, &c->disk, &why);
        if (r < 0) {
                if (asprintf(ret_why, "cannot make the instance disk of %s: %s", i->rec.image_path,
                             why ?: strerror(-r)) < 0)
                        *ret_why = NULL;
                return r;
        }
        log_debug("Instance %s: disk %s (%s)", s->instance_id, c->disk.path, vmm_disk_method_name(c->disk.method));

        j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        snprintf(j->dir, sizeof(j->dir), "%s", i->dir);
        j->spec = (vmm_seed_spec_t){ .instance_id = s->instance_id,
                                     .environment = s->environment,
                                     .secret_environment = s->secret_environment,
                                     .mounts = j->mounts,
                                     .n_mounts = seed_mounts(s, j->mounts) };
        if (c->has_net) {
                snprintf(j->address, sizeof(j->address), "%s", c->net.guest_ip);
                snprintf(j->gateway, sizeof(j->gateway), "%s", c->net.host_ip);
                j->spec.address = j->address;
                j->spec.prefix = c->net.prefix;
                j->spec.gateway = j->gateway;
        }
        j->c = c;
        r = vmm_job_start(c->d->loop, seed_work, seed_done, j, &j->job);
        if (r < 0) {
                free(j);
                return r;
        }
        c->seed = j;
        return 0;
}

/* netd answered (or there is none): the directory, the record, the runtime's preparation. */
static void create_instance(create_t *c, const vmm_net_t *net) {
        _cleanup_free_ char *why = NULL;
        vmm_instance_t *i;
        vmm_t *d = c->d;
        char dir[PATH_MAX];
        int r;

        if (net) {
                c->net = *net;
                c->has_net = true;
        }
        c->net.attached = c->has_net; /* a clone's identity says it: i->net below */
        if (snprintf(dir, sizeof(dir), "%s/%s", d->instances_dir, c->id) >= (int)sizeof(dir)) {
                create_fail(c, -ENAMETOOLONG, "instance directory path too long");
                return;
        }
        /* Never over someone's directory (as mkdir's EEXIST below). */
        if (c->pooled && renameat2(AT_FDCWD, c->pooled->dir, AT_FDCWD, dir, RENAME_NOREPLACE) < 0) {
                int e = errno;

                /* Not even a directory to explain it: the create fails, the scheduler retries. */
                create_fail(c, -e, "cannot make the pool clone %s the instance's %s: %s", c->pooled->dir, dir,
                            strerror(e));
                return;
        }
        if (c->pooled)
                snprintf(c->pooled->dir, sizeof(c->pooled->dir), "%s", dir);
        else if (mkdir(dir, 0700) < 0) {
                int e = errno;

                if (e == EEXIST)
                        /* Left by an instance we could not adopt: never reuse someone's directory. */
                        create_fail(c, -EEXIST, "instance_id: directory %s exists", dir);
                else
                        create_fail(c, -e, "cannot create %s: %s", dir, strerror(e));
                return;
        }
        r = vmm_instance_new(d, dir, &i);
        if (r < 0) {
                rmdir(dir);
                create_fail(c, r, "out of memory");
                return;
        }
        c->i = i;
        i->net = c->net;
        i->runtime = c->rt;
        i->rec.inst.spec = *c->spec;
        *c->spec = (instance_spec_t){};
        i->rec.secret_environment = i->rec.inst.spec.secret_environment != NULL;
        i->rec.image_path = TAKE_PTR(c->image_path);
        i->rec.inst.started_at = now_realtime_ms();
        r = set_state(i, INSTANCE_STATE_STARTING);
        if (r < 0) {
                create_fail(c, r, "out of memory");
                return;
        }
        i->rec.workload_mode = c->mode ? strdup(c->mode) : NULL;
        i->rec.inst.firmware_boot = c->firmware;
        i->rec.console_log = strdup(c->rt->console_file);
        i->rec.inst.address = net ? strdup(net->guest_ip) : NULL;
        if ((c->mode && !i->rec.workload_mode) || !i->rec.console_log || (net && !i->rec.inst.address)) {
                create_fail(c, -ENOMEM, "out of memory");
                return;
        }
        if (!c->firmware) {
                create_launch(c);
                return;
        }
        r = create_firmware_files(c, &why);
        if (r < 0)
                create_done(c, r, why ?: strerror(-r));
        /* else seed_done goes on */
}

/* A paused clone from the pool becomes the instance: its image bound into the clone's mount
 * namespace where its 9p export waits for it, then tracked as if just spawned and restored. */
static void create_from_pool(create_t *c) {
        vmm_instance_t *i = c->i;
        char target[PATH_MAX + 32];
        pid_t pid = c->pooled->pid;
        int r;

        i->rec.inst.template = strdup(c->pooled->key);
        if (!i->rec.inst.template) {
                create_fail(c, -ENOMEM, "out of memory");
                return;
        }
        i->rec.pooled = true;
        snprintf(target, sizeof(target), "%s/" VMM_POOL_EXPORT "/" VMM_POOL_IMAGE, i->dir);
        r = vmm_pool_bind_image(pid, i->rec.image_path, target);
        if (r < 0) {
                create_fail(c, r, "cannot give pool clone %s its image %s: %s", c->pooled->tap, i->rec.image_path,
                            strerror(-r));
                return;
        }
        i->rec.inst.spawned_at_ns = now_realtime_ns();
        i->rec.inst.pid = pid;
        r = vmm_record_save(i->dir, &i->rec);
        if (r < 0) {
                create_fail(c, r, "cannot write %s/" INSTANCE_RECORD_FILE ": %s", i->dir, strerror(-r));
                return;
        }
        /* The instance owns the QEMU from here on. */
        c->pooled->pid = 0;
        c->pooled->dir[0] = '\0';
        vmm_pool_clone_discard(&c->pooled);
        log_debug("Instance %s: a clone of template %s from the pool (pid %d)", id_of(i), i->rec.inst.template,
                  (int)pid);
        create_track(c, pid);
}

/* A clone's volumes go over 9p, served by QEMU from the directories virtiofsd would have shared
 * (config and secret files written as for it). 0, or 1: a path 9p's option syntax cannot carry,
 * boot cold. */
static int clone_volumes(create_t *c, vmm_launch_volume_t *volumes, char (*files_dirs)[PATH_MAX], char **ret_why) {
        vmm_instance_t *i = c->i;

        for (size_t k = 0; k < i->rec.inst.spec.n_volumes && k < VOLUMES_MAX; k++) {
                char socket[64], log[96];
                vmm_fs_export_t e;
                int r;

                r = vmm_volume_export(c->d, i->dir, &i->rec, k, socket, sizeof(socket), log, sizeof(log), files_dirs[k],
                                      PATH_MAX, &e, ret_why);
                if (r < 0)
                        return r;
                if (strchr(e.source, ','))
                        return 1;
                volumes[k].path = e.source;
                volumes[k].readonly = e.readonly;
        }
        return 0;
}

/* Everything the VMM needs is there: the runtime's preparation, the record, virtiofsd, spawn. */
static void create_launch(create_t *c) {
        _cleanup_free_ char *why = NULL;
        vmm_launch_t launch = { .kernel = c->kernel, .initrd = c->initrd };
        vmm_launch_volume_t volumes[VOLUMES_MAX] = {};
        char sockets[VOLUMES_MAX][64], files_dirs[VOLUMES_MAX][PATH_MAX];
        vmm_instance_t *i = c->i;
        vmm_t *d = c->d;
        int r;

        for (size_t k = 0; k < i->rec.inst.spec.n_volumes && k < VOLUMES_MAX; k++) {
                vmm_volume_socket(&i->rec.inst.spec.volumes[k], sockets[k], sizeof(sockets[k]));
                volumes[k].tag = i->rec.inst.spec.volumes[k].tag;
                volumes[k].socket = sockets[k];
        }
        launch.volumes = volumes;
        launch.n_volumes = i->rec.inst.spec.n_volumes;

        if (c->pooled) {
                create_from_pool(c);
                return;
        }
        launch.net = c->has_net ? &c->net : NULL;
        launch.fs_socket = c->mode && !streq(c->mode, "disk") ? VMM_FS_SOCKET : NULL;
        if (!c->template_key && !i->rec.inst.spawned_at_ns) {
                /* Chosen once: a clone that failed to restore comes back here, to boot cold. */
                r = vmm_template_choose(i, c->rt, c->mode, c->firmware || c->disk_format, c->kernel, c->initrd,
                                        c->has_net, &c->template_key, &c->template_dir);
                if (r < 0)
                        log_warning_errno(r, "Instance %s: templates unusable, booting cold: %m", id_of(i));
                r = c->template_key ? clone_volumes(c, volumes, files_dirs, &why) : 0;
                if (r < 0) {
                        create_fail(c, r, "%s", why ?: strerror(-r));
                        return;
                }
                if (r > 0) {
                        log_info("Instance %s: a volume's path holds a ',' (9p option syntax): booting cold", id_of(i));
                        free(TAKE_PTR(c->template_key));
                        free(TAKE_PTR(c->template_dir));
                }
        }
        if (c->template_key) {
                i->rec.inst.template = strdup(c->template_key);
                if (!i->rec.inst.template) {
                        create_fail(c, -ENOMEM, "out of memory");
                        return;
                }
                launch.template_dir = c->template_dir;
                launch.ninep_export = i->rec.image_path;
                launch.fs_socket = NULL; /* 9p, served by QEMU itself */
        }
        if (c->firmware) {
                launch.boot_disk = c->disk.path;
                launch.boot_disk_format = c->disk.format;
                launch.seed = c->seed_path;
        } else if (c->disk_format) {
                launch.disk = i->rec.image_path;
                launch.disk_format = c->disk_format;
        }
        r = c->rt->prepare(i, vmm_runtime_state(d, c->rt), &launch, &why);
        if (r < 0) {
                create_done(c, r, why);
                return;
        }
        /* Written before the spawn so that a directory always explains itself. */
        r = vmm_record_save(i->dir, &i->rec);
        if (r < 0) {
                create_fail(c, r, "cannot write %s/" INSTANCE_RECORD_FILE ": %s", i->dir, strerror(-r));
                return;
        }
        if (launch.fs_socket) {
                r = vmm_fs_start(i->dir, i->rec.image_path, &i->rec, &why);
                if (r < 0) {
                        create_fail(c, r, "cannot start virtiofsd for %s: %s", i->rec.image_path, why ?: strerror(-r));
                        return;
                }
        }
        create_start_volumes_fs(c);
}

static void on_attached(int error, const vmm_net_t *net, const char *why, void *userdata) {
        create_t *c = userdata;

        if (error < 0) {
                create_done(c, error, why);
                return;
        }
        c->attached = true;
        create_instance(c, net);
}

int vmm_instance_create(vmm_t *d, instance_spec_t **spec_p, vmm_create_fn fn, void *userdata, char **ret_error) {
        instance_spec_t *spec = *spec_p;
        _cleanup_free_ char *image_path = NULL;
        const vmm_runtime_t *rt = NULL;
        const char *mode = NULL, *disk_format = NULL;
        bool firmware = false;
        vmm_launch_t boot = {};
        create_t *c;
        int r;

        r = check_spec(d, spec, &rt, ret_error);
        if (r < 0)
                return r;
        if (vmm_instance_get(d, spec->instance_id) || zhashx_lookup(d->creating, spec->instance_id))
                return error_set(ret_error, -EEXIST, "instance_id: %s exists", spec->instance_id);
        /* Resolved once, here: a symlinked image runs exactly as its target (virtiofsd refuses a
         * symlink as its source), and the VM keeps what it was given if the link changes later. */
        image_path = realpath(spec->image, NULL);
        if (!image_path)
                return error_set(ret_error, -EINVAL, "image: %s: %s", spec->image, strerror(errno));
        if (strchr(image_path, ','))
                return error_set(ret_error, -EINVAL,
                                 "image: %s resolves to %s, which contains ',' (virtiofsd and VMM option syntax)",
                                 spec->image, image_path);
        r = image_mode(spec, image_path, &mode, &disk_format, &firmware, ret_error);
        if (r < 0)
                return r;
        if (firmware) {
                /* An environment cloud-init cannot carry is the spec's fault: refused now, naming
                 * the key, rather than after netd attached the network. */
                _cleanup_(vmm_seed_files_clear) vmm_seed_files_t files = {};
                vmm_seed_mount_t mounts[VOLUMES_MAX];
                vmm_seed_spec_t seed = { .instance_id = spec->instance_id,
                                         .environment = spec->environment,
                                         .secret_environment = spec->secret_environment,
                                         .mounts = mounts,
                                         .n_mounts = seed_mounts(spec, mounts) };

                r = vmm_seed_render(&seed, &files, ret_error);
                if (r < 0)
                        return r == -ENOMEM ? r : -EINVAL;
        }
        r = boot_files(d, spec, &boot, ret_error);
        if (r < 0)
                return r;
        r = rt->check(vmm_runtime_state(d, rt), spec, ret_error);
        if (r < 0)
                return r;

        c = calloc(1, sizeof(*c));
        if (!c)
                return error_set(ret_error, -ENOMEM, "out of memory");
        *c = (create_t){ .d = d,
                         .rt = rt,
                         .mode = mode,
                         .disk_format = disk_format,
                         .firmware = firmware,
                         .fn = fn,
                         .userdata = userdata,
                         .image_path = TAKE_PTR(image_path),
                         .kernel = strdup(boot.kernel),
                         .initrd = strdup(boot.initrd) };
        snprintf(c->id, sizeof(c->id), "%s", spec->instance_id);
        if (!c->kernel || !c->initrd || zhashx_insert(d->creating, c->id, c) < 0) {
                create_free(c);
                return error_set(ret_error, -ENOMEM, "out of memory");
        }
        c->spec = TAKE_PTR(*spec_p);
        /* Taken before netd is asked: netd makes the clone's TAP the instance's. */
        c->pooled = vmm_template_take_clone(d, rt, mode, firmware || disk_format, c->spec, c->kernel, c->initrd,
                                            vmm_net_available(d));
        /* Last of the checks: nothing may fail after netd took the host ports but before the VM
         * runs, except what create_done() undoes (vmm_net_detach). */
        r = vmm_net_attach(d, c->spec, c->pooled ? c->pooled->tap : NULL, on_attached, c, NULL, ret_error);
        if (r < 0) {
                zhashx_delete(d->creating, c->id);
                *spec_p = TAKE_PTR(c->spec);
                create_free(c);
                return r;
        }
        if (r > 0)
                create_instance(c, NULL); /* no netd on this host */
        return 0;
}

void vmm_instance_cancel_creates(vmm_t *d) {
        zlistx_t *waiting;
        create_t *c;

        /* Those waiting for netd end when its client goes (-ECANCELED); those waiting for their
         * seed or a template's restore end here. */
        if (!d->creating || !(waiting = zlistx_new()))
                return;
        for (c = zhashx_first(d->creating); c; c = zhashx_next(d->creating))
                if (c->seed || c->restore)
                        zlistx_add_end(waiting, c);
        while ((c = zlistx_detach(waiting, NULL)))
                create_fail(c, -ECANCELED, "vmm-driver is stopping");
        zlistx_destroy(&waiting);
}

/* ---- transitions ---------------------------------------------------------------------------- */

void vmm_instance_on_running(vmm_instance_t *i) {
        if (!state_is(i, INSTANCE_STATE_STARTING))
                return;
        if (set_state(i, INSTANCE_STATE_RUNNING) < 0)
                return;
        log_debug("Instance %s: running", id_of(i));
        vmm_publish(i->vmm, BUS_EVENT_INSTANCE_RUNNING, i);
        vmm_instance_save(i);
        /* A disk booted by its firmware is ready as Ring's are: once its VMM runs. Its health
         * checks gate the deployment; an agent the image may carry says nothing more. */
        if (i->rec.inst.firmware_boot)
                vmm_instance_on_ready(i);
}

void vmm_instance_on_ready(vmm_instance_t *i) {
        uint64_t read_ns = now_realtime_ns(); /* before on_running's work: the ready frame was just read */

        /* The agent can only answer from a running VMM, even if its control channel was slower to tell us. */
        vmm_instance_on_running(i);
        if (!state_is(i, INSTANCE_STATE_RUNNING))
                return;
        if (set_state(i, INSTANCE_STATE_READY) < 0)
                return;
        i->rec.inst.ready_at_ns = read_ns;
        i->rec.inst.ready_at = read_ns / 1000000;
        log_info("Instance %s: ready after %" PRIu64 " ms", id_of(i), i->rec.inst.ready_at - i->rec.inst.started_at);
        vmm_publish(i->vmm, BUS_EVENT_INSTANCE_READY, i);
        vmm_instance_save(i);
}

void vmm_instance_on_shutdown_event(vmm_instance_t *i, const char *reason) {
        char *s = strdup(reason);

        if (!s)
                return;
        free(i->rec.shutdown_reason);
        i->rec.shutdown_reason = s;
        log_debug("Instance %s: VMM shutting down (%s)", id_of(i), reason);
}

void vmm_instance_on_exit(vmm_instance_t *i, const char *reason, int64_t status) {
        bool never_ran = state_is(i, INSTANCE_STATE_STARTING);
        char *r;

        vmm_watch_stop(i);
        if (i->runtime)
                i->runtime->disconnect(i);
        vmm_agent_stop(i);
        /* In kit mode the workload's exit is the instance's: a job's result. The agent ends the VM
         * after it by a reset where the guest cannot power off (agent_power.c): still a clean end. */
        if (i->rec.workload_exited) {
                status = i->rec.workload_status;
                if (streq(reason, "guest-reset"))
                        reason = "guest-shutdown";
        }
        r = strdup(reason);
        if (!r || set_state(i, INSTANCE_STATE_EXITED) < 0) {
                vmm_fs_stop(&i->rec);
                free(r);
                log_error("Instance %s: out of memory recording its exit", id_of(i));
                return;
        }
        i->rec.inst.exited_at = now_realtime_ms();
        free(i->rec.inst.exit_reason);
        i->rec.inst.exit_reason = r;
        i->rec.inst.exit_status = status;
        free(i->rec.inst.exit_message);
        i->rec.inst.exit_message = NULL;
        /* An exit nobody asked for: the VMM's own last words say why (a kernel it cannot load,
         * a firmware that does not boot, a signal and from whom), so the user need not find them. */
        if ((streq(reason, "crashed") || streq(reason, "killed")) && i->runtime) {
                char path[PATH_MAX];

                /* A VMM that never ran may have lost a virtiofsd at its start: then that is the
                 * cause, and the VMM's words would only say that a socket closed. */
                snprintf(path, sizeof(path), "%s/%s", i->dir, i->runtime->output_file);
                if ((!never_ran || vmm_fs_failed(i->dir, &i->rec, &i->rec.inst.exit_message) == 0) &&
                    read_file_tail(path, VMM_OUTPUT_TAIL_MAX, &i->rec.inst.exit_message) >= 0 &&
                    !*i->rec.inst.exit_message) {
                        free(i->rec.inst.exit_message);
                        i->rec.inst.exit_message = NULL;
                }
        }
        /* Publish first: the exit event is what the scheduler waits for. Even before virtiofsd
         * goes: it holds the guest's RAM (a shared memfd), so its end frees that and takes as long
         * as QEMU's own teardown did (make bench: 40 ms here under load). */
        vmm_publish(i->vmm, BUS_EVENT_INSTANCE_EXITED, i);
        vmm_fs_stop(&i->rec);
        /* The seed holds the environment, the config and secret volumes their files: they live
         * only as long as the VM. */
        if (i->rec.inst.firmware_boot)
                vmm_seed_remove(i->dir);
        vmm_volumes_remove_files(i->vmm, &i->rec.inst.spec);
        log_info("Instance %s: VMM pid %" PRIi64 " exited (%s, status %" PRIi64 ")", id_of(i), i->rec.inst.pid, reason,
                 status);
        vmm_instance_save(i);
        if (i->rec.remove_on_exit)
                (void)vmm_instance_remove(i);
}

/* ---- stop / remove -------------------------------------------------------------------------- */

int vmm_instance_stop(vmm_instance_t *i, bool remove) {
        uint64_t timeout = vmm_config(i->vmm)->vmm_driver.stop_timeout_ms;
        int r;

        if (!vmm_instance_alive(i))
                return remove ? vmm_instance_remove(i) : 0;
        if (state_is(i, INSTANCE_STATE_STOPPING)) {
                if (remove && !i->rec.remove_on_exit) {
                        i->rec.remove_on_exit = true;
                        vmm_instance_save(i);
                }
                return 0;
        }
        r = set_state(i, INSTANCE_STATE_STOPPING);
        if (r < 0)
                return r;
        i->rec.stop_requested_at = now_realtime_ms();
        i->rec.remove_on_exit = remove;
        vmm_publish(i->vmm, BUS_EVENT_INSTANCE_STOPPING, i);
        vmm_instance_save(i);

        /* Both channels: the agent stops the workload cleanly, the VMM's powerdown covers a
         * guest whose agent is not up; SIGKILL is the backstop. The agent gets three quarters
         * of the timeout so the guest kernel has time to power off before the kill. */
        r = vmm_agent_shutdown(i, timeout * 3 / 4);
        if (r < 0)
                log_debug_errno(r, "Instance %s: no agent shutdown: %m", id_of(i));
        r = i->runtime ? i->runtime->shutdown(i) : -ENOTCONN;
        if (r < 0)
                log_debug_errno(r, "Instance %s: no powerdown through the VMM: %m", id_of(i));
        vmm_watch_arm_kill(i, timeout);
        log_info("Instance %s: stopping%s", id_of(i), remove ? " (remove on exit)" : "");
        return 0;
}

int vmm_instance_remove(vmm_instance_t *i) {
        vmm_t *d = i->vmm;
        int r;

        if (vmm_instance_alive(i))
                return -EBUSY;
        r = rm_rf(i->dir);
        if (r < 0)
                return log_warning_errno(r, "Failed to remove %s: %m", i->dir);
        /* Its TAP and published ports go with the directory: nothing of it is left behind. */
        vmm_net_detach(d, id_of(i));
        vmm_publish(d, BUS_EVENT_INSTANCE_REMOVED, i);
        log_info("Instance %s: removed", id_of(i));
        zhashx_delete(d->instances, id_of(i));
        vmm_instance_free(i);
        return 0;
}
