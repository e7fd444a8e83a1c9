/* vmm_template.c: the templates on this host: one per boot profile, keyed by a hash of every input, made in the background, checked before each restore, dropped when damaged or superseded. */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/mp.h"
#include "proto/schema.h"
#include "services/vmm-driver/vmm_job.h"
#include "services/vmm-driver/vmm_pool.h"
#include "services/vmm-driver/vmm_template.h"

#define STATE_MAX (64u << 20)        /* a saved device state is ~200 KiB; more is not ours */
#define RETRY_AFTER_FAILURE_MS 60000 /* a profile whose template could not be made boots cold meanwhile */

typedef struct entry {
        char key[VMM_TEMPLATE_KEY_LEN + 1];
        char *dir;
        char *profile_id; /* the inputs that are not files: a newer template of the same replaces it */
        /* What the files were when saved: a restore from anything else is refused. */
        uint64_t memory_ino, memory_size, memory_mtime_ns;
        uint64_t state_sum;
        /* The profile it was made for (older template.json files lack it: no pool for those). */
        bool has_profile;
        vmm_profile_t profile;
        char *kernel, *initrd;
} entry_t;

/* One template being made, on a thread: vmm_template_ops_t.make blocks for a whole boot. */
typedef struct build {
        vmm_templates_t *t;
        vmm_job_t *job;
        const vmm_runtime_t *rt;
        const vmm_template_ops_t *ops;
        const void *state;
        vmm_profile_t profile;
        char *kernel, *initrd;
        char key[VMM_TEMPLATE_KEY_LEN + 1];
        char *profile_id;
        char *description;
        char *tmp_dir, *final_dir;
        pid_t pid; /* the template's QEMU while it runs (vmm_template_ops_t.make) */
        int error;
        char *why;
        uint64_t started_ms;
} build_t;

struct vmm_templates {
        vmm_t *d;
        char *dir;
        zhashx_t *ready;         /* key -> entry_t* (owned) */
        zhashx_t *failed;        /* key -> (uintptr_t) monotonic ms of the failure */
        build_t *build;          /* the one being made; NULL: none */
        const vmm_runtime_t *rt; /* qemu's row: the only runtime with templates */
        vmm_pool_t *pool;        /* templates.pool clones of each; NULL: no pool */
};

/* FNV-1a (fnv1a_64) names a template and checks its state file for accidental damage (the
 * directory is root's; this is not a defence against its owner). */

static void entry_free(void **p) {
        entry_t *e = *p;

        if (!e)
                return;
        free(e->dir);
        free(e->profile_id);
        free(e->kernel);
        free(e->initrd);
        free(e);
        *p = NULL;
}

static uint64_t mtime_ns(const struct stat *st) {
        return (uint64_t)st->st_mtim.tv_sec * 1000000000u + (uint64_t)st->st_mtim.tv_nsec;
}

static int state_sum(const char *dir, uint64_t *ret) {
        _cleanup_free_ char *data = NULL;
        char path[PATH_MAX];
        size_t size;
        int r;

        snprintf(path, sizeof(path), "%s/" VMM_TEMPLATE_STATE, dir);
        r = read_file(path, STATE_MAX, &data, &size);
        if (r < 0)
                return r;
        *ret = fnv1a_64(data, size);
        return 0;
}

/* The template's files are what was saved: the memory file untouched (inode, size, mtime), the
 * state file's bytes the same. Cheap enough for every restore (the state is ~200 KiB). */
static int entry_verify(const entry_t *e, char *why, size_t why_size) {
        char path[PATH_MAX];
        struct stat st;
        uint64_t sum;
        int r;

        snprintf(path, sizeof(path), "%s/" VMM_TEMPLATE_MEMORY, e->dir);
        if (stat(path, &st) < 0)
                return snprintf(why, why_size, "%s: %s", path, strerror(errno)), -errno;
        if ((uint64_t)st.st_ino != e->memory_ino || (uint64_t)st.st_size != e->memory_size ||
            mtime_ns(&st) != e->memory_mtime_ns)
                return snprintf(why, why_size, "%s changed since it was saved", path), -EBADMSG;
        r = state_sum(e->dir, &sum);
        if (r < 0)
                return snprintf(why, why_size, "%s/" VMM_TEMPLATE_STATE ": %s", e->dir, strerror(-r)), r;
        if (sum != e->state_sum)
                return snprintf(why, why_size, "%s/" VMM_TEMPLATE_STATE " changed since it was saved", e->dir),
                       -EBADMSG;
        return 0;
}

static void entry_load_profile(entry_t *e, const json_t *p) {
        const char *kernel = json_string_value(json_object_get(p, "kernel"));
        const char *initrd = json_string_value(json_object_get(p, "initrd"));

        if (!kernel || !initrd || !json_is_integer(json_object_get(p, "cpus")) ||
            !json_is_integer(json_object_get(p, "memory_mib")) || !(e->kernel = strdup(kernel)) ||
            !(e->initrd = strdup(initrd)))
                return;
        e->profile = (vmm_profile_t){ .kernel = e->kernel,
                                      .initrd = e->initrd,
                                      .cpus = (uint32_t)json_integer_value(json_object_get(p, "cpus")),
                                      .memory_mib = (uint32_t)json_integer_value(json_object_get(p, "memory_mib")),
                                      .net = json_is_true(json_object_get(p, "net")),
                                      .fs = json_is_true(json_object_get(p, "fs")),
                                      .volumes = (uint32_t)json_integer_value(json_object_get(p, "volumes")) };
        e->has_profile = true;
}

/* template.json -> entry; -EBADMSG when it is not one of ours. */
static int entry_load(const char *dir, const char *key, entry_t **ret) {
        _cleanup_free_ char *text = NULL;
        char path[PATH_MAX];
        json_t *o, *m;
        entry_t *e;
        int r;

        snprintf(path, sizeof(path), "%s/" VMM_TEMPLATE_INFO, dir);
        r = read_file(path, 1u << 20, &text, NULL);
        if (r < 0)
                return r;
        o = json_loads(text, 0, NULL);
        m = o ? json_object_get(o, "memory") : NULL;
        if (!json_is_object(m) || !json_is_string(json_object_get(o, "profile_id")) ||
            !json_is_string(json_object_get(o, "state_sum")) ||
            !streq(json_string_value(json_object_get(o, "key")) ?: "", key)) {
                json_decref(o);
                return -EBADMSG;
        }
        e = calloc(1, sizeof(*e));
        if (!e || !(e->dir = strdup(dir)) ||
            !(e->profile_id = strdup(json_string_value(json_object_get(o, "profile_id"))))) {
                void *p = e;
                entry_free(&p);
                json_decref(o);
                return -ENOMEM;
        }
        snprintf(e->key, sizeof(e->key), "%s", key);
        e->memory_ino = (uint64_t)json_integer_value(json_object_get(m, "ino"));
        e->memory_size = (uint64_t)json_integer_value(json_object_get(m, "size"));
        e->memory_mtime_ns = (uint64_t)json_integer_value(json_object_get(m, "mtime_ns"));
        e->state_sum = strtoull(json_string_value(json_object_get(o, "state_sum")), NULL, 16);
        entry_load_profile(e, json_object_get(o, "profile"));
        json_decref(o);
        *ret = e;
        return 0;
}

static bool key_valid(const char *name) {
        if (strlen(name) != VMM_TEMPLATE_KEY_LEN)
                return false;
        for (const char *p = name; *p; p++)
                if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
                        return false;
        return true;
}

/* What an earlier vmm-driver made is kept (templates outlive us, as VMs do); half-made ones go. */
static void scan(vmm_templates_t *t) {
        DIR *dir = opendir(t->dir);
        struct dirent *de;

        if (!dir)
                return;
        while ((de = readdir(dir))) {
                char path[PATH_MAX];
                entry_t *e;

                if (de->d_name[0] == '.' && (streq(de->d_name, ".") || streq(de->d_name, "..")))
                        continue;
                snprintf(path, sizeof(path), "%s/%s", t->dir, de->d_name);
                if (!key_valid(de->d_name) || entry_load(path, de->d_name, &e) < 0) {
                        log_info("Templates: removing %s (not a complete template)", path);
                        (void)rm_rf(path);
                        continue;
                }
                if (zhashx_insert(t->ready, e->key, e) < 0) {
                        void *p = e;
                        entry_free(&p);
                }
        }
        closedir(dir);
}

/* Not for a profile with volumes: a paused clone's 9p devices opened their directories before
 * any instance's volumes were known. */
static void pool_want(vmm_templates_t *t, const entry_t *e) {
        if (e->has_profile && e->profile.volumes == 0)
                vmm_pool_want(t->pool, t->rt, e->key, e->dir, &e->profile);
}

static int pool_size_check(uint32_t size) {
        if (size > VMM_TEMPLATES_POOL_MAX)
                return log_error_errno(EINVAL, "vmm_driver.templates.pool: must be at most %u, got %u",
                                       VMM_TEMPLATES_POOL_MAX, size);
        return 0;
}

/* A pool of size clones of each template kept (none for 0). */
static int pool_start(vmm_templates_t *t, uint32_t size) {
        int r = vmm_pool_new(t->d, size, &t->pool);

        if (r < 0 || !t->pool)
                return r;
        log_info("Templates: pool of %u clones each", size);
        for (entry_t *e = zhashx_first(t->ready); e; e = zhashx_next(t->ready))
                pool_want(t, e);
        return 0;
}

int vmm_templates_new(vmm_t *d, vmm_templates_t **ret) {
        const husk_config_t *c = vmm_config(d);
        vmm_templates_t *t;
        int r;

        *ret = NULL;
        /* Clones a pool left (vmm-driver stopped or was killed): ended, their directories removed,
         * whether templates are still on or not. */
        vmm_pool_end_leftovers(d);
        if (!c->vmm_driver.templates_qemu)
                return 0;
        r = pool_size_check(c->vmm_driver.templates_pool);
        if (r < 0)
                return r;
        t = calloc(1, sizeof(*t));
        if (!t || !(t->dir = strdup(c->vmm_driver.templates_dir)) || !(t->ready = zhashx_new()) ||
            !(t->failed = zhashx_new())) {
                vmm_templates_free(t);
                return -ENOMEM;
        }
        t->d = d;
        zhashx_set_destructor(t->ready, entry_free);
        r = vmm_runtime_lookup(c, "qemu", &t->rt, NULL);
        if (r < 0) {
                vmm_templates_free(t);
                return r;
        }
        r = mkdir_p(t->dir, 0700);
        if (r < 0) {
                log_error_errno(r, "Cannot create the templates directory %s: %m", t->dir);
                vmm_templates_free(t);
                return r;
        }
        scan(t);
        log_info("Templates: on for qemu, in %s (%zu kept)", t->dir, zhashx_size(t->ready));
        r = pool_start(t, c->vmm_driver.templates_pool);
        if (r < 0) {
                vmm_templates_free(t);
                return r;
        }
        *ret = t;
        return 0;
}

int vmm_templates_check_reload(const vmm_t *d, const husk_config_t *fresh) {
        const husk_config_t *c = vmm_config(d);
        int r = pool_size_check(fresh->vmm_driver.templates_pool);

        if (r < 0)
                return r;
        if (fresh->vmm_driver.templates_qemu != c->vmm_driver.templates_qemu ||
            (fresh->vmm_driver.templates_qemu && !streq(fresh->vmm_driver.templates_dir, c->vmm_driver.templates_dir)))
                log_notice("vmm_driver.templates: turning templates on or off, or another dir, applies at the next "
                           "restart of husk-vmm-driver");
        return 0;
}

void vmm_templates_reload(vmm_t *d, const husk_config_t *fresh) {
        vmm_templates_t *t = d->templates;
        uint32_t size = fresh->vmm_driver.templates_pool;
        int r;

        if (!t)
                return;
        if (size == 0) {
                if (t->pool)
                        log_info("Templates: the pool is now off; its clones end");
                vmm_pool_free(t->pool);
                t->pool = NULL;
                return;
        }
        if (t->pool) {
                vmm_pool_resize(t->pool, size);
                log_info("Templates: pool of %u clones each", size);
                return;
        }
        r = pool_start(t, size);
        if (r < 0)
                log_warning_errno(r, "Templates: cannot start a pool of %u clones, ignoring: %m", size);
}

static void build_end(build_t *b);

void vmm_templates_free(vmm_templates_t *t) {
        if (!t)
                return;
        vmm_pool_free(t->pool);
        build_end(t->build);
        zhashx_destroy(&t->ready);
        zhashx_destroy(&t->failed);
        free(t->dir);
        free(t);
}

/* ---- making one ------------------------------------------------------------------------------ */

static int write_info(const build_t *b, char **ret_why) {
        char path[PATH_MAX], sum[17];
        _cleanup_free_ char *text = NULL;
        struct stat st;
        uint64_t s;
        json_t *o;
        int r;

        snprintf(path, sizeof(path), "%s/" VMM_TEMPLATE_MEMORY, b->tmp_dir);
        if (stat(path, &st) < 0)
                return error_set(ret_why, -errno, "%s: %s", path, strerror(errno));
        r = state_sum(b->tmp_dir, &s);
        if (r < 0)
                return error_set(ret_why, r, "%s/" VMM_TEMPLATE_STATE ": %s", b->tmp_dir, strerror(-r));
        snprintf(sum, sizeof(sum), "%016" PRIx64, s);
        o = json_pack("{s:s,s:s,s:s,s:s,s:I,s:{s:I,s:I,s:I},s:{s:s,s:s,s:I,s:I,s:b,s:b,s:I}}", "key", b->key,
                      "profile_id", b->profile_id, "inputs", b->description, "state_sum", sum, "made_at",
                      (json_int_t)now_realtime_ms(), "memory", "ino", (json_int_t)st.st_ino, "size",
                      (json_int_t)st.st_size, "mtime_ns", (json_int_t)mtime_ns(&st), "profile", "kernel",
                      b->profile.kernel, "initrd", b->profile.initrd, "cpus", (json_int_t)b->profile.cpus, "memory_mib",
                      (json_int_t)b->profile.memory_mib, "net", b->profile.net, "fs", b->profile.fs, "volumes",
                      (json_int_t)b->profile.volumes);
        text = o ? json_dumps(o, JSON_INDENT(2)) : NULL;
        json_decref(o);
        if (!text)
                return error_set(ret_why, -ENOMEM, "out of memory");
        snprintf(path, sizeof(path), "%s/" VMM_TEMPLATE_INFO, b->tmp_dir);
        r = write_file_atomic(path, text, strlen(text), 0600);
        if (r < 0)
                return error_set(ret_why, r, "%s: %s", path, strerror(-r));
        return 0;
}

static void build_work(void *userdata) {
        build_t *b = userdata;

        (void)rm_rf(b->tmp_dir);
        b->error = mkdir_p(b->tmp_dir, 0700);
        if (b->error < 0)
                (void)error_set(&b->why, b->error, "cannot create %s: %s", b->tmp_dir, strerror(-b->error));
        if (b->error >= 0)
                b->error = b->ops->make(b->state, &b->profile, b->tmp_dir, &b->pid, &b->why);
        if (b->error >= 0)
                b->error = write_info(b, &b->why);
        if (b->error >= 0 && rename(b->tmp_dir, b->final_dir) < 0)
                b->error = error_set(&b->why, -errno, "cannot rename %s: %s", b->tmp_dir, strerror(errno));
        if (b->error < 0)
                (void)rm_rf(b->tmp_dir);
}

static void build_free(build_t *b) {
        if (!b)
                return;
        free(b->kernel);
        free(b->initrd);
        free(b->profile_id);
        free(b->description);
        free(b->tmp_dir);
        free(b->final_dir);
        free(b->why);
        free(b);
}

/* At shutdown: end the template's boot (its QEMU killed, the thread then returns at once), wait
 * for the thread and forget the build. */
static void build_end(build_t *b) {
        pid_t pid;

        if (!b)
                return;
        pid = __atomic_load_n(&b->pid, __ATOMIC_SEQ_CST);
        if (pid > 0)
                kill(pid, SIGKILL);
        vmm_job_wait(&b->job);
        b->t->build = NULL;
        build_free(b);
}

/* Older templates of the same profile are superseded (their files change when a kit is rebuilt):
 * removed. Clones still running keep their mapping of the memory file. */
static void drop_superseded(vmm_templates_t *t, const char *profile_id, const char *keep) {
        zlistx_t *old = zlistx_new();
        entry_t *e;
        char *key;

        if (!old)
                return;
        for (e = zhashx_first(t->ready); e; e = zhashx_next(t->ready))
                if (streq(e->profile_id, profile_id) && !streq(e->key, keep))
                        zlistx_add_end(old, e->key);
        while ((key = zlistx_detach(old, NULL))) {
                e = zhashx_lookup(t->ready, key);
                log_info("Templates: %s superseded, removing %s", key, e->dir);
                vmm_pool_forget(t->pool, key);
                (void)rm_rf(e->dir);
                zhashx_delete(t->ready, key);
        }
        zlistx_destroy(&old);
}

static void build_done(void *userdata) {
        build_t *b = userdata;
        vmm_templates_t *t = b->t;
        entry_t *e;
        int r;

        t->build = NULL;
        if (b->error < 0) {
                log_warning("Templates: cannot make %s: %s; its instances boot cold", b->key,
                            b->why ?: strerror(-b->error));
                zhashx_update(t->failed, b->key, (void *)(uintptr_t)now_monotonic_ms());
        } else if ((r = entry_load(b->final_dir, b->key, &e)) < 0) {
                log_warning_errno(r, "Templates: cannot read back %s: %m", b->final_dir);
                (void)rm_rf(b->final_dir);
        } else {
                log_info("Templates: %s made in %" PRIu64 " ms (%s)", b->key, now_monotonic_ms() - b->started_ms,
                         b->final_dir);
                zhashx_delete(t->failed, b->key);
                zhashx_update(t->ready, e->key, e);
                drop_superseded(t, e->profile_id, e->key);
                pool_want(t, e);
        }
        build_free(b);
}

static int build_start(vmm_templates_t *t, const vmm_runtime_t *rt, const vmm_profile_t *p, const char *key,
                       const char *profile_id, const char *description) {
        build_t *b = calloc(1, sizeof(*b));
        int r;

        if (!b)
                return -ENOMEM;
        b->t = t;
        b->rt = rt;
        b->ops = rt->templates;
        b->state = vmm_runtime_state(t->d, rt);
        b->profile = *p;
        b->started_ms = now_monotonic_ms();
        snprintf(b->key, sizeof(b->key), "%s", key);
        b->kernel = strdup(p->kernel);
        b->initrd = strdup(p->initrd);
        b->profile_id = strdup(profile_id);
        b->description = strdup(description);
        if (!b->kernel || !b->initrd || !b->profile_id || !b->description ||
            asprintf(&b->tmp_dir, "%s/.making-%s", t->dir, key) < 0 ||
            asprintf(&b->final_dir, "%s/%s", t->dir, key) < 0) {
                build_free(b);
                return -ENOMEM;
        }
        b->profile.kernel = b->kernel;
        b->profile.initrd = b->initrd;
        r = vmm_job_start(t->d->loop, build_work, build_done, b, &b->job);
        if (r < 0) {
                build_free(b);
                return r;
        }
        t->build = b;
        log_info("Templates: making %s (%u cpus, %u MiB%s%s)", key, p->cpus, p->memory_mib, p->net ? ", net" : "",
                 p->fs ? ", 9p" : "");
        return 0;
}

/* ---- choosing one for an instance ------------------------------------------------------------ */

static void warn_instance(vmm_instance_t *i, const char *fmt, ...) _printf_(2, 3);
static void warn_instance(vmm_instance_t *i, const char *fmt, ...) {
        _cleanup_free_ char *msg = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&msg, fmt, ap) < 0)
                msg = NULL;
        va_end(ap);
        if (!msg)
                return;
        log_warning("Instance %s: %s", i->rec.inst.spec.instance_id, msg);
        vmm_publish_warning(i, msg);
}

static void drop(vmm_templates_t *t, const char *key) {
        entry_t *e = zhashx_lookup(t->ready, key);

        if (!e)
                return;
        vmm_pool_forget(t->pool, key);
        (void)rm_rf(e->dir);
        zhashx_delete(t->ready, key);
}

void vmm_template_failed(vmm_t *d, const char *key, const char *why) {
        if (!d->templates)
                return;
        log_warning("Templates: %s failed to restore (%s): dropped, made again when next needed", key, why);
        drop(d->templates, key);
}

/* The profile of an instance that may be a clone, its key and its other inputs; 0: it may not
 * (the caller boots it cold), 1: it may. */
static int instance_profile(vmm_templates_t *t, const vmm_runtime_t *rt, const char *mode, bool cold_only,
                            const instance_spec_t *s, const char *kernel, const char *initrd, bool net,
                            vmm_profile_t *ret_profile, char ret_key[static VMM_TEMPLATE_KEY_LEN + 1],
                            char **ret_description, char **ret_profile_id) {
        _cleanup_free_ char *description = NULL;
        vmm_profile_t p = { .kernel = kernel,
                            .initrd = initrd,
                            .cpus = s->cpus,
                            .memory_mib = s->memory_mib,
                            .net = net,
                            .fs = true,
                            .volumes = (uint32_t)s->n_volumes };
        int r;

        if (!t || !rt->templates)
                return 0;
        /* Clones serve the image over 9p; only the kit's own workload modes have one. */
        if (cold_only || !mode || (!streq(mode, "rootfs") && !streq(mode, "bundle")))
                return 0;
        r = rt->templates->describe(vmm_runtime_state(t->d, rt), &p, &description);
        if (r < 0)
                return r;
        snprintf(ret_key, VMM_TEMPLATE_KEY_LEN + 1, "%016" PRIx64, fnv1a_64(description, strlen(description)));
        if (ret_profile_id &&
            asprintf(ret_profile_id, "%s:%u:%u:%d:%d:%u", rt->name, p.cpus, p.memory_mib, p.net, p.fs, p.volumes) < 0)
                return -ENOMEM;
        if (ret_description)
                *ret_description = TAKE_PTR(description);
        *ret_profile = p;
        return 1;
}

int vmm_template_choose(vmm_instance_t *i, const vmm_runtime_t *rt, const char *mode, bool cold_only,
                        const char *kernel, const char *initrd, bool net, char **ret_key, char **ret_dir) {
        vmm_templates_t *t = i->vmm->templates;
        const instance_spec_t *s = &i->rec.inst.spec;
        _cleanup_free_ char *description = NULL, *profile_id = NULL;
        char key[VMM_TEMPLATE_KEY_LEN + 1], why[PATH_MAX + 64];
        uintptr_t failed_at;
        vmm_profile_t p;
        entry_t *e;
        int r;

        *ret_key = *ret_dir = NULL;
        r = instance_profile(t, rt, mode, cold_only, s, kernel, initrd, net, &p, key, &description, &profile_id);
        if (r <= 0)
                return r;

        e = zhashx_lookup(t->ready, key);
        if (e) {
                r = entry_verify(e, why, sizeof(why));
                if (r >= 0) {
                        *ret_key = strdup(e->key);
                        *ret_dir = strdup(e->dir);
                        if (!*ret_key || !*ret_dir) {
                                free(*ret_key);
                                *ret_key = NULL;
                                return -ENOMEM;
                        }
                        return 0;
                }
                warn_instance(i, "template %s is damaged (%s): booting cold, it is made again", key, why);
                drop(t, key);
        }
        failed_at = (uintptr_t)zhashx_lookup(t->failed, key);
        if (t->build || (failed_at && now_monotonic_ms() - failed_at < RETRY_AFTER_FAILURE_MS))
                return 0;
        r = build_start(t, rt, &p, key, profile_id, description);
        if (r < 0)
                log_warning_errno(r, "Templates: cannot start making %s, ignoring: %m", key);
        return 0;
}

vmm_pool_clone_t *vmm_template_take_clone(vmm_t *d, const vmm_runtime_t *rt, const char *mode, bool cold_only,
                                          const instance_spec_t *s, const char *kernel, const char *initrd, bool net) {
        vmm_templates_t *t = d->templates;
        char key[VMM_TEMPLATE_KEY_LEN + 1], why[PATH_MAX + 64];
        vmm_profile_t p;
        entry_t *e;

        if (!t || !t->pool ||
            instance_profile(t, rt, mode, cold_only, s, kernel, initrd, net, &p, key, NULL, NULL) <= 0)
                return NULL;
        e = zhashx_lookup(t->ready, key);
        /* A damaged template's clones hold its old state already; vmm_template_choose says why. */
        if (!e || entry_verify(e, why, sizeof(why)) < 0)
                return NULL;
        return vmm_pool_take(t->pool, key);
}

void vmm_template_pool_clone_ready(vmm_t *d) {
        if (d->templates)
                vmm_pool_taken_ready(d->templates->pool);
}

/* ---- template.list, template.drop -------------------------------------------------------------- */

static uint64_t file_size(const char *dir, const char *name) {
        char path[PATH_MAX];
        struct stat st;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        /* Allocated blocks: a template's RAM file holds only the pages its guest touched. */
        return stat(path, &st) < 0 ? 0 : (uint64_t)st.st_blocks * 512u;
}

int vmm_template_method_list(bus_request_t *req, msgpack_packer *pk, void *userdata) {
        vmm_t *d = userdata;
        vmm_templates_t *t = d->templates;
        size_t n = t ? zhashx_size(t->ready) : 0;

        msgpack_pack_array(pk, (uint32_t)n);
        for (entry_t *e = n ? zhashx_first(t->ready) : NULL; e; e = zhashx_next(t->ready)) {
                _cleanup_free_ char *text = NULL;
                char path[PATH_MAX];
                json_t *o;

                snprintf(path, sizeof(path), "%s/" VMM_TEMPLATE_INFO, e->dir);
                (void)read_file(path, 1u << 20, &text, NULL);
                o = text ? json_loads(text, 0, NULL) : NULL;
                msgpack_pack_map(pk, 5);
                mp_pack_kv_str(pk, "key", e->key);
                mp_pack_kv_u64(pk, "pool", vmm_pool_count(t->pool, e->key));
                mp_pack_kv_str(pk, "profile", json_string_value(json_object_get(o, "inputs")) ?: "");
                mp_pack_kv_u64(pk, "size_bytes",
                               file_size(e->dir, VMM_TEMPLATE_MEMORY) + file_size(e->dir, VMM_TEMPLATE_STATE));
                mp_pack_kv_u64(pk, "made_at", (uint64_t)json_integer_value(json_object_get(o, "made_at")));
                json_decref(o);
        }
        return 0;
}

int vmm_template_method_drop(bus_request_t *req, msgpack_packer *pk, void *userdata) {
        vmm_t *d = userdata;
        vmm_templates_t *t = d->templates;
        _cleanup_free_ char *key = NULL;
        entry_t *e;
        int r;

        r = mp_get_str(req->args, "key", PROTO_ID_MAX, &key);
        if (r < 0 && r != -ENOENT)
                return bus_request_fail(req, BUS_ERR_INVALID, "key: must be a string of at most %d bytes",
                                        PROTO_ID_MAX);
        if (key) {
                if (!t || !zhashx_lookup(t->ready, key))
                        return bus_request_fail(req, BUS_ERR_NOT_FOUND, "no template %s", key);
                log_info("Templates: %s dropped on request", key);
                drop(t, key);
        } else
                while (t && (e = zhashx_first(t->ready))) {
                        log_info("Templates: %s dropped on request", e->key);
                        drop(t, e->key);
                }
        msgpack_pack_map(pk, 0);
        return 0;
}
