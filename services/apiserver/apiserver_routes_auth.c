/* apiserver_routes_auth.c: who a request comes from (bearer tokens, the local socket's peers),
 * POST /login with its slow-down of repeated failures, POST /logout and GET /users/me. */
#include <civetweb.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "lib/log.h"
#include "lib/nesting.h"
#include "services/apiserver/apiserver_http.h"
#include "services/apiserver/apiserver_json.h"
#include "services/apiserver/apiserver_local.h"

/* ---- stream tickets ------------------------------------------------------------------------ */

/* EventSource cannot send headers: a browser asks POST /auth/stream-ticket with its
 * credential and opens the stream with ?ticket=. A ticket is the caller's identity for
 * TICKET_TTL_MS, once; kept in memory only (a restart voids them), as a hash. */
#define TICKET_SLOTS 256
#define TICKET_TTL_MS 30000
#define TICKET_PREFIX "hst_"

static struct ticket_slot {
        uint8_t hash[AUTH_TOKEN_HASH_LEN];
        uint64_t expires_ms; /* monotonic; 0: free */
        auth_identity_t identity;
} tickets[TICKET_SLOTS];
static pthread_mutex_t tickets_lock = PTHREAD_MUTEX_INITIALIZER;

/* A ticket has a token's shape with its own prefix, so neither passes for the other. */
static int ticket_hash(const char *ticket, uint8_t hash[AUTH_TOKEN_HASH_LEN]) {
        char as_token[AUTH_TOKEN_LEN + 1];

        if (strncmp(ticket, TICKET_PREFIX, strlen(TICKET_PREFIX)) != 0 ||
            strlen(ticket) - strlen(TICKET_PREFIX) + strlen(AUTH_TOKEN_PREFIX) != AUTH_TOKEN_LEN)
                return -EINVAL;
        snprintf(as_token, sizeof(as_token), AUTH_TOKEN_PREFIX "%s", ticket + strlen(TICKET_PREFIX));
        return auth_token_hash(as_token, hash);
}

static int ticket_redeem(const char *ticket, auth_identity_t *ret) {
        uint8_t hash[AUTH_TOKEN_HASH_LEN];
        uint64_t now = now_monotonic_ms();
        int r = -EKEYREJECTED;

        if (ticket_hash(ticket, hash) < 0)
                return -EKEYREJECTED;
        pthread_mutex_lock(&tickets_lock);
        for (size_t i = 0; i < TICKET_SLOTS; i++)
                if (tickets[i].expires_ms > now && memcmp(tickets[i].hash, hash, sizeof(hash)) == 0) {
                        *ret = tickets[i].identity;
                        tickets[i] = (struct ticket_slot){}; /* once */
                        r = 0;
                        break;
                }
        pthread_mutex_unlock(&tickets_lock);
        return r;
}

int route_stream_ticket(http_request_t *req) {
        char token[AUTH_TOKEN_LEN + 1], ticket[AUTH_TOKEN_LEN + 8];
        uint64_t now = now_monotonic_ms();
        struct ticket_slot *slot = NULL;
        int r;

        r = auth_token_new(token);
        if (r < 0)
                return http_reply_internal(req, r, "making a ticket");
        snprintf(ticket, sizeof(ticket), TICKET_PREFIX "%s", token + strlen(AUTH_TOKEN_PREFIX));
        pthread_mutex_lock(&tickets_lock);
        for (size_t i = 0; i < TICKET_SLOTS && !slot; i++)
                if (tickets[i].expires_ms <= now)
                        slot = &tickets[i];
        if (slot && ticket_hash(ticket, slot->hash) == 0) {
                slot->expires_ms = now + TICKET_TTL_MS;
                slot->identity = *req->who;
        } else
                slot = NULL;
        pthread_mutex_unlock(&tickets_lock);
        if (!slot)
                return http_reply_problem(req, 503, "unavailable", "Service unavailable", NULL,
                                          "too many stream tickets are waiting to be used; try again in %d s",
                                          TICKET_TTL_MS / 1000);
        return http_reply_json(req, 200,
                               json_pack("{s:s, s:i, s:[s,s]}", "ticket", ticket, "expires_in_seconds",
                                         TICKET_TTL_MS / 1000, "for", "GET /deployments/{id}/logs",
                                         "GET /deployments/{id}/events"),
                               NULL);
}

int http_authenticate(http_request_t *req, bool ticket_ok, auth_identity_t *ret) {
        const char *header = mg_get_header(req->conn, "Authorization");
        uint8_t hash[AUTH_TOKEN_HASH_LEN];
        store_token_t t = {};
        store_user_t u;
        int r;

        /* The unix socket's peer was identified by the kernel; a header cannot change that. */
        r = apiserver_local_identity(req->api, req->info, ret);
        if (r != -ENOENT)
                return r;
        if (!header && ticket_ok) {
                char ticket[AUTH_TOKEN_LEN + 8];

                r = http_query(req, "ticket", 0, ticket, sizeof(ticket));
                if (r > 0)
                        return ticket_redeem(ticket, ret);
                if (r < 0)
                        return -EKEYREJECTED;
        }
        if (!header)
                return -ENOKEY;
        if (strncasecmp(header, "Bearer ", 7) != 0)
                return -EKEYREJECTED;
        header += 7;
        while (*header == ' ')
                header++;
        if (auth_token_hash(header, hash) < 0)
                return -EKEYREJECTED;
        r = store_token_find(req->api->store, hash, now_realtime_ms(), &t, &u);
        if (r == -ENOENT)
                return -EKEYREJECTED;
        if (r < 0)
                return r;
        if (u.role < 0) { /* a role this husk does not know: nothing */
                store_token_clear(&t);
                return -EKEYREJECTED;
        }
        *ret = (auth_identity_t){
                .via = t.session ? AUTH_VIA_SESSION : AUTH_VIA_TOKEN,
                .role = u.role,
                /* A token never exceeds its owner's role, whatever scopes it was given. */
                .scopes = auth_role_scopes(u.role) & (t.has_scopes ? t.scopes : ~(auth_scopes_t)0),
        };
        snprintf(ret->user_id, sizeof(ret->user_id), "%s", u.id);
        snprintf(ret->name, sizeof(ret->name), "%s", u.name);
        snprintf(ret->token_id, sizeof(ret->token_id), "%s", t.id);
        /* Fail closed: a namespace list that cannot be read makes the token worthless. */
        r = t.namespaces ? auth_namespaces_parse(t.namespaces, ret) : 0;
        store_token_clear(&t);
        return r < 0 ? -EKEYREJECTED : 0;
}

int route_read_object(http_request_t *req, const char *what, json_t **ret) {
        _cleanup_free_ char *body = NULL;
        json_error_t error;
        char path[128];
        size_t size;
        int r;

        r = http_read_body(req, &body, &size);
        if (r < 0)
                return http_reply_body_error(req, r);
        r = body_json_load(body, size, JSON_REJECT_DUPLICATES, ret, &error, path, sizeof(path));
        if (r == -ELOOP)
                return http_reply_problem(req, 400, "malformed-json", "Malformed JSON", NULL,
                                          "%s: " HUSK_NESTING_REASON, path, HUSK_NESTING_MAX);
        if (r < 0)
                return http_reply_problem(req, 400, "malformed-json", "Malformed JSON", NULL,
                                          "send %s as a JSON object (line %d, column %d: %s)", what, error.line,
                                          error.column, error.text);
        return 0;
}

/* ---- slowing down repeated failed logins ------------------------------------------------- */

/* Failed logins per (client address, user name), in a fixed table: an attacker who sends
 * endless names evicts the oldest entries but cannot make it grow. After LOGIN_FREE_FAILURES
 * failures, the next attempt must wait 1 s, then 2, 4, ... up to LOGIN_DELAY_MAX_MS; one
 * success clears the entry. Keyed by name too, so that a stranger's guessing from 127.0.0.1
 * does not lock the admin out of its own login from the same address. */
#define LOGIN_SLOTS 256
#define LOGIN_FREE_FAILURES 3
#define LOGIN_DELAY_MAX_MS 60000
#define LOGIN_FORGET_MS (10 * 60 * 1000)

static struct login_slot {
        char key[48 + AUTH_NAME_MAX + 2]; /* "<address> <name>"; "" when free */
        unsigned failures;
        uint64_t last_ms;
        uint64_t next_ms; /* no attempt before this */
} login_slots[LOGIN_SLOTS];
static pthread_mutex_t login_lock = PTHREAD_MUTEX_INITIALIZER;

/* The live slot of key, else (create) the one to reuse for it: a free or forgotten one,
 * else the least recently used. */
static struct login_slot *login_slot(const char *key, bool create, uint64_t now) {
        struct login_slot *victim = NULL;
        bool victim_stale = false;

        for (size_t i = 0; i < LOGIN_SLOTS; i++) {
                struct login_slot *s = &login_slots[i];
                bool stale = !s->key[0] || now - s->last_ms > LOGIN_FORGET_MS;

                if (!stale && streq(s->key, key))
                        return s;
                if (stale && !victim_stale) {
                        victim = s;
                        victim_stale = true;
                } else if (!stale && !victim_stale && (!victim || s->last_ms < victim->last_ms))
                        victim = s;
        }
        if (!create)
                return NULL;
        *victim = (struct login_slot){};
        snprintf(victim->key, sizeof(victim->key), "%s", key);
        return victim;
}

/* Milliseconds the client must still wait before trying key again; 0: go ahead. */
static uint64_t login_wait_ms(const char *key) {
        uint64_t now = now_monotonic_ms(), wait = 0;
        struct login_slot *s;

        pthread_mutex_lock(&login_lock);
        s = login_slot(key, false, now);
        if (s && s->next_ms > now)
                wait = s->next_ms - now;
        pthread_mutex_unlock(&login_lock);
        return wait;
}

static void login_record(const char *key, bool ok) {
        uint64_t now = now_monotonic_ms();
        struct login_slot *s;

        pthread_mutex_lock(&login_lock);
        s = login_slot(key, !ok, now);
        if (s && ok)
                *s = (struct login_slot){};
        else if (s) {
                s->failures++;
                s->last_ms = now;
                if (s->failures >= LOGIN_FREE_FAILURES) {
                        unsigned shift = s->failures - LOGIN_FREE_FAILURES;
                        uint64_t delay = shift >= 6 ? LOGIN_DELAY_MAX_MS : 1000ull << shift;

                        s->next_ms = now + (delay < LOGIN_DELAY_MAX_MS ? delay : LOGIN_DELAY_MAX_MS);
                }
        }
        pthread_mutex_unlock(&login_lock);
}

/* ---- routes -------------------------------------------------------------------------------- */

/* Sessions from POST /login last this long; `husk login` again after. */
#define SESSION_TTL_MS (7ull * 24 * 3600 * 1000)

json_t *user_to_json(const store_user_t *u) {
        char created[32], updated[32];

        return json_pack("{s:s, s:s, s:s, s:s, s:s}", "id", u->id, "username", u->name, "role",
                         auth_role_name(u->role) ?: "unknown", "created_at",
                         format_timestamp_ms(u->created_at, created, sizeof(created)), "updated_at",
                         format_timestamp_ms(u->updated_at, updated, sizeof(updated)));
}

/* A new credential of kind for user: its plain value into token (shown once, never stored). */
int route_token_issue(apiserver_t *api, store_token_t *t, char token[static AUTH_TOKEN_LEN + 1]) {
        uint8_t hash[AUTH_TOKEN_HASH_LEN];
        int r;

        r = store_uuid_new(t->id);
        if (r < 0)
                return r;
        r = auth_token_new(token);
        if (r >= 0)
                r = auth_token_hash(token, hash);
        if (r < 0)
                return r;
        return store_token_insert(api->store, t, hash);
}

int route_login(http_request_t *req) {
        json_auto_t *input = NULL;
        char hash[AUTH_PASSWORD_HASH_MAX], key[sizeof(login_slots[0].key)], token[AUTH_TOKEN_LEN + 1], expires[32];
        const char *name, *password;
        store_token_t t = { .session = true };
        store_user_t u;
        uint64_t wait;
        bool ok;
        int r;

        r = route_read_object(req, "{\"username\": ..., \"password\": ...}", &input);
        if (r > 0)
                return r;
        name = json_string_value(json_object_get(input, "username"));
        password = json_string_value(json_object_get(input, "password"));
        if (!json_is_object(input) || !name || !password || strlen(password) > AUTH_PASSWORD_MAX)
                return http_reply_problem(req, 400, "bad-request", "Bad request", NULL,
                                          "send {\"username\": ..., \"password\": ...}");
        snprintf(req->audit_actor, sizeof(req->audit_actor), "%.*s", AUTH_NAME_MAX, name);
        for (char *c = req->audit_actor; *c; c++) /* whatever was typed, as text */
                if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
                        *c = '?';
        snprintf(key, sizeof(key), "%s %.*s", req->info->remote_addr, AUTH_NAME_MAX, name);
        wait = login_wait_ms(key);
        if (wait > 0) {
                char headers[64];

                snprintf(headers, sizeof(headers), "Retry-After: %llu\r\n", (unsigned long long)(wait + 999) / 1000);
                return http_reply_problem_headers(req, 429, "too-many-requests", "Too many failed logins", headers,
                                                  "too many failed logins for this user from %s: try again in %llu s",
                                                  req->info->remote_addr, (unsigned long long)(wait + 999) / 1000);
        }

        r = auth_name_valid(name) ? store_user_get(req->api->store, name, &u, hash) : -ENOENT;
        if (r < 0 && r != -ENOENT)
                return http_reply_internal(req, r, "reading the user");
        /* An unknown name costs the same hash as a wrong password: timing tells no names. */
        ok = auth_password_verify(r == 0 ? hash : NULL, password) == 0 && r == 0 && streq(u.name, name);
        login_record(key, ok);
        if (!ok) {
                log_notice("Failed login for \"%.64s\" from %s", name, req->info->remote_addr);
                return http_reply_problem(req, 401, "unauthorized", "Unauthorized", NULL, "wrong username or password");
        }

        snprintf(t.user_id, sizeof(t.user_id), "%s", u.id);
        t.created_at = now_realtime_ms();
        t.expires_at = t.created_at + SESSION_TTL_MS;
        r = route_token_issue(req->api, &t, token);
        if (r < 0)
                return http_reply_internal(req, r, "starting the session");
        log_info("User %s logged in from %s", u.name, req->info->remote_addr);
        return http_reply_json(req, 200,
                               json_pack("{s:s, s:s, s:s, s:o}", "token", token, "token_id", t.id, "expires_at",
                                         format_timestamp_ms(t.expires_at, expires, sizeof(expires)), "user",
                                         user_to_json(&u)),
                               NULL);
}

int route_logout(http_request_t *req) {
        int r;

        /* The local socket's peers hold no session: nothing to revoke. */
        if (!req->who->token_id[0])
                return http_reply_no_content(req);
        r = store_token_delete(req->api->store, req->who->token_id, req->who->user_id);
        if (r < 0 && r != -ENOENT)
                return http_reply_internal(req, r, "ending the session");
        return http_reply_no_content(req);
}

int route_user_me(http_request_t *req) {
        json_t *scopes = json_array();
        store_user_t u;
        int r;

        if (!scopes)
                return http_reply_internal(req, ENOMEM, "listing scopes");
        for (int s = AUTH_SCOPE_FIRST_REAL; s < _AUTH_SCOPE_MAX; s++)
                if (auth_allows(req->who, s))
                        json_array_append_new(scopes, json_string(auth_scope_name(s)));
        if (!req->who->user_id[0])
                return http_reply_json(req, 200,
                                       json_pack("{s:n, s:s, s:s, s:s, s:o}", "id", "username", req->who->name, "role",
                                                 auth_role_name(req->who->role), "via", "local", "scopes", scopes),
                                       NULL);
        r = store_user_get(req->api->store, req->who->user_id, &u, NULL);
        if (r < 0) {
                json_decref(scopes);
                return http_reply_internal(req, r, "reading the user");
        }
        json_t *body = user_to_json(&u);
        json_object_set_new(body, "via", json_string(req->who->via == AUTH_VIA_TOKEN ? "token" : "session"));
        json_object_set_new(body, "scopes", scopes);
        return http_reply_json(req, 200, body, NULL);
}
