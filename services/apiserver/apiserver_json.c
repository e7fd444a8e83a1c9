/* apiserver_json.c: how deployments look over REST, and msgpack bus results turned into JSON. */
#include "services/apiserver/apiserver_json.h"

#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "lib/log.h"
#include "lib/mp_json.h"
#include "lib/nesting.h"
#include "lib/util.h"

int body_json_load(const char *body, size_t size, size_t flags, json_t **ret, json_error_t *error, char *path,
                   size_t path_size) {
        json_t *v;

        if (json_nesting_check(body, size, path, path_size) > 0)
                return -ELOOP;
        v = json_loadb(body, size, flags, error);
        if (!v)
                return -EINVAL;
        *ret = v;
        return 0;
}

json_t *stored_json_load(const char *text) {
        char path[64];

        if (!text || json_nesting_check(text, strlen(text), path, sizeof(path)) > 0)
                return NULL;
        return json_loads(text, 0, NULL);
}

/* Deployment answers splice the stored labels and spec into their text as stored, rather than
 * parsing and re-encoding them on every request (that was most of GET /deployments' cost: 3 ms
 * per 100 records). Splicing needs the text to be a JSON object within the nesting bound, the
 * check stored_json_load() makes; it is made once per record's text and remembered with the
 * text it was made on, so a record rewritten in the database is checked anew. Shared by every
 * civetweb worker; bounded (emptied when full, then refilled as records are read). A list looks
 * its records up under one lock and parses the new texts outside it: a lock per record made 8
 * workers queue on it (20% of a 1000-record list's CPU went to futex calls). */
#define STORED_JSON_CHECKED_MAX 8192

typedef struct checked_text {
        char *text;
        bool readable;
} checked_text_t;

enum { STORED_LABELS, STORED_SPEC, STORED_COLUMNS };
static const char *const stored_column_names[STORED_COLUMNS] = { [STORED_LABELS] = "labels", [STORED_SPEC] = "spec" };

static pthread_mutex_t checked_lock = PTHREAD_MUTEX_INITIALIZER;
static zhashx_t *checked[STORED_COLUMNS]; /* deployment id -> checked_text_t, per column */

static void checked_text_destroy(void **item) {
        checked_text_t *c = *item;

        if (c) {
                free(c->text);
                free(c);
        }
        *item = NULL;
}

static const char *stored_text(const store_deployment_t *d, int column) {
        return column == STORED_LABELS ? d->labels : d->spec;
}

static bool *stored_readable_of(stored_readable_t *r, int column) {
        return column == STORED_LABELS ? &r->labels : &r->spec;
}

/* Remember c (taken) as column's check of deployment id; under checked_lock. */
static void checked_remember(int column, const char *id, checked_text_t *c) {
        zhashx_t **table = &checked[column];

        if (!*table && (*table = zhashx_new()))
                zhashx_set_destructor(*table, checked_text_destroy);
        if (*table && zhashx_size(*table) >= STORED_JSON_CHECKED_MAX)
                zhashx_purge(*table);
        if (*table)
                zhashx_update(*table, id, c);
        else
                checked_text_destroy((void **)&c);
}

int deployments_stored_readable(const store_deployment_t *a, size_t n, stored_readable_t *ret) {
        _cleanup_free_ bool *known = calloc(n ? n * STORED_COLUMNS : 1, sizeof(bool));
        size_t unknown = 0;

        if (!known)
                return -ENOMEM;
        pthread_mutex_lock(&checked_lock);
        for (size_t i = 0; i < n; i++)
                for (int col = 0; col < STORED_COLUMNS; col++) {
                        const char *text = stored_text(&a[i], col);
                        checked_text_t *c = text && checked[col] ? zhashx_lookup(checked[col], a[i].d.id) : NULL;
                        bool *readable = stored_readable_of(&ret[i], col);

                        *readable = false;
                        if (!text || (c && streq(c->text, text))) {
                                known[i * STORED_COLUMNS + col] = true;
                                *readable = c && c->readable;
                        } else
                                unknown++;
                }
        pthread_mutex_unlock(&checked_lock);

        for (size_t i = 0; unknown > 0 && i < n; i++)
                for (int col = 0; col < STORED_COLUMNS; col++) {
                        const char *text = stored_text(&a[i], col);
                        bool *readable = stored_readable_of(&ret[i], col);
                        checked_text_t *c;
                        json_t *v;

                        if (known[i * STORED_COLUMNS + col])
                                continue;
                        v = stored_json_load(text);
                        *readable = json_is_object(v);
                        json_decref(v);
                        if (!*readable)
                                log_warning("Deployment %s: its stored %s is not JSON nested at most %u deep; shown as "
                                            "null",
                                            a[i].d.id, stored_column_names[col], HUSK_NESTING_MAX);
                        c = calloc(1, sizeof(*c));
                        if (c && !(c->text = strdup(text))) {
                                free(c);
                                c = NULL;
                        }
                        if (!c)
                                continue; /* checked, not remembered */
                        c->readable = *readable;
                        pthread_mutex_lock(&checked_lock);
                        checked_remember(col, a[i].d.id, c);
                        pthread_mutex_unlock(&checked_lock);
                }
        return 0;
}

static void put(zchunk_t *out, const char *text) { zchunk_extend(out, text, strlen(text)); }

/* s as a JSON string. Most strings here (ids, names, paths, states) need no escaping and are
 * copied between quotes; any other goes through jansson, which escapes and checks UTF-8.
 * -ENOMEM, or -EINVAL for a string that is not UTF-8. */
static int put_string(zchunk_t *out, const char *s) {
        _cleanup_free_ char *encoded = NULL;
        json_auto_t *v = NULL;
        const char *p;

        for (p = s; *p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\'; p++)
                ;
        if (!*p) {
                put(out, "\"");
                zchunk_extend(out, s, (size_t)(p - s));
                put(out, "\"");
                return 0;
        }
        v = json_string(s);
        if (!v)
                return -EINVAL;
        encoded = json_dumps(v, JSON_ENCODE_ANY);
        if (!encoded)
                return -ENOMEM;
        put(out, encoded);
        return 0;
}

/* ,"key":"value" */
static int put_member_string(zchunk_t *out, const char *key, const char *value) {
        put(out, ",\"");
        put(out, key);
        put(out, "\":");
        return put_string(out, value);
}

static void put_member_u64(zchunk_t *out, const char *key, uint64_t value) {
        char buf[96];

        snprintf(buf, sizeof(buf), ",\"%s\":%" PRIu64, key, value);
        put(out, buf);
}

/* ,"column":<the stored text>, or null with column_error beside it when it cannot be read. */
static void put_stored(zchunk_t *out, const char *column, const char *text, bool readable) {
        char buf[256];

        put(out, ",\"");
        put(out, column);
        put(out, "\":");
        if (text && readable) {
                put(out, text);
                return;
        }
        put(out, "null");
        if (!text)
                return;
        snprintf(buf, sizeof(buf),
                 ",\"%s_error\":\"the stored %s cannot be read (not JSON nested at most %u deep); apply the "
                 "deployment again to replace it\"",
                 column, column, HUSK_NESTING_MAX);
        put(out, buf);
}

int deployment_json_append(zchunk_t *out, const store_deployment_t *d, const stored_readable_t *readable,
                           const json_t *extra) {
        char created[32], updated[32], buf[128];
        _cleanup_free_ char *more = NULL;
        int r;

        if (json_object_size(extra) > 0 && !(more = json_dumps(extra, JSON_COMPACT)))
                return -ENOMEM;
        put(out, "{\"id\":");
        r = put_string(out, d->d.id);
        r = r ?: put_member_string(out, "namespace", d->d.namespace_);
        r = r ?: put_member_string(out, "name", d->d.name);
        r = r ?: put_member_string(out, "runtime", d->d.runtime);
        r = r ?: put_member_string(out, "kind", d->d.kind);
        r = r ?: put_member_string(out, "image", d->d.image);
        if (r == 0 && d->d.kernel)
                r = put_member_string(out, "kernel", d->d.kernel);
        if (r < 0)
                return r;
        put_member_u64(out, "replicas", d->d.replicas);
        put_member_u64(out, "ready_replicas", d->d.ready_replicas);
        snprintf(buf, sizeof(buf), ",\"resources\":{\"limits\":{\"cpu\":%" PRIu32 ",\"memory\":\"%" PRIu32 "Mi\"}}",
                 d->d.cpus, d->d.memory_mib);
        put(out, buf);
        r = put_member_string(out, "status", d->d.status);
        r = r ?: put_member_string(out, "status_message", d->status_message ?: "");
        if (r < 0)
                return r;
        put_member_u64(out, "generation", d->d.generation);
        put_member_u64(out, "restart_count", d->restart_count);
        r = put_member_string(out, "created_at", format_timestamp_ms(d->created_at, created, sizeof(created)));
        r = r ?: put_member_string(out, "updated_at", format_timestamp_ms(d->updated_at, updated, sizeof(updated)));
        if (r < 0)
                return r;
        if (d->has_exit_code)
                snprintf(buf, sizeof(buf), ",\"exit_code\":%" PRId64, d->exit_code);
        else
                snprintf(buf, sizeof(buf), ",\"exit_code\":null");
        put(out, buf);
        put_stored(out, "labels", d->labels, readable->labels);
        put_stored(out, "spec", d->spec, readable->spec);
        /* extra's members: its text without the opening brace. */
        if (more) {
                put(out, ",");
                put(out, more + 1);
        } else
                put(out, "}");
        return 0;
}

json_t *deployment_to_json(const store_deployment_t *d) {
        zchunk_t *out = zchunk_new(NULL, 4096);
        stored_readable_t readable;
        json_t *v = NULL;

        /* The record's own levels above the stored ones stay within jansson's depth limit. */
        if (out && deployments_stored_readable(d, 1, &readable) == 0 &&
            deployment_json_append(out, d, &readable, NULL) == 0)
                v = json_loadb((const char *)zchunk_data(out), zchunk_size(out), 0, NULL);
        zchunk_destroy(&out);
        return v;
}

json_t *exits_to_json(const store_exit_t *a, size_t n) {
        json_auto_t *list = json_array();

        for (size_t i = 0; list && i < n; i++) {
                const store_exit_t *e = &a[i];
                json_t *o = json_pack("{s:s, s:s, s:I, s:s, s:I, s:I, s:s, s:I}", "id", e->instance_id, "instance_id",
                                      e->instance_id, "generation", (json_int_t)e->generation, "state", "exited",
                                      "started_at", (json_int_t)e->started_at, "exited_at", (json_int_t)e->exited_at,
                                      "exit_reason", e->exit_reason, "exit_status", (json_int_t)e->exit_status);

                if (!o || (e->address && json_object_set_new(o, "address", json_string(e->address)) < 0) ||
                    json_array_append_new(list, o) < 0)
                        return NULL;
        }
        return TAKE_PTR(list);
}

int instances_add_ids(json_t *instances) {
        json_t *i;
        size_t k;

        json_array_foreach(instances, k, i) {
                json_t *id = json_object_get(i, "instance_id");

                if (json_is_string(id) && json_object_set(i, "id", id) < 0)
                        return -ENOMEM;
        }
        return 0;
}

json_t *msgpack_to_json(const msgpack_object *o) { return mp_to_json(o, 0); }
