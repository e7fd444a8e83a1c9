/* apiserver_prom.c: Prometheus text exposition: families, samples, histograms, escaping. */
#include "services/apiserver/apiserver_prom.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

int prom_open(prom_t *p) {
        *p = (prom_t){};
        p->f = open_memstream(&p->buf, &p->size);
        return p->f ? 0 : -errno;
}

const char *prom_text(prom_t *p, size_t *ret_size) {
        fflush(p->f);
        *ret_size = p->size;
        return p->buf ? p->buf : "";
}

void prom_close(prom_t *p) {
        if (p->f)
                fclose(p->f);
        free(p->buf);
        *p = (prom_t){};
}

static int name_char(char c, bool first, int label) {
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
                return 1;
        if (c == ':' && !label)
                return 1;
        return !first && c >= '0' && c <= '9';
}

/* Names and label values are written in runs between the characters that need care: a scrape
 * writes some hundred KiB, and a call per character was most of its cost. The stream is the
 * request's own (unlocked calls). */
void prom_write_name(FILE *f, const char *name, int label) {
        const char *run = name;

        if (!*name) {
                fputc_unlocked('_', f);
                return;
        }
        for (const char *c = name; *c; c++)
                if (!name_char(*c, c == name, label)) {
                        fwrite_unlocked(run, 1, (size_t)(c - run), f);
                        fputc_unlocked('_', f);
                        run = c + 1;
                }
        fputs_unlocked(run, f);
}

void prom_escape_label(FILE *f, const char *value) {
        for (;;) {
                size_t n = strcspn(value, "\\\"\n");

                fwrite_unlocked(value, 1, n, f);
                value += n;
                if (!*value)
                        return;
                fputs_unlocked(*value == '\n' ? "\\n" : *value == '"' ? "\\\"" : "\\\\", f);
                value++;
        }
}

static void escape_help(FILE *f, const char *help) {
        for (const char *c = help; *c; c++)
                if (*c == '\\')
                        fputs_unlocked("\\\\", f);
                else if (*c == '\n')
                        fputs_unlocked("\\n", f);
                else
                        fputc_unlocked(*c, f);
}

void prom_family(prom_t *p, const char *name, const char *type, const char *help) {
        fputs_unlocked("# HELP ", p->f);
        prom_write_name(p->f, name, 0);
        fputc_unlocked(' ', p->f);
        escape_help(p->f, help);
        fputs_unlocked("\n# TYPE ", p->f);
        prom_write_name(p->f, name, 0);
        fputc_unlocked(' ', p->f);
        fputs_unlocked(type, p->f);
        fputc_unlocked('\n', p->f);
}

static void write_value(FILE *f, double v) {
        char buf[32];

        if (isnan(v))
                fputs_unlocked("NaN", f);
        else if (isinf(v))
                fputs_unlocked(v > 0 ? "+Inf" : "-Inf", f);
        else {
                if (v > -9007199254740992.0 && v < 9007199254740992.0 && v == (double)(int64_t)v)
                        snprintf(buf, sizeof(buf), "%lld", (long long)v); /* counts and bytes stay integers */
                else
                        snprintf(buf, sizeof(buf), "%.17g", v);
                fputs_unlocked(buf, f);
        }
}

/* name{labels[,extra_name="extra_value"]} value */
static void write_sample(prom_t *p, const char *name, const char *suffix, const char *const *labels,
                         const char *extra_name, const char *extra_value, double value) {
        bool any = false;

        prom_write_name(p->f, name, 0);
        fputs_unlocked(suffix, p->f);
        for (const char *const *l = labels; l && l[0] && l[1]; l += 2) {
                fputc_unlocked(any ? ',' : '{', p->f);
                prom_write_name(p->f, l[0], 1);
                fputs_unlocked("=\"", p->f);
                prom_escape_label(p->f, l[1]);
                fputc_unlocked('"', p->f);
                any = true;
        }
        if (extra_name) {
                fputc_unlocked(any ? ',' : '{', p->f);
                fputs_unlocked(extra_name, p->f);
                fputs_unlocked("=\"", p->f);
                fputs_unlocked(extra_value, p->f);
                fputc_unlocked('"', p->f);
                any = true;
        }
        if (any)
                fputc_unlocked('}', p->f);
        fputc_unlocked(' ', p->f);
        write_value(p->f, value);
        fputc_unlocked('\n', p->f);
}

void prom_sample(prom_t *p, const char *name, const char *const *labels, double value) {
        write_sample(p, name, "", labels, NULL, NULL, value);
}

void prom_histogram(prom_t *p, const char *name, const char *const *labels, const double *bounds, size_t n_bounds,
                    const uint64_t *buckets, double sum, uint64_t count) {
        uint64_t cumulated = 0;
        char le[32];

        for (size_t k = 0; k < n_bounds; k++) {
                cumulated += buckets[k];
                snprintf(le, sizeof(le), "%g", bounds[k]);
                write_sample(p, name, "_bucket", labels, "le", le, (double)cumulated);
        }
        /* The +Inf bucket is every observation: count, whatever the buckets said. */
        write_sample(p, name, "_bucket", labels, "le", "+Inf", (double)count);
        write_sample(p, name, "_sum", labels, NULL, NULL, sum);
        write_sample(p, name, "_count", labels, NULL, NULL, (double)count);
}
