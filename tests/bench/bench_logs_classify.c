/* bench_logs_classify.c: logd's per-line work over a corpus of console lines, in MB/s, against splitting the same bytes into lines alone.
 *
 * Built and run by bench_logs.py: bench_logs_classify CORPUS ROUNDS. Prints one JSON object. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "services/logd/logd.h"

static double now_s(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* What every variant shares: the next line of [*p, end) (without its '\n'), and *p past it. */
static inline const char *next_line(const char **p, const char *end, size_t *len) {
        const char *line = *p, *nl = memchr(line, '\n', (size_t)(end - line));

        if (!nl)
                nl = end;
        *len = (size_t)(nl - line);
        *p = nl + 1;
        return line;
}

int main(int argc, char **argv) {
        FILE *f;
        char *buf, *clean = malloc(LOGD_CLEAN_SIZE(LOGD_LINE_MAX)), record[LOGD_CLEAN_SIZE(LOGD_LINE_MAX) + 64];
        size_t size;
        int rounds = argc > 2 ? atoi(argv[2]) : 5;
        double best_split = 1e9, best_classify = 1e9, best_pipeline = 1e9;
        unsigned long levels[_LOGD_LEVEL_MAX] = {}, lines = 0;
        volatile unsigned long sink = 0;

        if (argc < 2 || !(f = fopen(argv[1], "rb")))
                return 2;
        fseek(f, 0, SEEK_END);
        size = (size_t)ftell(f);
        rewind(f);
        buf = malloc(size);
        if (!buf || !clean || fread(buf, 1, size, f) != size)
                return 2;
        fclose(f);

        for (int r = 0; r < rounds; r++) {
                double t0 = now_s(), t1, t2, t3;

                const char *p, *end = buf + size, *line;
                size_t len;

                for (p = buf; p < end;) {
                        line = next_line(&p, end, &len);
                        sink += len + (unsigned long)(line == buf);
                }
                t1 = now_s();
                for (p = buf; p < end;) {
                        line = next_line(&p, end, &len);
                        sink += (unsigned long)logd_classify(line, len);
                }
                t2 = now_s();
                /* What logd does per captured line: clean, classify, format the record. */
                for (p = buf; p < end;) {
                        line = next_line(&p, end, &len);
                        logd_entry_t e = { .ts = 1795300000000, .seq = (uint64_t)(line - buf) };
                        size_t n = len < LOGD_LINE_MAX ? len : LOGD_LINE_MAX;

                        e.message_len = logd_line_clean(line, n, clean, &e.stream);
                        e.message = clean;
                        e.level = logd_classify(clean, e.message_len);
                        sink += (unsigned long)logd_record_format(&e, record, sizeof(record));
                        if (r == 0) {
                                levels[e.level]++;
                                lines++;
                        }
                }
                t3 = now_s();
                if (t1 - t0 < best_split)
                        best_split = t1 - t0;
                if (t2 - t1 < best_classify)
                        best_classify = t2 - t1;
                if (t3 - t2 < best_pipeline)
                        best_pipeline = t3 - t2;
        }
        printf("{\"bytes\": %zu, \"lines\": %lu, \"split_mb_s\": %.1f, \"classify_mb_s\": %.1f, \"pipeline_mb_s\": "
               "%.1f, "
               "\"levels\": {\"error\": %lu, \"warning\": %lu, \"info\": %lu, \"debug\": %lu, \"unknown\": %lu}}\n",
               size, lines, size / best_split / 1e6, size / best_classify / 1e6, size / best_pipeline / 1e6,
               levels[LOGD_LEVEL_ERROR], levels[LOGD_LEVEL_WARNING], levels[LOGD_LEVEL_INFO], levels[LOGD_LEVEL_DEBUG],
               levels[LOGD_LEVEL_UNKNOWN]);
        free(buf);
        free(clean);
        return sink == 42 ? 1 : 0;
}
