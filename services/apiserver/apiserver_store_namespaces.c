/* apiserver_store_namespaces.c: the namespaces table: list, get, create, delete when empty. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "services/apiserver/apiserver_store_private.h"

#define NAMESPACE_COLUMNS                                                                                       \
        "n.name, n.created_at, (SELECT count(*) FROM deployments d WHERE d.namespace = n.name AND d.status != " \
        "'deleted')"

static int row_read(sqlite3_stmt *st, void *elem) {
        store_namespace_t *ns = elem;

        *ns = (store_namespace_t){};
        store_column_copy(st, 0, ns->name, sizeof(ns->name));
        ns->created_at = (uint64_t)sqlite3_column_int64(st, 1);
        ns->deployments = (uint32_t)sqlite3_column_int64(st, 2);
        return 0;
}

static int get_locked(apiserver_store_t *s, const char *name, store_namespace_t *ret) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        store_namespace_t ignored;
        int r;

        r = store_prepare(s, "SELECT " NAMESPACE_COLUMNS " FROM namespaces n WHERE n.name = ?", &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        r = store_step_row(st);
        return r < 0 ? r : row_read(st, ret ?: &ignored);
}

int store_namespace_get(apiserver_store_t *s, const char *name, store_namespace_t *ret) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);

        return get_locked(s, name, ret);
}

int store_namespace_list(apiserver_store_t *s, store_namespace_t **ret, size_t *ret_n) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        void *a;
        int r;

        r = store_prepare(s, "SELECT " NAMESPACE_COLUMNS " FROM namespaces n ORDER BY n.name", &st);
        if (r < 0)
                return r;
        r = store_rows_collect(st, sizeof(store_namespace_t), row_read, NULL, &a, ret_n);
        if (r < 0)
                return r;
        *ret = a;
        return 0;
}

int store_namespace_create(apiserver_store_t *s, const char *name, store_namespace_t *ret) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r, rc;

        r = store_prepare(s, "INSERT INTO namespaces (name, created_at) VALUES (?, ?)", &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)now_realtime_ms());
        rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
                return store_errno(rc); /* a constraint: -EEXIST */
        return get_locked(s, name, ret);
}

int store_namespace_delete(apiserver_store_t *s, const char *name) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);
        store_namespace_t ns;
        int r, rc;

        r = get_locked(s, name, &ns);
        if (r < 0)
                return r;
        if (ns.deployments > 0)
                return -EBUSY;
        /* Its configs and secrets go with it: left behind, they would come back to life in a
         * namespace of the same name made later, for whoever makes it. */
        static const char *const deletes[] = {
                "DELETE FROM configs WHERE namespace = ?",
                "DELETE FROM secrets WHERE namespace = ?",
                "DELETE FROM namespaces WHERE name = ?",
        };
        for (size_t i = 0; i < ELEMENTSOF(deletes); i++) {
                _cleanup_stmt_ sqlite3_stmt *del = NULL;

                r = store_prepare(s, deletes[i], &del);
                if (r < 0)
                        return r;
                sqlite3_bind_text(del, 1, name, -1, SQLITE_STATIC);
                rc = sqlite3_step(del);
                if (rc != SQLITE_DONE)
                        return store_errno(rc);
        }
        return 0;
}
