/* apiserver_store.h: the sqlite database apiserver alone opens: deployments, desired and observed. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/deployment.h"
#include "proto/event.h"
#include "services/apiserver/apiserver_auth.h"
#include "services/apiserver/apiserver_manifest.h"

#define STORE_UUID_LEN 36
#define STORE_LABEL_FILTERS_MAX 16
#define STORE_MESSAGE_MAX 1024

/* Thread safety: one connection, serialized by a mutex inside the store. civetweb workers and
 * the bus loop all come through here; every call is one critical section, which also makes the
 * read-compare-write of store_deployment_apply() atomic without BEGIN IMMEDIATE retries.
 * Queries are sub-millisecond, and sqlite would serialize the writers anyway. */
typedef struct apiserver_store apiserver_store_t;

/* One row of the deployments table. */
typedef struct store_deployment {
        deployment_t d;       /* the bus record: id, names, generation, status, sizing */
        char *status_message; /* "" when there is nothing to say */
        uint32_t restart_count;
        char *labels;        /* JSON object text, values are strings */
        char *spec;          /* JSON object text: the normalized manifest */
        uint64_t created_at; /* unix ms */
        uint64_t updated_at;
        bool has_exit_code; /* a job ended (this generation): exit_code is its workload's */
        int64_t exit_code;
} store_deployment_t;

void store_deployment_clear(store_deployment_t *d);
/* The store reads columns only; what the bus record carries beyond them (health checks, the
 * workload's command and environment, published ports, volumes) is derived from the stored spec,
 * parsed once, by those who send the record (the REST answers show the spec itself). */
int store_deployment_derive(store_deployment_t *d);
void store_deployment_array_free(store_deployment_t *a, size_t n);

/* Open (creating if needed) and migrate the database at path. */
int store_open(const char *path, apiserver_store_t **ret);
void store_close(apiserver_store_t **s);
/* The schema version the database is at, as PRAGMA user_version says. */
int store_schema_version(apiserver_store_t *s);
/* A cheap query proving the database answers. */
int store_ping(apiserver_store_t *s);

typedef enum store_apply_result {
        STORE_APPLY_CREATED,
        STORE_APPLY_UPDATED, /* spec changed: generation bumped, status kept */
        STORE_APPLY_UNCHANGED,
} store_apply_result_t;

/* Create or update the deployment (namespace, name) from a validated manifest. Returns a
 * store_apply_result_t >= 0 with *ret the stored row, or -EBUSY when a deployment of that
 * name is still being deleted (status "deleted" until purged). */
int store_deployment_apply(apiserver_store_t *s, const manifest_t *m, store_deployment_t *ret);

/* Insert a new deployment; -EEXIST when (namespace, name) is taken. */
int store_deployment_insert(apiserver_store_t *s, const manifest_t *m, store_deployment_t *ret);

/* -ENOENT when unknown. */
int store_deployment_get(apiserver_store_t *s, const char *id, store_deployment_t *ret);
int store_deployment_get_by_name(apiserver_store_t *s, const char *namespace_, const char *name,
                                 store_deployment_t *ret);

typedef struct store_label {
        const char *key;
        const char *value;
} store_label_t;

#define STORE_ANY_OF_MAX 16

/* A column matches one of v[0..n) (Ring's namespace[]=a&namespace[]=b); n == 0 matches all. */
typedef struct store_any_of {
        const char *v[STORE_ANY_OF_MAX];
        size_t n;
} store_any_of_t;

/* Zero fields match everything; every label must match. */
typedef struct store_filter {
        store_any_of_t namespaces;
        store_any_of_t statuses;
        store_any_of_t kinds;
        const store_label_t *labels;
        size_t n_labels; /* at most STORE_LABEL_FILTERS_MAX, else -E2BIG */
} store_filter_t;

/* Deployments ordered by namespace then name. */
int store_deployment_list(apiserver_store_t *s, const store_filter_t *filter, store_deployment_t **ret, size_t *ret_n);

typedef struct store_status_update {
        const char *status;  /* required: one of the DEPLOYMENT_STATUS_* */
        const char *message; /* NULL: cleared, a status report says why or nothing */
        bool has_ready_replicas;
        uint32_t ready_replicas;
        bool has_restart_count;
        uint32_t restart_count;
        bool has_failed_at; /* the scheduler's back-off clock: the newest failure it counted */
        uint64_t failed_at;
        uint64_t generation; /* non-zero: restart_count and failed_at are counted against this
                              * generation, and dropped when the spec changed since (a re-apply
                              * starts the count afresh; a pass planned before it must not undo that) */
        bool has_exit_code;  /* a job ended with exit_code; dropped like the counts for an older
                              * generation. Absent: the stored one is kept (a re-apply clears it) */
        int64_t exit_code;
} store_status_update_t;

#define STORE_CHANGED_STATUS (1u << 0)
#define STORE_CHANGED_MESSAGE (1u << 1)
#define STORE_CHANGED_COUNTS (1u << 2)

/* Record what the scheduler observed. Returns a mask of STORE_CHANGED_* (0: nothing changed)
 * with *ret the row after the update. -ENOENT when unknown, -EINVAL for an unknown status,
 * -EBUSY when the deployment is deleted and the update would bring it back. */
int store_deployment_set_status(apiserver_store_t *s, const char *id, const store_status_update_t *u,
                                store_deployment_t *ret);

/* Mark deleted (instances are then stopped by the scheduler). Returns 1 when the status
 * changed, 0 when it was deleted already; -ENOENT when unknown. */
int store_deployment_mark_deleted(apiserver_store_t *s, const char *id, store_deployment_t *ret);

/* Remove the row of a deleted deployment, with *ret (optional) the row as it was. -ENOENT when
 * unknown, -EBUSY when it is not in status "deleted". */
int store_deployment_purge(apiserver_store_t *s, const char *id, store_deployment_t *ret);

/* ---- exited instances (apiserver_store_exits.c) ---- */

/* Exited instances kept per deployment (the newest by exit time), like logd's retained logs. */
#define STORE_EXITS_PER_DEPLOYMENT 3

/* How one instance ended, as the scheduler saw it before vmm-driver removed it. */
typedef struct store_exit {
        char *instance_id;
        uint64_t generation;
        char *address;       /* the guest's address; NULL: it had no network */
        uint64_t started_at; /* unix ms */
        uint64_t exited_at;
        char *exit_reason;
        int64_t exit_status; /* code, 128+signal, -1 when unknown */
} store_exit_t;

void store_exit_clear(store_exit_t *e);
void store_exit_array_free(store_exit_t *a, size_t n);
/* Keep e (then only the newest STORE_EXITS_PER_DEPLOYMENT of the deployment). Idempotent: an
 * instance recorded already is left as it is. -ENOENT when the deployment is unknown. */
int store_exit_record(apiserver_store_t *s, const char *deployment_id, const store_exit_t *e);
/* The deployment's exited instances, newest first (none for an unknown deployment). */
int store_exit_list(apiserver_store_t *s, const char *deployment_id, store_exit_t **ret, size_t *ret_n);

/* ---- events (apiserver_store_events.c) ---- */

/* Events kept per deployment; recording one more drops the oldest. */
#define STORE_EVENTS_PER_DEPLOYMENT 1000
#define STORE_EVENTS_LIST_MAX 1000

/* Append e (id is assigned into e->id; a zero timestamp becomes now), and queue it for the
 * webhooks whose filter takes it, in one transaction: >= 0, how many deliveries were queued.
 * -ENOENT when the deployment is unknown. */
int store_event_record(apiserver_store_t *s, event_t *e);

typedef struct store_event_filter {
        const char *min_level; /* NULL: every level; else this level and the more severe ones */
        uint64_t after_id;     /* only events with a larger id (follow); 0: none skipped */
        uint64_t since_ms;     /* only events at or after this unix ms time; 0: any time */
        size_t limit;          /* the newest `limit` (after_id == 0) or the oldest after after_id */
} store_event_filter_t;

/* A deployment's events in id order (oldest first). */
int store_event_list(apiserver_store_t *s, const char *deployment_id, const store_event_filter_t *f, event_t **ret,
                     size_t *ret_n);
void store_event_array_free(event_t *a, size_t n);

/* ---- users and their credentials (apiserver_store_auth.c) ---- */

typedef struct store_user {
        char id[STORE_UUID_LEN + 1];
        char name[AUTH_NAME_MAX + 1];
        auth_role_t role;
        uint64_t created_at; /* unix ms */
        uint64_t updated_at;
} store_user_t;

/* How many users there are (>= 0). */
int store_user_count(apiserver_store_t *s);
/* -EEXIST when the name is taken. */
int store_user_create(apiserver_store_t *s, const char *name, auth_role_t role, const char *password_hash,
                      store_user_t *ret);
/* The user whose id or, failing that, name is key; with its password hash when password_hash
 * is not NULL. -ENOENT when there is none. */
int store_user_get(apiserver_store_t *s, const char *key, store_user_t *ret,
                   char password_hash[AUTH_PASSWORD_HASH_MAX]);
/* Every user, by name. */
int store_user_list(apiserver_store_t *s, store_user_t **ret, size_t *ret_n);
/* Change the role (role < 0: kept) and/or the password hash (NULL: kept). Either change
 * revokes every session and token of the user in the same transaction. -ENOENT when unknown,
 * -EBUSY when it would leave no admin. */
int store_user_update(apiserver_store_t *s, const char *id, int role, const char *password_hash, store_user_t *ret);
/* Delete the user and its credentials. -ENOENT when unknown, -EBUSY for the last admin. */
int store_user_delete(apiserver_store_t *s, const char *id);

typedef struct store_token {
        char id[STORE_UUID_LEN + 1];
        char user_id[STORE_UUID_LEN + 1];
        bool session; /* from POST /login (else an API token) */
        char name[AUTH_NAME_MAX + 1];
        bool has_scopes;      /* false: the owner's role decides (sessions) */
        auth_scopes_t scopes; /* names the store does not know (a newer husk's) grant nothing */
        char *namespaces;     /* JSON array text; NULL: every namespace */
        uint64_t created_at;  /* unix ms */
        uint64_t expires_at;  /* 0: never */
} store_token_t;

void store_token_clear(store_token_t *t);
void store_token_array_free(store_token_t *a, size_t n);
/* Keep t (its id, user_id, kind, name, scopes, namespaces, created and expiry times) under
 * the token's hash. Expired credentials are dropped on the way. -ENOENT when the user is gone. */
int store_token_insert(apiserver_store_t *s, const store_token_t *t, const uint8_t hash[AUTH_TOKEN_HASH_LEN]);
/* The credential stored under hash and not expired at now_ms, and its user. -ENOENT otherwise. */
int store_token_find(apiserver_store_t *s, const uint8_t hash[AUTH_TOKEN_HASH_LEN], uint64_t now_ms, store_token_t *ret,
                     store_user_t *ret_user);
/* Delete the credential id (only if it belongs to user_id, when that is not NULL). -ENOENT otherwise. */
int store_token_delete(apiserver_store_t *s, const char *id, const char *user_id);
/* The API tokens (not sessions) of user_id (NULL: everyone's), newest first. */
int store_token_list(apiserver_store_t *s, const char *user_id, store_token_t **ret, size_t *ret_n);
/* Give token id a new hash (and expiry): the old value stops working. -ENOENT when id is no API
 * token of user_id (NULL: anyone's). */
int store_token_rehash(apiserver_store_t *s, const char *id, const char *user_id,
                       const uint8_t hash[AUTH_TOKEN_HASH_LEN], uint64_t expires_at, store_token_t *ret);

/* ---- the audit log (apiserver_store_audit.c) ---- */

/* Entries kept; recording one more beyond drops the oldest. */
#define STORE_AUDIT_MAX 100000
#define STORE_AUDIT_LIST_MAX 1000

typedef struct store_audit {
        uint64_t id;
        uint64_t timestamp; /* unix ms */
        char *namespace_;   /* NULL: about no namespace (logins, users, tokens) */
        char *actor;        /* the user's name, "uid:N" for a local peer, the name tried for a login */
        char *actor_id;     /* the session's or token's id; "" */
        char *via;          /* "session", "token", "local", "anonymous" */
        char *action;       /* "POST /deployments", "DELETE /users/{id}", ... */
        char *target;       /* the route's {id}, or what the handler named ("prod/web"); "" */
        char *source;       /* the client's address, "local" for the unix socket */
        int status;         /* the HTTP status answered */
} store_audit_t;

void store_audit_clear(store_audit_t *a);
void store_audit_array_free(store_audit_t *a, size_t n);
/* Append e (its id and a zero timestamp are filled in). */
int store_audit_record(apiserver_store_t *s, store_audit_t *e);
/* The newest `limit` entries of namespace_ (NULL: of every namespace and none), oldest first. */
int store_audit_list(apiserver_store_t *s, const char *namespace_, size_t limit, store_audit_t **ret, size_t *ret_n);

/* ---- namespaces (apiserver_store_namespaces.c) ---- */

typedef struct store_namespace {
        char name[AUTH_NAMESPACE_MAX + 1];
        uint64_t created_at;  /* unix ms; 0 for the ones that existed before namespaces were objects */
        uint32_t deployments; /* deployments in it, deleted ones not counted */
} store_namespace_t;

/* Every namespace, by name. */
int store_namespace_list(apiserver_store_t *s, store_namespace_t **ret, size_t *ret_n);
/* -ENOENT when there is none of that name. */
int store_namespace_get(apiserver_store_t *s, const char *name, store_namespace_t *ret);
/* -EEXIST when it exists. */
int store_namespace_create(apiserver_store_t *s, const char *name, store_namespace_t *ret);
/* With its configs and secrets. -ENOENT when unknown, -EBUSY while it holds deployments that
 * are not deleted. */
int store_namespace_delete(apiserver_store_t *s, const char *name);

/* ---- configs and secrets (apiserver_store_configs.c, apiserver_store_secrets.c) ---- */

#define STORE_CONFIG_KEYS_MAX 256     /* keys of one config's data */
#define STORE_CONFIG_VALUE_MAX 262144 /* bytes of one value */
#define STORE_SECRET_VALUE_MAX 65536  /* bytes of one secret (an environment value's bound) */

/* A config: namespaced key/value data, in the clear (secrets are for what must not be). */
typedef struct store_config {
        char id[STORE_UUID_LEN + 1];
        char namespace_[AUTH_NAMESPACE_MAX + 1];
        char name[MANIFEST_NAME_MAX + 1];
        char *data;          /* JSON object text, string values */
        uint64_t version;    /* 1 at creation, bumped by each update that changes data */
        uint64_t created_at; /* unix ms */
        uint64_t updated_at;
} store_config_t;

void store_config_clear(store_config_t *c);
void store_config_array_free(store_config_t *a, size_t n);
/* Every config of namespace_ (NULL: of every namespace), by namespace then name. */
int store_config_list(apiserver_store_t *s, const char *namespace_, store_config_t **ret, size_t *ret_n);
/* The config whose id is key or, failing that, whose name in namespace_ is key. -ENOENT otherwise. */
int store_config_get(apiserver_store_t *s, const char *namespace_, const char *key, store_config_t *ret);
/* -EEXIST when the name is taken in the namespace. data: JSON object text. */
int store_config_create(apiserver_store_t *s, const char *namespace_, const char *name, const char *data,
                        store_config_t *ret);
/* Replace the data of config id: 1 when it changed (version bumped), 0 when it was the same.
 * -ENOENT when unknown. */
int store_config_update(apiserver_store_t *s, const char *id, const char *data, store_config_t *ret);
/* -ENOENT when unknown. */
int store_config_delete(apiserver_store_t *s, const char *id);

/* A secret's metadata: its value never leaves the store but through store_secret_reveal(). */
typedef struct store_secret {
        char id[STORE_UUID_LEN + 1];
        char namespace_[AUTH_NAMESPACE_MAX + 1];
        char name[MANIFEST_NAME_MAX + 1];
        uint64_t created_at; /* unix ms */
} store_secret_t;

/* The key values are sealed with (apiserver_secrets.h). The first call on a database stores a
 * check value sealed with it; later ones verify the key opens it: -EKEYREJECTED when it does
 * not (the database was written under another key: every secret would fail to open). */
int store_secrets_key_set(apiserver_store_t *s, const uint8_t *key);
int store_secret_list(apiserver_store_t *s, const char *namespace_, store_secret_t **ret, size_t *ret_n);
int store_secret_get(apiserver_store_t *s, const char *namespace_, const char *key, store_secret_t *ret);
/* Seal value (n bytes) and keep it. -EEXIST when the name is taken, -ENOKEY without a key. */
int store_secret_create(apiserver_store_t *s, const char *namespace_, const char *name, const char *value, size_t n,
                        store_secret_t *ret);
int store_secret_delete(apiserver_store_t *s, const char *id);
/* The value of secret name in namespace_, NUL-terminated, into *ret (free with secrets_free()).
 * -ENOENT when there is none, -EKEYREJECTED when it does not open under the key. */
int store_secret_reveal(apiserver_store_t *s, const char *namespace_, const char *name, char **ret, size_t *ret_n);

/* A random (version 4) UUID, 36 characters plus NUL, from getrandom(). */
int store_uuid_new(char ret[static STORE_UUID_LEN + 1]);
