/* logd_store.c: one instance's log store: a live file of records, rotated by size into numbered backups. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/util.h"
#include "services/logd/logd.h"

/* Written at each rotation: the newest record's seq and ts. With no backups a rotation empties
 * the store, and this is what still tells where the capture file was consumed up to. */
#define SEQ_FILE "console.seq"
#define WBUF_FLUSH (256u * 1024u)

static int path_of(const logd_store_t *s, unsigned backup, char *buf, size_t size) {
        int n = backup ? snprintf(buf, size, "%s/" LOGD_CONSOLE_FILE ".%u", s->dir, backup)
                       : snprintf(buf, size, "%s/" LOGD_CONSOLE_FILE, s->dir);

        return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

static int open_live(logd_store_t *s) {
        char path[PATH_MAX];
        struct stat st;
        int r = path_of(s, 0, path, sizeof(path));

        if (r < 0)
                return r;
        s->fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0640);
        if (s->fd < 0)
                return -errno;
        if (fstat(s->fd, &st) < 0)
                return -errno;
        s->size = (uint64_t)st.st_size;
        return 0;
}

/* A crash in the middle of a write leaves a record without its newline: cut it off. */
static int cut_torn_tail(logd_store_t *s) {
        char buf[4096];
        uint64_t end = s->size;

        while (end > 0) {
                size_t n = end < sizeof(buf) ? (size_t)end : sizeof(buf);
                ssize_t got = pread(s->fd, buf, n, (off_t)(end - n));
                const char *nl;

                if (got != (ssize_t)n)
                        return got < 0 ? -errno : -EIO;
                nl = memrchr(buf, '\n', n);
                if (nl) {
                        end = end - n + (uint64_t)(nl - buf) + 1;
                        break;
                }
                end -= n;
        }
        if (end == s->size)
                return 0;
        if (ftruncate(s->fd, (off_t)end) < 0)
                return -errno;
        s->size = end;
        return 1;
}

static void read_seq_file(logd_store_t *s) {
        _cleanup_free_ char *text = NULL;
        char path[PATH_MAX];
        uint64_t seq, ts;

        if (snprintf(path, sizeof(path), "%s/" SEQ_FILE, s->dir) >= (int)sizeof(path) ||
            read_file(path, 64, &text, NULL) < 0)
                return;
        if (sscanf(text, "%" SCNu64 " %" SCNu64, &seq, &ts) == 2 && seq > s->last_seq) {
                s->last_seq = seq;
                s->last_ts = ts;
        }
}

static int write_seq_file(const logd_store_t *s) {
        char path[PATH_MAX], text[64];
        int n;

        if (snprintf(path, sizeof(path), "%s/" SEQ_FILE, s->dir) >= (int)sizeof(path))
                return -ENAMETOOLONG;
        n = snprintf(text, sizeof(text), "%" PRIu64 " %" PRIu64 "\n", s->last_seq, s->last_ts);
        return write_file_atomic(path, text, (size_t)n, 0640);
}

/* The newest complete record of the store. */
static int find_last(logd_store_t *s) {
        logd_files_t files;
        logd_rlines_t rl;
        const char *line;
        size_t len;
        int r;

        r = logd_files_open_store(&files, s->dir, s->backups);
        if (r < 0)
                return r;
        r = logd_rlines_init(&rl, &files);
        if (r >= 0) {
                bool first = true;

                while ((r = logd_rlines_prev(&rl, &line, &len, NULL)) > 0) {
                        logd_entry_t e;

                        if (first && rl.partial) {
                                first = false;
                                continue;
                        }
                        first = false;
                        if (logd_record_parse(line, len, &e) == 0) {
                                s->last_seq = e.seq;
                                s->last_ts = e.ts;
                                break;
                        }
                }
                logd_rlines_clear(&rl);
        }
        logd_files_close(&files);
        return r < 0 ? r : 0;
}

/* Backups beyond the configured count (it was lowered): dropped. */
static void drop_extra_backups(logd_store_t *s) {
        _cleanup_close_ int fd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d;
        struct dirent *de;
        size_t prefix = strlen(LOGD_CONSOLE_FILE ".");

        if (fd < 0)
                return;
        d = fdopendir(fd);
        if (!d)
                return;
        fd = -1;
        while ((de = readdir(d))) {
                uint64_t k;

                if (strncmp(de->d_name, LOGD_CONSOLE_FILE ".", prefix) != 0 || parse_u64(de->d_name + prefix, &k) < 0)
                        continue;
                if (k > s->backups)
                        (void)unlinkat(dirfd(d), de->d_name, 0);
        }
        closedir(d);
}

int logd_store_open(logd_store_t *s, const char *dir, uint64_t max_bytes, unsigned backups) {
        int r;

        *s = (logd_store_t){ .fd = -1,
                             .max_bytes = max_bytes,
                             .backups = backups > LOGD_BACKUPS_MAX ? LOGD_BACKUPS_MAX : backups };
        s->dir = strdup(dir);
        if (!s->dir)
                return -ENOMEM;
        r = mkdir_p(dir, 0750);
        if (r >= 0)
                r = open_live(s);
        if (r >= 0)
                r = cut_torn_tail(s);
        if (r >= 0)
                r = find_last(s);
        if (r < 0) {
                logd_store_close(s);
                return r;
        }
        read_seq_file(s);
        drop_extra_backups(s);
        return 0;
}

void logd_store_close(logd_store_t *s) {
        (void)logd_store_flush(s);
        if (s->fd >= 0)
                close(s->fd);
        free(s->dir);
        free(s->wbuf);
        *s = (logd_store_t){ .fd = -1 };
}

static int write_all(int fd, const char *p, size_t n) {
        while (n > 0) {
                ssize_t w = write(fd, p, n);

                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += w;
                n -= (size_t)w;
        }
        return 0;
}

/* Write the first n queued bytes; the rest stays queued. */
static int flush_n(logd_store_t *s, size_t n) {
        int r;

        if (n == 0 || s->fd < 0)
                return 0;
        r = write_all(s->fd, s->wbuf, n);
        if (r < 0)
                return r;
        s->size += n;
        memmove(s->wbuf, s->wbuf + n, s->wlen - n);
        s->wlen -= n;
        return 0;
}

int logd_store_flush(logd_store_t *s) { return flush_n(s, s->wlen); }

int logd_store_sync(logd_store_t *s) {
        int r = logd_store_flush(s);

        if (r >= 0 && s->fd >= 0 && fdatasync(s->fd) < 0)
                r = -errno;
        return r;
}

int logd_store_rotate(logd_store_t *s) {
        char from[PATH_MAX], to[PATH_MAX];
        int r;

        /* Durable before the names move: the oldest file may go now, and the capture file's
         * holes behind our offset must never be all that is left of a line. */
        r = logd_store_sync(s);
        if (r < 0)
                return r;
        r = write_seq_file(s);
        if (r < 0)
                return r;
        if (s->backups == 0) {
                if (ftruncate(s->fd, 0) < 0)
                        return -errno;
                s->size = 0;
                return 0;
        }
        if (path_of(s, s->backups, to, sizeof(to)) < 0)
                return -ENAMETOOLONG;
        if (unlink(to) < 0 && errno != ENOENT)
                return -errno;
        for (unsigned k = s->backups; k > 1; k--) {
                if (path_of(s, k - 1, from, sizeof(from)) < 0 || path_of(s, k, to, sizeof(to)) < 0)
                        return -ENAMETOOLONG;
                if (rename(from, to) < 0 && errno != ENOENT)
                        return -errno;
        }
        if (path_of(s, 0, from, sizeof(from)) < 0 || path_of(s, 1, to, sizeof(to)) < 0)
                return -ENAMETOOLONG;
        if (rename(from, to) < 0)
                return -errno;
        close(s->fd);
        s->fd = -1;
        return open_live(s);
}

int logd_store_append(logd_store_t *s, const logd_entry_t *e) {
        size_t need = LOGD_RECORD_OVERHEAD + e->message_len + 1;
        int n, r;

        if (s->fd < 0)
                return -EBADF;
        if (s->wcap - s->wlen < need) {
                size_t cap = s->wcap ? s->wcap : 64 * 1024;
                char *nb;

                while (cap - s->wlen < need)
                        cap *= 2;
                nb = realloc(s->wbuf, cap);
                if (!nb)
                        return -ENOMEM;
                s->wbuf = nb;
                s->wcap = cap;
        }
        n = logd_record_format(e, s->wbuf + s->wlen, s->wcap - s->wlen);
        if (n < 0)
                return n;
        if (s->max_bytes > 0 && s->size + s->wlen > 0 && s->size + s->wlen + (size_t)n > s->max_bytes) {
                /* The record starts the next file: write what precedes it, rotate. */
                size_t queued = s->wlen;

                r = flush_n(s, queued);
                if (r < 0)
                        return r;
                memmove(s->wbuf, s->wbuf + queued, (size_t)n);
                r = logd_store_rotate(s);
                if (r < 0)
                        return r;
        }
        s->wlen += (size_t)n;
        s->last_seq = e->seq;
        s->last_ts = e->ts;
        if (s->wlen >= WBUF_FLUSH)
                return logd_store_flush(s);
        return 0;
}

uint64_t logd_store_disk_usage(const logd_store_t *s) {
        uint64_t total = 0;
        char path[PATH_MAX];
        struct stat st;

        for (unsigned k = 0; k <= s->backups; k++)
                if (path_of(s, k, path, sizeof(path)) == 0 && stat(path, &st) == 0)
                        total += (uint64_t)st.st_blocks * 512;
        return total;
}

void logd_store_seal(logd_store_t *s) {
        (void)logd_store_sync(s);
        if (s->fd >= 0)
                close(s->fd);
        s->fd = -1;
}
