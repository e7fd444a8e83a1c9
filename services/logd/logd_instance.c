/* logd_instance.c: capturing one instance: the VMM's capture file into the store, then holes punched behind us. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"
#include "services/logd/logd.h"

#define READ_CHUNK (64u * 1024u)
/* Bytes read per loop turn per instance: a flood from one VM must not starve the others, nor
 * the queries. */
#define PUMP_BUDGET (4u * 1024u * 1024u)
/* Consumed bytes between two hole punches, each costing an fdatasync of the store: a quarter of
 * the rotation size within these bounds, so that what the capture file still holds stays small
 * next to the store. */
#define PUNCH_STEP_MIN (64u * 1024u)
#define PUNCH_STEP_MAX (1024u * 1024u)
#define PUNCH_ALIGN 4096u
/* An event carries at most this much: followers get big outputs in several. */
#define EVENT_BYTES (256u * 1024u)
/* A line without its newline is stored once it waited this long (a prompt, a VMM that hangs). */
#define PARTIAL_WAIT_MS 1000

int logd_instance_new(logd_t *d, const char *id, logd_instance_t **ret) {
        _cleanup_free_ logd_instance_t *i = calloc(1, sizeof(*i));

        if (!i)
                return -ENOMEM;
        if (!instance_id_valid(id))
                return -EINVAL;
        i->logd = d;
        snprintf(i->id, sizeof(i->id), "%s", id);
        i->src_fd = -1;
        i->dir_wd = -1;
        i->store.fd = -1;
        msgpack_sbuffer_init(&i->ev);
        msgpack_packer_init(&i->evpk, &i->ev, msgpack_sbuffer_write);
        if (asprintf(&i->src_dir, "%s/%s", d->instances_dir, id) < 0) {
                i->src_dir = NULL;
                return -ENOMEM;
        }
        *ret = TAKE_PTR(i);
        return 0;
}

static void cancel_pump(logd_instance_t *i) {
        if (i->pump_timer > 0 && i->logd->loop)
                zloop_timer_end(i->logd->loop, i->pump_timer);
        i->pump_timer = 0;
}

static void close_capture(logd_instance_t *i) {
        cancel_pump(i);
        if (i->src_fd >= 0)
                close(i->src_fd);
        i->src_fd = -1;
        logd_splitter_clear(&i->split);
        /* A finished instance keeps only its store: the buffers go (about 130 KiB). */
        free(i->clean);
        free(i->rbuf);
        i->clean = i->rbuf = NULL;
}

void logd_instance_free(logd_instance_t *i) {
        if (!i)
                return;
        logd_watch_forget(i->logd, i);
        close_capture(i);
        if (i->store_open)
                logd_store_close(&i->store);
        msgpack_sbuffer_destroy(&i->ev);
        free(i->deployment_id);
        free(i->runtime);
        free(i->console);
        free(i->src_dir);
        free(i);
}

int logd_instance_bind(logd_instance_t *i, const char *deployment_id, const char *runtime) {
        const husk_config_t *c = logd_config(i->logd);
        _cleanup_free_ char *dir = NULL;
        uint64_t max_bytes;
        unsigned backups;
        int r;

        if (i->deployment_id)
                return streq(i->deployment_id, deployment_id) ? 0 : -EEXIST;
        if (!deployment_id_valid(deployment_id))
                return -EINVAL;
        i->deployment_id = strdup(deployment_id);
        i->runtime = strdup(runtime ?: "");
        if (!i->deployment_id || !i->runtime)
                return -ENOMEM;
        if (asprintf(&dir, "%s/deployments/%s/%s", i->logd->dir, deployment_id, i->id) < 0) {
                dir = NULL;
                return -ENOMEM;
        }
        logd_rotation(c, i->runtime, &max_bytes, &backups);
        r = logd_store_open(&i->store, dir, max_bytes, backups);
        if (r < 0)
                return r;
        i->store_open = true;
        return 0;
}

int logd_instance_set_console(logd_instance_t *i, const char *name) {
        char *s;

        /* The file being read stays the one we opened. */
        if (i->src_fd >= 0 || (i->console && streq(i->console, name)))
                return 0;
        s = strdup(name);
        if (!s)
                return -ENOMEM;
        free(i->console);
        i->console = s;
        return 0;
}

char *logd_instance_spool_path(const logd_instance_t *i) {
        char *p;

        return asprintf(&p, "%s/spool/%s.console", i->logd->dir, i->id) < 0 ? NULL : p;
}

static bool same_file(const char *a, const char *b) {
        struct stat sa, sb;

        return lstat(a, &sa) == 0 && lstat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* A second name for the capture file in our own directory: vmm-driver removes the instance
 * directory once the VMM exited, possibly while we are down, and the bytes we have not read
 * yet must survive that. Same filesystem only; elsewhere the open fd has to do. */
static bool spool_link(logd_instance_t *i, const char *path, const char *spool) {
        if (streq(path, spool))
                return true;
        if (link(path, spool) == 0)
                return true;
        if (errno == EEXIST) {
                if (same_file(path, spool))
                        return true;
                /* A link to some other file under our instance's name: stale, replace it. */
                if (unlink(spool) == 0 && link(path, spool) == 0)
                        return true;
        }
        log_debug_errno(errno, "Instance %s: cannot link %s into the spool, reading it in place: %m", i->id, path);
        return false;
}

int logd_instance_attach(logd_instance_t *i, const char *path) {
        _cleanup_free_ char *spool = NULL;
        struct stat st;
        int r;

        if (i->src_fd >= 0 || i->finished_at)
                return 0;
        if (!i->store_open)
                return -EAGAIN; /* the deployment is not known yet: instance.json will tell */
        spool = logd_instance_spool_path(i);
        if (!spool)
                return -ENOMEM;
        if (!i->clean || !i->rbuf) {
                free(i->clean);
                free(i->rbuf);
                i->clean = malloc(LOGD_CLEAN_SIZE(LOGD_LINE_MAX));
                i->rbuf = malloc(READ_CHUNK);
                if (!i->clean || !i->rbuf)
                        return -ENOMEM;
        }
        i->src_fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (i->src_fd < 0)
                return -errno; /* -ENOENT: the VMM has not created it yet */
        i->spooled = spool_link(i, path, spool);
        if (fstat(i->src_fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                r = S_ISREG(st.st_mode) ? -errno : -EBADF;
                close_capture(i);
                return r;
        }
        /* Everything up to the store's newest record is consumed, whoever read it. */
        r = logd_splitter_init(&i->split, i->store.last_seq);
        if (r < 0) {
                close_capture(i);
                return r;
        }
        if ((uint64_t)st.st_size < i->store.last_seq)
                log_warning("Instance %s: %s holds %jd bytes but %" PRIu64 " were consumed: it was truncated "
                            "or replaced; waiting for it to grow past that",
                            i->id, path, (intmax_t)st.st_size, i->store.last_seq);
        log_debug("Instance %s: capturing %s from offset %" PRIu64 "%s", i->id, path, i->store.last_seq,
                  i->spooled ? "" : " (not spooled)");
        logd_instance_pump(i);
        return 0;
}

/* ---- lines into the store and the event ------------------------------------------------------ */

static int on_line(const char *line, size_t len, uint64_t end, void *userdata) {
        logd_instance_t *i = userdata;
        logd_entry_t e = { .seq = end };
        uint64_t before = i->store.last_seq;
        int r;

        e.message_len = logd_line_clean(line, len, i->clean, &e.stream);
        e.message = i->clean;
        e.level = logd_classify(e.message, e.message_len);
        /* Never backwards, even when the clock steps: the store is searched by time. */
        e.ts = i->ev_now > i->store.last_ts ? i->ev_now : i->store.last_ts;
        r = logd_store_append(&i->store, &e);
        if (r < 0)
                return r;
        i->logd->lines_stored++;
        i->logd->bytes_stored += e.message_len;
        if (i->ev_n == 0)
                i->ev_start = before;
        logd_entry_pack(&i->evpk, i->id, &e);
        i->ev_n++;
        if (i->ev.size >= EVENT_BYTES) {
                /* Followers may only see what the store holds: a gap they query must be there. */
                r = logd_store_flush(&i->store);
                if (r < 0)
                        return r;
                logd_publish_batch(i);
        }
        return 0;
}

static uint64_t punch_step(const logd_instance_t *i) {
        uint64_t q = i->store.max_bytes / 4;

        if (i->store.max_bytes == 0 || q > PUNCH_STEP_MAX)
                return PUNCH_STEP_MAX;
        return q < PUNCH_STEP_MIN ? PUNCH_STEP_MIN : q;
}

static void punch(logd_instance_t *i) {
        uint64_t target = i->split.base / PUNCH_ALIGN * PUNCH_ALIGN;
        int r;

        if (i->punch_failed || i->src_fd < 0 || target < i->punched + punch_step(i))
                return;
        r = logd_store_sync(&i->store);
        if (r < 0) {
                log_warning_errno(r, "Instance %s: cannot sync the store, not freeing the capture file yet: %m", i->id);
                return;
        }
        if (fallocate(i->src_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)i->punched,
                      (off_t)(target - i->punched)) < 0) {
                i->punch_failed = true;
                log_warning_errno(errno,
                                  "Instance %s: cannot punch holes in the capture file (%m); its disk use "
                                  "is not bounded by rotation",
                                  i->id);
                return;
        }
        i->punched = target;
}

/* After lines went to the store: write them, tell followers, free the capture file behind. */
static void commit(logd_instance_t *i) {
        uint64_t before = i->store.last_seq;
        int r = logd_store_flush(&i->store);

        if (r < 0)
                log_error_errno(r, "Instance %s: cannot write to %s: %m", i->id, i->store.dir);
        logd_publish_batch(i);
        punch(i);
        if (before != 0)
                i->logd->state_dirty = true;
}

static int on_pump_timer(zloop_t *loop, int timer_id, void *arg) {
        logd_instance_t *i = arg;

        i->pump_timer = 0;
        logd_instance_pump(i);
        return 0;
}

/* Read up to budget bytes; returns 1 when more may be there, 0 at the end, <0 on error. */
static int pump(logd_instance_t *i, uint64_t budget) {
        while (budget > 0) {
                uint64_t off = i->split.base + i->split.len;
                ssize_t n = pread(i->src_fd, i->rbuf, READ_CHUNK, (off_t)off);
                int r;

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return log_warning_errno(errno, "Instance %s: cannot read the capture file: %m", i->id);
                }
                if (n == 0)
                        return 0;
                i->ev_now = now_realtime_ms();
                r = logd_splitter_feed(&i->split, i->rbuf, (size_t)n, on_line, i);
                if (r < 0)
                        return log_error_errno(r, "Instance %s: cannot store its lines: %m", i->id);
                budget = (uint64_t)n < budget ? budget - (uint64_t)n : 0;
        }
        return 1;
}

void logd_instance_pump(logd_instance_t *i) {
        int r;

        if (i->src_fd < 0 || !i->store_open)
                return;
        r = pump(i, PUMP_BUDGET);
        commit(i);
        if (i->split.len == 0)
                i->pending_since = 0;
        else if (i->pending_since == 0)
                i->pending_since = now_monotonic_ms();
        if (r > 0 && i->pump_timer == 0) {
                /* More is waiting: after the others had their turn. */
                i->pump_timer = zloop_timer(i->logd->loop, 1, 1, on_pump_timer, i);
                if (i->pump_timer < 0)
                        i->pump_timer = 0;
        }
}

void logd_instance_flush_partial(logd_instance_t *i, uint64_t now_mono) {
        int r;

        if (i->src_fd < 0 || i->split.len == 0 || i->pending_since == 0 ||
            now_mono - i->pending_since < PARTIAL_WAIT_MS)
                return;
        i->ev_now = now_realtime_ms();
        r = logd_splitter_flush(&i->split, on_line, i);
        if (r < 0)
                log_error_errno(r, "Instance %s: cannot store its partial line: %m", i->id);
        i->pending_since = 0;
        commit(i);
}

void logd_instance_finish(logd_instance_t *i) {
        logd_t *d = i->logd;
        _cleanup_free_ char *spool = NULL, *deployment = NULL;
        int r;

        if (i->finished_at)
                return;
        if (i->src_fd >= 0) {
                /* The VMM is gone: whatever it wrote is final. All of it, now. */
                while ((r = pump(i, PUMP_BUDGET)) > 0)
                        commit(i);
                if (r == 0) {
                        i->ev_now = now_realtime_ms();
                        r = logd_splitter_flush(&i->split, on_line, i);
                        if (r < 0)
                                log_error_errno(r, "Instance %s: cannot store its last line: %m", i->id);
                }
                commit(i);
        }
        if (i->store_open)
                logd_store_seal(&i->store);
        close_capture(i);
        logd_watch_forget(d, i);
        spool = logd_instance_spool_path(i);
        if (spool && unlink(spool) < 0 && errno != ENOENT)
                log_debug_errno(errno, "Failed to remove %s, ignoring: %m", spool);
        i->spooled = false;
        i->finished_at = now_realtime_ms();
        d->state_dirty = true;
        log_debug("Instance %s: capture finished at offset %" PRIu64, i->id, i->store.last_seq);
        if (!i->deployment_id) {
                /* Never learned whose it was: nothing was stored, nothing to keep. */
                logd_instance_drop(i);
                return;
        }
        deployment = strdup(i->deployment_id);
        if (deployment)
                logd_retain(d, deployment); /* may free i */
}
