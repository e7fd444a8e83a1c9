/* fuzz_logd_files.c: libFuzzer target for reading a store's files as one stream: backwards (tail) must be forwards reversed, whatever the bytes and the file boundaries. */
#include <assert.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>

/* The files under test, built in: the fuzz rule links the library sources only. */
#include "services/logd/logd_files.c"
#include "services/logd/logd_line.c"

#define LINES_MAX 70000

static uint64_t fwd_start[LINES_MAX], fwd_len[LINES_MAX];

static char dir[64];

static void remove_dir(void) {
        if (dir[0])
                (void)rm_rf(dir);
}

static bool any_true(const logd_entry_t *e, void *userdata) { return e->seq >= *(uint64_t *)userdata; }

/* The first byte: how many files (1 to 4) and where they split the rest. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char paths[4][96];
        const char *p[4];
        int fds[4];
        size_t nfiles, off = 0, n_fwd = 0, n_back = 0;
        logd_files_t files;
        logd_rlines_t r;
        logd_flines_t w;
        const char *line;
        size_t len;
        uint64_t start, target = 5, seek;
        bool first = true;
        int q;

        uint8_t shape;

        if (size < 1)
                return 0;
        shape = data[0];
        nfiles = 1 + shape % 4;
        data++;
        size--;
        if (!dir[0]) {
                snprintf(dir, sizeof(dir), "/tmp/husk-fuzz-logd-XXXXXX");
                assert(mkdtemp(dir));
                atexit(remove_dir);
        }
        for (size_t k = 0; k < nfiles; k++) {
                size_t part = k + 1 == nfiles ? size - off : (size - off) * ((shape >> (2 * k)) & 3) / 4;

                /* Real files: logd opens its store with O_NOFOLLOW, and /proc/self/fd links are links. */
                snprintf(paths[k], sizeof(paths[k]), "%s/f%zu", dir, k);
                fds[k] = open(paths[k], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                assert(fds[k] >= 0);
                assert(write(fds[k], data + off, part) == (ssize_t)part);
                off += part;
                p[k] = paths[k];
        }
        assert(logd_files_open(&files, p, nfiles) == 0);
        assert(files.total == size);

        assert(logd_flines_init(&w, &files, 0, 1 + shape % 64) == 0);
        while ((q = logd_flines_next(&w, &line, &len, &start)) > 0 && n_fwd < LINES_MAX) {
                assert(start + len < size && data[start + len] == '\n');
                assert(memcmp(line, data + start, len) == 0);
                fwd_start[n_fwd] = start;
                fwd_len[n_fwd] = len;
                n_fwd++;
        }
        assert(q >= 0);
        logd_flines_clear(&w);

        assert(logd_rlines_init(&r, &files) == 0);
        while ((q = logd_rlines_prev(&r, &line, &len, &start)) > 0) {
                assert(memcmp(line, data + start, len) == 0);
                if (first && r.partial) {
                        /* The partial last line: what forwards never returns. */
                        assert(start + len == size);
                        first = false;
                        continue;
                }
                first = false;
                n_back++;
                assert(n_back <= n_fwd);
                assert(fwd_start[n_fwd - n_back] == start && fwd_len[n_fwd - n_back] == len);
        }
        assert(q == 0);
        assert(n_back == n_fwd || n_fwd == LINES_MAX);
        logd_rlines_clear(&r);

        /* Seek never fails on garbage and lands on a line start or the end. */
        assert(logd_files_seek(&files, any_true, &target, &seek) == 0);
        assert(seek == size || seek == 0 || data[seek - 1] == '\n');
        logd_files_close(&files);
        for (size_t k = 0; k < nfiles; k++)
                close(fds[k]);
        return 0;
}
