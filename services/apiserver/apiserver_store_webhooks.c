/* apiserver_store_webhooks.c: the webhooks table (secrets sealed like secrets' values) and the
 * delivery queue with each attempt's outcome. */
#include "services/apiserver/apiserver_store_webhooks.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "services/apiserver/apiserver_json.h"
#include "services/apiserver/apiserver_secrets.h"
#include "services/apiserver/apiserver_store_private.h"

#define WEBHOOK_COLUMNS "id, name, url, filter, created_at"
#define DELIVERY_COLUMNS                                                                                      \
        "id, webhook_id, event_id, reason, state, attempts, next_attempt_at, last_status, last_error, body, " \
        "created_at, updated_at"

static const char *const state_names[_STORE_DELIVERY_STATE_MAX] = {
        [STORE_DELIVERY_PENDING] = "pending",
        [STORE_DELIVERY_DELIVERED] = "delivered",
        [STORE_DELIVERY_DEAD] = "dead",
};

const char *store_delivery_state_name(store_delivery_state_t s) {
        return s >= 0 && s < _STORE_DELIVERY_STATE_MAX ? state_names[s] : NULL;
}

static store_delivery_state_t state_from_name(const char *name) {
        for (int i = 0; i < _STORE_DELIVERY_STATE_MAX; i++)
                if (streq(state_names[i], name))
                        return (store_delivery_state_t)i;
        return STORE_DELIVERY_DEAD;
}

/* The secret's context: never the same as a secret's (those are bare row ids). */
static void seal_context(const char *id, char ret[static STORE_UUID_LEN + 9]) {
        snprintf(ret, STORE_UUID_LEN + 9, "webhook:%s", id);
}

static int exec_sql(apiserver_store_t *s, const char *sql) {
        return store_errno(sqlite3_exec(s->db, sql, NULL, NULL, NULL));
}

void store_webhook_clear(store_webhook_t *w) {
        free(w->url);
        webhook_filter_clear(&w->filter);
        *w = (store_webhook_t){};
}

void store_webhook_array_free(store_webhook_t *a, size_t n) {
        for (size_t i = 0; i < n; i++)
                store_webhook_clear(&a[i]);
        free(a);
}

static int filter_load(const char *stored, webhook_filter_t *ret) {
        json_auto_t *j = stored_json_load(stored);

        /* Written by this code: a filter that does not read back takes nothing, rather than everything. */
        if (!j || webhook_filter_from_json(j, "filter", NULL, ret) < 0) {
                *ret = (webhook_filter_t){ .min_level = 3 };
                return -EBADMSG;
        }
        return 0;
}

static int webhook_read(sqlite3_stmt *st, void *elem) {
        store_webhook_t *ret = elem;

        *ret = (store_webhook_t){};
        store_column_copy(st, 0, ret->id, sizeof(ret->id));
        store_column_copy(st, 1, ret->name, sizeof(ret->name));
        ret->created_at = (uint64_t)sqlite3_column_int64(st, 4);
        (void)filter_load(store_column_text(st, 3), &ret->filter);
        return store_column_dup(st, 2, &ret->url);
}

static void webhook_clear(void *elem) { store_webhook_clear(elem); }

static int get_locked(apiserver_store_t *s, const char *key, store_webhook_t *ret) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r;

        /* Webhooks have no namespace: a name is unique among them all. An id first. */
        r = store_prepare(s,
                          "SELECT " WEBHOOK_COLUMNS " FROM webhooks WHERE id = ?1 OR (name = ?1 AND name != '') "
                          "ORDER BY id = ?1 DESC LIMIT 1",
                          &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        r = store_step_row(st);
        if (r < 0)
                return r;
        return ret ? webhook_read(st, ret) : 0;
}

int store_webhook_get(apiserver_store_t *s, const char *key, store_webhook_t *ret) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);

        return get_locked(s, key, ret);
}

int store_webhook_create(apiserver_store_t *s, const char *name, const char *url, const webhook_filter_t *f,
                         const char *secret, size_t n, store_webhook_t *ret) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ uint8_t *sealed = NULL;
        _cleanup_free_ char *filter = NULL;
        json_auto_t *fj = NULL;
        char id[STORE_UUID_LEN + 1], context[STORE_UUID_LEN + 9];
        size_t sealed_n = 0;
        int r, rc;

        if (!s->has_secrets_key)
                return -ENOKEY;
        r = store_uuid_new(id);
        if (r < 0)
                return r;
        seal_context(id, context);
        r = secrets_seal(s->secrets_key, context, secret, n, &sealed, &sealed_n);
        if (r < 0)
                return r;
        fj = webhook_filter_to_json(f);
        filter = fj ? json_dumps(fj, JSON_COMPACT) : NULL;
        if (!filter)
                return -ENOMEM;
        r = store_prepare(s,
                          "INSERT INTO webhooks (id, name, url, filter, sealed_secret, created_at) "
                          "VALUES (?, ?, ?, ?, ?, ?)",
                          &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, name ?: "", -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, url, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, filter, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 5, sealed, (int)sealed_n, SQLITE_STATIC);
        sqlite3_bind_int64(st, 6, (sqlite3_int64)now_realtime_ms());
        rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
                return store_errno(rc); /* the name's unique index: -EEXIST */
        return get_locked(s, id, ret);
}

int store_webhook_list(apiserver_store_t *s, store_webhook_t **ret, size_t *ret_n) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r;

        r = store_prepare(s, "SELECT " WEBHOOK_COLUMNS " FROM webhooks ORDER BY created_at, id", &st);
        if (r < 0)
                return r;
        return store_rows_collect(st, sizeof(**ret), webhook_read, webhook_clear, (void **)ret, ret_n);
}

int store_webhook_delete(apiserver_store_t *s, const char *id) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);

        /* One statement: deliveries and attempts go with it (ON DELETE CASCADE). */
        return store_change_one(s, "DELETE FROM webhooks WHERE id = ?", id);
}

int store_webhooks_queue_locked(apiserver_store_t *s, const event_t *e) {
        _cleanup_stmt_ sqlite3_stmt *hooks = NULL, *dep = NULL, *ins = NULL;
        _cleanup_free_ char *body = NULL, *ns = NULL, *name = NULL;
        uint64_t now = now_realtime_ms();
        int r, rc, queued = 0;

        r = store_prepare(s, "SELECT id, filter FROM webhooks", &hooks);
        if (r < 0)
                return r;
        while ((rc = sqlite3_step(hooks)) == SQLITE_ROW) {
                webhook_filter_t f = {};
                bool match;

                if (!ns) { /* only once a webhook exists: most events meet none */
                        r = store_prepare(s, "SELECT namespace, name FROM deployments WHERE id = ?", &dep);
                        if (r < 0)
                                return r;
                        sqlite3_bind_text(dep, 1, e->deployment_id, -1, SQLITE_STATIC);
                        rc = sqlite3_step(dep);
                        if (rc != SQLITE_ROW)
                                return rc == SQLITE_DONE ? -ENOENT : store_errno(rc);
                        if (store_column_dup(dep, 0, &ns) < 0 || store_column_dup(dep, 1, &name) < 0)
                                return -ENOMEM;
                        body = webhook_body(e, ns, name);
                        if (!body)
                                return -ENOMEM;
                        r = store_prepare(s,
                                          "INSERT INTO webhook_deliveries (webhook_id, event_id, reason, body, "
                                          "next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                                          &ins);
                        if (r < 0)
                                return r;
                }
                (void)filter_load(store_column_text(hooks, 1), &f);
                match = webhook_filter_matches(&f, ns, e->level, e->reason);
                webhook_filter_clear(&f);
                if (!match)
                        continue;
                sqlite3_reset(ins);
                sqlite3_bind_text(ins, 1, store_column_text(hooks, 0), -1, SQLITE_TRANSIENT);
                sqlite3_bind_int64(ins, 2, (sqlite3_int64)e->id);
                sqlite3_bind_text(ins, 3, e->reason, -1, SQLITE_STATIC);
                sqlite3_bind_text(ins, 4, body, -1, SQLITE_STATIC);
                sqlite3_bind_int64(ins, 5, (sqlite3_int64)now);
                sqlite3_bind_int64(ins, 6, (sqlite3_int64)now);
                sqlite3_bind_int64(ins, 7, (sqlite3_int64)now);
                rc = sqlite3_step(ins);
                if (rc != SQLITE_DONE)
                        return store_errno(rc);
                queued++;
        }
        return rc == SQLITE_DONE ? queued : store_errno(rc);
}

void store_delivery_clear(store_delivery_t *d) {
        free(d->last_error);
        free(d->body);
        for (size_t i = 0; i < d->n_history; i++)
                free(d->history[i].error);
        free(d->history);
        *d = (store_delivery_t){};
}

static void delivery_clear(void *elem) { store_delivery_clear(elem); }

void store_delivery_array_free(store_delivery_t *a, size_t n) {
        for (size_t i = 0; i < n; i++)
                store_delivery_clear(&a[i]);
        free(a);
}

static int delivery_read(sqlite3_stmt *st, void *elem) {
        store_delivery_t *d = elem;
        int r = 0;

        *d = (store_delivery_t){};
        d->id = (uint64_t)sqlite3_column_int64(st, 0);
        store_column_copy(st, 1, d->webhook_id, sizeof(d->webhook_id));
        d->event_id = (uint64_t)sqlite3_column_int64(st, 2);
        store_column_copy(st, 3, d->reason, sizeof(d->reason));
        d->state = state_from_name(store_column_text(st, 4));
        d->attempts = (uint32_t)sqlite3_column_int64(st, 5);
        d->next_attempt_at = (uint64_t)sqlite3_column_int64(st, 6);
        d->last_status = sqlite3_column_int(st, 7);
        r = r ?: store_column_dup(st, 8, &d->last_error);
        r = r ?: store_column_dup(st, 9, &d->body);
        d->created_at = (uint64_t)sqlite3_column_int64(st, 10);
        d->updated_at = (uint64_t)sqlite3_column_int64(st, 11);
        return r;
}

static int attempt_read(sqlite3_stmt *st, void *elem) {
        store_attempt_t *a = elem;

        a->attempt = (uint32_t)sqlite3_column_int64(st, 0);
        a->at = (uint64_t)sqlite3_column_int64(st, 1);
        a->duration_ms = (uint64_t)sqlite3_column_int64(st, 2);
        a->status = sqlite3_column_int(st, 3);
        return store_column_dup(st, 4, &a->error);
}

static void attempt_clear(void *elem) { free(((store_attempt_t *)elem)->error); }

/* d's attempts, oldest first, with st (prepared once for every delivery of a list). */
static int history_read(sqlite3_stmt *st, store_delivery_t *d) {
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, (sqlite3_int64)d->id);
        return store_rows_collect(st, sizeof(*d->history), attempt_read, attempt_clear, (void **)&d->history,
                                  &d->n_history);
}

int store_delivery_list(apiserver_store_t *s, const char *webhook_id, size_t limit, store_delivery_t **ret,
                        size_t *ret_n) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);
        _cleanup_stmt_ sqlite3_stmt *st = NULL, *hist = NULL;
        store_delivery_t *a = NULL;
        size_t n = 0;
        int r;

        if (limit == 0 || limit > STORE_DELIVERIES_LIST_MAX)
                limit = STORE_DELIVERIES_LIST_MAX;
        r = store_prepare(s,
                          "SELECT " DELIVERY_COLUMNS " FROM webhook_deliveries WHERE webhook_id = ? "
                          "ORDER BY id DESC LIMIT ?",
                          &st);
        if (r >= 0)
                r = store_prepare(s,
                                  "SELECT attempt, at, duration_ms, status, error FROM webhook_attempts "
                                  "WHERE delivery_id = ? ORDER BY attempt",
                                  &hist);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, webhook_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
        r = store_rows_collect(st, sizeof(*a), delivery_read, delivery_clear, (void **)&a, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; r >= 0 && i < n; i++)
                r = history_read(hist, &a[i]);
        if (r < 0) {
                store_delivery_array_free(a, n);
                return r;
        }
        *ret = a;
        *ret_n = n;
        return 0;
}

static int due_read(sqlite3_stmt *st, void *elem) {
        store_delivery_due_t *d = elem;

        d->id = (uint64_t)sqlite3_column_int64(st, 0);
        store_column_copy(st, 1, d->webhook_id, sizeof(d->webhook_id));
        d->next_attempt_at = (uint64_t)sqlite3_column_int64(st, 2);
        return 0;
}

int store_delivery_due(apiserver_store_t *s, store_delivery_due_t **ret, size_t *ret_n) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);
        _cleanup_cached_stmt_ store_stmt_t *c = NULL;
        int r;

        /* sqlite takes the bare columns from the row that holds the min(): per webhook, the
         * delivery due first. One row per webhook, however long a dead receiver's queue is. */
        r = store_prepare_cached(s,
                                 "SELECT id, webhook_id, min(next_attempt_at) FROM webhook_deliveries "
                                 "WHERE state = 'pending' GROUP BY webhook_id",
                                 &c);
        if (r < 0)
                return r;
        return store_rows_collect(c->st, sizeof(**ret), due_read, NULL, (void **)ret, ret_n);
}

int store_delivery_load(apiserver_store_t *s, uint64_t id, store_delivery_t *ret, char **ret_url, char **ret_secret,
                        size_t *ret_secret_n) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);
        _cleanup_stmt_ sqlite3_stmt *st = NULL, *hook = NULL;
        char context[STORE_UUID_LEN + 9];
        int r;

        if (!s->has_secrets_key)
                return -ENOKEY;
        r = store_prepare(s, "SELECT " DELIVERY_COLUMNS " FROM webhook_deliveries WHERE id = ? AND state = 'pending'",
                          &st);
        if (r < 0)
                return r;
        sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
        r = store_step_row(st);
        if (r < 0)
                return r;
        r = store_prepare(s, "SELECT url, sealed_secret FROM webhooks WHERE id = ?", &hook);
        if (r < 0)
                return r;
        sqlite3_bind_text(hook, 1, store_column_text(st, 1), -1, SQLITE_STATIC);
        r = store_step_row(hook);
        if (r < 0)
                return r;
        r = delivery_read(st, ret);
        if (r >= 0)
                r = store_column_dup(hook, 0, ret_url);
        if (r < 0) {
                store_delivery_clear(ret);
                return r;
        }
        seal_context(ret->webhook_id, context);
        r = secrets_open(s->secrets_key, context, sqlite3_column_blob(hook, 1), (size_t)sqlite3_column_bytes(hook, 1),
                         ret_secret, ret_secret_n);
        if (r < 0) {
                free(*ret_url);
                *ret_url = NULL;
                store_delivery_clear(ret);
                return r == -EBADMSG ? -EKEYREJECTED : r;
        }
        return 0;
}

static int finish_locked(apiserver_store_t *s, uint64_t id, const store_attempt_t *a, store_delivery_state_t state,
                         uint64_t next_attempt_at) {
        _cleanup_stmt_ sqlite3_stmt *upd = NULL, *ins = NULL, *trim = NULL;
        int r, rc;

        r = store_prepare(
                s,
                "UPDATE webhook_deliveries SET state = ?, attempts = ?, next_attempt_at = ?, last_status = ?, "
                "last_error = ?, updated_at = ? WHERE id = ? AND state = 'pending'",
                &upd);
        if (r < 0)
                return r;
        sqlite3_bind_text(upd, 1, store_delivery_state_name(state), -1, SQLITE_STATIC);
        sqlite3_bind_int64(upd, 2, a->attempt);
        sqlite3_bind_int64(upd, 3, (sqlite3_int64)next_attempt_at);
        sqlite3_bind_int(upd, 4, a->status);
        sqlite3_bind_text(upd, 5, a->error ?: "", -1, SQLITE_STATIC);
        sqlite3_bind_int64(upd, 6, (sqlite3_int64)now_realtime_ms());
        sqlite3_bind_int64(upd, 7, (sqlite3_int64)id);
        rc = sqlite3_step(upd);
        if (rc != SQLITE_DONE)
                return store_errno(rc);
        if (sqlite3_changes(s->db) == 0)
                return -ENOENT;
        r = store_prepare(s,
                          "INSERT OR REPLACE INTO webhook_attempts (delivery_id, attempt, at, duration_ms, status, "
                          "error) VALUES (?, ?, ?, ?, ?, ?)",
                          &ins);
        if (r < 0)
                return r;
        sqlite3_bind_int64(ins, 1, (sqlite3_int64)id);
        sqlite3_bind_int64(ins, 2, a->attempt);
        sqlite3_bind_int64(ins, 3, (sqlite3_int64)a->at);
        sqlite3_bind_int64(ins, 4, (sqlite3_int64)a->duration_ms);
        sqlite3_bind_int(ins, 5, a->status);
        sqlite3_bind_text(ins, 6, a->error ?: "", -1, SQLITE_STATIC);
        rc = sqlite3_step(ins);
        if (rc != SQLITE_DONE)
                return store_errno(rc);
        if (state == STORE_DELIVERY_PENDING)
                return 0;
        /* History is bounded: the oldest finished deliveries of this webhook go. */
        r = store_prepare(
                s,
                "DELETE FROM webhook_deliveries WHERE state != 'pending' AND webhook_id = "
                "(SELECT webhook_id FROM webhook_deliveries WHERE id = ?1) AND id <= "
                "(SELECT id FROM webhook_deliveries WHERE state != 'pending' AND webhook_id = "
                "(SELECT webhook_id FROM webhook_deliveries WHERE id = ?1) ORDER BY id DESC LIMIT 1 OFFSET ?2)",
                &trim);
        if (r < 0)
                return r;
        sqlite3_bind_int64(trim, 1, (sqlite3_int64)id);
        sqlite3_bind_int(trim, 2, STORE_DELIVERIES_KEPT);
        rc = sqlite3_step(trim);
        return rc == SQLITE_DONE ? 0 : store_errno(rc);
}

int store_delivery_finish(apiserver_store_t *s, uint64_t id, const store_attempt_t *a, store_delivery_state_t state,
                          uint64_t next_attempt_at) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);
        int r;

        r = exec_sql(s, "BEGIN IMMEDIATE");
        if (r < 0)
                return r;
        r = finish_locked(s, id, a, state, next_attempt_at);
        if (r >= 0)
                r = exec_sql(s, "COMMIT");
        if (r < 0)
                (void)exec_sql(s, "ROLLBACK");
        return r;
}

int store_delivery_counts(apiserver_store_t *s, uint64_t ret[static _STORE_DELIVERY_STATE_MAX]) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r, rc;

        for (int i = 0; i < _STORE_DELIVERY_STATE_MAX; i++)
                ret[i] = 0;
        r = store_prepare(s, "SELECT state, count(*) FROM webhook_deliveries GROUP BY state", &st);
        if (r < 0)
                return r;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
                ret[state_from_name(store_column_text(st, 0))] = (uint64_t)sqlite3_column_int64(st, 1);
        return rc == SQLITE_DONE ? 0 : store_errno(rc);
}
