/* apiserver_store.c: opening the database, its versioned migrations, and the lock every query takes. */
#include "services/apiserver/apiserver_store_private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "lib/log.h"
#include "lib/util.h"

#define BUSY_TIMEOUT_MS 5000

/* Schema history: entry i takes the database from user_version i to i + 1. Never edit an
 * entry that shipped; append a new one. Each runs in its own transaction together with the
 * user_version bump, so a crash leaves the database at a version boundary. */
static const char *const migrations[] = {
        /* 1: deployments, desired (the manifest) and observed (status, counts) */
        "CREATE TABLE deployments ("
        "  id             TEXT PRIMARY KEY NOT NULL,"
        "  namespace      TEXT NOT NULL,"
        "  name           TEXT NOT NULL,"
        "  generation     INTEGER NOT NULL DEFAULT 1,"
        "  status         TEXT NOT NULL,"
        "  status_message TEXT NOT NULL DEFAULT '',"
        "  ready_replicas INTEGER NOT NULL DEFAULT 0,"
        "  restart_count  INTEGER NOT NULL DEFAULT 0,"
        "  runtime        TEXT NOT NULL,"
        "  kind           TEXT NOT NULL,"
        "  image          TEXT NOT NULL,"
        "  kernel         TEXT,"
        "  replicas       INTEGER NOT NULL,"
        "  cpus           INTEGER NOT NULL,"
        "  memory_mib     INTEGER NOT NULL,"
        "  labels         TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(labels)),"
        "  spec           TEXT NOT NULL CHECK (json_valid(spec)),"
        "  created_at     INTEGER NOT NULL,"
        "  updated_at     INTEGER NOT NULL,"
        "  UNIQUE (namespace, name)"
        ") STRICT;"
        "CREATE INDEX deployments_status ON deployments (status);",
        /* 2: per-deployment events, gone with their deployment, bounded per deployment */
        "CREATE TABLE events ("
        "  id             INTEGER PRIMARY KEY AUTOINCREMENT,"
        "  deployment_id  TEXT NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,"
        "  timestamp      INTEGER NOT NULL,"
        "  level          TEXT NOT NULL,"
        "  component      TEXT NOT NULL,"
        "  reason         TEXT NOT NULL,"
        "  message        TEXT NOT NULL"
        ") STRICT;"
        "CREATE INDEX events_deployment ON events (deployment_id, id);",
        /* 3: the scheduler's back-off clock, so that a restarted scheduler keeps the delays */
        "ALTER TABLE deployments ADD COLUMN failed_at INTEGER NOT NULL DEFAULT 0;",
        /* 4: how instances ended, after vmm-driver removed them (the newest few per deployment),
         * and a job's exit code */
        "CREATE TABLE exited_instances ("
        "  deployment_id  TEXT NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,"
        "  instance_id    TEXT NOT NULL,"
        "  generation     INTEGER NOT NULL,"
        "  address        TEXT,"
        "  started_at     INTEGER NOT NULL,"
        "  exited_at      INTEGER NOT NULL,"
        "  exit_reason    TEXT NOT NULL,"
        "  exit_status    INTEGER NOT NULL,"
        "  PRIMARY KEY (deployment_id, instance_id)"
        ") STRICT;"
        "ALTER TABLE deployments ADD COLUMN exit_code INTEGER;",
        /* 5: users (argon2id password hashes) and their credentials: sessions from POST /login
         * and API tokens, each stored as the SHA-256 of the token alone */
        "CREATE TABLE users ("
        "  id             TEXT PRIMARY KEY NOT NULL,"
        "  name           TEXT NOT NULL UNIQUE,"
        "  role           TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),"
        "  password_hash  TEXT NOT NULL,"
        "  created_at     INTEGER NOT NULL,"
        "  updated_at     INTEGER NOT NULL"
        ") STRICT;"
        "CREATE TABLE tokens ("
        "  id             TEXT PRIMARY KEY NOT NULL,"
        "  user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,"
        "  kind           TEXT NOT NULL CHECK (kind IN ('session', 'token')),"
        "  name           TEXT NOT NULL DEFAULT '',"
        "  hash           BLOB NOT NULL UNIQUE,"
        "  scopes         TEXT CHECK (scopes IS NULL OR json_valid(scopes)),"
        "  namespaces     TEXT CHECK (namespaces IS NULL OR json_valid(namespaces)),"
        "  created_at     INTEGER NOT NULL,"
        "  expires_at     INTEGER NOT NULL DEFAULT 0"
        ") STRICT;"
        "CREATE INDEX tokens_user ON tokens (user_id);",
        /* 6: the audit log: who did what to which namespace, from where, and how it ended */
        "CREATE TABLE audit ("
        "  id             INTEGER PRIMARY KEY AUTOINCREMENT,"
        "  timestamp      INTEGER NOT NULL,"
        "  namespace      TEXT,"
        "  actor          TEXT NOT NULL,"
        "  actor_id       TEXT NOT NULL DEFAULT '',"
        "  via            TEXT NOT NULL,"
        "  action         TEXT NOT NULL,"
        "  target         TEXT NOT NULL DEFAULT '',"
        "  source         TEXT NOT NULL,"
        "  status         INTEGER NOT NULL"
        ") STRICT;"
        "CREATE INDEX audit_namespace ON audit (namespace, id);",
        /* 7: namespaces as objects: the ones deployments already use, and "default" */
        "CREATE TABLE namespaces ("
        "  name           TEXT PRIMARY KEY NOT NULL,"
        "  created_at     INTEGER NOT NULL"
        ") STRICT;"
        "INSERT OR IGNORE INTO namespaces (name, created_at) SELECT namespace, min(created_at) FROM deployments "
        "  GROUP BY namespace;"
        "INSERT OR IGNORE INTO namespaces (name, created_at) VALUES ('default', 0);",
        /* 8: configs (key/value data in the clear), secrets (each value sealed with the secrets
         * key, bound to its row's id: never in the clear here) and a check value sealed with the
         * same key, so that a wrong key is refused at start rather than found at first use */
        "CREATE TABLE configs ("
        "  id             TEXT PRIMARY KEY NOT NULL,"
        "  namespace      TEXT NOT NULL,"
        "  name           TEXT NOT NULL,"
        "  data           TEXT NOT NULL CHECK (json_valid(data)),"
        "  version        INTEGER NOT NULL DEFAULT 1,"
        "  created_at     INTEGER NOT NULL,"
        "  updated_at     INTEGER NOT NULL,"
        "  UNIQUE (namespace, name)"
        ") STRICT;"
        "CREATE TABLE secrets ("
        "  id             TEXT PRIMARY KEY NOT NULL,"
        "  namespace      TEXT NOT NULL,"
        "  name           TEXT NOT NULL,"
        "  sealed         BLOB NOT NULL,"
        "  created_at     INTEGER NOT NULL,"
        "  UNIQUE (namespace, name)"
        ") STRICT;"
        "CREATE TABLE secrets_key_check ("
        "  id             INTEGER PRIMARY KEY CHECK (id = 1),"
        "  sealed         BLOB NOT NULL"
        ") STRICT;",
        /* 9: webhooks (the secret sealed with the secrets key, bound to the row) and their durable
         * delivery queue: each delivery keeps the body it sends, so that it outlives its event
         * (events are trimmed per deployment) and an apiserver restart; each attempt's outcome */
        "CREATE TABLE webhooks ("
        "  id             TEXT PRIMARY KEY NOT NULL,"
        "  name           TEXT NOT NULL DEFAULT '',"
        "  url            TEXT NOT NULL,"
        "  filter         TEXT NOT NULL CHECK (json_valid(filter)),"
        "  sealed_secret  BLOB NOT NULL,"
        "  created_at     INTEGER NOT NULL"
        ") STRICT;"
        "CREATE UNIQUE INDEX webhooks_name ON webhooks (name) WHERE name != '';"
        "CREATE TABLE webhook_deliveries ("
        "  id             INTEGER PRIMARY KEY AUTOINCREMENT,"
        "  webhook_id     TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,"
        "  event_id       INTEGER NOT NULL,"
        "  reason         TEXT NOT NULL,"
        "  body           TEXT NOT NULL,"
        "  state          TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),"
        "  attempts       INTEGER NOT NULL DEFAULT 0,"
        "  next_attempt_at INTEGER NOT NULL,"
        "  last_status    INTEGER NOT NULL DEFAULT 0,"
        "  last_error     TEXT NOT NULL DEFAULT '',"
        "  created_at     INTEGER NOT NULL,"
        "  updated_at     INTEGER NOT NULL"
        ") STRICT;"
        "CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, id);"
        "CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (webhook_id, next_attempt_at) "
        "  WHERE state = 'pending';"
        "CREATE TABLE webhook_attempts ("
        "  delivery_id    INTEGER NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,"
        "  attempt        INTEGER NOT NULL,"
        "  at             INTEGER NOT NULL,"
        "  duration_ms    INTEGER NOT NULL,"
        "  status         INTEGER NOT NULL,"
        "  error          TEXT NOT NULL,"
        "  PRIMARY KEY (delivery_id, attempt)"
        ") STRICT;",
};

int store_errno(int rc) {
        switch (rc & 0xff) {
        case SQLITE_OK:
        case SQLITE_ROW:
        case SQLITE_DONE:
                return 0;
        case SQLITE_NOMEM:
                return -ENOMEM;
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
                return -EAGAIN;
        case SQLITE_CONSTRAINT:
                return -EEXIST;
        case SQLITE_READONLY:
                return -EROFS;
        case SQLITE_FULL:
                return -ENOSPC;
        case SQLITE_CANTOPEN:
        case SQLITE_PERM:
        case SQLITE_AUTH:
                return -EACCES;
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
                return -EBADMSG;
        default:
                return -EIO;
        }
}

apiserver_store_t *store_lock(apiserver_store_t *s) {
        pthread_mutex_lock(&s->lock);
        return s;
}

void store_unlockp(apiserver_store_t **s) {
        if (*s)
                pthread_mutex_unlock(&(*s)->lock);
}

int store_prepare(apiserver_store_t *s, const char *sql, sqlite3_stmt **ret) {
        int rc = sqlite3_prepare_v2(s->db, sql, -1, ret, NULL);

        if (rc != SQLITE_OK) {
                log_debug("sqlite: cannot prepare \"%s\": %s", sql, sqlite3_errmsg(s->db));
                return store_errno(rc);
        }
        return 0;
}

#define STORE_STATEMENTS_MAX 64

static void stmt_destroy(void **item) {
        store_stmt_t *c = *item;

        if (c) {
                sqlite3_finalize(c->st);
                free(c);
        }
        *item = NULL;
}

int store_prepare_cached(apiserver_store_t *s, const char *sql, store_stmt_t **ret) {
        store_stmt_t *c = s->statements ? zhashx_lookup(s->statements, sql) : NULL;
        bool keep;
        int rc;

        if (c && !c->busy) {
                c->busy = true;
                *ret = c;
                return 0;
        }
        keep = !c && s->statements && zhashx_size(s->statements) < STORE_STATEMENTS_MAX;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        rc = sqlite3_prepare_v3(s->db, sql, -1, keep ? SQLITE_PREPARE_PERSISTENT : 0, &c->st, NULL);
        if (rc != SQLITE_OK) {
                log_debug("sqlite: cannot prepare \"%s\": %s", sql, sqlite3_errmsg(s->db));
                free(c);
                return store_errno(rc);
        }
        c->busy = true;
        c->owned = !keep;
        if (keep)
                (void)zhashx_insert(s->statements, sql, c);
        *ret = c;
        return 0;
}

void store_stmt_releasep(store_stmt_t **cp) {
        store_stmt_t *c = *cp;

        *cp = NULL;
        if (!c)
                return;
        if (c->owned) {
                sqlite3_finalize(c->st);
                free(c);
                return;
        }
        sqlite3_reset(c->st);
        sqlite3_clear_bindings(c->st);
        c->busy = false;
}

int store_deployment_known(apiserver_store_t *s, const char *id) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r, rc;

        r = store_prepare(s, "SELECT 1 FROM deployments WHERE id = ?", &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                return -ENOENT;
        return rc == SQLITE_ROW ? 0 : store_errno(rc);
}

static int exec(sqlite3 *db, const char *sql) {
        int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

        if (rc != SQLITE_OK)
                log_debug("sqlite: \"%.60s\" failed: %s", sql, sqlite3_errmsg(db));
        return store_errno(rc);
}

static int user_version(sqlite3 *db) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int rc;

        rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
        if (rc != SQLITE_OK)
                return store_errno(rc);
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
                return rc == SQLITE_DONE ? -EIO : store_errno(rc);
        return sqlite3_column_int(st, 0);
}

static int migrate(sqlite3 *db) {
        int version, r;

        version = user_version(db);
        if (version < 0)
                return version;
        /* A newer husk wrote this database; running old code against it could corrupt it. */
        if ((size_t)version > ELEMENTSOF(migrations))
                return -EPROTONOSUPPORT;

        for (size_t i = (size_t)version; i < ELEMENTSOF(migrations); i++) {
                char bump[48];

                snprintf(bump, sizeof(bump), "PRAGMA user_version = %zu", i + 1);
                r = exec(db, "BEGIN IMMEDIATE");
                if (r < 0)
                        return r;
                r = exec(db, migrations[i]);
                if (r >= 0)
                        r = exec(db, bump);
                if (r >= 0)
                        r = exec(db, "COMMIT");
                if (r < 0) {
                        (void)exec(db, "ROLLBACK");
                        return r;
                }
                log_debug("sqlite: migrated database to schema version %zu", i + 1);
        }
        return 0;
}

/* sqlite creates files 0644; the store will hold secrets, so the file exists 0600 first
 * (sqlite gives -wal and -shm the database file's mode). */
static int precreate(const char *path) {
        _cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);

        return fd < 0 ? -errno : 0;
}

int store_open(const char *path, apiserver_store_t **ret) {
        _cleanup_free_ apiserver_store_t *s = NULL;
        sqlite3 *db = NULL;
        int r, rc;

        r = precreate(path);
        if (r < 0)
                return r;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;

        /* NOMUTEX: our own lock serializes every use of the connection. */
        rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
        if (rc != SQLITE_OK) {
                r = store_errno(rc);
                goto fail;
        }
        sqlite3_extended_result_codes(db, 1);
        sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);

        /* WAL: readers never block the writer; NORMAL sync is durable across process crashes
         * in WAL mode and loses at most the last commits on power loss. */
        r = exec(db, "PRAGMA journal_mode = WAL");
        if (r >= 0)
                r = exec(db, "PRAGMA synchronous = NORMAL");
        if (r >= 0)
                r = exec(db, "PRAGMA foreign_keys = ON");
        if (r >= 0)
                r = migrate(db);
        if (r < 0)
                goto fail;

        s->statements = zhashx_new();
        if (!s->statements) {
                r = -ENOMEM;
                goto fail;
        }
        zhashx_set_destructor(s->statements, stmt_destroy);
        r = -pthread_mutex_init(&s->lock, NULL);
        if (r < 0)
                goto fail;
        s->db = db;
        *ret = TAKE_PTR(s);
        return 0;
fail:
        zhashx_destroy(&s->statements);
        sqlite3_close(db);
        return r;
}

void store_close(apiserver_store_t **sp) {
        apiserver_store_t *s = *sp;

        if (!s)
                return;
        /* Kept statements first: a connection with statements left cannot close. */
        zhashx_destroy(&s->statements);
        sqlite3_close(s->db);
        pthread_mutex_destroy(&s->lock);
        explicit_bzero(s->secrets_key, sizeof(s->secrets_key));
        free(s);
        *sp = NULL;
}

int store_schema_version(apiserver_store_t *s) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);

        return user_version(s->db);
}

int store_ping(apiserver_store_t *s) {
        _cleanup_(store_unlockp) apiserver_store_t *locked = store_lock(s);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r, rc;

        r = store_prepare(s, "SELECT count(*) FROM deployments", &st);
        if (r < 0)
                return r;
        rc = sqlite3_step(st);
        return rc == SQLITE_ROW ? 0 : store_errno(rc);
}

int store_uuid_new(char ret[static STORE_UUID_LEN + 1]) {
        uint8_t b[16];
        ssize_t n;

        n = getrandom(b, sizeof(b), 0);
        if (n < 0)
                return -errno;
        if ((size_t)n != sizeof(b))
                return -EIO;
        b[6] = (b[6] & 0x0f) | 0x40; /* version 4 */
        b[8] = (b[8] & 0x3f) | 0x80; /* RFC 4122 variant */
        snprintf(ret, STORE_UUID_LEN + 1, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
                 b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
        return 0;
}
