/* apiserver_store_private.h: what the store's own files share: the connection and its lock. */
#pragma once

#include <pthread.h>
#include <czmq.h>
#include <sqlite3.h>

#include "services/apiserver/apiserver_store.h"

struct apiserver_store {
        sqlite3 *db;
        pthread_mutex_t lock; /* held for every call: see apiserver_store.h */
        zhashx_t *statements; /* SQL text -> store_stmt_t, kept prepared (store_prepare_cached) */
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
