/* logd_split.c: the capture file's bytes into lines, each with the offset just past it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "services/logd/logd.h"

int logd_splitter_init(logd_splitter_t *s, uint64_t base) {
        *s = (logd_splitter_t){ .base = base };
        s->pend = malloc(LOGD_LINE_MAX);
        return s->pend ? 0 : -ENOMEM;
}

void logd_splitter_clear(logd_splitter_t *s) {
        free(s->pend);
        *s = (logd_splitter_t){};
}

/* Where to cut a line of n > LOGD_LINE_MAX bytes: at the limit, moved back to the start of a
 * UTF-8 sequence so that a character is not split in two. */
static size_t cut_point(const char *line, size_t n) {
        size_t cut = n < LOGD_LINE_MAX ? n : LOGD_LINE_MAX;

        for (size_t back = 0; back < 3 && cut > 1 && cut < n && ((unsigned char)line[cut] & 0xc0) == 0x80; back++)
                cut--;
        return cut;
}

/* The pending buffer is full and next is the byte after it: emit one piece, leaving the start
 * of a split UTF-8 sequence (at most 3 bytes) for the next one. */
static int emit_full(logd_splitter_t *s, unsigned char next, logd_line_fn fn, void *userdata) {
        size_t cut = LOGD_LINE_MAX;
        int r;

        for (size_t back = 0; back < 3 && ((cut == LOGD_LINE_MAX ? next : (unsigned char)s->pend[cut]) & 0xc0) == 0x80;
             back++)
                cut--;
        r = fn(s->pend, cut, s->base + cut, userdata);
        if (r < 0)
                return r;
        memmove(s->pend, s->pend + cut, s->len - cut);
        s->len -= cut;
        s->base += cut;
        return 0;
}

int logd_splitter_feed(logd_splitter_t *s, const char *data, size_t n, logd_line_fn fn, void *userdata) {
        while (n > 0) {
                const char *nl = memchr(data, '\n', n);
                size_t take = nl ? (size_t)(nl - data) : n;
                int r;

                if (s->len == 0 && nl) {
                        /* The common case: a whole line in the chunk, emitted in place. */
                        size_t off = 0;

                        while (take - off > LOGD_LINE_MAX) {
                                size_t cut = cut_point(data + off, take - off);
                                r = fn(data + off, cut, s->base + cut, userdata);
                                if (r < 0)
                                        return r;
                                s->base += cut;
                                off += cut;
                        }
                        r = fn(data + off, take - off, s->base + (take - off) + 1, userdata);
                        if (r < 0)
                                return r;
                        s->base += take - off + 1;
                        data += take + 1;
                        n -= take + 1;
                        continue;
                }
                /* Part of a line: gather it in pend, emitting LOGD_LINE_MAX pieces as it fills. */
                while (take > 0) {
                        size_t k;

                        if (s->len == LOGD_LINE_MAX) {
                                r = emit_full(s, (unsigned char)*data, fn, userdata);
                                if (r < 0)
                                        return r;
                        }
                        k = take < LOGD_LINE_MAX - s->len ? take : LOGD_LINE_MAX - s->len;
                        memcpy(s->pend + s->len, data, k);
                        s->len += k;
                        data += k;
                        n -= k;
                        take -= k;
                }
                if (!nl)
                        return 0;
                r = fn(s->pend, s->len, s->base + s->len + 1, userdata);
                if (r < 0)
                        return r;
                s->base += s->len + 1;
                s->len = 0;
                data++;
                n--;
        }
        return 0;
}

int logd_splitter_flush(logd_splitter_t *s, logd_line_fn fn, void *userdata) {
        int r;

        if (s->len == 0)
                return 0;
        r = fn(s->pend, s->len, s->base + s->len, userdata);
        if (r < 0)
                return r;
        s->base += s->len;
        s->len = 0;
        return 0;
}
