/* apiserver_routes_tokens.c: /tokens: one's own API tokens, with scopes, optional namespaces
 * and expiry; shown once, stored as hashes, deleted and rotated by id. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/log.h"
#include "services/apiserver/apiserver_http.h"
#include "services/apiserver/apiserver_json.h"

#define TOKEN_TTL_MAX_MS (366ull * 24 * 3600 * 1000)

static json_t *token_to_json(const store_token_t *t, const char *value) {
        char created[32], expires[32];
        json_t *scopes = json_array(), *j;

        for (int s = AUTH_SCOPE_FIRST_REAL; scopes && s < _AUTH_SCOPE_MAX; s++)
                if (t->scopes & AUTH_SCOPE_BIT(s))
                        json_array_append_new(scopes, json_string(auth_scope_name(s)));
        j = json_pack("{s:s, s:s, s:o, s:o, s:s, s:o}", "id", t->id, "name", t->name, "scopes", scopes, "namespaces",
                      t->namespaces ? stored_json_load(t->namespaces) ?: json_null() : json_null(), "created_at",
                      format_timestamp_ms(t->created_at, created, sizeof(created)), "expires_at",
                      t->expires_at ? json_string(format_timestamp_ms(t->expires_at, expires, sizeof(expires)))
                                    : json_null());
        if (j && value)
                json_object_set_new(j, "token", json_string(value));
        return j;
}

static int reply_invalid(http_request_t *req, const char *field, const char *reason) {
        return http_reply_problem(req, 422, "invalid-token", "Invalid token request",
                                  json_pack("[{s:s, s:s}]", "field", field, "reason", reason), "%s: %s", field, reason);
}

static int reply_no_token(http_request_t *req) {
        return http_reply_problem(req, 404, "not-found", "Not found", NULL, "you have no token with id \"%.64s\"",
                                  req->arg);
}

/* "30d", "12h", "90m": how long a token lives. */
static int parse_ttl(const char *s, uint64_t *ret) {
        size_t n = strlen(s);
        uint64_t days;
        char buf[32];

        if (n > 1 && n < sizeof(buf) && s[n - 1] == 'd') {
                snprintf(buf, sizeof(buf), "%.*s", (int)(n - 1), s);
                if (parse_u64(buf, &days) < 0 || days > 366)
                        return -EINVAL;
                *ret = days * 24 * 3600 * 1000;
                return 0;
        }
        return parse_duration_ms(s, ret);
}

/* The caller's own tokens only: local peers own none. */
static int need_account(http_request_t *req) {
        if (req->who->user_id[0])
                return 0;
        return http_reply_problem(req, 409, "conflict", "Conflict", NULL,
                                  "%s is a local user of this host and owns no tokens: log in as a user to make one",
                                  req->who->name);
}

int route_tokens_create(http_request_t *req) {
        json_auto_t *input = NULL, *ns_out = NULL;
        _cleanup_free_ char *ns_text = NULL;
        store_token_t t = { .session = false, .has_scopes = true };
        char token[AUTH_TOKEN_LEN + 1];
        const char *name, *ttl;
        json_t *scopes, *namespaces, *v;
        uint64_t ttl_ms = 0;
        size_t i;
        int r;

        r = need_account(req);
        if (r > 0)
                return r;
        r = route_read_object(req, "{\"name\", \"scopes\": [...], \"namespaces\"?: [...], \"expires_in\"?}", &input);
        if (r > 0)
                return r;
        name = json_string_value(json_object_get(input, "name"));
        if (!name || !*name || strlen(name) > AUTH_NAME_MAX ||
            strlen(name) != json_string_length(json_object_get(input, "name")))
                return reply_invalid(req, "name", "a name of 1 to 64 bytes, to tell the token apart in lists");
        scopes = json_object_get(input, "scopes");
        if (!json_is_array(scopes) || json_array_size(scopes) == 0)
                return reply_invalid(req, "scopes", "a non-empty list of scopes such as deployments:read");
        json_array_foreach(scopes, i, v) {
                int s = json_is_string(v) ? auth_scope_from_name(json_string_value(v)) : -EINVAL;

                if (s < 0)
                        return reply_invalid(req, "scopes", "unknown scope (see GET /users/me for yours)");
                /* Nobody hands out more than they hold. */
                if (!auth_allows(req->who, s))
                        return http_reply_problem(req, 403, "forbidden", "Forbidden", NULL,
                                                  "you do not hold the scope %s, so no token of yours can",
                                                  json_string_value(v));
                t.scopes |= AUTH_SCOPE_BIT(s);
        }
        namespaces = json_object_get(input, "namespaces");
        if (namespaces && !json_is_null(namespaces)) {
                auth_identity_t check = {};

                ns_text = json_dumps(namespaces, JSON_COMPACT | JSON_ENCODE_ANY);
                if (!ns_text || auth_namespaces_parse(ns_text, &check) < 0)
                        return reply_invalid(req, "namespaces", "a list of 1 to 16 namespace names");
                for (size_t k = 0; k < check.n_namespaces; k++)
                        if (!auth_namespace_allowed(req->who, check.namespaces[k]))
                                return http_reply_problem(req, 403, "forbidden", "Forbidden", NULL,
                                                          "you may not touch namespace \"%s\"", check.namespaces[k]);
        } else if (req->who->n_namespaces > 0) {
                /* A bound token makes bound tokens: its own namespaces at most. */
                ns_out = json_array();
                for (size_t k = 0; ns_out && k < req->who->n_namespaces; k++)
                        json_array_append_new(ns_out, json_string(req->who->namespaces[k]));
                ns_text = ns_out ? json_dumps(ns_out, JSON_COMPACT) : NULL;
                if (!ns_text)
                        return http_reply_internal(req, ENOMEM, "listing namespaces");
        }
        ttl = json_string_value(json_object_get(input, "expires_in"));
        if (json_object_get(input, "expires_in") &&
            (!ttl || parse_ttl(ttl, &ttl_ms) < 0 || ttl_ms == 0 || ttl_ms > TOKEN_TTL_MAX_MS))
                return reply_invalid(req, "expires_in", "a duration such as 30d, 12h or 90m, at most 366d");

        snprintf(t.user_id, sizeof(t.user_id), "%s", req->who->user_id);
        snprintf(t.name, sizeof(t.name), "%s", name);
        t.namespaces = ns_text; /* borrowed: t is never cleared */
        t.created_at = now_realtime_ms();
        t.expires_at = ttl_ms ? t.created_at + ttl_ms : 0;
        r = route_token_issue(req->api, &t, token);
        if (r < 0)
                return http_reply_internal(req, r, "storing the token");
        log_info("Token %s (\"%s\") created by %s", t.id, t.name, req->who->name);
        return http_reply_json(req, 201, token_to_json(&t, token), NULL);
}

int route_tokens_list(http_request_t *req) {
        store_token_t *a = NULL;
        json_t *list;
        size_t n = 0;
        int r;

        r = need_account(req);
        if (r > 0)
                return r;
        r = store_token_list(req->api->store, req->who->user_id, &a, &n);
        if (r < 0)
                return http_reply_internal(req, r, "listing tokens");
        list = json_array();
        for (size_t i = 0; list && i < n; i++)
                json_array_append_new(list, token_to_json(&a[i], NULL));
        store_token_array_free(a, n);
        return http_reply_json(req, 200, list, NULL);
}

int route_token_delete(http_request_t *req) {
        store_token_t *a = NULL;
        size_t n = 0;
        bool mine = false;
        int r;

        r = need_account(req);
        if (r > 0)
                return r;
        /* API tokens only: a session ends with POST /logout. */
        r = store_token_list(req->api->store, req->who->user_id, &a, &n);
        if (r < 0)
                return http_reply_internal(req, r, "listing tokens");
        for (size_t i = 0; i < n; i++)
                mine |= streq(a[i].id, req->arg);
        store_token_array_free(a, n);
        if (!mine)
                return reply_no_token(req);
        r = store_token_delete(req->api->store, req->arg, req->who->user_id);
        if (r == -ENOENT)
                return reply_no_token(req);
        if (r < 0)
                return http_reply_internal(req, r, "deleting the token");
        log_info("Token %s deleted by %s", req->arg, req->who->name);
        return http_reply_no_content(req);
}

/* A new value for the same token (id, name, scopes, namespaces, expiry): the old value stops
 * working at once. */
int route_token_rotate(http_request_t *req) {
        uint8_t hash[AUTH_TOKEN_HASH_LEN];
        char token[AUTH_TOKEN_LEN + 1];
        store_token_t *a = NULL, t = {};
        size_t n = 0;
        uint64_t expires_at = 0;
        bool mine = false;
        json_t *body;
        int r;

        r = need_account(req);
        if (r > 0)
                return r;
        r = store_token_list(req->api->store, req->who->user_id, &a, &n);
        if (r < 0)
                return http_reply_internal(req, r, "listing tokens");
        for (size_t i = 0; i < n; i++)
                if (streq(a[i].id, req->arg)) {
                        mine = true;
                        expires_at = a[i].expires_at;
                }
        store_token_array_free(a, n);
        if (!mine)
                return reply_no_token(req);
        r = auth_token_new(token);
        if (r >= 0)
                r = auth_token_hash(token, hash);
        if (r >= 0)
                r = store_token_rehash(req->api->store, req->arg, req->who->user_id, hash, expires_at, &t);
        if (r == -ENOENT)
                return reply_no_token(req);
        if (r < 0)
                return http_reply_internal(req, r, "rotating the token");
        body = token_to_json(&t, token);
        store_token_clear(&t);
        log_info("Token %s rotated by %s", req->arg, req->who->name);
        return http_reply_json(req, 200, body, NULL);
}
