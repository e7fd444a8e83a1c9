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

void prom_write_name(FILE *f, const char *name, int label) {
        if (!*name) {
                fputc('_', f);
                return;
        }
        for (const char *c = name; *c; c++)
                fputc(name_char(*c, c == name, label) ? *c : '_', f);
}

void prom_escape_label(FILE *f, const char *value) {
        for (const char *c = value; *c; c++)
                switch (*c) {
                case '\\':
                        fputs("\\\\", f);
                        break;
                case '"':
                        fputs("\\\"", f);
                        break;
                case '\n':
                        fputs("\\n", f);
                        break;
                default:
                        fputc(*c, f);
                }
}

static void escape_help(FILE *f, const char *help) {
        for (const char *c = help; *c; c++)
                if (*c == '\\')
                        fputs("\\\\", f);
                else if (*c == '\n')
                        fputs("\\n", f);
                else
                        fputc(*c, f);
}

void prom_family(prom_t *p, const char *name, const char *type, const char *help) {
        fputs("# HELP ", p->f);
        prom_write_name(p->f, name, 0);
        fputc(' ', p->f);
        escape_help(p->f, help);
        fputs("\n# TYPE ", p->f);
        prom_write_name(p->f, name, 0);
        fprintf(p->f, " %s\n", type);
}

static void write_value(FILE *f, double v) {
        if (isnan(v))
                fputs("NaN", f);
        else if (isinf(v))
                fputs(v > 0 ? "+Inf" : "-Inf", f);
        else if (v > -9007199254740992.0 && v < 9007199254740992.0 && v == (double)(int64_t)v)
                fprintf(f, "%lld", (long long)v); /* counts and bytes stay integers */
        else
                fprintf(f, "%.17g", v);
}

/* name{labels[,extra_name="extra_value"]} value */
static void write_sample(prom_t *p, const char *name, const char *suffix, const char *const *labels,
                         const char *extra_name, const char *extra_value, double value) {
        bool any = false;

        prom_write_name(p->f, name, 0);
        fputs(suffix, p->f);
        for (const char *const *l = labels; l && l[0] && l[1]; l += 2) {
                fputc(any ? ',' : '{', p->f);
                prom_write_name(p->f, l[0], 1);
                fputs("=\"", p->f);
                prom_escape_label(p->f, l[1]);
                fputc('"', p->f);
                any = true;
        }
        if (extra_name) {
                fprintf(p->f, "%c%s=\"%s\"", any ? ',' : '{', extra_name, extra_value);
                any = true;
        }
        if (any)
                fputc('}', p->f);
        fputc(' ', p->f);
        write_value(p->f, value);
        fputc('\n', p->f);
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
