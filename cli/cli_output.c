/* cli_output.c: user messages, aligned tables, JSON output, ages and timestamp parsing. */
#include "cli/cli_output.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"

void cli_error(const char *fmt, ...) {
        va_list ap;

        fputs("error: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

void cli_warning(const char *fmt, ...) {
        va_list ap;

        fputs("warning: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

/* ---- tables --------------------------------------------------------------------------------- */

struct cli_table {
        size_t n_columns;
        size_t n_rows; /* the header row included */
        size_t cap_rows;
        char **cells; /* n_rows * n_columns, row-major */
};

int cli_table_new(size_t n_columns, const char *const *headers, cli_table_t **ret) {
        cli_table_t *t;
        int r;

        if (n_columns == 0)
                return -EINVAL;
        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        t->n_columns = n_columns;
        r = cli_table_add_row(t, headers);
        if (r < 0) {
                cli_table_free(t);
                return r;
        }
        *ret = t;
        return 0;
}

void cli_table_free(cli_table_t *t) {
        if (!t)
                return;
        for (size_t i = 0; i < t->n_rows * t->n_columns; i++)
                free(t->cells[i]);
        free(t->cells);
        free(t);
}

int cli_table_add_row(cli_table_t *t, const char *const *cells) {
        if (t->n_rows == t->cap_rows) {
                size_t cap = t->cap_rows ? t->cap_rows * 2 : 16;
                char **nc = reallocarray(t->cells, cap * t->n_columns, sizeof(char *));
                if (!nc)
                        return -ENOMEM;
                t->cells = nc;
                t->cap_rows = cap;
        }
        for (size_t c = 0; c < t->n_columns; c++) {
                char *s = strdup(cells[c] ? cells[c] : "");
                if (!s) {
                        while (c-- > 0)
                                free(t->cells[t->n_rows * t->n_columns + c]);
                        return -ENOMEM;
                }
                t->cells[t->n_rows * t->n_columns + c] = s;
        }
        t->n_rows++;
        return 0;
}

/* Display width in characters, not bytes: names may be UTF-8, and padding by bytes would
 * shift every later column. */
static size_t utf8_width(const char *s) {
        size_t n = 0;

        for (; *s; s++)
                if (((unsigned char)*s & 0xC0) != 0x80)
                        n++;
        return n;
}

void cli_table_write(const cli_table_t *t, FILE *f) {
        _cleanup_free_ size_t *width = calloc(t->n_columns, sizeof(size_t));

        if (!width)
                return;
        for (size_t r = 0; r < t->n_rows; r++)
                for (size_t c = 0; c < t->n_columns; c++) {
                        size_t w = utf8_width(t->cells[r * t->n_columns + c]);
                        if (w > width[c])
                                width[c] = w;
                }
        for (size_t r = 0; r < t->n_rows; r++) {
                char *const *row = t->cells + r * t->n_columns;
                size_t end = t->n_columns;

                /* Empty trailing cells get no padding: no line ends in blanks. */
                while (end > 1 && !*row[end - 1])
                        end--;
                for (size_t c = 0; c < end; c++) {
                        fputs(row[c], f);
                        if (c + 1 == end)
                                break;
                        for (size_t pad = utf8_width(row[c]); pad < width[c] + 3; pad++)
                                fputc(' ', f);
                }
                fputc('\n', f);
        }
}

/* ---- JSON ------------------------------------------------------------------------------------ */

void cli_json_write(FILE *f, const json_t *j) {
        json_dumpf(j, f, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        fputc('\n', f);
}

const char *cli_json_str(const json_t *obj, const char *key, const char *fallback) {
        const char *s = json_string_value(json_object_get(obj, key));
        return s ? s : fallback;
}

/* ---- time ------------------------------------------------------------------------------------ */

/* Exactly n decimal digits at s. */
static int digits(const char *s, size_t n, int *ret) {
        int v = 0;

        for (size_t i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EINVAL;
                v = v * 10 + (s[i] - '0');
        }
        *ret = v;
        return 0;
}

static int parse_time_string(const char *s, uint64_t *ret_ms) {
        struct tm tm = {};
        int year, mon, day, hour, min, sec, ms = 0, off_h = 0, off_m = 0, sign = 0;
        const char *p;
        time_t t;

        if (strlen(s) < 19 || digits(s, 4, &year) < 0 || s[4] != '-' || digits(s + 5, 2, &mon) < 0 || s[7] != '-' ||
            digits(s + 8, 2, &day) < 0 || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
            digits(s + 11, 2, &hour) < 0 || s[13] != ':' || digits(s + 14, 2, &min) < 0 || s[16] != ':' ||
            digits(s + 17, 2, &sec) < 0)
                return -EINVAL;
        p = s + 19;
        if (*p == '.') {
                int scale = 100;
                p++;
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                for (; *p >= '0' && *p <= '9'; p++, scale /= 10)
                        ms += (*p - '0') * scale; /* digits past milliseconds add 0 */
        }
        if (*p == 'Z' || *p == 'z') {
                p++;
        } else if (*p == '+' || *p == '-') {
                sign = *p == '-' ? -1 : 1;
                if (digits(p + 1, 2, &off_h) < 0 || p[3] != ':' || digits(p + 4, 2, &off_m) < 0)
                        return -EINVAL;
                p += 6;
        }
        if (*p != '\0' || mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60)
                return -EINVAL;

        tm.tm_year = year - 1900;
        tm.tm_mon = mon - 1;
        tm.tm_mday = day;
        tm.tm_hour = hour;
        tm.tm_min = min;
        tm.tm_sec = sec;
        t = timegm(&tm);
        if (t == (time_t)-1)
                return -EINVAL;
        t -= (time_t)sign * (off_h * 3600 + off_m * 60);
        if (t < 0)
                return -ERANGE;
        *ret_ms = (uint64_t)t * 1000 + (uint64_t)ms;
        return 0;
}

int cli_time_from_json(const json_t *v, uint64_t *ret_ms) {
        if (json_is_integer(v)) {
                json_int_t n = json_integer_value(v);
                if (n < 0)
                        return -ERANGE;
                /* 1e11 seconds is the year 5138; 1e11 milliseconds is March 1973. */
                *ret_ms = n < 100000000000LL ? (uint64_t)n * 1000 : (uint64_t)n;
                return 0;
        }
        if (json_is_string(v))
                return parse_time_string(json_string_value(v), ret_ms);
        return -EINVAL;
}

char *cli_format_age(uint64_t now_ms, uint64_t then_ms, char *buf, size_t size) {
        uint64_t s = now_ms > then_ms ? (now_ms - then_ms) / 1000 : 0;
        uint64_t m = s / 60, h = s / 3600, d = s / 86400, y = d / 365;

        if (s < 120)
                snprintf(buf, size, "%llus", (unsigned long long)s);
        else if (m < 10 && s % 60)
                snprintf(buf, size, "%llum%llus", (unsigned long long)m, (unsigned long long)(s % 60));
        else if (m < 180)
                snprintf(buf, size, "%llum", (unsigned long long)m);
        else if (h < 8 && m % 60)
                snprintf(buf, size, "%lluh%llum", (unsigned long long)h, (unsigned long long)(m % 60));
        else if (h < 48)
                snprintf(buf, size, "%lluh", (unsigned long long)h);
        else if (d < 8 && h % 24)
                snprintf(buf, size, "%llud%lluh", (unsigned long long)d, (unsigned long long)(h % 24));
        else if (d < 730)
                snprintf(buf, size, "%llud", (unsigned long long)d);
        else if (y < 8 && d % 365)
                snprintf(buf, size, "%lluy%llud", (unsigned long long)y, (unsigned long long)(d % 365));
        else
                snprintf(buf, size, "%lluy", (unsigned long long)y);
        return buf;
}

char *cli_format_json_age(const json_t *v, uint64_t now_ms, char *buf, size_t size) {
        uint64_t then;

        if (cli_time_from_json(v, &then) < 0) {
                snprintf(buf, size, "-");
                return buf;
        }
        return cli_format_age(now_ms, then, buf, size);
}

char *cli_format_bytes(uint64_t bytes, char *buf, size_t size) {
        static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
        double v = (double)bytes;
        size_t u = 0;

        if (bytes < 1024) {
                snprintf(buf, size, "%llu B", (unsigned long long)bytes);
                return buf;
        }
        for (v /= 1024; v >= 1024 && u + 1 < ELEMENTSOF(units); u++)
                v /= 1024;
        snprintf(buf, size, "%.1f %s", v, units[u]);
        return buf;
}
