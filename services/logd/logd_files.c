/* logd_files.c: a store's rotated files read as one stream: lines backwards (tail), forwards, and a seek by record. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/util.h"
#include "services/logd/logd.h"

#define RLINES_BLOCK (64u * 1024u)
#define SEEK_PROBE_BLOCK 4096u

int logd_files_open(logd_files_t *f, const char *const *paths, size_t n) {
        *f = (logd_files_t){};
        if (n > ELEMENTSOF(f->fd))
                return -E2BIG;
        for (size_t k = 0; k < n; k++) {
                struct stat st;
                int fd = open(paths[k], O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);

                if (fd < 0) {
                        if (errno == ENOENT)
                                continue;
                        logd_files_close(f);
                        return -errno;
                }
                if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                        int r = S_ISREG(st.st_mode) ? -errno : -EBADF;
                        close(fd);
                        logd_files_close(f);
                        return r;
                }
                f->fd[f->n] = fd;
                f->start[f->n] = f->total;
                f->n++;
                f->total += (uint64_t)st.st_size;
        }
        return 0;
}

int logd_files_open_store(logd_files_t *f, const char *dir, unsigned backups) {
        char paths[LOGD_BACKUPS_MAX + 1][PATH_MAX];
        const char *p[LOGD_BACKUPS_MAX + 1];
        size_t n = 0;

        if (backups > LOGD_BACKUPS_MAX)
                backups = LOGD_BACKUPS_MAX;
        for (unsigned k = backups; k >= 1; k--) {
                if (snprintf(paths[n], PATH_MAX, "%s/" LOGD_CONSOLE_FILE ".%u", dir, k) >= PATH_MAX)
                        return -ENAMETOOLONG;
                p[n] = paths[n];
                n++;
        }
        if (snprintf(paths[n], PATH_MAX, "%s/" LOGD_CONSOLE_FILE, dir) >= PATH_MAX)
                return -ENAMETOOLONG;
        p[n] = paths[n];
        n++;
        return logd_files_open(f, p, n);
}

void logd_files_close(logd_files_t *f) {
        for (size_t k = 0; k < f->n; k++)
                close(f->fd[k]);
        *f = (logd_files_t){};
}

int logd_files_read(const logd_files_t *f, uint64_t off, void *buf, size_t n) {
        char *out = buf;
        size_t k = 0;

        if (off > f->total || n > f->total - off)
                return -EINVAL;
        /* The file holding off: the last one starting at or before it (empty files share starts). */
        while (k + 1 < f->n && f->start[k + 1] <= off)
                k++;
        while (n > 0) {
                uint64_t end = k + 1 < f->n ? f->start[k + 1] : f->total;
                size_t want = end - off < n ? (size_t)(end - off) : n;
                ssize_t got;

                if (want == 0) {
                        if (++k >= f->n)
                                return -EIO;
                        continue;
                }
                got = pread(f->fd[k], out, want, (off_t)(off - f->start[k]));
                if (got < 0)
                        return -errno;
                if ((size_t)got != want)
                        return -EIO;
                out += got;
                off += (uint64_t)got;
                n -= (size_t)got;
        }
        return 0;
}

/* The first line start at or after off (off itself if it starts a line), or f->total. */
static int line_start_at_or_after(const logd_files_t *f, uint64_t off, uint64_t *ret) {
        char buf[SEEK_PROBE_BLOCK];

        if (off == 0) {
                *ret = 0;
                return 0;
        }
        for (uint64_t p = off - 1; p < f->total;) {
                size_t n = f->total - p < sizeof(buf) ? (size_t)(f->total - p) : sizeof(buf);
                const char *nl;
                int q = logd_files_read(f, p, buf, n);

                if (q < 0)
                        return q;
                nl = memchr(buf, '\n', n);
                if (nl) {
                        *ret = p + (uint64_t)(nl - buf) + 1;
                        return 0;
                }
                p += n;
        }
        *ret = f->total;
        return 0;
}

/* ---- backwards ------------------------------------------------------------------------------ */

int logd_rlines_init(logd_rlines_t *r, const logd_files_t *files) {
        char last;
        int q;

        *r = (logd_rlines_t){ .files = files, .bstart = files->total };
        r->cap = RLINES_BLOCK;
        r->buf = malloc(r->cap);
        if (!r->buf)
                return -ENOMEM;
        if (files->total == 0) {
                r->at_start = true;
                return 0;
        }
        q = logd_files_read(files, files->total - 1, &last, 1);
        if (q < 0) {
                logd_rlines_clear(r);
                return q;
        }
        r->partial = last != '\n';
        r->line_end = r->partial ? files->total : files->total - 1;
        r->bstart = r->line_end;
        return 0;
}

void logd_rlines_clear(logd_rlines_t *r) {
        free(r->buf);
        *r = (logd_rlines_t){};
}

/* Make buf hold [bstart, line_end) with bstart one block further back. */
static int rlines_extend(logd_rlines_t *r) {
        uint64_t new_start = r->bstart > RLINES_BLOCK ? r->bstart - RLINES_BLOCK : 0;
        size_t keep = (size_t)(r->line_end - r->bstart), need = (size_t)(r->line_end - new_start);
        int q;

        if (need > r->cap) {
                size_t cap = r->cap;
                char *nb;

                while (cap < need)
                        cap *= 2;
                nb = realloc(r->buf, cap);
                if (!nb)
                        return -ENOMEM;
                r->buf = nb;
                r->cap = cap;
        }
        memmove(r->buf + (r->bstart - new_start), r->buf, keep);
        q = logd_files_read(r->files, new_start, r->buf, (size_t)(r->bstart - new_start));
        if (q < 0)
                return q;
        r->bstart = new_start;
        return 0;
}

/* The last '\n' in [0, before) of the stream: 1 with its offset, 0 when there is none. */
static int prev_newline(const logd_files_t *f, uint64_t before, uint64_t *ret) {
        char buf[SEEK_PROBE_BLOCK];

        while (before > 0) {
                size_t n = before < sizeof(buf) ? (size_t)before : sizeof(buf);
                const char *nl;
                int q = logd_files_read(f, before - n, buf, n);

                if (q < 0)
                        return q;
                nl = memrchr(buf, '\n', n);
                if (nl) {
                        *ret = before - n + (uint64_t)(nl - buf);
                        return 1;
                }
                before -= n;
        }
        return 0;
}

int logd_rlines_prev(logd_rlines_t *r, const char **ret, size_t *ret_len, uint64_t *ret_start) {
        for (;;) {
                const char *nl;
                uint64_t start, nlpos;
                int q;

                if (r->at_start)
                        return 0;
                /* buf holds [bstart, line_end) at least; the line ends at line_end. */
                nl = r->line_end > r->bstart ? memrchr(r->buf, '\n', (size_t)(r->line_end - r->bstart)) : NULL;
                if (!nl && r->bstart > 0 && r->line_end - r->bstart < LOGD_READ_LINE_MAX) {
                        q = rlines_extend(r);
                        if (q < 0)
                                return q;
                        continue;
                }
                if (nl)
                        start = r->bstart + (uint64_t)(nl - r->buf) + 1;
                else if (r->bstart == 0)
                        start = 0;
                else {
                        /* Longer than any line we write: skip it without holding it. */
                        q = prev_newline(r->files, r->bstart, &nlpos);
                        if (q < 0)
                                return q;
                        if (q == 0)
                                r->at_start = true;
                        else
                                r->bstart = r->line_end = nlpos;
                        continue;
                }
                *ret = r->buf + (start - r->bstart);
                *ret_len = (size_t)(r->line_end - start);
                if (ret_start)
                        *ret_start = start;
                if (start == 0)
                        r->at_start = true;
                else
                        r->line_end = start - 1; /* the '\n' ending the line before */
                if (*ret_len > LOGD_READ_LINE_MAX)
                        continue; /* found whole, but longer than any record */
                return 1;
        }
}

/* ---- forwards ------------------------------------------------------------------------------- */

int logd_flines_init(logd_flines_t *r, const logd_files_t *files, uint64_t start, size_t block) {
        *r = (logd_flines_t){ .files = files, .bstart = start, .pos = start, .block = block ? block : RLINES_BLOCK };
        r->cap = r->block;
        r->buf = malloc(r->cap);
        return r->buf ? 0 : -ENOMEM;
}

void logd_flines_clear(logd_flines_t *r) {
        free(r->buf);
        *r = (logd_flines_t){};
}

int logd_flines_next(logd_flines_t *r, const char **ret, size_t *ret_len, uint64_t *ret_start) {
        for (;;) {
                size_t off = (size_t)(r->pos - r->bstart), avail = r->blen - off, want;
                const char *nl = avail ? memchr(r->buf + off, '\n', avail) : NULL;
                uint64_t left, next;
                int q;

                if (nl) {
                        *ret = r->buf + off;
                        *ret_len = (size_t)(nl - (r->buf + off));
                        if (ret_start)
                                *ret_start = r->pos;
                        r->pos += *ret_len + 1;
                        if (*ret_len > LOGD_READ_LINE_MAX)
                                continue; /* found whole, but longer than any record */
                        return 1;
                }
                left = r->files->total - (r->bstart + r->blen);
                if (left == 0)
                        return 0; /* nothing more, or a final line without its '\n' */
                if (avail >= LOGD_READ_LINE_MAX) {
                        /* Longer than any line we write: skip to the line after it. */
                        q = line_start_at_or_after(r->files, r->bstart + r->blen + 1, &next);
                        if (q < 0)
                                return q;
                        r->pos = r->bstart = next;
                        r->blen = 0;
                        continue;
                }
                /* Keep the partial line at the front, read the next block behind it. */
                memmove(r->buf, r->buf + off, avail);
                r->bstart = r->pos;
                r->blen = avail;
                if (r->cap - r->blen < r->block) {
                        /* Doubling: a line many blocks long costs linear copying, not quadratic
                         * (a 1 MiB line read in 3-byte blocks took minutes under ASan). */
                        size_t cap = r->cap * 2 > r->blen + r->block ? r->cap * 2 : r->blen + r->block;
                        char *nb = realloc(r->buf, cap);

                        if (!nb)
                                return -ENOMEM;
                        r->buf = nb;
                        r->cap = cap;
                }
                want = r->cap - r->blen < left ? r->cap - r->blen : (size_t)left;
                q = logd_files_read(r->files, r->bstart + r->blen, r->buf + r->blen, want);
                if (q < 0)
                        return q;
                r->blen += want;
        }
}

/* ---- seek ----------------------------------------------------------------------------------- */

/* The record starting at off: its pred and the start of the next line. */
static int probe(const logd_files_t *f, uint64_t off, logd_record_pred_fn pred, void *userdata, bool *ret_pred,
                 uint64_t *ret_next) {
        logd_flines_t r;
        const char *line;
        size_t len;
        logd_entry_t e;
        int q;

        q = logd_flines_init(&r, f, off, SEEK_PROBE_BLOCK);
        if (q < 0)
                return q;
        q = logd_flines_next(&r, &line, &len, NULL);
        if (q > 0) {
                *ret_pred = logd_record_parse(line, len, &e) == 0 && pred(&e, userdata);
                *ret_next = r.pos;
        } else if (q == 0) {
                *ret_pred = true; /* the end: nothing after it can be false */
                *ret_next = f->total;
        }
        logd_flines_clear(&r);
        return q < 0 ? q : 0;
}

int logd_files_seek(const logd_files_t *f, logd_record_pred_fn pred, void *userdata, uint64_t *ret) {
        /* Invariants: lo starts a line and every record before lo is false; the record at hi is
         * true, or hi is the end. */
        uint64_t lo = 0, hi = f->total;
        logd_flines_t r;
        const char *line;
        size_t len;
        uint64_t start;
        int q;

        while (hi - lo > RLINES_BLOCK) {
                uint64_t mid = lo + (hi - lo) / 2, s, next;
                bool p;

                q = line_start_at_or_after(f, mid, &s);
                if (q < 0)
                        return q;
                if (s >= hi)
                        break;
                q = probe(f, s, pred, userdata, &p, &next);
                if (q < 0)
                        return q;
                if (p)
                        hi = s;
                else
                        lo = next;
        }
        q = logd_flines_init(&r, f, lo, RLINES_BLOCK);
        if (q < 0)
                return q;
        for (;;) {
                logd_entry_t e;

                q = logd_flines_next(&r, &line, &len, &start);
                if (q <= 0 || start >= hi) {
                        *ret = hi;
                        break;
                }
                if (logd_record_parse(line, len, &e) == 0 && pred(&e, userdata)) {
                        *ret = start;
                        break;
                }
        }
        logd_flines_clear(&r);
        return q < 0 ? q : 0;
}
