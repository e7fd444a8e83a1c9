/* logd.c: the logd daemon object: recovery at start, the timers, reload, and shutdown in order. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "lib/log.h"
#include "services/logd/logd.h"

#define TICK_MS 500                    /* partial lines, state saves */
#define SCAN_INTERVAL_MS (30u * 1000u) /* safety net: instance dirs inotify might have missed */
#define PURGE_CHECK_INTERVAL_MS (10u * 60u * 1000u)
#define PURGE_CHECK_FIRST_MS 2000 /* after start: give apiserver's PUB time to reach us too */

void logd_rotation(const husk_config_t *c, const char *runtime, uint64_t *ret_max_bytes, unsigned *ret_backups) {
        /* A runtime without a section of its own rotates like the default one. */
        const husk_runtime_config_t *rt = husk_config_runtime(c, runtime) ?: husk_config_runtime(c, NULL);

        *ret_max_bytes = rt->max_console_log_bytes;
        *ret_backups = rt->max_console_log_backups > LOGD_BACKUPS_MAX ? LOGD_BACKUPS_MAX : rt->max_console_log_backups;
}

/* Every query opens each store's files at once: a deployment with many retained instances
 * needs more descriptors than the soft default. */
static void raise_fd_limit(void) {
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                (void)setrlimit(RLIMIT_NOFILE, &rl);
        }
}

/* The one periodic timer: partial lines that waited long enough are stored, and the state
 * file is saved when instances came or went. */
static int on_tick(zloop_t *loop, int timer_id, void *arg) {
        logd_t *d = arg;
        uint64_t now = now_monotonic_ms();

        for (logd_instance_t *i = zhashx_first(d->instances); i; i = zhashx_next(d->instances))
                logd_instance_flush_partial(i, now);
        logd_state_save_if_dirty(d);
        return 0;
}

static int on_scan(zloop_t *loop, int timer_id, void *arg) {
        logd_t *d = arg;

        logd_watch_scan(d);
        /* The consumed offsets in the state file are informational: refreshed this often. */
        d->state_dirty = true;
        logd_state_save_if_dirty(d);
        return 0;
}

/* Deployments purged while we were down never sent us their event: ask apiserver. */
static int on_purge_check(zloop_t *loop, int timer_id, void *arg) {
        logd_check_purged(arg);
        return 0;
}

static int make_dirs(logd_t *d) {
        const char *subs[] = { "deployments", "spool" };
        int r = mkdir_p(d->dir, 0750);

        if (r < 0)
                return log_error_errno(r, "Failed to create %s: %m", d->dir);
        for (size_t k = 0; k < ELEMENTSOF(subs); k++) {
                _cleanup_free_ char *p = NULL;

                if (asprintf(&p, "%s/%s", d->dir, subs[k]) < 0)
                        return log_error_errno(ENOMEM, "Out of memory");
                r = mkdir_p(p, 0750);
                if (r < 0)
                        return log_error_errno(r, "Failed to create %s: %m", p);
        }
        return 0;
}

/* Spooled capture files nobody in the state owns: left by a crash between the link and the
 * state save (the owner is saved first, so there are none in practice). */
static void clean_spool(logd_t *d) {
        _cleanup_free_ char *spool = NULL;
        DIR *dir;
        struct dirent *de;

        if (asprintf(&spool, "%s/spool", d->dir) < 0)
                return;
        dir = opendir(spool);
        if (!dir)
                return;
        while ((de = readdir(dir))) {
                char id[13];
                logd_instance_t *i;

                if (strlen(de->d_name) != 12 + strlen(".console") || !streq(de->d_name + 12, ".console"))
                        continue;
                memcpy(id, de->d_name, 12);
                id[12] = '\0';
                i = zhashx_lookup(d->instances, id);
                if (!i || i->finished_at) {
                        log_info("Removing %s/%s: no instance being captured owns it", spool, de->d_name);
                        (void)unlinkat(dirfd(dir), de->d_name, 0);
                }
        }
        closedir(dir);
}

int logd_new(husk_daemon_ctx_t *ctx, logd_t **ret) {
        const husk_config_t *c = ctx->config;
        _cleanup_(logd_freep) logd_t *d = NULL;
        int r;

        d = calloc(1, sizeof(*d));
        if (!d)
                return log_error_errno(ENOMEM, "Out of memory");
        d->ctx = ctx;
        d->loop = ctx->loop;
        d->inotify_fd = -1;
        d->root_wd = -1;
        d->dir = strdup(c->logd.dir);
        d->instances_dir = strdup(c->vmm_driver.instances_dir);
        d->instances = zhashx_new();
        d->by_wd = zhashx_new();
        if (!d->dir || !d->instances_dir || !d->instances || !d->by_wd)
                return log_error_errno(ENOMEM, "Out of memory");
        raise_fd_limit();
        r = make_dirs(d);
        if (r < 0)
                return r;

        /* What we knew, then what the disk says: stores without a state entry, instance
         * directories (live VMMs), spooled captures of instances removed meanwhile. */
        r = logd_state_load(d);
        if (r < 0)
                return r;
        r = logd_state_adopt_stores(d);
        if (r < 0)
                log_warning_errno(r, "Failed to look for stores under %s, ignoring: %m", d->dir);
        r = logd_bus_open(d);
        if (r < 0)
                return r;
        r = logd_watch_open(d);
        if (r < 0)
                return r;
        logd_watch_scan(d);
        clean_spool(d);
        logd_retain_all(d);
        d->state_dirty = true;
        logd_state_save_if_dirty(d);

        d->tick_timer = zloop_timer(d->loop, TICK_MS, 0, on_tick, d);
        d->scan_timer = zloop_timer(d->loop, SCAN_INTERVAL_MS, 0, on_scan, d);
        d->purge_check_timer = zloop_timer(d->loop, PURGE_CHECK_INTERVAL_MS, 0, on_purge_check, d);
        zloop_timer(d->loop, PURGE_CHECK_FIRST_MS, 1, on_purge_check, d);
        log_info("Capturing the consoles of %zu instances under %s into %s", zhashx_size(d->instances),
                 d->instances_dir, d->dir);
        *ret = TAKE_PTR(d);
        return 0;
}

void logd_free(logd_t *d) {
        logd_instance_t *i;

        if (!d)
                return;
        if (d->instances) {
                d->state_dirty = true; /* the consumed offsets, as of now */
                if (d->dir)
                        logd_state_save_if_dirty(d);
                while ((i = zhashx_first(d->instances))) {
                        zhashx_delete(d->instances, i->id);
                        logd_instance_free(i);
                }
        }
        logd_watch_close(d);
        logd_bus_close(d);
        zhashx_destroy(&d->instances);
        zhashx_destroy(&d->by_wd);
        free(d->dir);
        free(d->instances_dir);
        free(d);
}

int logd_reload(husk_daemon_ctx_t *ctx, const husk_config_t *fresh) {
        logd_t *d = ctx->userdata;

        if (!streq(fresh->logd.dir, d->dir))
                return log_error_errno(EINVAL, "logd.dir cannot change on reload (%s -> %s); restart husk-logd", d->dir,
                                       fresh->logd.dir);
        if (!streq(fresh->vmm_driver.instances_dir, d->instances_dir))
                return log_error_errno(EINVAL, "vmm_driver.instances_dir cannot change on reload; restart husk-logd");
        /* New rotation settings apply from the next record on. */
        for (logd_instance_t *i = zhashx_first(d->instances); i; i = zhashx_next(d->instances))
                if (i->store_open)
                        logd_rotation(fresh, i->runtime, &i->store.max_bytes, &i->store.backups);
        return 0;
}
