/* apiserver_store_auth.c: the users and tokens tables: accounts, their password hashes, and
 * sessions and API tokens kept as hashes only. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "services/apiserver/apiserver_store_private.h"

#define USER_COLUMNS "id, name, role, created_at, updated_at"
#define TOKEN_COLUMNS "id, user_id, kind, name, scopes, namespaces, created_at, expires_at"

static int exec_sql(apiserver_store_t *s, const char *sql) {
        return store_errno(sqlite3_exec(s->db, sql, NULL, NULL, NULL));
}

static void user_read(sqlite3_stmt *st, int col, store_user_t *u) {
        const unsigned char *role = sqlite3_column_text(st, col + 2);

        *u = (store_user_t){};
        store_column_copy(st, col, u->id, sizeof(u->id));
        store_column_copy(st, col + 1, u->name, sizeof(u->name));
        u->role = auth_role_from_name((const char *)role);
        u->created_at = (uint64_t)sqlite3_column_int64(st, col + 3);
        u->updated_at = (uint64_t)sqlite3_column_int64(st, col + 4);
}

/* Scope names as the store keeps them (a JSON array) into a set; a name this husk does not
 * know grants nothing. */
static auth_scopes_t scopes_parse(const char *text) {
        json_auto_t *a = json_loads(text, 0, NULL);
        auth_scopes_t set = 0;
        json_t *v;
        size_t i;

        json_array_foreach(a, i, v) {
                int sc = json_is_string(v) ? auth_scope_from_name(json_string_value(v)) : -EINVAL;
                if (sc >= 0)
                        set |= AUTH_SCOPE_BIT(sc);
        }
        return set;
}

static char *scopes_format(auth_scopes_t set) {
        json_auto_t *a = json_array();

        for (int sc = AUTH_SCOPE_FIRST_REAL; a && sc < _AUTH_SCOPE_MAX; sc++)
                if (set & AUTH_SCOPE_BIT(sc))
                        json_array_append_new(a, json_string(auth_scope_name(sc)));
        return a ? json_dumps(a, JSON_COMPACT) : NULL;
}

static int token_read(sqlite3_stmt *st, int col, store_token_t *t) {
        const unsigned char *kind = sqlite3_column_text(st, col + 2);
        const unsigned char *scopes = sqlite3_column_text(st, col + 4);
        const unsigned char *ns = sqlite3_column_text(st, col + 5);

        *t = (store_token_t){};
        store_column_copy(st, col, t->id, sizeof(t->id));
        store_column_copy(st, col + 1, t->user_id, sizeof(t->user_id));
        t->session = kind && streq((const char *)kind, "session");
        store_column_copy(st, col + 3, t->name, sizeof(t->name));
        t->has_scopes = scopes != NULL;
        if (scopes)
                t->scopes = scopes_parse((const char *)scopes);
        if (ns) {
                t->namespaces = strdup((const char *)ns);
                if (!t->namespaces)
                        return -ENOMEM;
        }
        t->created_at = (uint64_t)sqlite3_column_int64(st, col + 6);
        t->expires_at = (uint64_t)sqlite3_column_int64(st, col + 7);
        return 0;
}

void store_token_clear(store_token_t *t) {
        free(t->namespaces);
        *t = (store_token_t){};
}

void store_token_array_free(store_token_t *a, size_t n) {
        for (size_t i = 0; i < n; i++)
                store_token_clear(&a[i]);
        free(a);
}

static int user_row(sqlite3_stmt *st, void *elem) {
        user_read(st, 0, elem);
        return 0;
}

static int token_row(sqlite3_stmt *st, void *elem) { return token_read(st, 0, elem); }

static void token_clear(void *elem) { store_token_clear(elem); }

int store_user_count(apiserver_store_t *s) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r, rc;

        r = store_prepare(s, "SELECT count(*) FROM users", &st);
        if (r < 0)
                return r;
        rc = sqlite3_step(st);
        return rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : store_errno(rc);
}

static int user_get_locked(apiserver_store_t *s, const char *key, store_user_t *ret, char *password_hash) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r, rc;

        /* The id wins over a name: ids are the stable key, and a name shaped like another
         * user's id must not shadow that user. */
        r = store_prepare(s,
                          "SELECT " USER_COLUMNS ", password_hash FROM users WHERE id = ?1 OR name = ?1 "
                          "ORDER BY id = ?1 DESC LIMIT 1",
                          &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                return -ENOENT;
        if (rc != SQLITE_ROW)
                return store_errno(rc);
        user_read(st, 0, ret);
        if (password_hash)
                store_column_copy(st, 5, password_hash, AUTH_PASSWORD_HASH_MAX);
        return 0;
}

int store_user_get(apiserver_store_t *s, const char *key, store_user_t *ret,
                   char password_hash[AUTH_PASSWORD_HASH_MAX]) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);

        return user_get_locked(s, key, ret, password_hash);
}

int store_user_create(apiserver_store_t *s, const char *name, auth_role_t role, const char *password_hash,
                      store_user_t *ret) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        char id[STORE_UUID_LEN + 1];
        uint64_t now = now_realtime_ms();
        int r, rc;

        if (!auth_name_valid(name) || !auth_role_name(role) || !password_hash)
                return -EINVAL;
        r = store_uuid_new(id);
        if (r < 0)
                return r;
        r = store_prepare(s,
                          "INSERT INTO users (id, name, role, password_hash, created_at, updated_at) "
                          "VALUES (?, ?, ?, ?, ?, ?)",
                          &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, auth_role_name(role), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, password_hash, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, (sqlite3_int64)now);
        sqlite3_bind_int64(st, 6, (sqlite3_int64)now);
        rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
                return store_errno(rc);
        return ret ? user_get_locked(s, id, ret, NULL) : 0;
}

int store_user_list(apiserver_store_t *s, store_user_t **ret, size_t *ret_n) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        void *a;
        int r;

        r = store_prepare(s, "SELECT " USER_COLUMNS " FROM users ORDER BY name", &st);
        if (r < 0)
                return r;
        r = store_rows_collect(st, sizeof(store_user_t), user_row, NULL, &a, ret_n);
        if (r < 0)
                return r;
        *ret = a;
        return 0;
}

/* Admins left if user id were no admin any more (with the lock held). */
static int other_admins(apiserver_store_t *s, const char *id) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r, rc;

        r = store_prepare(s, "SELECT count(*) FROM users WHERE role = 'admin' AND id != ?", &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        return rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : store_errno(rc);
}

static int user_update_locked(apiserver_store_t *s, const char *id, int role, const char *password_hash) {
        _cleanup_stmt_ sqlite3_stmt *up = NULL, *revoke = NULL;
        store_user_t u;
        int r, rc;

        r = user_get_locked(s, id, &u, NULL);
        if (r < 0)
                return r;
        if (!streq(u.id, id))
                return -ENOENT; /* ids only here */
        if (role >= 0 && role != AUTH_ROLE_ADMIN && u.role == AUTH_ROLE_ADMIN) {
                r = other_admins(s, id);
                if (r < 0)
                        return r;
                if (r == 0)
                        return -EBUSY;
        }
        r = store_prepare(s,
                          "UPDATE users SET role = coalesce(?2, role), password_hash = coalesce(?3, password_hash), "
                          "updated_at = ?4 WHERE id = ?1",
                          &up);
        if (r < 0)
                return r;
        sqlite3_bind_text(up, 1, id, -1, SQLITE_STATIC);
        if (role >= 0)
                sqlite3_bind_text(up, 2, auth_role_name(role), -1, SQLITE_STATIC);
        if (password_hash)
                sqlite3_bind_text(up, 3, password_hash, -1, SQLITE_STATIC);
        sqlite3_bind_int64(up, 4, (sqlite3_int64)now_realtime_ms());
        rc = sqlite3_step(up);
        if (rc != SQLITE_DONE)
                return store_errno(rc);
        /* Whoever held this user's credentials held them under the old role or password. */
        r = store_prepare(s, "DELETE FROM tokens WHERE user_id = ?", &revoke);
        if (r < 0)
                return r;
        sqlite3_bind_text(revoke, 1, id, -1, SQLITE_STATIC);
        rc = sqlite3_step(revoke);
        return rc == SQLITE_DONE ? 0 : store_errno(rc);
}

int store_user_update(apiserver_store_t *s, const char *id, int role, const char *password_hash, store_user_t *ret) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);
        int r;

        if (role >= 0 && !auth_role_name(role))
                return -EINVAL;
        if (role < 0 && !password_hash)
                return user_get_locked(s, id, ret, NULL);
        r = exec_sql(s, "BEGIN IMMEDIATE");
        if (r < 0)
                return r;
        r = user_update_locked(s, id, role, password_hash);
        if (r >= 0)
                r = exec_sql(s, "COMMIT");
        if (r < 0) {
                (void)exec_sql(s, "ROLLBACK");
                return r;
        }
        return ret ? user_get_locked(s, id, ret, NULL) : 0;
}

int store_user_delete(apiserver_store_t *s, const char *id) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);
        _cleanup_stmt_ sqlite3_stmt *del = NULL;
        store_user_t u;
        int r, rc;

        r = user_get_locked(s, id, &u, NULL);
        if (r < 0)
                return r;
        if (!streq(u.id, id))
                return -ENOENT;
        if (u.role == AUTH_ROLE_ADMIN) {
                r = other_admins(s, id);
                if (r < 0)
                        return r;
                if (r == 0)
                        return -EBUSY;
        }
        /* One statement: its tokens go with it (ON DELETE CASCADE), atomically. */
        r = store_prepare(s, "DELETE FROM users WHERE id = ?", &del);
        if (r < 0)
                return r;
        sqlite3_bind_text(del, 1, id, -1, SQLITE_STATIC);
        rc = sqlite3_step(del);
        return rc == SQLITE_DONE ? 0 : store_errno(rc);
}

int store_token_insert(apiserver_store_t *s, const store_token_t *t, const uint8_t hash[AUTH_TOKEN_HASH_LEN]) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);
        _cleanup_stmt_ sqlite3_stmt *ins = NULL, *expired = NULL;
        _cleanup_free_ char *scopes = NULL;
        int r, rc;

        if (t->has_scopes) {
                scopes = scopes_format(t->scopes);
                if (!scopes)
                        return -ENOMEM;
        }
        r = store_prepare(s, "DELETE FROM tokens WHERE expires_at != 0 AND expires_at <= ?", &expired);
        if (r < 0)
                return r;
        sqlite3_bind_int64(expired, 1, (sqlite3_int64)now_realtime_ms());
        rc = sqlite3_step(expired);
        if (rc != SQLITE_DONE)
                return store_errno(rc);

        r = store_prepare(s,
                          "INSERT INTO tokens (id, user_id, kind, name, hash, scopes, namespaces, created_at, "
                          "expires_at) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9 WHERE EXISTS "
                          "(SELECT 1 FROM users WHERE id = ?2)",
                          &ins);
        if (r < 0)
                return r;
        sqlite3_bind_text(ins, 1, t->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 2, t->user_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 3, t->session ? "session" : "token", -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 4, t->name, -1, SQLITE_STATIC);
        sqlite3_bind_blob(ins, 5, hash, AUTH_TOKEN_HASH_LEN, SQLITE_STATIC);
        if (scopes)
                sqlite3_bind_text(ins, 6, scopes, -1, SQLITE_STATIC);
        if (t->namespaces)
                sqlite3_bind_text(ins, 7, t->namespaces, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 8, (sqlite3_int64)t->created_at);
        sqlite3_bind_int64(ins, 9, (sqlite3_int64)t->expires_at);
        rc = sqlite3_step(ins);
        if (rc != SQLITE_DONE)
                return store_errno(rc);
        return sqlite3_changes(s->db) == 1 ? 0 : -ENOENT;
}

int store_token_find(apiserver_store_t *s, const uint8_t hash[AUTH_TOKEN_HASH_LEN], uint64_t now_ms, store_token_t *ret,
                     store_user_t *ret_user) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);
        _cleanup_cached_stmt_ store_stmt_t *c = NULL; /* every authenticated request asks */
        sqlite3_stmt *st;
        int r, rc;

        r = store_prepare_cached(s,
                                 "SELECT t.id, t.user_id, t.kind, t.name, t.scopes, t.namespaces, t.created_at, "
                                 "t.expires_at, u.id, u.name, u.role, u.created_at, u.updated_at "
                                 "FROM tokens t JOIN users u ON u.id = t.user_id "
                                 "WHERE t.hash = ? AND (t.expires_at = 0 OR t.expires_at > ?)",
                                 &c);
        if (r < 0)
                return r;
        st = c->st;
        sqlite3_bind_blob(st, 1, hash, AUTH_TOKEN_HASH_LEN, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)now_ms);
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                return -ENOENT;
        if (rc != SQLITE_ROW)
                return store_errno(rc);
        r = token_read(st, 0, ret);
        if (r < 0)
                return r;
        user_read(st, 8, ret_user);
        return 0;
}

int store_token_delete(apiserver_store_t *s, const char *id, const char *user_id) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r, rc;

        r = store_prepare(s, "DELETE FROM tokens WHERE id = ?1 AND (?2 IS NULL OR user_id = ?2)", &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        if (user_id)
                sqlite3_bind_text(st, 2, user_id, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
                return store_errno(rc);
        return sqlite3_changes(s->db) == 1 ? 0 : -ENOENT;
}

static int token_get_locked(apiserver_store_t *s, const char *id, store_token_t *ret) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r, rc;

        r = store_prepare(s, "SELECT " TOKEN_COLUMNS " FROM tokens WHERE id = ?", &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                return -ENOENT;
        return rc == SQLITE_ROW ? token_read(st, 0, ret) : store_errno(rc);
}

int store_token_list(apiserver_store_t *s, const char *user_id, store_token_t **ret, size_t *ret_n) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        void *a;
        int r;

        r = store_prepare(s,
                          "SELECT " TOKEN_COLUMNS " FROM tokens WHERE kind = 'token' AND (?1 IS NULL OR user_id = ?1) "
                          "AND (expires_at = 0 OR expires_at > ?2) ORDER BY created_at DESC, id",
                          &st);
        if (r < 0)
                return r;
        if (user_id)
                sqlite3_bind_text(st, 1, user_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)now_realtime_ms());
        r = store_rows_collect(st, sizeof(store_token_t), token_row, token_clear, &a, ret_n);
        if (r < 0)
                return r;
        *ret = a;
        return 0;
}

int store_token_rehash(apiserver_store_t *s, const char *id, const char *user_id,
                       const uint8_t hash[AUTH_TOKEN_HASH_LEN], uint64_t expires_at, store_token_t *ret) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r, rc;

        r = store_prepare(s,
                          "UPDATE tokens SET hash = ?3, expires_at = ?4 WHERE id = ?1 AND kind = 'token' "
                          "AND (?2 IS NULL OR user_id = ?2)",
                          &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        if (user_id)
                sqlite3_bind_text(st, 2, user_id, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 3, hash, AUTH_TOKEN_HASH_LEN, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)expires_at);
        rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
                return store_errno(rc);
        if (sqlite3_changes(s->db) != 1)
                return -ENOENT;
        return ret ? token_get_locked(s, id, ret) : 0;
}
