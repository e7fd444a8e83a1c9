/* apiserver_store_private.h: what the store's own files share: the connection and its lock. */
#pragma once

#include <pthread.h>
#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>
#include <sqlite3.h>

#include "services/apiserver/apiserver_store.h"

struct apiserver_store {
        sqlite3 *db;
        pthread_mutex_t lock;    /* held for every call: see apiserver_store.h */
        zhashx_t *statements;    /* SQL text -> store_stmt_t, kept prepared (store_prepare_cached) */
        uint8_t secrets_key[32]; /* SECRETS_KEY_LEN: set by store_secrets_key_set() */
        bool has_secrets_key;
};

/* SQLITE_* result code -> negative errno (constraint violations become -EEXIST). */
int store_errno(int rc);

/* `_cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);` holds the lock for
 * the rest of the scope. */
apiserver_store_t *store_lock(apiserver_store_t *s);
void store_unlockp(apiserver_store_t **s);

static inline void sqlite3_finalizep(sqlite3_stmt **st) {
        if (*st)
                sqlite3_finalize(*st);
        *st = NULL;
}
#define _cleanup_stmt_ _cleanup_(sqlite3_finalizep)

int store_prepare(apiserver_store_t *s, const char *sql, sqlite3_stmt **ret);

/* ---- reading rows (apiserver_store_rows.c): one way for every table ---------------------- */

/* A text column as a C string: "" for NULL. Valid until the statement steps again. */
const char *store_column_text(sqlite3_stmt *st, int col);
/* A text column into a fixed buffer (cut to size), "" for NULL. */
void store_column_copy(sqlite3_stmt *st, int col, char *buf, size_t size);
/* A text column as a new string in *ret (the caller frees), NULL for NULL; -ENOMEM. */
int store_column_dup(sqlite3_stmt *st, int col, char **ret);

/* Reads the current row into *elem, one element of a list: 0 or -errno. */
typedef int (*store_row_read_fn)(sqlite3_stmt *st, void *elem);
/* Frees what one element owns (not the element itself). */
typedef void (*store_elem_clear_fn)(void *elem);
/* Steps st to its end, reading each row into a growing array of elem_size-byte elements: *ret
 * (the caller's, NULL when there were no rows) and *ret_n. On failure nothing is returned and
 * the elements read are cleared (clear is NULL when elements own nothing). */
int store_rows_collect(sqlite3_stmt *st, size_t elem_size, store_row_read_fn read, store_elem_clear_fn clear,
                       void **ret, size_t *ret_n);
/* Steps st expecting at most one row: 1 when it is there to read, -ENOENT when there is none. */
int store_step_row(sqlite3_stmt *st);
/* Runs sql (a DELETE or UPDATE with one text parameter, arg): -ENOENT when it changed no row. */
int store_change_one(apiserver_store_t *s, const char *sql, const char *arg);

/* The WHERE of a namespaced object looked up by id or by name in a namespace (configs, secrets,
 * webhooks...): bind ?1 to the key and ?2 to the namespace. An id first: a name that happens to
 * look like another object's id is not it. */
#define STORE_WHERE_ID_OR_NAME "WHERE id = ?1 OR (namespace = ?2 AND name = ?1) ORDER BY id = ?1 DESC LIMIT 1"

/* A statement kept prepared for the next call with the same SQL, for the queries every request
 * makes (the token lookup, lists): preparing costs more than running them. With the lock held;
 * `_cleanup_cached_stmt_ store_stmt_t *c` (declared after `locked`, so released before the
 * unlock) resets it for the next user. The same SQL already in use in this call, or a full
 * cache, gets a statement of its own, finalized on release. */
typedef struct store_stmt {
        sqlite3_stmt *st;
        bool busy;  /* handed out, not yet released */
        bool owned; /* not in the cache: finalized and freed on release */
} store_stmt_t;
int store_prepare_cached(apiserver_store_t *s, const char *sql, store_stmt_t **ret);
void store_stmt_releasep(store_stmt_t **c);
#define _cleanup_cached_stmt_ _cleanup_(store_stmt_releasep)

/* 0 when deployment id exists, -ENOENT when it does not (with the lock held). Rows that belong to
 * a deployment check this first, so that an unknown one is a clear -ENOENT, not a constraint error. */
int store_deployment_known(apiserver_store_t *s, const char *id);
