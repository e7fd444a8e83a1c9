/* apiserver_store_private.h: what the store's own files share: the connection and its lock. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sqlite3.h>

#include "services/apiserver/apiserver_store.h"

struct apiserver_store {
        sqlite3 *db;
        pthread_mutex_t lock;    /* held for every call: see apiserver_store.h */
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

/* 0 when deployment id exists, -ENOENT when it does not (with the lock held). Rows that belong to
 * a deployment check this first, so that an unknown one is a clear -ENOENT, not a constraint error. */
int store_deployment_known(apiserver_store_t *s, const char *id);
