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

static void row_read(sqlite3_stmt *st, store_namespace_t *ret) {
        const unsigned char *name = sqlite3_column_text(st, 0);

        *ret = (store_namespace_t){};
        snprintf(ret->name, sizeof(ret->name), "%s", name ? (const char *)name : "");
        ret->created_at = (uint64_t)sqlite3_column_int64(st, 1);
        ret->deployments = (uint32_t)sqlite3_column_int64(st, 2);
}

static int get_locked(apiserver_store_t *s, const char *name, store_namespace_t *ret) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        store_namespace_t ignored;
        int r, rc;

        r = store_prepare(s, "SELECT " NAMESPACE_COLUMNS " FROM namespaces n WHERE n.name = ?", &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                return -ENOENT;
        if (rc != SQLITE_ROW)
                return store_errno(rc);
        row_read(st, ret ?: &ignored);
        return 0;
}

int store_namespace_get(apiserver_store_t *s, const char *name, store_namespace_t *ret) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);

        return get_locked(s, name, ret);
}

int store_namespace_list(apiserver_store_t *s, store_namespace_t **ret, size_t *ret_n) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ store_namespace_t *a = NULL;
        size_t n = 0, cap = 0;
        int r, rc;

        r = store_prepare(s, "SELECT " NAMESPACE_COLUMNS " FROM namespaces n ORDER BY n.name", &st);
        if (r < 0)
                return r;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                if (n == cap) {
                        store_namespace_t *grown = reallocarray(a, cap ? cap * 2 : 8, sizeof(*a));
                        if (!grown)
                                return -ENOMEM;
                        a = grown;
                        cap = cap ? cap * 2 : 8;
                }
                row_read(st, &a[n++]);
        }
        if (rc != SQLITE_DONE)
                return store_errno(rc);
        *ret = TAKE_PTR(a);
        *ret_n = n;
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
