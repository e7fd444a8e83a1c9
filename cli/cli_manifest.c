/* cli_manifest.c: a Ring manifest's structure: `deployments:` entries, name fallback, labels. */
#include "cli/cli_manifest.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lib/util.h"

static void entry_clear(cli_manifest_entry_t *e) {
        free(e->key);
        free(e->file);
        json_decref(e->deployment);
        *e = (cli_manifest_entry_t){};
}

void cli_manifest_clear(cli_manifest_t *m) {
        for (size_t i = 0; i < m->n_entries; i++)
                entry_clear(&m->entries[i]);
        for (size_t i = 0; i < m->n_warnings; i++)
                free(m->warnings[i]);
        free(m->entries);
        free(m->warnings);
        json_decref(m->namespaces);
        *m = (cli_manifest_t){};
}

_printf_(2, 3) static int fail(char **ret_error, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(ret_error, fmt, ap) < 0)
                *ret_error = NULL;
        va_end(ap);
        return -EINVAL;
}

_printf_(2, 3) static int warn(cli_manifest_t *m, const char *fmt, ...) {
        char **nw, *w;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&w, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        nw = reallocarray(m->warnings, m->n_warnings + 1, sizeof(char *));
        if (!nw) {
                free(w);
                return -ENOMEM;
        }
        m->warnings = nw;
        m->warnings[m->n_warnings++] = w;
        return 0;
}

/* Ring accepts labels as a map, as a list of one-entry maps ("- app: web") or as null; the
 * API takes a map. */
static int normalize_labels(json_t *d, const char *file, const char *key, char **ret_error) {
        json_t *labels = json_object_get(d, "labels"), *map, *item;
        size_t i;

        if (!labels || json_is_object(labels))
                return 0;
        if (!json_is_null(labels) && !json_is_array(labels))
                return fail(ret_error, "%s: deployments.%s.labels: must be a mapping of key: value", file, key);
        map = json_object();
        if (!map)
                return -ENOMEM;
        json_array_foreach(labels, i, item) { /* no iteration when labels is null */
                if (!json_is_object(item) || json_object_update(map, item) < 0) {
                        json_decref(map);
                        return fail(ret_error, "%s: deployments.%s.labels[%zu]: list items must be key: value mappings",
                                    file, key, i);
                }
        }
        return json_object_set_new(d, "labels", map) < 0 ? -ENOMEM : 0;
}

/* One name into m->namespaces, unless it is there already. The server says what a valid name
 * is; only what cannot be one is refused here. */
static int add_namespace(cli_manifest_t *m, const char *name, const char *file, char **ret_error) {
        size_t i;
        json_t *v;

        if (!*name || strlen(name) > 63)
                return fail(ret_error, "%s: namespaces: '%.80s' is not a namespace name (1 to 63 characters)", file,
                            name);
        json_array_foreach(m->namespaces, i, v) if (streq(json_string_value(v), name)) return 0;
        return json_array_append_new(m->namespaces, json_string(name)) < 0 ? -ENOMEM : 0;
}

/* A namespaces: block into m->namespaces (each name once): a list of names, or Ring's mapping
 * of key -> {name: NAME} (name: defaults to the key; null or {} will do; any other field is
 * warned about and left out). */
static int add_namespaces(cli_manifest_t *m, json_t *block, const char *file, char **ret_error) {
        const char *name;
        json_t *v;
        size_t i;
        int r;

        if (!m->namespaces && !(m->namespaces = json_array()))
                return -ENOMEM;
        if (json_is_null(block))
                return 0;
        if (json_is_array(block)) {
                json_array_foreach(block, i, v) {
                        if (!json_is_string(v))
                                return fail(ret_error, "%s: namespaces[%zu]: must be a namespace name", file, i);
                        r = add_namespace(m, json_string_value(v), file, ret_error);
                        if (r < 0)
                                return r;
                }
                return 0;
        }
        if (!json_is_object(block))
                return fail(ret_error, "%s: namespaces: must be a list of names or a mapping of name: {}", file);
        json_object_foreach(block, name, v) {
                const char *key;
                json_t *ignored;

                const json_t *named = json_object_get(v, "name");

                if (!json_is_null(v) && !json_is_object(v))
                        return fail(ret_error, "%s: namespaces.%s: must be a mapping (or empty)", file, name);
                if (named && !json_is_null(named) && !json_is_string(named))
                        return fail(ret_error, "%s: namespaces.%s.name: must be a namespace name", file, name);
                json_object_foreach(v, key, ignored) {
                        if (streq(key, "name"))
                                continue;
                        r = warn(m, "%s: namespaces.%s.%s is not supported by husk, ignoring it", file, name, key);
                        if (r < 0)
                                return r;
                }
                r = add_namespace(m, json_is_string(named) ? json_string_value(named) : name, file, ret_error);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Check one document and append its deployments to *entries. */
static int add_document(cli_manifest_t *m, cli_manifest_entry_t **entries, size_t *n, json_t *doc, const char *file,
                        char **ret_error) {
        json_t *deployments, *d;
        const char *top, *key;
        int r;

        if (json_is_null(doc))
                return 0; /* an empty document, e.g. after a trailing "---" */
        if (!json_is_object(doc))
                return fail(ret_error, "%s: a manifest is a mapping with a deployments: key", file);
        json_object_foreach(doc, top, d) {
                if (streq(top, "deployments"))
                        continue;
                if (streq(top, "namespaces"))
                        r = add_namespaces(m, d, file, ret_error);
                else
                        r = warn(m, "%s: ignoring unknown top-level key '%s'", file, top);
                if (r < 0)
                        return r;
        }
        deployments = json_object_get(doc, "deployments");
        if (!deployments && json_object_get(doc, "namespaces"))
                return 0;
        if (!deployments)
                return fail(ret_error, "%s: no deployments: key", file);
        if (json_is_null(deployments))
                return 0;
        if (!json_is_object(deployments))
                return fail(ret_error, "%s: deployments: must map each deployment's key to its definition", file);

        json_object_foreach(deployments, key, d) {
                cli_manifest_entry_t *ne, *e;
                json_t *name = json_object_get(d, "name");

                if (!json_is_object(d))
                        return fail(ret_error, "%s: deployments.%s: must be a mapping", file, key);
                if ((!name || json_is_null(name)) && json_object_set_new(d, "name", json_string(key)) < 0)
                        return -ENOMEM;
                r = normalize_labels(d, file, key, ret_error);
                if (r < 0)
                        return r;

                ne = reallocarray(*entries, *n + 1, sizeof(cli_manifest_entry_t));
                if (!ne)
                        return -ENOMEM;
                *entries = ne;
                e = &ne[*n];
                *e = (cli_manifest_entry_t){ .key = strdup(key), .file = strdup(file), .deployment = json_incref(d) };
                (*n)++;
                if (!e->key || !e->file)
                        return -ENOMEM;
        }
        return 0;
}

int cli_manifest_parse(cli_manifest_t *m, const char *filename, const char *data, size_t size, const cli_vars_t *vars,
                       char **ret_error) {
        json_t *docs = NULL, *doc;
        cli_manifest_entry_t *entries = NULL;
        size_t n = 0, i, n_warnings = m->n_warnings, n_namespaces = json_array_size(m->namespaces);
        int r;

        r = cli_yaml_to_json(filename, data, size, vars, &docs, ret_error);
        if (r < 0)
                return r;
        r = 0;
        json_array_foreach(docs, i, doc) {
                r = add_document(m, &entries, &n, doc, filename, ret_error);
                if (r < 0)
                        break;
        }
        json_decref(docs);

        if (r < 0) {
                /* All or nothing: a file that fails adds neither entries nor warnings. */
                for (i = 0; i < n; i++)
                        entry_clear(&entries[i]);
                free(entries);
                while (m->n_warnings > n_warnings)
                        free(m->warnings[--m->n_warnings]);
                while (json_array_size(m->namespaces) > n_namespaces)
                        json_array_remove(m->namespaces, json_array_size(m->namespaces) - 1);
                return r;
        }
        if (n > 0) {
                cli_manifest_entry_t *all = reallocarray(m->entries, m->n_entries + n, sizeof(cli_manifest_entry_t));
                if (!all) {
                        for (i = 0; i < n; i++)
                                entry_clear(&entries[i]);
                        free(entries);
                        return -ENOMEM;
                }
                memcpy(all + m->n_entries, entries, n * sizeof(cli_manifest_entry_t));
                m->entries = all;
                m->n_entries += n;
        }
        free(entries);
        return 0;
}

int cli_manifest_read(const char *path, char **ret, size_t *ret_size) {
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, cap = 0;

        if (!streq(path, "-"))
                return read_file(path, CLI_MANIFEST_MAX_BYTES, ret, ret_size);
        for (;;) {
                ssize_t k;

                if (cap - len < 4096) {
                        char *nb;
                        if (cap >= CLI_MANIFEST_MAX_BYTES)
                                return -EFBIG;
                        cap = cap ? cap * 2 : 65536;
                        nb = realloc(buf, cap + 1);
                        if (!nb)
                                return -ENOMEM;
                        buf = nb;
                }
                k = read(STDIN_FILENO, buf + len, cap - len);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        break;
                len += (size_t)k;
        }
        if (!buf && !(buf = malloc(1)))
                return -ENOMEM;
        buf[len] = '\0';
        *ret_size = len;
        *ret = TAKE_PTR(buf);
        return 0;
}
