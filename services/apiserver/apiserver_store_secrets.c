/* apiserver_store_secrets.c: the secrets table: values sealed with the secrets key, metadata in
 * the clear, and the check value that proves the key is the database's. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "services/apiserver/apiserver_secrets.h"
#include "services/apiserver/apiserver_store_private.h"

_Static_assert(sizeof(((apiserver_store_t *)NULL)->secrets_key) == SECRETS_KEY_LEN, "key size");

#define SECRET_COLUMNS "id, namespace, name, created_at"
/* What the check row holds, sealed; its context keeps it from opening as any secret's value. */
#define KEY_CHECK_PLAIN "husk secrets key check"
#define KEY_CHECK_CONTEXT "husk:secrets-key-check"

static int row_read(sqlite3_stmt *st, void *elem) {
        store_secret_t *secret = elem;

        *secret = (store_secret_t){};
        store_column_copy(st, 0, secret->id, sizeof(secret->id));
        store_column_copy(st, 1, secret->namespace_, sizeof(secret->namespace_));
        store_column_copy(st, 2, secret->name, sizeof(secret->name));
        secret->created_at = (uint64_t)sqlite3_column_int64(st, 3);
        return 0;
}

int store_secrets_key_set(apiserver_store_t *s, const uint8_t *key) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);
        _cleanup_stmt_ sqlite3_stmt *st = NULL, *ins = NULL;
        _cleanup_free_ uint8_t *sealed = NULL;
        char *plain = NULL;
        size_t n = 0;
        int r, rc;

        r = store_prepare(s, "SELECT sealed FROM secrets_key_check WHERE id = 1", &st);
        if (r < 0)
                return r;
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                r = secrets_open(key, KEY_CHECK_CONTEXT, sqlite3_column_blob(st, 0),
                                 (size_t)sqlite3_column_bytes(st, 0), &plain, &n);
                if (r == 0 && !streq(plain, KEY_CHECK_PLAIN))
                        r = -EKEYREJECTED;
                secrets_free(plain, n);
                if (r < 0)
                        return r == -EBADMSG ? -EKEYREJECTED : r;
        } else if (rc == SQLITE_DONE) {
                r = secrets_seal(key, KEY_CHECK_CONTEXT, KEY_CHECK_PLAIN, strlen(KEY_CHECK_PLAIN), &sealed, &n);
                if (r < 0)
                        return r;
                r = store_prepare(s, "INSERT INTO secrets_key_check (id, sealed) VALUES (1, ?)", &ins);
                if (r < 0)
                        return r;
                sqlite3_bind_blob(ins, 1, sealed, (int)n, SQLITE_STATIC);
                rc = sqlite3_step(ins);
                if (rc != SQLITE_DONE)
                        return store_errno(rc);
        } else
                return store_errno(rc);
        memcpy(s->secrets_key, key, SECRETS_KEY_LEN);
        s->has_secrets_key = true;
        return 0;
}

static int get_locked(apiserver_store_t *s, const char *namespace_, const char *key, store_secret_t *ret) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r;

        r = store_prepare(s, "SELECT " SECRET_COLUMNS " FROM secrets " STORE_WHERE_ID_OR_NAME, &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, namespace_ ?: "default", -1, SQLITE_STATIC);
        r = store_step_row(st);
        if (r < 0)
                return r;
        return ret ? row_read(st, ret) : 0;
}

int store_secret_get(apiserver_store_t *s, const char *namespace_, const char *key, store_secret_t *ret) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);

        return get_locked(s, namespace_, key, ret);
}

int store_secret_list(apiserver_store_t *s, const char *namespace_, store_secret_t **ret, size_t *ret_n) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        void *a;
        int r;

        r = store_prepare(s,
                          "SELECT " SECRET_COLUMNS " FROM secrets WHERE ?1 IS NULL OR namespace = ?1 "
                          "ORDER BY namespace, name",
                          &st);
        if (r < 0)
                return r;
        if (namespace_)
                sqlite3_bind_text(st, 1, namespace_, -1, SQLITE_STATIC);
        r = store_rows_collect(st, sizeof(store_secret_t), row_read, NULL, &a, ret_n);
        if (r < 0)
                return r;
        *ret = a;
        return 0;
}

int store_secret_create(apiserver_store_t *s, const char *namespace_, const char *name, const char *value, size_t n,
                        store_secret_t *ret) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ uint8_t *sealed = NULL;
        char id[STORE_UUID_LEN + 1];
        size_t sealed_n = 0;
        int r, rc;

        if (!s->has_secrets_key)
                return -ENOKEY;
        r = store_uuid_new(id);
        if (r < 0)
                return r;
        r = secrets_seal(s->secrets_key, id, value, n, &sealed, &sealed_n);
        if (r < 0)
                return r;
        r = store_prepare(s, "INSERT INTO secrets (id, namespace, name, sealed, created_at) VALUES (?, ?, ?, ?, ?)",
                          &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, namespace_, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 4, sealed, (int)sealed_n, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, (sqlite3_int64)now_realtime_ms());
        rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
                return store_errno(rc); /* a constraint: -EEXIST */
        return get_locked(s, NULL, id, ret);
}

int store_secret_delete(apiserver_store_t *s, const char *id) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);

        return store_change_one(s, "DELETE FROM secrets WHERE id = ?", id);
}

int store_secret_reveal(apiserver_store_t *s, const char *namespace_, const char *name, char **ret, size_t *ret_n) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r;

        if (!s->has_secrets_key)
                return -ENOKEY;
        r = store_prepare(s, "SELECT id, sealed FROM secrets WHERE namespace = ? AND name = ?", &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, namespace_, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
        r = store_step_row(st);
        if (r < 0)
                return r;
        r = secrets_open(s->secrets_key, store_column_text(st, 0), sqlite3_column_blob(st, 1),
                         (size_t)sqlite3_column_bytes(st, 1), ret, ret_n);
        return r == -EBADMSG ? -EKEYREJECTED : r;
}
