/* apiserver_store_audit.c: the audit table: append (bounded) and list per namespace. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "services/apiserver/apiserver_store_private.h"

/* Trimming looks at the table every so many records, not on each. */
#define AUDIT_TRIM_EVERY 256

void store_audit_clear(store_audit_t *a) {
        free(a->namespace_);
        free(a->actor);
        free(a->actor_id);
        free(a->via);
        free(a->action);
        free(a->target);
        free(a->source);
        *a = (store_audit_t){};
}

void store_audit_array_free(store_audit_t *a, size_t n) {
        for (size_t i = 0; i < n; i++)
                store_audit_clear(&a[i]);
        free(a);
}

int store_audit_record(apiserver_store_t *s, store_audit_t *e) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);
        _cleanup_stmt_ sqlite3_stmt *ins = NULL, *trim = NULL;
        int r, rc;

        if (!e->actor || !e->via || !e->action || !e->source)
                return -EINVAL;
        if (!e->timestamp)
                e->timestamp = now_realtime_ms();
        r = store_prepare(
                s,
                "INSERT INTO audit (timestamp, namespace, actor, actor_id, via, action, target, source, status) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                &ins);
        if (r < 0)
                return r;
        sqlite3_bind_int64(ins, 1, (sqlite3_int64)e->timestamp);
        if (e->namespace_)
                sqlite3_bind_text(ins, 2, e->namespace_, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 3, e->actor, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 4, e->actor_id ?: "", -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 5, e->via, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 6, e->action, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 7, e->target ?: "", -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 8, e->source, -1, SQLITE_STATIC);
        sqlite3_bind_int(ins, 9, e->status);
        rc = sqlite3_step(ins);
        if (rc != SQLITE_DONE)
                return store_errno(rc);
        e->id = (uint64_t)sqlite3_last_insert_rowid(s->db);
        if (e->id % AUDIT_TRIM_EVERY != 0)
                return 0;
        /* Bounded: a client that keeps failing to log in must not fill the disk. */
        r = store_prepare(s, "DELETE FROM audit WHERE id <= ?", &trim);
        if (r < 0)
                return r;
        sqlite3_bind_int64(trim, 1, (sqlite3_int64)e->id - STORE_AUDIT_MAX);
        rc = sqlite3_step(trim);
        return rc == SQLITE_DONE ? 0 : store_errno(rc);
}

int store_audit_list(apiserver_store_t *s, const char *namespace_, size_t limit, store_audit_t **ret, size_t *ret_n) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        store_audit_t *a = NULL;
        size_t n = 0;
        int r, rc;

        if (limit == 0 || limit > STORE_AUDIT_LIST_MAX)
                limit = STORE_AUDIT_LIST_MAX;
        /* The newest `limit`, handed back oldest first. */
        r = store_prepare(
                s,
                "SELECT * FROM (SELECT id, timestamp, namespace, actor, actor_id, via, action, target, source, "
                "status FROM audit WHERE ?1 IS NULL OR namespace = ?1 ORDER BY id DESC LIMIT ?2) ORDER BY id",
                &st);
        if (r < 0)
                return r;
        if (namespace_)
                sqlite3_bind_text(st, 1, namespace_, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
        a = calloc(limit, sizeof(*a));
        if (!a)
                return -ENOMEM;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < limit) {
                store_audit_t *e = &a[n++];

                e->id = (uint64_t)sqlite3_column_int64(st, 0);
                e->timestamp = (uint64_t)sqlite3_column_int64(st, 1);
                r = store_column_dup(st, 2, &e->namespace_);
                r = r ?: store_column_dup(st, 3, &e->actor);
                r = r ?: store_column_dup(st, 4, &e->actor_id);
                r = r ?: store_column_dup(st, 5, &e->via);
                r = r ?: store_column_dup(st, 6, &e->action);
                r = r ?: store_column_dup(st, 7, &e->target);
                r = r ?: store_column_dup(st, 8, &e->source);
                e->status = sqlite3_column_int(st, 9);
                if (r < 0) {
                        store_audit_array_free(a, n);
                        return r;
                }
        }
        if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
                store_audit_array_free(a, n);
                return store_errno(rc);
        }
        *ret = a;
        *ret_n = n;
        return 0;
}
