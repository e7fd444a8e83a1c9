/* util.c: cleanup helpers, checked number parsing, clocks and small file utilities. */
#include "lib/util.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdlib.h>
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

int parse_u64(const char *s, uint64_t *ret) {
        char *end;
        unsigned long long v;

        if (!s || !*s || *s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno == ERANGE)
                return -ERANGE;
        if (*end != '\0')
                return -EINVAL;
        *ret = v;
        return 0;
}

int parse_i64(const char *s, int64_t *ret) {
        char *end;
        long long v;

        if (!s || !*s || (*s != '-' && (*s < '0' || *s > '9')))
                return -EINVAL;
        errno = 0;
        v = strtoll(s, &end, 10);
        if (errno == ERANGE)
                return -ERANGE;
        if (*end != '\0' || end == s)
                return -EINVAL;
        *ret = v;
        return 0;
}

/* Split "123abc" into a number and its suffix; the number must be present. */
static int split_number(const char *s, uint64_t *num, const char **suffix) {
        char buf[32];
        size_t n = 0;

        while (s[n] >= '0' && s[n] <= '9')
                n++;
        if (n == 0 || n >= sizeof(buf))
                return n == 0 ? -EINVAL : -ERANGE;
        memcpy(buf, s, n);
        buf[n] = '\0';
        *suffix = s + n;
        return parse_u64(buf, num);
}

typedef struct unit {
        const char *suffix;
        uint64_t factor;
} unit_t;

/* "<digits><suffix>" where suffix is one of units: the number times the unit's factor, with
 * overflow reported as -ERANGE rather than wrapped. */
static int parse_with_units(const char *s, const unit_t *units, size_t n_units, uint64_t *ret) {
        const char *suffix;
        uint64_t n;
        int r;

        if (!s)
                return -EINVAL;
        r = split_number(s, &n, &suffix);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n_units; i++) {
                if (!streq(suffix, units[i].suffix))
                        continue;
                if (n > UINT64_MAX / units[i].factor)
                        return -ERANGE;
                *ret = n * units[i].factor;
                return 0;
        }
        return -EINVAL;
}

int parse_duration_ms(const char *s, uint64_t *ret_ms) {
        static const unit_t units[] = {
                { "ms", 1 }, { "s", 1000 }, { "", 1000 }, { "m", 60000 }, { "h", 3600000 },
        };

        return parse_with_units(s, units, ELEMENTSOF(units), ret_ms);
}

int parse_size_bytes(const char *s, uint64_t *ret) {
        static const unit_t units[] = {
                { "", 1 },
                { "Ki", 1ULL << 10 },
                { "Mi", 1ULL << 20 },
                { "Gi", 1ULL << 30 },
                { "Ti", 1ULL << 40 },
                { "K", 1000ULL },
                { "M", 1000000ULL },
                { "G", 1000000000ULL },
                { "T", 1000000000000ULL },
                { "k", 1000ULL },
        };

        return parse_with_units(s, units, ELEMENTSOF(units), ret);
}

int parse_rfc3339_ms(const char *s, uint64_t *ret) {
        struct tm tm = {};
        const char *p;
        int64_t ms = 0, offset = 0;
        time_t t;

        p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
        if (!p)
                p = strptime(s, "%Y-%m-%d %H:%M:%S", &tm);
        if (!p)
                return -EINVAL;
        if (*p == '.') {
                int digits = 0;
                for (p++; *p >= '0' && *p <= '9'; p++, digits++)
                        if (digits < 3)
                                ms = ms * 10 + (*p - '0');
                if (digits == 0)
                        return -EINVAL;
                for (; digits < 3; digits++)
                        ms *= 10;
        }
        if (*p == 'Z' || *p == 'z')
                p++;
        else if (*p == '+' || *p == '-') {
                int sign = *p == '-' ? -1 : 1, hh, mm;
                if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2 || hh > 23 || mm > 59 || strlen(p) != 6)
                        return -EINVAL;
                offset = sign * (hh * 3600 + mm * 60);
                p += 6;
        } else
                return -EINVAL;
        if (*p != '\0')
                return -EINVAL;
        t = timegm(&tm);
        if (t == (time_t)-1 || (int64_t)t - offset < 0)
                return -EINVAL;
        *ret = (uint64_t)((int64_t)t - offset) * 1000 + (uint64_t)ms;
        return 0;
}

int parse_since_ms(const char *s, uint64_t now_ms, uint64_t *ret) {
        uint64_t d;

        if (parse_duration_ms(s, &d) == 0) {
                *ret = d < now_ms ? now_ms - d : 1;
                return 0;
        }
        return parse_rfc3339_ms(s, ret);
}

static uint64_t clock_ms(clockid_t id) {
        struct timespec ts;

        clock_gettime(id, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t now_realtime_ms(void) { return clock_ms(CLOCK_REALTIME); }

uint64_t now_realtime_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
}
uint64_t now_monotonic_ms(void) { return clock_ms(CLOCK_MONOTONIC); }

/* The UTC date by arithmetic on days since 1970 (the proleptic Gregorian calendar in 400-year
 * eras of 146097 days, shifted to start in March so that the leap day ends a year): glibc's
 * gmtime_r takes its time zone lock on every call, and civetweb's workers format thousands of
 * timestamps per list answer side by side. */
char *format_timestamp_ms(uint64_t unix_ms, char *buf, size_t size) {
        uint64_t secs = unix_ms / 1000, days = secs / 86400, of_day = secs % 86400;
        uint64_t z = days + 719468, era = z / 146097, doe = z % 146097;
        uint64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        uint64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
        uint64_t day = doy - (153 * mp + 2) / 5 + 1, month = mp < 10 ? mp + 3 : mp - 9;
        uint64_t year = yoe + era * 400 + (month <= 2);
        /* "YYYY-MM-DDTHH:MM:SS.mmmZ": each field's digits written in place (a list answer
         * formats two per record; snprintf's parsing was most of that). */
        const struct {
                uint64_t value;
                unsigned width;
                char after;
        } fields[] = { { year, 4, '-' },
                       { month, 2, '-' },
                       { day, 2, 'T' },
                       { of_day / 3600, 2, ':' },
                       { of_day / 60 % 60, 2, ':' },
                       { of_day % 60, 2, '.' },
                       { unix_ms % 1000, 3, 'Z' } };
        char text[32], *p = text;
        size_t n;

        if (year > 9999) {
                snprintf(buf, size,
                         "%" PRIu64 "-%02" PRIu64 "-%02" PRIu64 "T%02" PRIu64 ":%02" PRIu64 ":%02" PRIu64 ".%03uZ",
                         year, month, day, of_day / 3600, of_day / 60 % 60, of_day % 60, (unsigned)(unix_ms % 1000));
                return buf;
        }
        for (size_t f = 0; f < ELEMENTSOF(fields); f++) {
                uint64_t v = fields[f].value;

                for (unsigned k = fields[f].width; k > 0; k--, v /= 10)
                        p[k - 1] = (char)('0' + v % 10);
                p += fields[f].width;
                *p++ = fields[f].after;
        }
        n = (size_t)(p - text);
        if (size > 0) {
                n = n < size - 1 ? n : size - 1;
                memcpy(buf, text, n);
                buf[n] = '\0';
        }
        return buf;
}

uint64_t fnv1a_64(const void *data, size_t size) {
        const unsigned char *p = data;
        uint64_t h = 0xcbf29ce484222325ull;

        for (size_t k = 0; k < size; k++) {
                h ^= p[k];
                h *= 0x100000001b3ull;
        }
        return h;
}

int random_hex(char *buf, size_t nbytes) {
        unsigned char raw[64];
        ssize_t n;

        if (nbytes > sizeof(raw))
                return -EINVAL;
        n = getrandom(raw, nbytes, 0);
        if (n < 0)
                return -errno;
        if ((size_t)n != nbytes)
                return -EIO;
        for (size_t i = 0; i < nbytes; i++)
                snprintf(buf + 2 * i, 3, "%02x", raw[i]);
        return 0;
}

int mkdir_p(const char *path, unsigned mode) {
        char buf[PATH_MAX];
        size_t len = strlen(path);

        if (len == 0 || len >= sizeof(buf))
                return -EINVAL;
        memcpy(buf, path, len + 1);
        for (char *p = buf + 1; *p; p++) {
                if (*p != '/')
                        continue;
                *p = '\0';
                if (mkdir(buf, mode) < 0 && errno != EEXIST)
                        return -errno;
                *p = '/';
        }
        if (mkdir(buf, mode) < 0) {
                struct stat st;

                if (errno != EEXIST)
                        return -errno;
                /* EEXIST says nothing about what is there: a file in the way is an error. */
                if (stat(buf, &st) < 0)
                        return -errno;
                if (!S_ISDIR(st.st_mode))
                        return -ENOTDIR;
        }
        return 0;
}

static int rm_rf_at(int dirfd, const char *name, dev_t dev) {
        struct stat st;
        int r = 0;

        if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (S_ISDIR(st.st_mode)) {
                DIR *d;
                struct dirent *de;
                int fd;

                if (st.st_dev != dev)
                        return -EXDEV;
                fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0)
                        return -errno;
                d = fdopendir(fd);
                if (!d) {
                        close(fd);
                        return -errno;
                }
                while ((de = readdir(d))) {
                        int q;

                        if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                                continue;
                        q = rm_rf_at(fd, de->d_name, dev);
                        if (q < 0 && r == 0)
                                r = q;
                }
                closedir(d);
                if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && r == 0)
                        r = -errno;
                return r;
        }
        if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
                return -errno;
        return 0;
}

int rm_rf(const char *path) {
        struct stat st;

        if (lstat(path, &st) < 0)
                return errno == ENOENT ? 0 : -errno;
        return rm_rf_at(AT_FDCWD, path, st.st_dev);
}

int write_file_atomic(const char *path, const void *data, size_t size, unsigned mode) {
        char tmp[PATH_MAX];
        const char *p = data;
        int fd;

        if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof(tmp))
                return -ENAMETOOLONG;
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        if (fd < 0)
                return -errno;
        while (size > 0) {
                ssize_t n = write(fd, p, size);
                if (n < 0) {
                        int r = -errno;
                        close(fd);
                        unlink(tmp);
                        return r;
                }
                p += n;
                size -= (size_t)n;
        }
        if (fsync(fd) < 0 || close(fd) < 0) {
                int r = -errno;
                unlink(tmp);
                return r;
        }
        if (rename(tmp, path) < 0) {
                int r = -errno;
                unlink(tmp);
                return r;
        }
        return 0;
}

int read_file(const char *path, size_t max, char **ret, size_t *ret_size) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *buf = NULL;
        /* Read up to one byte past max: that tells a file of exactly max bytes from a longer one,
         * whatever max is relative to the buffer's growth steps. */
        size_t limit = max < SIZE_MAX - 1 ? max + 1 : SIZE_MAX - 1;
        size_t len = 0, cap = limit < 4096 ? limit : 4096;

        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        buf = malloc(cap + 1);
        if (!buf)
                return -ENOMEM;
        while (len < limit) {
                ssize_t n;

                if (len == cap) {
                        char *nb;
                        cap = cap > limit / 2 ? limit : cap * 2;
                        nb = realloc(buf, cap + 1);
                        if (!nb)
                                return -ENOMEM;
                        buf = nb;
                }
                n = read(fd, buf + len, cap - len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                len += (size_t)n;
        }
        if (len > max)
                return -EFBIG;
        buf[len] = '\0';
        if (ret_size)
                *ret_size = len;
        *ret = TAKE_PTR(buf);
        return 0;
}

int read_file_tail(const char *path, size_t max_bytes, char **ret) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *buf = NULL, *out = NULL;
        size_t len = 0, n_out = 0;
        struct stat st;
        off_t from;
        char *line, *p;

        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        /* One byte more before the window: a window that starts at a line start keeps that line. */
        from = st.st_size > (off_t)max_bytes ? st.st_size - (off_t)max_bytes - 1 : 0;
        buf = malloc(max_bytes + 2);
        /* "a\nb\n" becomes "a; b": a joined line can be half again as long as its input. */
        out = malloc(2 * max_bytes + 1);
        if (!buf || !out)
                return -ENOMEM;
        while (len < max_bytes + (from > 0)) {
                ssize_t k = pread(fd, buf + len, max_bytes + (from > 0) - len, from + (off_t)len);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        break;
                len += (size_t)k;
        }
        buf[len] = '\0';
        for (size_t c = 0; c < len; c++)
                if (buf[c] == '\0')
                        buf[c] = '?';
        p = buf;
        /* Started mid-line: drop that piece, unless it is all there is. */
        line = from > 0 ? memchr(buf, '\n', len) : NULL;
        if (line && line + 1 < buf + len)
                p = line + 1;
        else if (from > 0)
                p = buf + 1; /* the byte before the window */
        for (line = strtok_r(p, "\n", &p); line; line = strtok_r(NULL, "\n", &p)) {
                size_t k = strlen(line);

                while (k > 0 && (line[k - 1] == '\r' || line[k - 1] == ' ' || line[k - 1] == '\t'))
                        k--;
                if (k == 0)
                        continue;
                if (n_out > 0) {
                        memcpy(out + n_out, "; ", 2);
                        n_out += 2;
                }
                for (size_t c = 0; c < k; c++)
                        out[n_out++] = line[c] >= 0x20 && line[c] < 0x7f ? line[c] : '?';
        }
        out[n_out] = '\0';
        *ret = TAKE_PTR(out);
        return 0;
}

int error_set(char **ret_error, int error, const char *fmt, ...) {
        va_list ap;

        if (ret_error) {
                va_start(ap, fmt);
                if (vasprintf(ret_error, fmt, ap) < 0)
                        *ret_error = NULL;
                va_end(ap);
        }
        return error;
}
