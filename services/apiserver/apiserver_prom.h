/* apiserver_prom.h: a writer of Prometheus's text exposition format (version 0.0.4), for GET /metrics.
 *
 * A family is announced once (HELP, TYPE), then its samples follow, each with its labels as
 * NULL-terminated name/value pairs. Label values and HELP text are escaped here (backslash,
 * double quote in label values, newline); names are made valid ([a-zA-Z_:][a-zA-Z0-9_:]*, labels
 * without ':') by replacing what is not, so that no input can break the exposition. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

typedef struct prom {
        FILE *f; /* open_memstream over buf */
        char *buf;
        size_t size;
} prom_t;

int prom_open(prom_t *p);
/* The text so far (NUL-terminated); valid until prom_close(). */
const char *prom_text(prom_t *p, size_t *ret_size);
void prom_close(prom_t *p);

/* type: "gauge", "counter", "histogram" (or "untyped"). */
void prom_family(prom_t *p, const char *name, const char *type, const char *help);
/* labels: "name", "value", ..., NULL (or NULL alone for none). */
void prom_sample(prom_t *p, const char *name, const char *const *labels, double value);
/* name_bucket{labels,le="b"} for each bound (cumulated from per-bucket counts: buckets has
 * n_bounds + 1 entries, the last +Inf), name_bucket{le="+Inf"}, name_sum and name_count. */
void prom_histogram(prom_t *p, const char *name, const char *const *labels, const double *bounds, size_t n_bounds,
                    const uint64_t *buckets, double sum, uint64_t count);

/* For the tests: a label value escaped, a name made valid. */
void prom_escape_label(FILE *f, const char *value);
void prom_write_name(FILE *f, const char *name, int label);
