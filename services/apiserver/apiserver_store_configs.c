/* apiserver_store_configs.c: the configs table: namespaced key/value data, versioned. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "services/apiserver/apiserver_store_private.h"

#define CONFIG_COLUMNS "id, namespace, name, data, version, created_at, updated_at"

void store_config_clear(store_config_t *c) {
        free(c->data);
        *c = (store_config_t){};
}

void store_config_array_free(store_config_t *a, size_t n) {
        for (size_t i = 0; i < n; i++)
                store_config_clear(&a[i]);
        free(a);
}

static const char *text(sqlite3_stmt *st, int col) {
        const unsigned char *t = sqlite3_column_text(st, col);
        return t ? (const char *)t : "";
}

static int row_read(sqlite3_stmt *st, store_config_t *ret) {
        *ret = (store_config_t){};
        snprintf(ret->id, sizeof(ret->id), "%s", text(st, 0));
        snprintf(ret->namespace_, sizeof(ret->namespace_), "%s", text(st, 1));
        snprintf(ret->name, sizeof(ret->name), "%s", text(st, 2));
        ret->data = strdup(text(st, 3));
        ret->version = (uint64_t)sqlite3_column_int64(st, 4);
        ret->created_at = (uint64_t)sqlite3_column_int64(st, 5);
        ret->updated_at = (uint64_t)sqlite3_column_int64(st, 6);
        return ret->data ? 0 : -ENOMEM;
}

static int get_locked(apiserver_store_t *s, const char *namespace_, const char *key, store_config_t *ret) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r, rc;

        /* An id first: a name that happens to look like another config's id is not it. */
        r = store_prepare(s,
                          "SELECT " CONFIG_COLUMNS " FROM configs WHERE id = ?1 OR (namespace = ?2 AND name = ?1) "
                          "ORDER BY id = ?1 DESC LIMIT 1",
                          &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, namespace_ ?: "default", -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                return -ENOENT;
        if (rc != SQLITE_ROW)
                return store_errno(rc);
        return row_read(st, ret);
}

int store_config_get(apiserver_store_t *s, const char *namespace_, const char *key, store_config_t *ret) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);

        return get_locked(s, namespace_, key, ret);
}

int store_config_list(apiserver_store_t *s, const char *namespace_, store_config_t **ret, size_t *ret_n) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        store_config_t *a = NULL;
        size_t n = 0, cap = 0;
        int r, rc;

        r = store_prepare(s,
                          "SELECT " CONFIG_COLUMNS " FROM configs WHERE ?1 IS NULL OR namespace = ?1 "
                          "ORDER BY namespace, name",
                          &st);
        if (r < 0)
                return r;
        if (namespace_)
                sqlite3_bind_text(st, 1, namespace_, -1, SQLITE_STATIC);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                if (n == cap) {
                        store_config_t *grown = reallocarray(a, cap ? cap * 2 : 8, sizeof(*a));
                        if (!grown) {
                                store_config_array_free(a, n);
                                return -ENOMEM;
                        }
                        a = grown;
                        cap = cap ? cap * 2 : 8;
                }
                r = row_read(st, &a[n++]);
                if (r < 0) {
                        store_config_array_free(a, n);
                        return r;
                }
        }
        if (rc != SQLITE_DONE) {
                store_config_array_free(a, n);
                return store_errno(rc);
        }
        *ret = a;
        *ret_n = n;
        return 0;
}

int store_config_create(apiserver_store_t *s, const char *namespace_, const char *name, const char *data,
                        store_config_t *ret) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        char id[STORE_UUID_LEN + 1];
        uint64_t now = now_realtime_ms();
        int r, rc;

        r = store_uuid_new(id);
        if (r < 0)
                return r;
        r = store_prepare(s,
                          "INSERT INTO configs (id, namespace, name, data, created_at, updated_at) "
                          "VALUES (?, ?, ?, ?, ?, ?)",
                          &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, namespace_, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, data, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, (sqlite3_int64)now);
        sqlite3_bind_int64(st, 6, (sqlite3_int64)now);
        rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
                return store_errno(rc); /* a constraint: -EEXIST */
        return ret ? get_locked(s, NULL, id, ret) : 0;
}

int store_config_update(apiserver_store_t *s, const char *id, const char *data, store_config_t *ret) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r, rc, changed;

        /* json() compares the data as values: key order and spacing are no change. */
        r = store_prepare(s,
                          "UPDATE configs SET data = json(?2), version = version + 1, updated_at = ?3 "
                          "WHERE id = ?1 AND json(data) != json(?2)",
                          &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, data, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)now_realtime_ms());
        rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
                return store_errno(rc);
        changed = sqlite3_changes(s->db) > 0;
        r = get_locked(s, NULL, id, ret);
        return r < 0 ? r : changed;
}

int store_config_delete(apiserver_store_t *s, const char *id) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r, rc;

        r = store_prepare(s, "DELETE FROM configs WHERE id = ?", &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
                return store_errno(rc);
        return sqlite3_changes(s->db) > 0 ? 0 : -ENOENT;
}
