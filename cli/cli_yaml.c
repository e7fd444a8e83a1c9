/* cli_yaml.c: YAML to JSON for manifests: core-schema typing, anchors, merge keys, ${VAR}. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <yaml.h>

#include "cli/cli_manifest.h"
#include "lib/util.h"

#define TAG_PREFIX "tag:yaml.org,2002:"

typedef struct anchor {
        char *name;
        json_t *value;
        size_t nodes; /* what one more alias to it costs against the node budget */
} anchor_t;

typedef struct conv {
        yaml_parser_t parser;
        const char *filename;
        const cli_vars_t *vars; /* NULL: no expansion */
        anchor_t *anchors;
        size_t n_anchors;
        size_t nodes;
        const char *path[CLI_MANIFEST_MAX_DEPTH + 1]; /* keys down to the node; NULL: a list item */
        size_t index[CLI_MANIFEST_MAX_DEPTH + 1];     /* a list item's index, where path[] is NULL */
        size_t depth;
        json_t *lines; /* NULL, or "a.b[2].c" -> the line (from 1) where that node is written */
        char *error;
} conv_t;

static void anchors_clear(conv_t *c) {
        for (size_t i = 0; i < c->n_anchors; i++) {
                free(c->anchors[i].name);
                json_decref(c->anchors[i].value);
        }
        free(c->anchors);
        c->anchors = NULL;
        c->n_anchors = 0;
}

static int conv_failv(conv_t *c, unsigned line, unsigned column, const char *fmt, va_list ap) {
        _cleanup_free_ char *msg = NULL;

        if (vasprintf(&msg, fmt, ap) < 0)
                return -ENOMEM;
        free(c->error);
        c->error = NULL;
        if ((column > 0 ? asprintf(&c->error, "%s:%u:%u: %s", c->filename, line, column, msg)
                        : asprintf(&c->error, "%s:%u: %s", c->filename, line, msg)) < 0)
                c->error = NULL;
        return -EINVAL;
}

/* "FILE:LINE:COLUMN: ..." at a libyaml mark (which counts from 0). */
_printf_(3, 4) static int conv_fail(conv_t *c, const yaml_mark_t *m, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = conv_failv(c, (unsigned)m->line + 1, (unsigned)m->column + 1, fmt, ap);
        va_end(ap);
        return r;
}

/* "FILE:LINE: ..." for problems that belong to a line rather than a column. */
_printf_(3, 4) static int conv_fail_line(conv_t *c, unsigned line, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = conv_failv(c, line, 0, fmt, ap);
        va_end(ap);
        return r;
}

static int conv_parse(conv_t *c, yaml_event_t *ev) {
        yaml_parser_t *p = &c->parser;

        if (yaml_parser_parse(p, ev))
                return 0;
        if (p->error == YAML_MEMORY_ERROR)
                return -ENOMEM;
        if (p->error == YAML_READER_ERROR) {
                free(c->error);
                if (asprintf(&c->error, "%s: %s at byte %zu", c->filename, p->problem ? p->problem : "unreadable input",
                             p->problem_offset) < 0)
                        c->error = NULL;
                return -EINVAL;
        }
        if (p->context)
                return conv_fail(c, &p->problem_mark, "%s (%s at line %zu)", p->problem, p->context,
                                 p->context_mark.line + 1);
        return conv_fail(c, &p->problem_mark, "%s", p->problem ? p->problem : "syntax error");
}

static int conv_count(conv_t *c, size_t n, const yaml_mark_t *m) {
        if (n > CLI_MANIFEST_MAX_NODES - c->nodes)
                return conv_fail(c, m, "document too large: more than %u values once aliases are expanded",
                                 CLI_MANIFEST_MAX_NODES);
        c->nodes += n;
        return 0;
}

/* ---- scalars ------------------------------------------------------------------------------------ */

static bool is_digit(char ch) { return ch >= '0' && ch <= '9'; }

static bool all_of(const char *s, const char *set) { return *s && s[strspn(s, set)] == '\0'; }

/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static bool looks_float(const char *s) {
        bool mantissa = false;

        if (*s == '-' || *s == '+')
                s++;
        while (is_digit(*s)) {
                s++;
                mantissa = true;
        }
        if (*s == '.') {
                s++;
                while (is_digit(*s)) {
                        s++;
                        mantissa = true;
                }
        }
        if (!mantissa)
                return false;
        if (*s == 'e' || *s == 'E') {
                s++;
                if (*s == '-' || *s == '+')
                        s++;
                if (!is_digit(*s))
                        return false;
                while (is_digit(*s))
                        s++;
        }
        return *s == '\0';
}

static bool str_in(const char *s, const char *const *set) {
        for (; *set; set++)
                if (streq(s, *set))
                        return true;
        return false;
}

/* Type a plain scalar by the YAML 1.2 core schema. Returns a new JSON value, or NULL with
 * *why saying what cannot be represented. */
static json_t *resolve_plain(const char *s, const char **why) {
        static const char *const nulls[] = { "", "~", "null", "Null", "NULL", NULL };
        static const char *const trues[] = { "true", "True", "TRUE", NULL };
        static const char *const falses[] = { "false", "False", "FALSE", NULL };
        static const char *const specials[] = { ".inf",  ".Inf",  ".INF", "+.inf", "+.Inf", "+.INF", "-.inf",
                                                "-.Inf", "-.INF", ".nan", ".NaN",  ".NAN",  NULL };
        const char *digits = s + (*s == '-' || *s == '+');

        *why = NULL;
        if (str_in(s, nulls))
                return json_null();
        if (str_in(s, trues))
                return json_true();
        if (str_in(s, falses))
                return json_false();
        if (str_in(s, specials)) {
                *why = "cannot be represented in JSON";
                return NULL;
        }
        if ((strncmp(s, "0x", 2) == 0 && all_of(s + 2, "0123456789abcdefABCDEF")) ||
            (strncmp(s, "0o", 2) == 0 && all_of(s + 2, "01234567"))) {
                char *end;
                unsigned long long v;

                errno = 0;
                v = strtoull(s + 2, &end, s[1] == 'x' ? 16 : 8);
                if (errno == ERANGE || v > INT64_MAX) {
                        *why = "is out of the 64-bit integer range";
                        return NULL;
                }
                return json_integer((json_int_t)v);
        }
        if (all_of(digits, "0123456789")) {
                int64_t v;
                int r;

                /* "0755": octal to YAML 1.1, 755 to YAML 1.2; keep what the user wrote. */
                if (digits[0] == '0' && digits[1] != '\0')
                        return json_string(s);
                r = parse_i64(*s == '+' ? s + 1 : s, &v);
                if (r < 0) {
                        *why = "is out of the 64-bit integer range";
                        return NULL;
                }
                return json_integer(v);
        }
        if (looks_float(s)) {
                double d;
                char *end;

                errno = 0;
                d = strtod(s, &end);
                if (*end != '\0' || !isfinite(d)) {
                        *why = "is out of the floating-point range";
                        return NULL;
                }
                return json_real(d);
        }
        return json_string(s);
}

/* Ring expands bare $NAME only in these fields; husk does the same so that a Ring manifest
 * means what it meant, and nowhere else, so that e.g. a health-check command keeps its $HOME. */
static bool ring_bare_field(const conv_t *c) {
        const char *f;

        if (c->depth < 3 || c->depth > 4 || !c->path[0] || !streq(c->path[0], "deployments") || !c->path[1] ||
            !c->path[2])
                return false;
        f = c->path[2];
        if (c->depth == 3)
                return streq(f, "namespace") || streq(f, "name") || streq(f, "image");
        if (streq(f, "command"))
                return c->path[3] == NULL;
        return (streq(f, "environment") || streq(f, "config")) && c->path[3] != NULL;
}

/* The line of the first occurrence of frag inside a block scalar (whose text starts on the
 * line after its indicator); other styles report the scalar's own line. */
static unsigned scalar_line(const yaml_event_t *ev, const char *text, const char *frag) {
        unsigned line = (unsigned)ev->start_mark.line + 1;
        const char *at;

        if (ev->data.scalar.style != YAML_LITERAL_SCALAR_STYLE && ev->data.scalar.style != YAML_FOLDED_SCALAR_STYLE)
                return line;
        at = frag ? strstr(text, frag) : NULL;
        line++;
        for (const char *p = text; at && p < at; p++)
                if (*p == '\n')
                        line++;
        return line;
}

static int conv_scalar(conv_t *c, const yaml_event_t *ev, json_t **ret) {
        const char *raw = (const char *)ev->data.scalar.value;
        const char *tag = (const char *)ev->data.scalar.tag;
        _cleanup_free_ char *text = NULL;
        const char *why = NULL, *t;
        json_t *j;
        int r;

        if (strlen(raw) != ev->data.scalar.length)
                return conv_fail(c, &ev->start_mark, "NUL characters are not allowed in values");

        if (c->vars) {
                _cleanup_free_ char *bad = NULL;

                r = cli_expand(raw, c->vars, ring_bare_field(c), &text, &bad);
                if (r == -ENXIO)
                        return conv_fail_line(c, scalar_line(ev, raw, bad), "undefined environment variable %s", bad);
                if (r == -EINVAL)
                        return conv_fail_line(
                                c, scalar_line(ev, raw, bad),
                                "malformed variable reference '%s' (write ${NAME}, or $$ for a literal $)", bad);
                if (r < 0)
                        return r;
        } else {
                text = strdup(raw);
                if (!text)
                        return -ENOMEM;
        }

        if (!tag || streq(tag, "!")) {
                /* "!" is the non-specific tag: a string whatever it looks like. */
                if (tag || ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
                        j = json_string(text);
                else
                        j = resolve_plain(text, &why);
                if (!j && why)
                        return conv_fail(c, &ev->start_mark, "'%s' %s; quote it to keep it a string", text, why);
        } else if (strncmp(tag, TAG_PREFIX, strlen(TAG_PREFIX)) == 0) {
                t = tag + strlen(TAG_PREFIX);
                if (streq(t, "str")) {
                        j = json_string(text);
                } else if (streq(t, "null") || streq(t, "bool") || streq(t, "int") || streq(t, "float")) {
                        j = resolve_plain(text, &why);
                        if (!j && why)
                                return conv_fail(c, &ev->start_mark, "'%s' %s", text, why);
                        if (streq(t, "float") && json_is_integer(j)) {
                                json_t *f = json_real((double)json_integer_value(j));
                                json_decref(j);
                                j = f;
                        }
                        if (j && !((streq(t, "null") && json_is_null(j)) || (streq(t, "bool") && json_is_boolean(j)) ||
                                   (streq(t, "int") && json_is_integer(j)) || (streq(t, "float") && json_is_real(j)))) {
                                json_decref(j);
                                return conv_fail(c, &ev->start_mark, "'%s' is not a valid !!%s", text, t);
                        }
                } else {
                        return conv_fail(c, &ev->start_mark, "unsupported tag !!%s", t);
                }
        } else {
                return conv_fail(c, &ev->start_mark, "unsupported tag %s", tag);
        }
        if (!j) /* libyaml checked the file; a variable's value may still not be UTF-8 */
                return conv_fail(c, &ev->start_mark, "value is not valid UTF-8 once variables are expanded");
        *ret = j;
        return 0;
}

/* ---- collections ------------------------------------------------------------------------------- */

static int conv_node(conv_t *c, const yaml_event_t *ev, json_t **ret);

/* Parse the next event and the node it starts. */
static int conv_next_node(conv_t *c, yaml_mark_t *ret_mark, json_t **ret) {
        _cleanup_(yaml_event_delete) yaml_event_t ev = {};
        int r;

        r = conv_parse(c, &ev);
        if (r < 0)
                return r;
        if (ret_mark)
                *ret_mark = ev.start_mark;
        return conv_node(c, &ev, ret);
}

static int conv_push(conv_t *c, const char *key, const yaml_mark_t *m) {
        if (c->depth >= CLI_MANIFEST_MAX_DEPTH)
                return conv_fail(c, m, HUSK_NESTING_REASON, CLI_MANIFEST_MAX_DEPTH);
        c->path[c->depth++] = key;
        return 0;
}

/* Note where the node at the current path is written, the first time only (a later document
 * that repeats a path does not move it). "deployments.web.ports[0].published" is how the
 * API's violations name fields, prefixed by where the deployment sits in the file. */
static int conv_note_line(conv_t *c, const yaml_mark_t *m) {
        char buf[1024];
        size_t n = 0;

        if (!c->lines)
                return 0;
        for (size_t i = 0; i < c->depth && n < sizeof(buf); i++)
                n += (size_t)(c->path[i] ? snprintf(buf + n, sizeof(buf) - n, "%s%s", i ? "." : "", c->path[i])
                                         : snprintf(buf + n, sizeof(buf) - n, "[%zu]", c->index[i]));
        if (n == 0 || n >= sizeof(buf) || json_object_get(c->lines, buf))
                return 0; /* a path too long to name is not worth failing the file for */
        return json_object_set_new(c->lines, buf, json_integer((json_int_t)m->line + 1)) < 0 ? -ENOMEM : 0;
}

static int conv_sequence(conv_t *c, const yaml_event_t *start, json_t **ret) {
        _cleanup_(json_decrefp) json_t *arr = json_array();
        int r;

        if (!arr)
                return -ENOMEM;
        r = conv_push(c, NULL, &start->start_mark);
        if (r < 0)
                return r;
        for (;;) {
                _cleanup_(yaml_event_delete) yaml_event_t ev = {};
                json_t *item = NULL;

                r = conv_parse(c, &ev);
                if (r < 0)
                        break;
                if (ev.type == YAML_SEQUENCE_END_EVENT)
                        break;
                c->index[c->depth - 1] = json_array_size(arr);
                r = conv_note_line(c, &ev.start_mark);
                if (r < 0)
                        break;
                r = conv_node(c, &ev, &item);
                if (r < 0)
                        break;
                if (json_array_append_new(arr, item) < 0) {
                        r = -ENOMEM;
                        break;
                }
        }
        c->depth--;
        if (r < 0)
                return r;
        *ret = TAKE_PTR(arr);
        return 0;
}

/* "<<: *base" or "<<: [*a, *b]": keys of the merged mappings that the mapping does not set
 * itself; with a list, earlier mappings win. */
static int collect_merge(conv_t *c, json_t *merges, json_t *value, const yaml_mark_t *m) {
        size_t i;
        json_t *v;

        if (json_is_object(value))
                return json_array_append(merges, value) < 0 ? -ENOMEM : 0;
        if (json_is_array(value)) {
                json_array_foreach(value, i, v) {
                        if (!json_is_object(v))
                                return conv_fail(c, m, "'<<' takes a mapping or a list of mappings");
                        if (json_array_append(merges, v) < 0)
                                return -ENOMEM;
                }
                return 0;
        }
        return conv_fail(c, m, "'<<' takes a mapping or a list of mappings");
}

static int conv_mapping(conv_t *c, json_t **ret) {
        _cleanup_(json_decrefp) json_t *obj = json_object(), *merges = json_array();
        size_t i;
        json_t *src;
        int r;

        if (!obj || !merges)
                return -ENOMEM;
        for (;;) {
                _cleanup_(yaml_event_delete) yaml_event_t kev = {};
                _cleanup_(json_decrefp) json_t *value = NULL;
                const char *key;
                yaml_mark_t vmark;
                bool merge;

                r = conv_parse(c, &kev);
                if (r < 0)
                        return r;
                if (kev.type == YAML_MAPPING_END_EVENT)
                        break;
                if (kev.type != YAML_SCALAR_EVENT)
                        return conv_fail(c, &kev.start_mark, "mapping keys must be strings, not %s",
                                         kev.type == YAML_ALIAS_EVENT ? "aliases" : "lists or mappings");
                key = (const char *)kev.data.scalar.value;
                if (strlen(key) != kev.data.scalar.length)
                        return conv_fail(c, &kev.start_mark, "NUL characters are not allowed in keys");
                if (kev.data.scalar.anchor)
                        return conv_fail(c, &kev.start_mark, "anchors on keys are not supported");
                merge = kev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !kev.data.scalar.tag && streq(key, "<<");
                if (!merge && json_object_get(obj, key))
                        return conv_fail(c, &kev.start_mark, "duplicate key '%s'", key);

                r = conv_push(c, key, &kev.start_mark);
                if (r >= 0)
                        r = conv_note_line(c, &kev.start_mark);
                if (r < 0)
                        return r;
                r = conv_next_node(c, &vmark, &value);
                c->depth--;
                if (r < 0)
                        return r;
                if (merge)
                        r = collect_merge(c, merges, value, &vmark);
                else
                        r = json_object_set(obj, key, value) < 0 ? -ENOMEM : 0;
                if (r < 0)
                        return r;
        }
        json_array_foreach(merges, i, src) {
                const char *k;
                json_t *v;

                json_object_foreach(src, k,
                                    v) if (!json_object_get(obj, k) && json_object_set(obj, k, v) < 0) return -ENOMEM;
        }
        *ret = TAKE_PTR(obj);
        return 0;
}

static int conv_alias(conv_t *c, const yaml_event_t *ev, json_t **ret) {
        const char *name = (const char *)ev->data.alias.anchor;
        json_t *copy;
        int r;

        for (size_t i = c->n_anchors; i > 0; i--) {
                const anchor_t *a = &c->anchors[i - 1];

                if (!streq(a->name, name))
                        continue;
                r = conv_count(c, a->nodes, &ev->start_mark);
                if (r < 0)
                        return r;
                /* A copy, not a reference: the name fallback and label normalization edit
                 * deployments in place, and must not edit the anchor's other users. */
                copy = json_deep_copy(a->value);
                if (!copy)
                        return -ENOMEM;
                *ret = copy;
                return 0;
        }
        return conv_fail(c, &ev->start_mark, "alias *%s refers to no anchor defined before it", name);
}

static int anchor_add(conv_t *c, const char *name, json_t *value, size_t nodes) {
        anchor_t *na = reallocarray(c->anchors, c->n_anchors + 1, sizeof(anchor_t));

        if (!na)
                return -ENOMEM;
        c->anchors = na;
        na[c->n_anchors].name = strdup(name);
        if (!na[c->n_anchors].name)
                return -ENOMEM;
        na[c->n_anchors].value = json_incref(value);
        na[c->n_anchors].nodes = nodes;
        c->n_anchors++;
        return 0;
}

static int conv_node(conv_t *c, const yaml_event_t *ev, json_t **ret) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        const char *anchor = NULL;
        size_t before = c->nodes;
        int r;

        switch (ev->type) {
        case YAML_ALIAS_EVENT:
                return conv_alias(c, ev, ret);
        case YAML_SCALAR_EVENT:
                anchor = (const char *)ev->data.scalar.anchor;
                r = conv_count(c, 1, &ev->start_mark);
                if (r >= 0)
                        r = conv_scalar(c, ev, &j);
                break;
        case YAML_SEQUENCE_START_EVENT:
                anchor = (const char *)ev->data.sequence_start.anchor;
                r = conv_count(c, 1, &ev->start_mark);
                if (r >= 0)
                        r = conv_sequence(c, ev, &j);
                break;
        case YAML_MAPPING_START_EVENT:
                anchor = (const char *)ev->data.mapping_start.anchor;
                r = conv_count(c, 1, &ev->start_mark);
                if (r >= 0)
                        r = conv_mapping(c, &j);
                break;
        default:
                return conv_fail(c, &ev->start_mark, "unexpected YAML event");
        }
        if (r < 0)
                return r;
        if (anchor) {
                r = anchor_add(c, anchor, j, c->nodes - before);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(j);
        return 0;
}

int cli_yaml_to_json(const char *filename, const char *data, size_t size, const cli_vars_t *vars, json_t **ret_docs,
                     char **ret_error) {
        return cli_yaml_to_json_lines(filename, data, size, vars, ret_docs, NULL, ret_error);
}

int cli_yaml_to_json_lines(const char *filename, const char *data, size_t size, const cli_vars_t *vars,
                           json_t **ret_docs, json_t **ret_lines, char **ret_error) {
        _cleanup_(json_decrefp) json_t *docs = json_array(), *lines = ret_lines ? json_object() : NULL;
        conv_t c = { .filename = filename, .vars = vars, .lines = lines };
        int r;

        if (!docs || (ret_lines && !lines))
                return -ENOMEM;
        if (!yaml_parser_initialize(&c.parser))
                return -ENOMEM;
        yaml_parser_set_input_string(&c.parser, (const unsigned char *)data, size);

        for (;;) {
                _cleanup_(yaml_event_delete) yaml_event_t ev = {};
                _cleanup_(yaml_event_delete) yaml_event_t end = {};
                json_t *doc = NULL;

                r = conv_parse(&c, &ev);
                if (r < 0)
                        break;
                if (ev.type == YAML_STREAM_START_EVENT)
                        continue;
                if (ev.type == YAML_STREAM_END_EVENT)
                        break;
                /* Anchors are scoped to their document. */
                anchors_clear(&c);
                c.depth = 0;
                r = conv_next_node(&c, NULL, &doc);
                if (r < 0)
                        break;
                if (json_array_append_new(docs, doc) < 0) {
                        r = -ENOMEM;
                        break;
                }
                r = conv_parse(&c, &end);
                if (r < 0)
                        break;
        }
        anchors_clear(&c);
        yaml_parser_delete(&c.parser);
        if (r < 0) {
                if (ret_error)
                        *ret_error = TAKE_PTR(c.error);
                free(c.error);
                return r;
        }
        free(c.error);
        *ret_docs = TAKE_PTR(docs);
        if (ret_lines)
                *ret_lines = TAKE_PTR(lines);
        return 0;
}
