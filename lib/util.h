/* util.h: cleanup helpers, checked number parsing and clocks shared by every husk program. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Error convention (systemd's): functions return 0 or a positive count on success and a
 * negative errno on failure. Library code never logs above debug; the caller logs once. */

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))

static inline void freep(void *p) { free(*(void **)p); }
#define _cleanup_free_ _cleanup_(freep)

static inline void closep(int *fd) {
        if (*fd >= 0)
                close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

/* Hand ownership out of a _cleanup_ variable on the success path. */
#define TAKE_PTR(p)                       \
        ({                                \
                __typeof__(p) _tp_ = (p); \
                (p) = NULL;               \
                _tp_;                     \
        })
#define TAKE_FD(fd)              \
        ({                       \
                int _tf_ = (fd); \
                (fd) = -1;       \
                _tf_;            \
        })

#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))
/* A macro's value as a string literal: STRINGIFY(2375) is "2375". */
#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)
/* Spelled exactly as czmq_prelude.h spells it, so that both headers may define it. */
/* clang-format off */
#define streq(s1,s2)    (!strcmp ((s1), (s2)))
/* clang-format on */

/* Strict decimal parsers: the whole string must be a number in range, no sign for unsigned.
 * Return 0, -EINVAL on syntax, -ERANGE on overflow. */
int parse_u64(const char *s, uint64_t *ret);
int parse_i64(const char *s, int64_t *ret);

/* Durations as users write them: "250ms", "10s", "2m", "1h"; a bare number is seconds. */
int parse_duration_ms(const char *s, uint64_t *ret_ms);

/* Byte sizes: "512Mi", "1Gi", "128M", "64K", "1048576". Binary (Ki/Mi/Gi/Ti) and decimal
 * (K/M/G/T) suffixes as Kubernetes and Ring accept them. */
int parse_size_bytes(const char *s, uint64_t *ret);

/* "2026-11-22T05:30:00Z", "2026-11-22 05:30:00", with an optional fraction and a Z or ±HH:MM
 * offset, into unix ms. */
int parse_rfc3339_ms(const char *s, uint64_t *ret);
/* A `since` as logs and events take it: a duration back from now_ms ("10m", "1h", "30s") or an
 * RFC 3339 time. Returns 0 or -EINVAL; a duration longer than the epoch means "since 1 ms". */
int parse_since_ms(const char *s, uint64_t now_ms, uint64_t *ret);

uint64_t now_realtime_ms(void);
/* Unix ns: for the timestamps that measure husk's own milliseconds (make bench). */
uint64_t now_realtime_ns(void);
uint64_t now_monotonic_ms(void);

/* "2026-11-22T05:30:00.123Z" into buf (at least 32 bytes). */
char *format_timestamp_ms(uint64_t unix_ms, char *buf, size_t size);

/* FNV-1a, 64 bits: a name for a text (template keys, short directory names), not a MAC. */
uint64_t fnv1a_64(const void *data, size_t size);

/* Random lowercase hex string of 2*nbytes characters, from getrandom(). */
int random_hex(char *buf, size_t nbytes);

/* The "why" convention of functions that take char **ret_error: *ret_error becomes the
 * formatted message (when ret_error is not NULL; NULL if it cannot be allocated) and error is
 * returned, so that `return error_set(ret_error, -EINVAL, "image %s: ...", p);`. */
int error_set(char **ret_error, int error, const char *fmt, ...) _printf_(3, 4);

/* mkdir -p with the given mode for every created component. */
int mkdir_p(const char *path, unsigned mode);
/* rm -rf of one directory tree (does not cross mount points, does not follow symlinks). */
int rm_rf(const char *path);

/* Write a whole file atomically (temp file + rename) with mode. */
int write_file_atomic(const char *path, const void *data, size_t size, unsigned mode);
/* Read a whole file (at most max bytes, else -EFBIG) into a NUL-terminated buffer. */
int read_file(const char *path, size_t max, char **ret, size_t *ret_size);
/* The last lines of a (log) file as one line of text for a message: at most max_bytes from its
 * end (a line cut by that bound is dropped unless it is the only one), bytes that are not
 * printable ASCII as '?', empty lines skipped, lines joined by "; ". "" for an empty file. */
int read_file_tail(const char *path, size_t max_bytes, char **ret);
