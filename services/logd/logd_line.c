/* logd_line.c: raw console bytes to clean messages, and the one-line record format of the store. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "lib/util.h"
#include "services/logd/logd.h"

/* Length of the valid UTF-8 sequence at s (1 to 4), or 0 if the byte there starts none:
 * overlong forms, surrogates and code points above U+10FFFF are invalid (RFC 3629). */
static size_t utf8_valid(const unsigned char *s, size_t len) {
        unsigned char c = s[0];
        size_t n;
        uint32_t cp;

        if (c < 0x80)
                return 1;
        if (c >= 0xc2 && c <= 0xdf) {
                n = 2;
                cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
                n = 3;
                cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
                n = 4;
                cp = c & 0x07;
        } else
                return 0;
        if (len < n)
                return 0;
        for (size_t k = 1; k < n; k++) {
                if ((s[k] & 0xc0) != 0x80)
                        return 0;
                cp = (cp << 6) | (s[k] & 0x3f);
        }
        if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        return n;
}

size_t logd_line_clean(const char *raw, size_t len, char *out, logd_stream_t *ret_stream) {
        static const char *const prefixes[] = { LOGD_WORKLOAD_PREFIX, LOGD_WORKLOAD_ERR_PREFIX };
        const unsigned char *s = (const unsigned char *)raw;
        size_t n = 0;

        *ret_stream = LOGD_STREAM_SYSTEM;
        for (size_t k = 0; k < ELEMENTSOF(prefixes); k++) {
                size_t p = strlen(prefixes[k]);

                if (len >= p && memcmp(raw, prefixes[k], p) == 0) {
                        *ret_stream = LOGD_STREAM_WORKLOAD;
                        s += p;
                        len -= p;
                        break;
                }
        }
        /* The serial line ends lines with "\r\n". */
        while (len > 0 && (s[len - 1] == '\r' || s[len - 1] == '\0'))
                len--;
        for (size_t i = 0; i < len;) {
                size_t k;

                /* Runs of plain ASCII, the common case, go in one copy. */
                for (k = i; k < len && s[k] < 0x80 && s[k] != '\0'; k++)
                        ;
                if (k > i) {
                        memcpy(out + n, s + i, k - i);
                        n += k - i;
                        i = k;
                        continue;
                }
                if (s[i] == '\0') {
                        i++;
                        continue;
                }
                k = utf8_valid(s + i, len - i);
                if (k == 0) {
                        memcpy(out + n, "\xef\xbf\xbd", 3);
                        n += 3;
                        i++;
                        continue;
                }
                memcpy(out + n, s + i, k);
                n += k;
                i += k;
        }
        out[n] = '\0';
        return n;
}

static const char level_chars[_LOGD_LEVEL_MAX] = "ewidu";
static const char stream_chars[_LOGD_STREAM_MAX] = "sw";

/* Decimal digits of v into p; returns their count. (snprintf was a tenth of logd's CPU time.) */
static size_t put_u64(char *p, uint64_t v) {
        char tmp[20];
        size_t n = 0;

        do
                tmp[n++] = (char)('0' + v % 10);
        while ((v /= 10) > 0);
        for (size_t k = 0; k < n; k++)
                p[k] = tmp[n - 1 - k];
        return n;
}

int logd_record_format(const logd_entry_t *e, char *buf, size_t size) {
        size_t n = 0;

        if (e->level >= _LOGD_LEVEL_MAX || e->stream >= _LOGD_STREAM_MAX)
                return -EINVAL;
        if (size < LOGD_RECORD_OVERHEAD + e->message_len + 1)
                return -ENOBUFS;
        n += put_u64(buf + n, e->ts);
        buf[n++] = ' ';
        n += put_u64(buf + n, e->seq);
        buf[n++] = ' ';
        buf[n++] = level_chars[e->level];
        buf[n++] = stream_chars[e->stream];
        buf[n++] = ' ';
        memcpy(buf + n, e->message, e->message_len);
        n += e->message_len;
        buf[n++] = '\n';
        return (int)n;
}

/* A decimal u64 ending at a space; advances *p past the space. */
static int parse_field(const char **p, const char *end, uint64_t *ret) {
        const char *s = *p;
        uint64_t v = 0;

        if (s >= end || *s < '0' || *s > '9')
                return -EBADMSG;
        for (; s < end && *s >= '0' && *s <= '9'; s++) {
                if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
                        return -EBADMSG;
                v = v * 10 + (uint64_t)(*s - '0');
        }
        if (s >= end || *s != ' ')
                return -EBADMSG;
        *p = s + 1;
        *ret = v;
        return 0;
}

int logd_record_parse(const char *line, size_t len, logd_entry_t *ret) {
        const char *p = line, *end = line + len, *l, *st;
        logd_entry_t e = {};

        if (parse_field(&p, end, &e.ts) < 0 || parse_field(&p, end, &e.seq) < 0)
                return -EBADMSG;
        if (end - p < 3 || p[2] != ' ')
                return -EBADMSG;
        l = memchr(level_chars, p[0], sizeof(level_chars));
        st = memchr(stream_chars, p[1], sizeof(stream_chars));
        if (!l || !st || p[0] == '\0' || p[1] == '\0')
                return -EBADMSG;
        e.level = (logd_level_t)(l - level_chars);
        e.stream = (logd_stream_t)(st - stream_chars);
        e.message = p + 3;
        e.message_len = (size_t)(end - p - 3);
        *ret = e;
        return 0;
}
