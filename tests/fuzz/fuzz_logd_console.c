/* fuzz_logd_console.c: libFuzzer target for what logd does with a guest's console bytes: split, clean, classify, store record. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The files under test, built in: the fuzz rule links the library sources only. */
#include "services/logd/logd_level.c"
#include "services/logd/logd_line.c"
#include "services/logd/logd_split.c"

typedef struct seen {
        uint64_t last_end;
        char clean[LOGD_CLEAN_SIZE(LOGD_LINE_MAX)];
        char record[LOGD_CLEAN_SIZE(LOGD_LINE_MAX) + LOGD_RECORD_OVERHEAD + 1];
} seen_t;

static bool valid_utf8(const char *s, size_t n) {
        for (size_t i = 0; i < n;) {
                size_t k = utf8_valid((const unsigned char *)s + i, n - i);
                if (k == 0)
                        return false;
                i += k;
        }
        return true;
}

static int on_line(const char *line, size_t len, uint64_t end, void *userdata) {
        seen_t *s = userdata;
        logd_entry_t e = { .ts = 1, .seq = end }, back;
        int n;

        /* Offsets only grow, and a piece is never longer than the limit. */
        assert(end > s->last_end || (end == s->last_end && len == 0 && end == 0));
        assert(len <= LOGD_LINE_MAX);
        assert(!memchr(line, '\n', len));
        s->last_end = end;

        e.message_len = logd_line_clean(line, len, s->clean, &e.stream);
        e.message = s->clean;
        assert(e.message_len < LOGD_CLEAN_SIZE(len));
        assert(valid_utf8(e.message, e.message_len));
        assert(!memchr(e.message, '\0', e.message_len) && !memchr(e.message, '\n', e.message_len));
        e.level = logd_classify(e.message, e.message_len);
        assert(e.level < _LOGD_LEVEL_MAX);

        n = logd_record_format(&e, s->record, sizeof(s->record));
        assert(n > 0 && s->record[n - 1] == '\n');
        assert(logd_record_parse(s->record, (size_t)n - 1, &back) == 0);
        assert(back.seq == e.seq && back.level == e.level && back.stream == e.stream);
        assert(back.message_len == e.message_len && memcmp(back.message, e.message, e.message_len) == 0);
        return 0;
}

/* The first byte chooses chunk sizes (the VMM writes whatever it likes, when it likes). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static seen_t s;
        logd_splitter_t sp;
        size_t chunk;

        if (size < 1)
                return 0;
        chunk = data[0] ? data[0] : size;
        data++;
        size--;
        s.last_end = 0;
        assert(logd_splitter_init(&sp, 0) == 0);
        for (size_t off = 0; off < size; off += chunk)
                assert(logd_splitter_feed(&sp, (const char *)data + off, size - off < chunk ? size - off : chunk,
                                          on_line, &s) == 0);
        assert(logd_splitter_flush(&sp, on_line, &s) == 0);
        assert(s.last_end == size || size == 0);
        logd_splitter_clear(&sp);
        /* Whatever the bytes, any record-shaped line either parses or is refused, never more. */
        {
                logd_entry_t e;
                (void)logd_record_parse((const char *)data, size, &e);
        }
        return 0;
}
