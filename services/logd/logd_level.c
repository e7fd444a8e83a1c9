/* logd_level.c: the level of a console line, by Ring's rules (kernel priorities, crash markers, level words). */
#include <errno.h>
#include <string.h>

#include "lib/util.h"
#include "services/logd/logd.h"

static const char *const level_names[_LOGD_LEVEL_MAX] = {
        [LOGD_LEVEL_ERROR] = "error", [LOGD_LEVEL_WARNING] = "warning", [LOGD_LEVEL_INFO] = "info",
        [LOGD_LEVEL_DEBUG] = "debug", [LOGD_LEVEL_UNKNOWN] = "unknown",
};

const char *logd_level_name(logd_level_t l) { return l < _LOGD_LEVEL_MAX ? level_names[l] : "unknown"; }

int logd_level_from_name(const char *s) {
        for (int l = 0; s && l < _LOGD_LEVEL_MAX; l++)
                if (streq(s, level_names[l]))
                        return l;
        return -EINVAL;
}

const char *logd_stream_name(logd_stream_t s) { return s == LOGD_STREAM_WORKLOAD ? "workload" : "system"; }

typedef struct word {
        const char *word;
        size_t len;
        logd_level_t level;
} word_t;

#define W(w, l) \
        { w, sizeof(w) - 1, l }

/* Bracketed, either case: "[error]", "[WARN]"; also nginx's and systemd's own words. */
static const word_t bracketed[] = {
        W("error", LOGD_LEVEL_ERROR),    W("err", LOGD_LEVEL_ERROR),    W("crit", LOGD_LEVEL_ERROR),
        W("critical", LOGD_LEVEL_ERROR), W("fatal", LOGD_LEVEL_ERROR),  W("alert", LOGD_LEVEL_ERROR),
        W("emerg", LOGD_LEVEL_ERROR),    W("failed", LOGD_LEVEL_ERROR), W("warning", LOGD_LEVEL_WARNING),
        W("warn", LOGD_LEVEL_WARNING),   W("notice", LOGD_LEVEL_INFO),  W("info", LOGD_LEVEL_INFO),
        W("debug", LOGD_LEVEL_DEBUG),    W("trace", LOGD_LEVEL_DEBUG),
};

/* Bare uppercase words, as cloud-init and systemd print them: "ERROR", "WARN". */
static const word_t upper[] = {
        W("ERROR", LOGD_LEVEL_ERROR),     W("CRITICAL", LOGD_LEVEL_ERROR), W("FATAL", LOGD_LEVEL_ERROR),
        W("WARNING", LOGD_LEVEL_WARNING), W("WARN", LOGD_LEVEL_WARNING),   W("NOTICE", LOGD_LEVEL_INFO),
        W("INFO", LOGD_LEVEL_INFO),       W("DEBUG", LOGD_LEVEL_DEBUG),
};

/* Lowercase words followed by a colon: "info: ...", "error: ...". */
static const word_t colon[] = {
        W("error", LOGD_LEVEL_ERROR),  W("fatal", LOGD_LEVEL_ERROR), W("warning", LOGD_LEVEL_WARNING),
        W("warn", LOGD_LEVEL_WARNING), W("notice", LOGD_LEVEL_INFO), W("info", LOGD_LEVEL_INFO),
        W("debug", LOGD_LEVEL_DEBUG),
};

#define WORD_MAX 8 /* longest word in the tables */

static bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_word(char c) { return is_alpha(c) || is_digit(c) || c == '_'; }
static char lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c; }

static int lookup(const word_t *table, size_t n, const char *w, size_t len, bool fold) {
        char buf[WORD_MAX];

        if (len < 3 || len > WORD_MAX)
                return -1;
        for (size_t k = 0; k < len; k++)
                buf[k] = fold ? lower(w[k]) : w[k];
        for (size_t k = 0; k < n; k++)
                if (table[k].len == len && memcmp(table[k].word, buf, len) == 0)
                        return (int)table[k].level;
        return -1;
}

static bool starts_with(const char *s, size_t len, const char *prefix) {
        size_t n = strlen(prefix);

        return len >= n && memcmp(s, prefix, n) == 0;
}

/* "<N>" with N a syslog PRI (priority, possibly with a facility): the length, 0 if none. */
static size_t kernel_priority(const char *s, size_t len, int *ret_prio) {
        size_t k = 1;
        int v = 0;

        if (len < 3 || s[0] != '<')
                return 0;
        while (k < len && k <= 3 && is_digit(s[k]))
                v = v * 10 + (s[k++] - '0');
        if (k == 1 || k >= len || s[k] != '>' || v > 191)
                return 0;
        *ret_prio = v & 7;
        return k + 1;
}

/* "[    1.234567]" and the blanks after it: the length, 0 if none. */
static size_t kernel_timestamp(const char *s, size_t len) {
        size_t k = 1;
        bool dot = false, digits = false;

        if (len < 3 || s[0] != '[')
                return 0;
        while (k < len && s[k] == ' ')
                k++;
        for (; k < len && (is_digit(s[k]) || (s[k] == '.' && !dot)); k++) {
                if (s[k] == '.')
                        dot = true;
                else
                        digits = true;
        }
        if (!digits || !dot || k >= len || s[k] != ']')
                return 0;
        for (k++; k < len && s[k] == ' '; k++)
                ;
        return k;
}

static logd_level_t from_priority(int prio) {
        if (prio <= 3)
                return LOGD_LEVEL_ERROR;
        if (prio == 4)
                return LOGD_LEVEL_WARNING;
        if (prio <= 6)
                return LOGD_LEVEL_INFO;
        return LOGD_LEVEL_DEBUG;
}

static bool contains(const char *s, size_t len, const char *needle) {
        return memmem(s, len, needle, strlen(needle)) != NULL;
}

/* The first level word anywhere in the line. */
static int scan_words(const char *s, size_t len) {
        for (size_t i = 0; i < len;) {
                bool boundary = i == 0 || !is_word(s[i - 1]);
                size_t j;
                int l;

                if (!boundary) {
                        i++;
                        continue;
                }
                if (s[i] == '[') {
                        for (j = i + 1; j < len && is_alpha(s[j]); j++)
                                ;
                        if (j < len && s[j] == ']' &&
                            (l = lookup(bracketed, ELEMENTSOF(bracketed), s + i + 1, j - i - 1, true)) >= 0)
                                return l;
                        i++;
                        continue;
                }
                if (!is_alpha(s[i])) {
                        i++;
                        continue;
                }
                for (j = i; j < len && is_alpha(s[j]); j++)
                        ;
                /* Most words are neither: look only at those that could be. */
                if (j - i <= WORD_MAX && (j == len || !is_word(s[j]))) {
                        if (s[i] >= 'A' && s[i] <= 'Z' && s[j - 1] >= 'A' && s[j - 1] <= 'Z' &&
                            (l = lookup(upper, ELEMENTSOF(upper), s + i, j - i, false)) >= 0)
                                return l;
                        if (j < len && s[j] == ':' && s[i] >= 'a' && s[i] <= 'z' &&
                            (l = lookup(colon, ELEMENTSOF(colon), s + i, j - i, false)) >= 0)
                                return l;
                }
                i = j;
        }
        return -1;
}

/* ANSI escape sequences (systemd colours "[FAILED]" on a serial console) hide the words: the
 * line without them, into buf. */
static size_t strip_escapes(const char *s, size_t len, char *buf, size_t size) {
        size_t n = 0;

        for (size_t i = 0; i < len && n < size; i++) {
                if (s[i] == '\x1b' && i + 1 < len && s[i + 1] == '[') {
                        for (i += 2; i < len && !((unsigned char)s[i] >= 0x40 && (unsigned char)s[i] <= 0x7e); i++)
                                ;
                        continue;
                }
                buf[n++] = s[i];
        }
        return n;
}

static logd_level_t classify(const char *line, size_t len) {
        size_t k;
        int prio, l;

        /* Kernel: "<N>" first, or after the "[ts]" of printk.time; crash markers after both. */
        k = kernel_priority(line, len, &prio);
        if (k > 0)
                return from_priority(prio);
        k = kernel_timestamp(line, len);
        if (k > 0 && kernel_priority(line + k, len - k, &prio) > 0)
                return from_priority(prio);
        if (starts_with(line + k, len - k, "BUG:") || starts_with(line + k, len - k, "Oops:") ||
            starts_with(line + k, len - k, "Oops ") || contains(line, len, "Kernel panic"))
                return LOGD_LEVEL_ERROR;
        l = scan_words(line + k, len - k);
        return l >= 0 ? (logd_level_t)l : LOGD_LEVEL_UNKNOWN;
}

logd_level_t logd_classify(const char *line, size_t len) {
        char buf[1024];

        if (!memchr(line, '\x1b', len))
                return classify(line, len);
        return classify(buf, strip_escapes(line, len, buf, sizeof(buf)));
}
