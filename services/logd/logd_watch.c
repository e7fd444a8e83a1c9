/* logd_watch.c: finding instances and their capture files with inotify on the instances directory. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"
#include "services/logd/logd.h"

#define ROOT_EVENTS (IN_CREATE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)
#define DIR_EVENTS                                                                                           \
        (IN_CREATE | IN_MOVED_TO | IN_MODIFY | IN_CLOSE_WRITE | IN_DELETE | IN_MOVED_FROM | IN_DELETE_SELF | \
         IN_MOVE_SELF | IN_ONLYDIR)

static void wd_key(int wd, char *buf, size_t size) { snprintf(buf, size, "%d", wd); }

static logd_instance_t *by_wd(logd_t *d, int wd) {
        char key[16];

        wd_key(wd, key, sizeof(key));
        return zhashx_lookup(d->by_wd, key);
}

void logd_watch_forget(logd_t *d, logd_instance_t *i) {
        char key[16];

        if (i->dir_wd < 0)
                return;
        wd_key(i->dir_wd, key, sizeof(key));
        zhashx_delete(d->by_wd, key);
        if (d->inotify_fd >= 0)
                (void)inotify_rm_watch(d->inotify_fd, i->dir_wd);
        i->dir_wd = -1;
}

/* What instance.json says: whose instance it is, which runtime, where its console goes, whether
 * the VMM exited. vmm-driver writes it (atomically) before it starts the VMM. */
static int read_record(logd_instance_t *i, instance_record_t *ret) {
        _cleanup_free_ char *path = NULL, *text = NULL;
        int r;

        if (asprintf(&path, "%s/" INSTANCE_RECORD_FILE, i->src_dir) < 0) {
                path = NULL;
                return -ENOMEM;
        }
        r = read_file(path, INSTANCE_RECORD_MAX, &text, NULL);
        if (r < 0)
                return r;
        r = instance_record_from_json(text, INSTANCE_RECORD_SUMMARY, ret);
        if (r < 0)
                return r;
        if (!deployment_id_valid(ret->inst.spec.deployment_id)) {
                instance_record_clear(ret);
                return -EBADMSG;
        }
        return 0;
}

static void attach_console(logd_instance_t *i) {
        _cleanup_free_ char *path = NULL;
        int r;

        if (i->src_fd >= 0 || !i->store_open || i->finished_at)
                return;
        if (asprintf(&path, "%s/%s", i->src_dir, logd_instance_console(i)) < 0)
                return;
        r = logd_instance_attach(i, path);
        if (r < 0 && r != -ENOENT)
                log_warning_errno(r, "Instance %s: cannot capture %s: %m", i->id, path);
}

/* instance.json appeared or changed. Returns true when i was finished (and maybe freed). */
static bool refresh_record(logd_t *d, logd_instance_t *i) {
        _cleanup_(instance_record_clear) instance_record_t rec = {};
        bool exited;
        int r;

        r = read_record(i, &rec);
        if (r == -ENOENT)
                return false;
        if (r < 0) {
                log_debug_errno(r, "Instance %s: %s/" INSTANCE_RECORD_FILE " unreadable, ignoring: %m", i->id,
                                i->src_dir);
                return false;
        }
        exited = rec.inst.state && streq(rec.inst.state, INSTANCE_STATE_EXITED);
        r = logd_instance_set_console(i, instance_record_console_log(&rec));
        if (r < 0) {
                log_error_errno(r, "Instance %s: out of memory", i->id);
                return false;
        }
        if (!i->deployment_id) {
                r = logd_instance_bind(i, rec.inst.spec.deployment_id, rec.inst.spec.runtime);
                if (r < 0) {
                        log_error_errno(r, "Instance %s: cannot open its log store: %m", i->id);
                        return false;
                }
                /* Known before we link its capture file into the spool: a restart must find the
                 * spooled file's owner in the state. */
                d->state_dirty = true;
                logd_state_save_if_dirty(d);
                log_info("Instance %s of deployment %s: capturing its console", i->id, i->deployment_id);
        }
        attach_console(i);
        if (exited) {
                logd_instance_finish(i);
                return true;
        }
        return false;
}

int logd_watch_instance(logd_t *d, logd_instance_t *i) {
        char key[16];
        int wd;

        if (i->finished_at)
                return 0;
        if (i->dir_wd < 0) {
                wd = inotify_add_watch(d->inotify_fd, i->src_dir, DIR_EVENTS);
                if (wd < 0)
                        return -errno;
                wd_key(wd, key, sizeof(key));
                if (zhashx_insert(d->by_wd, key, i) < 0 && zhashx_lookup(d->by_wd, key) != i) {
                        /* The same directory under another instance object: cannot happen. */
                        return -EEXIST;
                }
                i->dir_wd = wd;
        }
        /* After the watch: whatever appeared before it is seen here, the rest by inotify. */
        if (refresh_record(d, i))
                return 0;
        attach_console(i);
        return 0;
}

static void track(logd_t *d, const char *id) {
        logd_instance_t *i = zhashx_lookup(d->instances, id);
        int r;

        if (!i) {
                r = logd_instance_new(d, id, &i);
                if (r < 0) {
                        log_error_errno(r, "Instance %s: cannot track it: %m", id);
                        return;
                }
                if (zhashx_insert(d->instances, id, i) < 0) {
                        logd_instance_free(i);
                        return;
                }
        }
        r = logd_watch_instance(d, i);
        if (r == -ENOENT)
                return; /* gone already: the rescan or its deletion event handles it */
        if (r < 0)
                log_warning_errno(r, "Instance %s: cannot watch %s: %m", id, i->src_dir);
}

/* The instance directory went away: vmm-driver removes it only after the VMM exited. */
static void gone(logd_t *d, logd_instance_t *i) {
        if (!i || i->finished_at)
                return;
        logd_watch_forget(d, i);
        logd_instance_finish(i);
}

static void on_dir_event(logd_t *d, logd_instance_t *i, const struct inotify_event *ev) {
        if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) {
                if (ev->mask & IN_IGNORED) {
                        /* The kernel dropped the watch already. */
                        char key[16];
                        wd_key(i->dir_wd, key, sizeof(key));
                        zhashx_delete(d->by_wd, key);
                        i->dir_wd = -1;
                }
                gone(d, i);
                return;
        }
        if (ev->len == 0)
                return;
        if (streq(ev->name, logd_instance_console(i))) {
                if (ev->mask & (IN_DELETE | IN_MOVED_FROM))
                        gone(d, i);
                else if (i->src_fd < 0)
                        attach_console(i);
                else if (ev->mask & IN_MODIFY)
                        logd_instance_pump(i);
        } else if (streq(ev->name, INSTANCE_RECORD_FILE) && (ev->mask & (IN_MOVED_TO | IN_CLOSE_WRITE | IN_CREATE)))
                (void)refresh_record(d, i);
}

static void on_root_event(logd_t *d, const struct inotify_event *ev, bool *rescan) {
        if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) {
                log_warning("%s went away; looking for it again at the next scan", d->instances_dir);
                d->root_wd = -1;
                return;
        }
        if (ev->len == 0 || !instance_id_valid(ev->name))
                return;
        if (ev->mask & (IN_CREATE | IN_MOVED_TO))
                track(d, ev->name);
        else if (ev->mask & (IN_DELETE | IN_MOVED_FROM))
                gone(d, zhashx_lookup(d->instances, ev->name));
}

static int on_inotify(zloop_t *loop, zmq_pollitem_t *item, void *arg) {
        logd_t *d = arg;
        char buf[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
        bool rescan = false;

        for (;;) {
                ssize_t n = read(d->inotify_fd, buf, sizeof(buf));

                if (n < 0) {
                        if (errno != EAGAIN && errno != EINTR)
                                log_warning_errno(errno, "Failed to read inotify events, ignoring: %m");
                        break;
                }
                for (char *p = buf; p < buf + n;) {
                        const struct inotify_event *ev = (const struct inotify_event *)p;
                        logd_instance_t *i;

                        p += sizeof(*ev) + ev->len;
                        if (ev->mask & IN_Q_OVERFLOW) {
                                rescan = true;
                                continue;
                        }
                        if (ev->wd == d->root_wd)
                                on_root_event(d, ev, &rescan);
                        else if ((i = by_wd(d, ev->wd)))
                                on_dir_event(d, i, ev);
                }
        }
        if (rescan) {
                log_warning("inotify queue overflowed: rescanning %s", d->instances_dir);
                logd_watch_scan(d);
        }
        return 0;
}

int logd_watch_open(logd_t *d) {
        zmq_pollitem_t item = { .events = ZMQ_POLLIN };
        int r;

        d->root_wd = -1;
        d->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (d->inotify_fd < 0)
                return log_error_errno(errno, "Failed to create an inotify instance: %m");
        /* vmm-driver makes it too; whoever comes first. */
        r = mkdir_p(d->instances_dir, 0700);
        if (r < 0)
                return log_error_errno(r, "Failed to create %s: %m", d->instances_dir);
        item.fd = d->inotify_fd;
        if (zloop_poller(d->loop, &item, on_inotify, d) < 0)
                return log_error_errno(ENOMEM, "Failed to watch inotify events");
        return 0;
}

void logd_watch_close(logd_t *d) {
        if (d->inotify_fd < 0)
                return;
        if (d->loop) {
                zmq_pollitem_t item = { .fd = d->inotify_fd, .events = ZMQ_POLLIN };
                zloop_poller_end(d->loop, &item);
        }
        close(d->inotify_fd);
        d->inotify_fd = -1;
}

void logd_watch_scan(logd_t *d) {
        _cleanup_close_ int fd = -1;
        logd_instance_t **list;
        size_t n = 0;
        DIR *dir;
        struct dirent *de;

        if (d->root_wd < 0) {
                d->root_wd = inotify_add_watch(d->inotify_fd, d->instances_dir, ROOT_EVENTS);
                if (d->root_wd < 0)
                        log_warning_errno(errno, "Failed to watch %s, rescanning later: %m", d->instances_dir);
        }
        fd = open(d->instances_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        dir = fd >= 0 ? fdopendir(fd) : NULL;
        if (dir) {
                fd = -1;
                while ((de = readdir(dir)))
                        if (instance_id_valid(de->d_name))
                                track(d, de->d_name);
                closedir(dir);
        }

        /* Instances we capture whose directory is gone: removed while we were down, or
         * between two looks. What the spool kept is read, then they are finished. */
        list = calloc(zhashx_size(d->instances) + 1, sizeof(*list));
        if (!list)
                return;
        for (logd_instance_t *i = zhashx_first(d->instances); i; i = zhashx_next(d->instances))
                if (!i->finished_at)
                        list[n++] = i;
        for (size_t k = 0; k < n; k++) {
                logd_instance_t *i = list[k];
                _cleanup_free_ char *spool = NULL;
                struct stat st;

                if (stat(i->src_dir, &st) == 0)
                        continue;
                spool = logd_instance_spool_path(i);
                if (spool && i->src_fd < 0 && i->store_open && access(spool, F_OK) == 0) {
                        int r = logd_instance_attach(i, spool);
                        if (r < 0)
                                log_warning_errno(r, "Instance %s: cannot read its spooled capture %s: %m", i->id,
                                                  spool);
                }
                logd_instance_finish(i);
        }
        free(list);
}
