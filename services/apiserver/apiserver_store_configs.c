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

static void config_clear(void *elem) { store_config_clear(elem); }

static int row_read(sqlite3_stmt *st, void *elem) {
        store_config_t *c = elem;

        *c = (store_config_t){};
        store_column_copy(st, 0, c->id, sizeof(c->id));
        store_column_copy(st, 1, c->namespace_, sizeof(c->namespace_));
        store_column_copy(st, 2, c->name, sizeof(c->name));
        c->data = strdup(store_column_text(st, 3));
        c->version = (uint64_t)sqlite3_column_int64(st, 4);
        c->created_at = (uint64_t)sqlite3_column_int64(st, 5);
        c->updated_at = (uint64_t)sqlite3_column_int64(st, 6);
        return c->data ? 0 : -ENOMEM;
}

static int get_locked(apiserver_store_t *s, const char *namespace_, const char *key, store_config_t *ret) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r;

        r = store_prepare(s, "SELECT " CONFIG_COLUMNS " FROM configs " STORE_WHERE_ID_OR_NAME, &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, namespace_ ?: "default", -1, SQLITE_STATIC);
        r = store_step_row(st);
        return r < 0 ? r : row_read(st, ret);
}

int store_config_get(apiserver_store_t *s, const char *namespace_, const char *key, store_config_t *ret) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);

        return get_locked(s, namespace_, key, ret);
}

int store_config_list(apiserver_store_t *s, const char *namespace_, store_config_t **ret, size_t *ret_n) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        void *a;
        int r;

        r = store_prepare(s,
                          "SELECT " CONFIG_COLUMNS " FROM configs WHERE ?1 IS NULL OR namespace = ?1 "
                          "ORDER BY namespace, name",
                          &st);
        if (r < 0)
                return r;
        if (namespace_)
                sqlite3_bind_text(st, 1, namespace_, -1, SQLITE_STATIC);
        r = store_rows_collect(st, sizeof(store_config_t), row_read, config_clear, &a, ret_n);
        if (r < 0)
                return r;
        *ret = a;
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

        return store_change_one(s, "DELETE FROM configs WHERE id = ?", id);
}
