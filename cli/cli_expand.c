/* cli_expand.c: ${VAR} expansion of manifest values from the environment and --env-file. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli_manifest.h"
#include "lib/util.h"

void cli_vars_clear(cli_vars_t *v) {
        for (size_t i = 0; i < v->n; i++) {
                free(v->names[i]);
                free(v->values[i]);
        }
        free(v->names);
        free(v->values);
        *v = (cli_vars_t){};
}

const char *cli_vars_get(const cli_vars_t *v, const char *name) {
        const char *e = getenv(name);

        if (e)
                return e;
        /* The last definition in the file wins, as when a shell sources it. */
        for (size_t i = v ? v->n : 0; i > 0; i--)
                if (streq(v->names[i - 1], name))
                        return v->values[i - 1];
        return NULL;
}

static int vars_add(cli_vars_t *v, const char *name, size_t name_len, const char *value, size_t value_len) {
        char **nn, **nv;

        nn = reallocarray(v->names, v->n + 1, sizeof(char *));
        if (!nn)
                return -ENOMEM;
        v->names = nn;
        nv = reallocarray(v->values, v->n + 1, sizeof(char *));
        if (!nv)
                return -ENOMEM;
        v->values = nv;
        v->names[v->n] = strndup(name, name_len);
        v->values[v->n] = strndup(value, value_len);
        if (!v->names[v->n] || !v->values[v->n]) {
                free(v->names[v->n]);
                free(v->values[v->n]);
                return -ENOMEM;
        }
        v->n++;
        return 0;
}

static bool is_name_start(char c) { return isalpha((unsigned char)c) || c == '_'; }
static bool is_name_char(char c) { return isalnum((unsigned char)c) || c == '_'; }

static const char *trim_span(const char *s, const char *end, const char **ret_end) {
        while (s < end && isspace((unsigned char)*s))
                s++;
        while (end > s && isspace((unsigned char)end[-1]))
                end--;
        *ret_end = end;
        return s;
}

int cli_vars_load_env_file(cli_vars_t *v, const char *path, char **ret_error) {
        _cleanup_free_ char *data = NULL;
        unsigned line_no = 0;
        const char *line;
        int r;

        r = read_file(path, 1024 * 1024, &data, NULL);
        if (r < 0) {
                if (asprintf(ret_error, "%s: %s", path, strerror(-r)) < 0)
                        *ret_error = NULL;
                return r;
        }
        for (line = data; *line;) {
                const char *eol = line + strcspn(line, "\n"), *end, *s, *eq, *kend = NULL, *val, *vend;

                line_no++;
                s = trim_span(line, eol, &end);
                line = *eol ? eol + 1 : eol;
                if (s == end || *s == '#')
                        continue;
                if ((size_t)(end - s) > 7 && strncmp(s, "export ", 7) == 0)
                        s = trim_span(s + 7, end, &end);
                eq = memchr(s, '=', (size_t)(end - s));
                if (eq)
                        trim_span(s, eq, &kend);
                if (!eq || kend == s || !is_name_start(*s)) {
                        if (asprintf(ret_error, "%s:%u: expected KEY=VALUE", path, line_no) < 0)
                                *ret_error = NULL;
                        return -EINVAL;
                }
                for (const char *k = s; k < kend; k++)
                        if (!is_name_char(*k)) {
                                if (asprintf(ret_error, "%s:%u: '%.*s' is not a variable name", path, line_no,
                                             (int)(kend - s), s) < 0)
                                        *ret_error = NULL;
                                return -EINVAL;
                        }
                val = trim_span(eq + 1, end, &vend);
                if (vend - val >= 2 && (*val == '"' || *val == '\'') && vend[-1] == *val) {
                        val++;
                        vend--;
                }
                r = vars_add(v, s, (size_t)(kend - s), val, (size_t)(vend - val));
                if (r < 0)
                        return r;
        }
        return 0;
}

int cli_expand(const char *in, const cli_vars_t *vars, bool ring_bare, char **ret, char **ret_bad) {
        _cleanup_free_ char *out = NULL;
        size_t size = 0;
        FILE *f;
        int r = 0;

        f = open_memstream(&out, &size);
        if (!f)
                return -ENOMEM;
        for (const char *p = in; *p;) {
                if (p[0] != '$') {
                        fputc(*p++, f);
                } else if (p[1] == '$') {
                        fputc('$', f);
                        p += 2;
                } else if (p[1] == '{') {
                        const char *name = p + 2, *e = name;
                        _cleanup_free_ char *n = NULL;
                        const char *value;

                        if (is_name_start(*e))
                                for (e++; is_name_char(*e); e++)
                                        ;
                        if (e == name || *e != '}') {
                                size_t frag = strcspn(p, "}");
                                *ret_bad = strndup(p, frag > 64 ? 64 : frag + (p[frag] == '}'));
                                r = -EINVAL;
                                break;
                        }
                        n = strndup(name, (size_t)(e - name));
                        if (!n) {
                                r = -ENOMEM;
                                break;
                        }
                        value = cli_vars_get(vars, n);
                        if (!value) {
                                *ret_bad = TAKE_PTR(n);
                                r = -ENXIO;
                                break;
                        }
                        fputs(value, f);
                        p = e + 1;
                } else if (ring_bare && isalpha((unsigned char)p[1])) {
                        /* Ring's pattern is \$[a-zA-Z][0-9a-zA-Z_]*; undefined names stay. */
                        const char *e = p + 2;
                        _cleanup_free_ char *n = NULL;
                        const char *value;

                        while (is_name_char(*e))
                                e++;
                        n = strndup(p + 1, (size_t)(e - p - 1));
                        if (!n) {
                                r = -ENOMEM;
                                break;
                        }
                        value = cli_vars_get(vars, n);
                        if (value)
                                fputs(value, f);
                        else
                                fwrite(p, 1, (size_t)(e - p), f);
                        p = e;
                } else {
                        fputc(*p++, f);
                }
        }
        if (fclose(f) != 0 && r == 0)
                r = -ENOMEM;
        if (r < 0)
                return r;
        *ret = TAKE_PTR(out);
        return 0;
}
