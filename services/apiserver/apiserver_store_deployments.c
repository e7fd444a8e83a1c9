/* apiserver_store_deployments.c: the deployments table: apply, read, filter, status, delete, purge. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "services/apiserver/apiserver_json.h"
#include "services/apiserver/apiserver_ports.h"
#include "services/apiserver/apiserver_store_private.h"

#define COLUMNS                                                                                                       \
        "id, namespace, name, generation, status, status_message, ready_replicas, restart_count, "                    \
        "runtime, kind, image, kernel, replicas, cpus, memory_mib, labels, spec, created_at, updated_at, failed_at, " \
        "exit_code"

static const char *const settable_statuses[] = {
        DEPLOYMENT_STATUS_PENDING,
        DEPLOYMENT_STATUS_CREATING,
        DEPLOYMENT_STATUS_RUNNING,
        DEPLOYMENT_STATUS_COMPLETED,
        DEPLOYMENT_STATUS_FAILED,
        DEPLOYMENT_STATUS_CRASH_LOOP,
        DEPLOYMENT_STATUS_INSUFFICIENT_RESOURCES,
        DEPLOYMENT_STATUS_DELETED,
};

void store_deployment_clear(store_deployment_t *d) {
        deployment_clear(&d->d);
        free(d->status_message);
        free(d->labels);
        free(d->spec);
        *d = (store_deployment_t){};
}

void store_deployment_array_free(store_deployment_t *a, size_t n) {
        for (size_t i = 0; i < n; i++)
                store_deployment_clear(&a[i]);
        free(a);
}

static uint32_t column_u32(sqlite3_stmt *st, int col) {
        sqlite3_int64 v = sqlite3_column_int64(st, col);

        return v < 0 ? 0 : v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

/* One row, in COLUMNS order. */
static int row_read(sqlite3_stmt *st, store_deployment_t *ret) {
        store_deployment_t d = {};
        int r = 0;

        r = r ?: store_column_dup(st, 0, &d.d.id);
        r = r ?: store_column_dup(st, 1, &d.d.namespace_);
        r = r ?: store_column_dup(st, 2, &d.d.name);
        d.d.generation = (uint64_t)sqlite3_column_int64(st, 3);
        r = r ?: store_column_dup(st, 4, &d.d.status);
        r = r ?: store_column_dup(st, 5, &d.status_message);
        d.d.ready_replicas = column_u32(st, 6);
        d.restart_count = column_u32(st, 7);
        d.d.restart_count = d.restart_count;
        r = r ?: store_column_dup(st, 8, &d.d.runtime);
        r = r ?: store_column_dup(st, 9, &d.d.kind);
        r = r ?: store_column_dup(st, 10, &d.d.image);
        r = r ?: store_column_dup(st, 11, &d.d.kernel);
        d.d.replicas = column_u32(st, 12);
        d.d.cpus = column_u32(st, 13);
        d.d.memory_mib = column_u32(st, 14);
        r = r ?: store_column_dup(st, 15, &d.labels);
        r = r ?: store_column_dup(st, 16, &d.spec);
        d.created_at = (uint64_t)sqlite3_column_int64(st, 17);
        d.updated_at = (uint64_t)sqlite3_column_int64(st, 18);
        d.d.failed_at = (uint64_t)sqlite3_column_int64(st, 19);
        d.has_exit_code = sqlite3_column_type(st, 20) != SQLITE_NULL;
        d.exit_code = d.has_exit_code ? sqlite3_column_int64(st, 20) : 0;
        if (r == 0 && d.status_message && d.status_message[0] && !(d.d.status_message = strdup(d.status_message)))
                r = -ENOMEM;
        if (r < 0) {
                store_deployment_clear(&d);
                return r;
        }
        *ret = d;
        return 0;
}

int store_deployment_derive(store_deployment_t *d) {
        /* A spec we cannot read runs no command rather than hiding the deployment. */
        json_auto_t *spec = stored_json_load(d->spec);

        if (manifest_health_from_spec(spec, &d->d.health_checks, &d->d.n_health_checks) == -ENOMEM ||
            manifest_workload_from_spec(spec, &d->d.command, &d->d.environment) == -ENOMEM ||
            manifest_boot_from_spec(spec, &d->d.boot) == -ENOMEM ||
            manifest_ports_from_spec(spec, &d->d.ports, &d->d.n_ports) == -ENOMEM ||
            manifest_volumes_from_spec(spec, d->d.namespace_, &d->d.volumes, &d->d.n_volumes) == -ENOMEM)
                return -ENOMEM;
        d->d.resolve = manifest_needs_resolve(spec);
        return 0;
}

/* Step a statement expected to yield at most one row: -ENOENT when it yields none. */
static int step_one(sqlite3_stmt *st, store_deployment_t *ret) {
        int rc = sqlite3_step(st);

        if (rc == SQLITE_DONE)
                return -ENOENT;
        if (rc != SQLITE_ROW)
                return store_errno(rc);
        return row_read(st, ret);
}

static int step_done(sqlite3_stmt *st) {
        int rc = sqlite3_step(st);

        return rc == SQLITE_DONE ? 0 : store_errno(rc);
}

static int bind_text(sqlite3_stmt *st, int i, const char *s) {
        return sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) == SQLITE_OK ? 0 : -ENOMEM;
}

static int bind_i64(sqlite3_stmt *st, int i, int64_t v) {
        return sqlite3_bind_int64(st, i, v) == SQLITE_OK ? 0 : -ENOMEM;
}

static int get_locked(apiserver_store_t *s, const char *id, store_deployment_t *ret) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r;

        r = store_prepare(s, "SELECT " COLUMNS " FROM deployments WHERE id = ?", &st);
        if (r < 0)
                return r;
        r = bind_text(st, 1, id);
        return r < 0 ? r : step_one(st, ret);
}

static int get_by_name_locked(apiserver_store_t *s, const char *namespace_, const char *name, store_deployment_t *ret) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r;

        r = store_prepare(s, "SELECT " COLUMNS " FROM deployments WHERE namespace = ? AND name = ?", &st);
        if (r < 0)
                return r;
        r = bind_text(st, 1, namespace_);
        r = r ?: bind_text(st, 2, name);
        return r < 0 ? r : step_one(st, ret);
}

/* The text stored for labels and spec: compact and key-sorted, so equal JSON reads back equal. */
static char *dump(const json_t *v) { return json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS); }

static int insert_locked(apiserver_store_t *s, const manifest_t *m, store_deployment_t *ret) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ char *labels = dump(m->labels), *spec = dump(m->spec);
        char id[STORE_UUID_LEN + 1];
        int64_t now = (int64_t)now_realtime_ms();
        int r;

        if (!labels || !spec)
                return -ENOMEM;
        r = store_uuid_new(id);
        if (r < 0)
                return r;
        r = store_prepare(s,
                          "INSERT INTO deployments (id, namespace, name, generation, status, runtime, kind, image, "
                          "kernel, replicas, cpus, memory_mib, labels, spec, created_at, updated_at) "
                          "VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                          &st);
        if (r < 0)
                return r;
        r = bind_text(st, 1, id);
        r = r ?: bind_text(st, 2, m->namespace_);
        r = r ?: bind_text(st, 3, m->name);
        r = r ?: bind_text(st, 4, DEPLOYMENT_STATUS_PENDING);
        r = r ?: bind_text(st, 5, m->runtime);
        r = r ?: bind_text(st, 6, m->kind);
        r = r ?: bind_text(st, 7, m->image);
        r = r ?: bind_text(st, 8, m->kernel);
        r = r ?: bind_i64(st, 9, m->replicas);
        r = r ?: bind_i64(st, 10, m->cpus);
        r = r ?: bind_i64(st, 11, m->memory_mib);
        r = r ?: bind_text(st, 12, labels);
        r = r ?: bind_text(st, 13, spec);
        r = r ?: bind_i64(st, 14, now);
        r = r ?: bind_i64(st, 15, now);
        r = r ?: step_done(st);
        return r < 0 ? r : get_locked(s, id, ret);
}

/* A new generation keeps a live status (running stays running while the scheduler rolls the
 * instances over), but a finished or given-up one is a fresh attempt: back to pending. */
#define TERMINAL_TO_PENDING                                                                                   \
        "status_message = CASE WHEN status IN ('" DEPLOYMENT_STATUS_FAILED "', '" DEPLOYMENT_STATUS_COMPLETED \
        "', '" DEPLOYMENT_STATUS_CRASH_LOOP "') THEN '' ELSE status_message END, "                            \
        "status = CASE WHEN status IN ('" DEPLOYMENT_STATUS_FAILED "', '" DEPLOYMENT_STATUS_COMPLETED         \
        "', '" DEPLOYMENT_STATUS_CRASH_LOOP "') THEN '" DEPLOYMENT_STATUS_PENDING "' ELSE status END"

static int update_spec_locked(apiserver_store_t *s, const char *id, const manifest_t *m, store_deployment_t *ret) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ char *labels = dump(m->labels), *spec = dump(m->spec);
        int r;

        if (!labels || !spec)
                return -ENOMEM;
        r = store_prepare(s,
                          "UPDATE deployments SET generation = generation + 1, runtime = ?, kind = ?, image = ?, "
                          "kernel = ?, replicas = ?, cpus = ?, memory_mib = ?, labels = ?, spec = ?, updated_at = ?, "
                          "restart_count = 0, exit_code = NULL, " TERMINAL_TO_PENDING " WHERE id = ?",
                          &st);
        if (r < 0)
                return r;
        r = bind_text(st, 1, m->runtime);
        r = r ?: bind_text(st, 2, m->kind);
        r = r ?: bind_text(st, 3, m->image);
        r = r ?: bind_text(st, 4, m->kernel);
        r = r ?: bind_i64(st, 5, m->replicas);
        r = r ?: bind_i64(st, 6, m->cpus);
        r = r ?: bind_i64(st, 7, m->memory_mib);
        r = r ?: bind_text(st, 8, labels);
        r = r ?: bind_text(st, 9, spec);
        r = r ?: bind_i64(st, 10, (int64_t)now_realtime_ms());
        r = r ?: bind_text(st, 11, id);
        r = r ?: step_done(st);
        return r < 0 ? r : get_locked(s, id, ret);
}

static bool spec_equal(const char *stored, const json_t *spec) {
        json_auto_t *old = stored_json_load(stored);

        return old && json_equal(old, spec);
}

int store_deployment_apply(apiserver_store_t *s, const manifest_t *m, store_deployment_t *ret) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);
        store_deployment_t cur = {};
        int r;

        r = get_by_name_locked(s, m->namespace_, m->name, &cur);
        if (r == -ENOENT) {
                r = insert_locked(s, m, ret);
                return r < 0 ? r : STORE_APPLY_CREATED;
        }
        if (r < 0)
                return r;

        /* The name frees up only once the scheduler has stopped the old instances and purged. */
        if (streq(cur.d.status, DEPLOYMENT_STATUS_DELETED)) {
                store_deployment_clear(&cur);
                return -EBUSY;
        }
        if (spec_equal(cur.spec, m->spec)) {
                *ret = cur;
                return STORE_APPLY_UNCHANGED;
        }
        r = update_spec_locked(s, cur.d.id, m, ret);
        store_deployment_clear(&cur);
        return r < 0 ? r : STORE_APPLY_UPDATED;
}

int store_deployment_insert(apiserver_store_t *s, const manifest_t *m, store_deployment_t *ret) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);

        return insert_locked(s, m, ret);
}

int store_deployment_get(apiserver_store_t *s, const char *id, store_deployment_t *ret) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);

        return get_locked(s, id, ret);
}

int store_deployment_get_by_name(apiserver_store_t *s, const char *namespace_, const char *name,
                                 store_deployment_t *ret) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);

        return get_by_name_locked(s, namespace_, name, ret);
}

/* " AND column IN (?, ?)" for a filter with values, else nothing; the length written. */
static size_t sql_any_of(char *buf, size_t size, const char *column, const store_any_of_t *a) {
        size_t len = 0;

        if (a->n == 0)
                return 0;
        len += (size_t)snprintf(buf + len, size - len, " AND %s IN (", column);
        for (size_t k = 0; k < a->n; k++)
                len += (size_t)snprintf(buf + len, size - len, k ? ", ?" : "?");
        len += (size_t)snprintf(buf + len, size - len, ")");
        return len;
}

int store_deployment_list(apiserver_store_t *s, const store_filter_t *f, store_deployment_t **ret, size_t *ret_n) {
        static const store_filter_t none = {};
        _cleanup_(store_unlockp) apiserver_store_t *locked = NULL;
        _cleanup_cached_stmt_ store_stmt_t *c = NULL; /* dashboards and scripts poll the list */
        sqlite3_stmt *st;
        store_deployment_t *a = NULL;
        size_t n = 0, allocated = 0;
        char sql[4096]; /* the longest filter takes about 2 KiB */
        size_t len;
        int r, rc, i = 1;

        f = f ?: &none;
        if (f->n_labels > STORE_LABEL_FILTERS_MAX || f->namespaces.n > STORE_ANY_OF_MAX ||
            f->statuses.n > STORE_ANY_OF_MAX || f->kinds.n > STORE_ANY_OF_MAX)
                return -E2BIG;

        /* Only fixed fragments go into the SQL; every value is bound. */
        len = (size_t)snprintf(sql, sizeof(sql), "SELECT " COLUMNS " FROM deployments WHERE 1");
        len += sql_any_of(sql + len, sizeof(sql) - len, "namespace", &f->namespaces);
        len += sql_any_of(sql + len, sizeof(sql) - len, "status", &f->statuses);
        len += sql_any_of(sql + len, sizeof(sql) - len, "kind", &f->kinds);
        for (size_t l = 0; l < f->n_labels; l++)
                len += (size_t)snprintf(sql + len, sizeof(sql) - len,
                                        " AND EXISTS (SELECT 1 FROM json_each(deployments.labels)"
                                        " WHERE key = ? AND value = ?)");
        snprintf(sql + len, sizeof(sql) - len, " ORDER BY namespace, name");

        locked = store_lock(s);
        r = store_prepare_cached(s, sql, &c);
        if (r < 0)
                return r;
        st = c->st;
        for (size_t k = 0; k < f->namespaces.n; k++)
                r = r ?: bind_text(st, i++, f->namespaces.v[k]);
        for (size_t k = 0; k < f->statuses.n; k++)
                r = r ?: bind_text(st, i++, f->statuses.v[k]);
        for (size_t k = 0; k < f->kinds.n; k++)
                r = r ?: bind_text(st, i++, f->kinds.v[k]);
        for (size_t l = 0; l < f->n_labels; l++) {
                r = r ?: bind_text(st, i++, f->labels[l].key);
                r = r ?: bind_text(st, i++, f->labels[l].value);
        }
        if (r < 0)
                return r;

        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                if (n == allocated) {
                        size_t want = allocated ? allocated * 2 : 16;
                        store_deployment_t *grown = reallocarray(a, want, sizeof(*a));

                        if (!grown) {
                                r = -ENOMEM;
                                break;
                        }
                        a = grown;
                        allocated = want;
                }
                r = row_read(st, &a[n]);
                if (r < 0)
                        break;
                n++;
        }
        if (r == 0 && rc != SQLITE_DONE)
                r = store_errno(rc);
        if (r < 0) {
                store_deployment_array_free(a, n);
                return r;
        }
        *ret = a;
        *ret_n = n;
        return 0;
}

static bool status_is_known(const char *status) {
        for (size_t i = 0; i < ELEMENTSOF(settable_statuses); i++)
                if (streq(status, settable_statuses[i]))
                        return true;
        return false;
}

int store_deployment_set_status(apiserver_store_t *s, const char *id, const store_status_update_t *u_in,
                                store_deployment_t *ret) {
        store_status_update_t eff = *u_in;
        const store_status_update_t *u = &eff;
        _cleanup_(store_unlockp) apiserver_store_t *locked = NULL;
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        store_deployment_t cur = {};
        const char *message = u->message ?: "";
        unsigned changed = 0;
        int r;

        if (!u->status || !status_is_known(u->status))
                return -EINVAL;

        locked = store_lock(s);
        r = get_locked(s, id, &cur);
        if (r < 0)
                return r;

        if (u_in->generation && u_in->generation != cur.d.generation)
                eff.has_restart_count = eff.has_failed_at = eff.has_exit_code = false;

        /* Only DELETE makes a deployment deleted, and nothing brings one back. */
        if (streq(cur.d.status, DEPLOYMENT_STATUS_DELETED) != streq(u->status, DEPLOYMENT_STATUS_DELETED)) {
                store_deployment_clear(&cur);
                return -EBUSY;
        }
        if (!streq(cur.d.status, u->status))
                changed |= STORE_CHANGED_STATUS;
        if (!streq(cur.status_message, message))
                changed |= STORE_CHANGED_MESSAGE;
        if ((u->has_ready_replicas && u->ready_replicas != cur.d.ready_replicas) ||
            (u->has_restart_count && u->restart_count != cur.restart_count) ||
            (u->has_failed_at && u->failed_at != cur.d.failed_at) ||
            (u->has_exit_code && (!cur.has_exit_code || u->exit_code != cur.exit_code)))
                changed |= STORE_CHANGED_COUNTS;
        if (changed == 0) {
                *ret = cur;
                return 0;
        }

        r = store_prepare(s,
                          "UPDATE deployments SET status = ?, status_message = ?, ready_replicas = ?, "
                          "restart_count = ?, updated_at = ?, failed_at = ?, exit_code = ? WHERE id = ?",
                          &st);
        r = r ?: bind_text(st, 1, u->status);
        r = r ?: bind_text(st, 2, message);
        r = r ?: bind_i64(st, 3, u->has_ready_replicas ? u->ready_replicas : cur.d.ready_replicas);
        r = r ?: bind_i64(st, 4, u->has_restart_count ? u->restart_count : cur.restart_count);
        r = r ?: bind_i64(st, 5, (int64_t)now_realtime_ms());
        r = r ?: bind_i64(st, 6, (int64_t)(u->has_failed_at ? u->failed_at : cur.d.failed_at));
        if (u->has_exit_code || cur.has_exit_code)
                r = r ?: bind_i64(st, 7, u->has_exit_code ? u->exit_code : cur.exit_code);
        r = r ?: bind_text(st, 8, id);
        r = r ?: step_done(st);
        r = r ?: get_locked(s, id, ret);
        store_deployment_clear(&cur);
        return r < 0 ? r : (int)changed;
}

int store_deployment_mark_deleted(apiserver_store_t *s, const char *id, store_deployment_t *ret) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        store_deployment_t cur = {};
        int r;

        r = get_locked(s, id, &cur);
        if (r < 0)
                return r;
        if (streq(cur.d.status, DEPLOYMENT_STATUS_DELETED)) {
                *ret = cur;
                return 0;
        }
        store_deployment_clear(&cur);

        r = store_prepare(s, "UPDATE deployments SET status = ?, status_message = '', updated_at = ? WHERE id = ?",
                          &st);
        r = r ?: bind_text(st, 1, DEPLOYMENT_STATUS_DELETED);
        r = r ?: bind_i64(st, 2, (int64_t)now_realtime_ms());
        r = r ?: bind_text(st, 3, id);
        r = r ?: step_done(st);
        r = r ?: get_locked(s, id, ret);
        return r < 0 ? r : 1;
}

int store_deployment_purge(apiserver_store_t *s, const char *id, store_deployment_t *ret) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        store_deployment_t cur = {};
        int r;

        r = get_locked(s, id, &cur);
        if (r < 0)
                return r;
        if (!streq(cur.d.status, DEPLOYMENT_STATUS_DELETED)) {
                store_deployment_clear(&cur);
                return -EBUSY;
        }
        r = store_prepare(s, "DELETE FROM deployments WHERE id = ?", &st);
        r = r ?: bind_text(st, 1, id);
        r = r ?: step_done(st);
        if (r < 0 || !ret)
                store_deployment_clear(&cur);
        else
                *ret = cur;
        return r;
}
