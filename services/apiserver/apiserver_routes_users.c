/* apiserver_routes_users.c: /users: list, create, change role or password, delete; and a
 * user's own password (PUT /users/me). Who may call which is the route table's business. */
#include <errno.h>
#include <string.h>

#include "lib/log.h"
#include "services/apiserver/apiserver_http.h"

static int reply_no_user(http_request_t *req) {
        return http_reply_problem(req, 404, "not-found", "Not found", NULL, "no user with id or name \"%.64s\"",
                                  req->arg);
}

/* A password as the API takes it: a string of AUTH_PASSWORD_MIN..MAX bytes. NULL when absent;
 * *bad set when present and not one. */
static const char *password_field(json_t *input, const char *key, bool *bad) {
        json_t *v = json_object_get(input, key);
        const char *p = json_string_value(v);

        *bad = v && (!p || strlen(p) < AUTH_PASSWORD_MIN || strlen(p) > AUTH_PASSWORD_MAX ||
                     strlen(p) != json_string_length(v));
        return *bad ? NULL : p;
}

static int reply_bad_password(http_request_t *req, const char *key) {
        return http_reply_problem(
                req, 422, "invalid-user", "Invalid user",
                json_pack("[{s:s, s:s}]", "field", key, "reason", "must be a string of 8 to 256 bytes"),
                "%s must be a string of %d to %d bytes", key, AUTH_PASSWORD_MIN, AUTH_PASSWORD_MAX);
}

static int reply_last_admin(http_request_t *req) {
        return http_reply_problem(req, 409, "last-admin", "Conflict", NULL,
                                  "\"%.64s\" is the last admin: make another user admin first", req->arg);
}

int route_users_list(http_request_t *req) {
        store_user_t *users = NULL;
        json_t *list;
        size_t n = 0;
        int r;

        r = store_user_list(req->api->store, &users, &n);
        if (r < 0)
                return http_reply_internal(req, r, "listing users");
        list = json_array();
        for (size_t i = 0; list && i < n; i++)
                json_array_append_new(list, user_to_json(&users[i]));
        free(users);
        return http_reply_json(req, 200, list, NULL);
}

int route_user_get(http_request_t *req) {
        store_user_t u;
        int r;

        r = store_user_get(req->api->store, req->arg, &u, NULL);
        if (r == -ENOENT)
                return reply_no_user(req);
        if (r < 0)
                return http_reply_internal(req, r, "reading the user");
        return http_reply_json(req, 200, user_to_json(&u), NULL);
}

int route_users_create(http_request_t *req) {
        json_auto_t *input = NULL;
        char hash[AUTH_PASSWORD_HASH_MAX], location[128];
        const char *name, *password;
        auth_role_t role;
        store_user_t u;
        bool bad;
        int r;

        r = route_read_object(req, "{\"username\", \"password\", \"role\"}", &input);
        if (r > 0)
                return r;
        name = json_string_value(json_object_get(input, "username"));
        role = auth_role_from_name(json_string_value(json_object_get(input, "role")));
        password = password_field(input, "password", &bad);
        if (!name || !auth_name_valid(name))
                return http_reply_problem(req, 422, "invalid-user", "Invalid user",
                                          json_pack("[{s:s, s:s}]", "field", "username", "reason",
                                                    "1 to 64 of a-z, 0-9, '.', '_' and '-', not starting with a sign"),
                                          "username: 1 to 64 of a-z, 0-9, '.', '_' and '-'");
        if (role < 0)
                return http_reply_problem(
                        req, 422, "invalid-user", "Invalid user",
                        json_pack("[{s:s, s:s}]", "field", "role", "reason", "one of admin, operator, viewer"),
                        "role: one of admin, operator, viewer");
        if (!password)
                return reply_bad_password(req, "password");
        r = auth_password_hash(password, hash);
        if (r < 0)
                return http_reply_internal(req, r, "hashing the password");
        r = store_user_create(req->api->store, name, role, hash, &u);
        if (r == -EEXIST)
                return http_reply_problem(req, 409, "conflict", "Conflict", NULL, "a user \"%s\" exists already", name);
        if (r < 0)
                return http_reply_internal(req, r, "creating the user");
        log_info("User %s (%s) created by %s", u.name, auth_role_name(u.role), req->who->name);
        snprintf(location, sizeof(location), "Location: /users/%s\r\n", u.id);
        return http_reply_json(req, 201, user_to_json(&u), location);
}

int route_user_update(http_request_t *req) {
        json_auto_t *input = NULL;
        char hash[AUTH_PASSWORD_HASH_MAX];
        json_t *role_value;
        const char *password;
        store_user_t u;
        int role = -1;
        bool bad;
        int r;

        r = route_read_object(req, "{\"role\"?, \"password\"?}", &input);
        if (r > 0)
                return r;
        role_value = json_object_get(input, "role");
        if (role_value) {
                role = auth_role_from_name(json_string_value(role_value));
                if (role < 0)
                        return http_reply_problem(
                                req, 422, "invalid-user", "Invalid user",
                                json_pack("[{s:s, s:s}]", "field", "role", "reason", "one of admin, operator, viewer"),
                                "role: one of admin, operator, viewer");
        }
        password = password_field(input, "password", &bad);
        if (bad)
                return reply_bad_password(req, "password");
        if (role < 0 && !password)
                return http_reply_problem(req, 400, "bad-request", "Bad request", NULL,
                                          "send the new \"role\", \"password\" or both");
        r = store_user_get(req->api->store, req->arg, &u, NULL);
        if (r == -ENOENT)
                return reply_no_user(req);
        if (r < 0)
                return http_reply_internal(req, r, "reading the user");
        if (password) {
                r = auth_password_hash(password, hash);
                if (r < 0)
                        return http_reply_internal(req, r, "hashing the password");
        }
        /* Revokes every session and token of the user in the same transaction. */
        r = store_user_update(req->api->store, u.id, role, password ? hash : NULL, &u);
        if (r == -EBUSY)
                return reply_last_admin(req);
        if (r == -ENOENT)
                return reply_no_user(req);
        if (r < 0)
                return http_reply_internal(req, r, "changing the user");
        log_info("User %s changed by %s (%s%s%s); its sessions and tokens are revoked", u.name, req->who->name,
                 role >= 0 ? "role " : "", role >= 0 ? auth_role_name(role) : "",
                 password ? (role >= 0 ? ", password" : "password") : "");
        return http_reply_json(req, 200, user_to_json(&u), NULL);
}

int route_user_delete(http_request_t *req) {
        store_user_t u;
        int r;

        r = store_user_get(req->api->store, req->arg, &u, NULL);
        if (r == -ENOENT)
                return reply_no_user(req);
        if (r < 0)
                return http_reply_internal(req, r, "reading the user");
        r = store_user_delete(req->api->store, u.id);
        if (r == -EBUSY)
                return reply_last_admin(req);
        if (r == -ENOENT)
                return reply_no_user(req);
        if (r < 0)
                return http_reply_internal(req, r, "deleting the user");
        log_info("User %s deleted by %s", u.name, req->who->name);
        return http_reply_no_content(req);
}

/* PUT /users/me {current_password, password}: one's own password, proven by the current one
 * (a stolen session alone cannot lock its owner out). Revokes every session, this one too. */
int route_user_me_password(http_request_t *req) {
        json_auto_t *input = NULL;
        char stored[AUTH_PASSWORD_HASH_MAX], hash[AUTH_PASSWORD_HASH_MAX];
        const char *current, *password;
        store_user_t u;
        bool bad;
        int r;

        if (!req->who->user_id[0])
                return http_reply_problem(req, 409, "conflict", "Conflict", NULL,
                                          "%s is a local user of this host, with no password here", req->who->name);
        r = route_read_object(req, "{\"current_password\", \"password\"}", &input);
        if (r > 0)
                return r;
        current = json_string_value(json_object_get(input, "current_password"));
        password = password_field(input, "password", &bad);
        if (!password)
                return reply_bad_password(req, "password");
        r = store_user_get(req->api->store, req->who->user_id, &u, stored);
        if (r < 0)
                return http_reply_internal(req, r, "reading the user");
        if (!current || auth_password_verify(stored, current) < 0)
                return http_reply_problem(req, 403, "forbidden", "Forbidden", NULL, "current_password is not right");
        r = auth_password_hash(password, hash);
        if (r >= 0)
                r = store_user_update(req->api->store, u.id, -1, hash, &u);
        if (r < 0)
                return http_reply_internal(req, r, "changing the password");
        log_info("User %s changed its password; its sessions and tokens are revoked", u.name);
        return http_reply_json(req, 200, user_to_json(&u), NULL);
}
