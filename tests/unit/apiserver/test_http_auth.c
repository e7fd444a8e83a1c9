/* test_http_auth.c: the API is closed by default: the router's own table walked without and
 * with each role's credential, login, logout and the slow-down of failed logins. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/util.h"
#include "services/apiserver/apiserver.h"
#include "services/apiserver/apiserver_http.h"

typedef struct fixture {
        char dir[64];
        char base[64];
        husk_config_t *config;
        zloop_t *loop;
        apiserver_t *api;
} fixture_t;

typedef struct response {
        long status;
        char headers[2048];
        size_t headers_len;
        char *body;
        size_t body_len;
        json_t *json;
} response_t;

static void response_clear(response_t *r) {
        free(r->body);
        json_decref(r->json);
        *r = (response_t){};
}

static int free_port(void) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof(a);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        assert_true(fd >= 0);
        assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
        close(fd);
        return ntohs(a.sin_port);
}

static void set(char **field, const char *fmt, ...) _printf_(2, 3);
static void set(char **field, const char *fmt, ...) {
        va_list ap;

        free(*field);
        va_start(ap, fmt);
        assert_true(vasprintf(field, fmt, ap) > 0);
        va_end(ap);
}

static int group_setup(void **state) {
        fixture_t *f = calloc(1, sizeof(*f));
        int port = free_port();

        assert_non_null(f);
        snprintf(f->dir, sizeof(f->dir), "/tmp/husk-test-auth-http.XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        assert_int_equal(husk_config_new_default(&f->config), 0);
        set(&f->config->state_dir, "%s/state", f->dir);
        set(&f->config->runtime_dir, "%s", f->dir);
        set(&f->config->apiserver.database, "%s/state/husk.db", f->dir);
        set(&f->config->apiserver.secrets_key_file, "%s/state/secrets.key", f->dir);
        set(&f->config->apiserver.listen, "127.0.0.1:%d", port);
        for (int d = 0; d < _HUSK_DAEMON_MAX; d++) {
                set(&f->config->bus[d].events, "ipc://%s/%s.events", f->dir, husk_daemon_name(d));
                set(&f->config->bus[d].requests, "ipc://%s/%s.requests", f->dir, husk_daemon_name(d));
        }
        snprintf(f->base, sizeof(f->base), "http://127.0.0.1:%d", port);
        f->loop = zloop_new();
        assert_non_null(f->loop);
        assert_int_equal(apiserver_new(f->config, f->loop, &f->api), 0);
        *state = f;
        return 0;
}

static int group_teardown(void **state) {
        fixture_t *f = *state;

        apiserver_free(f->api);
        zloop_destroy(&f->loop);
        husk_config_free(f->config);
        assert_int_equal(rm_rf(f->dir), 0);
        free(f);
        return 0;
}

static size_t on_body(char *data, size_t size, size_t n, void *userdata) {
        response_t *r = userdata;
        char *grown = realloc(r->body, r->body_len + size * n + 1);

        assert_non_null(grown);
        memcpy(grown + r->body_len, data, size * n);
        r->body = grown;
        r->body_len += size * n;
        r->body[r->body_len] = '\0';
        return size * n;
}

static size_t on_header(char *data, size_t size, size_t n, void *userdata) {
        response_t *r = userdata;

        if (r->headers_len + size * n < sizeof(r->headers)) {
                memcpy(r->headers + r->headers_len, data, size * n);
                r->headers_len += size * n;
                r->headers[r->headers_len] = '\0';
        }
        return size * n;
}

/* token NULL: no Authorization header; unix: over that socket instead of TCP. */
static response_t request_via(fixture_t *f, const char *unix_path, const char *method, const char *path,
                              const char *token, const char *body) {
        struct curl_slist *headers = NULL;
        response_t r = {};
        char url[512], auth[256];
        CURL *c = curl_easy_init();

        assert_non_null(c);
        snprintf(url, sizeof(url), "%s%s", f->base, path);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
        if (unix_path)
                curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, unix_path);
        if (token) {
                snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
                headers = curl_slist_append(headers, auth);
        }
        headers = curl_slist_append(headers, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
        if (body) {
                curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
                curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
        }
        assert_int_equal(curl_easy_perform(c), CURLE_OK);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
        curl_easy_cleanup(c);
        curl_slist_free_all(headers);
        if (r.body)
                r.json = json_loads(r.body, JSON_DECODE_ANY, NULL);
        return r;
}

static response_t request(fixture_t *f, const char *method, const char *path, const char *token, const char *body) {
        return request_via(f, NULL, method, path, token, body);
}

static void assert_problem(const response_t *r, long status, const char *type) {
        if (r->status != status)
                fail_msg("want %ld, got %ld: %s", status, r->status, r->body ?: "");
        if (!strstr(r->headers, "Content-Type: application/problem+json"))
                fail_msg("not a problem: %s", r->headers);
        assert_string_equal(json_string_value(json_object_get(r->json, "type")), type);
}

/* A fresh session of a user with that role (created on first use), its value into token. */
static void session(fixture_t *f, auth_role_t role, char token[static AUTH_TOKEN_LEN + 1]) {
        store_token_t t = { .session = true, .created_at = now_realtime_ms() };
        char name[32];
        store_user_t u;

        snprintf(name, sizeof(name), "test-%s", auth_role_name(role));
        if (store_user_get(f->api->store, name, &u, NULL) == -ENOENT)
                assert_int_equal(store_user_create(f->api->store, name, role, "$argon2id$none", &u), 0);
        snprintf(t.user_id, sizeof(t.user_id), "%s", u.id);
        assert_int_equal(route_token_issue(f->api, &t, token), 0);
}

/* A route of the table with its '*' replaced by an id that names nothing. */
static void concrete(const http_route_t *r, char *buf, size_t size) {
        const char *star = strchr(r->path, '*');

        if (star)
                snprintf(buf, size, "%.*s%s%s", (int)(star - r->path), r->path, "00000000-0000-4000-8000-000000000000",
                         star + 1);
        else
                snprintf(buf, size, "%s", r->path);
}

static void test_every_route_but_the_public_ones_needs_a_credential(void **state) {
        fixture_t *f = *state;
        size_t n, public = 0;
        const http_route_t *routes = http_routes(&n);

        assert_true(n > 5);
        for (size_t i = 0; i < n; i++) {
                char path[256];
                response_t r;

                concrete(&routes[i], path, sizeof(path));
                r = request(f, routes[i].method, path, NULL, "{}");
                if (routes[i].scope == AUTH_SCOPE_PUBLIC) {
                        public++;
                        assert_true(r.status != 401 && r.status != 403);
                } else {
                        assert_problem(&r, 401, "urn:husk:problem:unauthorized");
                        if (!strstr(r.headers, "WWW-Authenticate: Bearer"))
                                fail_msg("%s %s: no WWW-Authenticate", routes[i].method, path);
                }
                response_clear(&r);
                /* A credential that is no credential is no better than none. */
                r = request(f, routes[i].method, path, "husk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "{}");
                if (routes[i].scope != AUTH_SCOPE_PUBLIC)
                        assert_problem(&r, 401, "urn:husk:problem:unauthorized");
                response_clear(&r);
        }
        /* GET /healthz, POST /login and GET /metrics (public as Ring's, unless
         * apiserver.metrics_auth: test_metrics_auth), nothing else. */
        assert_int_equal(public, 3);

        /* Unknown paths and methods say nothing to a stranger either. */
        response_t r = request(f, "GET", "/no/such/thing", NULL, NULL);
        assert_problem(&r, 401, "urn:husk:problem:unauthorized");
        response_clear(&r);
        r = request(f, "PATCH", "/deployments", NULL, NULL);
        assert_problem(&r, 401, "urn:husk:problem:unauthorized");
        response_clear(&r);
}

/* What each role may do, one row per route of the router's table: A allowed (the handler
 * answers, whatever it says), F forbidden (403). A route added to the router without a row
 * here fails the test. fresh: the call spends its credential (logout), so it gets its own. */
static const struct expectation {
        const char *method, *path;
        char admin, operator, viewer;
        bool fresh;
} matrix[] = {
        { "GET", "/healthz", 'A', 'A', 'A', false },
        { "POST", "/login", 'A', 'A', 'A', false },
        { "POST", "/logout", 'A', 'A', 'A', true },
        { "GET", "/users/me", 'A', 'A', 'A', false },
        { "PUT", "/users/me", 'A', 'A', 'A', false },
        { "GET", "/users", 'A', 'A', 'A', false },
        { "POST", "/users", 'A', 'F', 'F', false },
        { "GET", "/users/*", 'A', 'A', 'A', false },
        { "PUT", "/users/*", 'A', 'F', 'F', false },
        { "DELETE", "/users/*", 'A', 'F', 'F', false },
        { "GET", "/tokens", 'A', 'A', 'A', false },
        { "POST", "/tokens", 'A', 'A', 'A', false },
        { "DELETE", "/tokens/*", 'A', 'A', 'A', false },
        { "POST", "/tokens/*/rotate", 'A', 'A', 'A', false },
        { "POST", "/auth/stream-ticket", 'A', 'A', 'A', false },
        { "GET", "/namespaces", 'A', 'A', 'A', false },
        { "POST", "/namespaces", 'A', 'A', 'F', false },
        { "GET", "/namespaces/*", 'A', 'A', 'A', false },
        { "DELETE", "/namespaces/*", 'A', 'A', 'F', false },
        { "GET", "/namespaces/*/audit", 'A', 'A', 'A', false },
        { "GET", "/audit", 'A', 'F', 'F', false },
        { "GET", "/deployments", 'A', 'A', 'A', false },
        { "POST", "/deployments", 'A', 'A', 'F', false },
        { "GET", "/deployments/*", 'A', 'A', 'A', false },
        { "DELETE", "/deployments/*", 'A', 'A', 'F', false },
        { "POST", "/deployments/*/exec", 'A', 'A', 'F', false },
        { "GET", "/deployments/*/events", 'A', 'A', 'A', false },
        { "GET", "/deployments/*/logs", 'A', 'A', 'A', false },
        { "GET", "/deployments/*/health-checks", 'A', 'A', 'A', false },
        { "GET", "/deployments/*/metrics", 'A', 'A', 'A', false },
        { "GET", "/metrics", 'A', 'A', 'A', false },
        { "GET", "/configs", 'A', 'A', 'A', false },
        { "POST", "/configs", 'A', 'A', 'F', false },
        { "GET", "/configs/*", 'A', 'A', 'A', false },
        { "PUT", "/configs/*", 'A', 'A', 'F', false },
        { "DELETE", "/configs/*", 'A', 'A', 'F', false },
        /* A viewer does not even learn which secrets exist. */
        { "GET", "/secrets", 'A', 'A', 'F', false },
        { "POST", "/secrets", 'A', 'A', 'F', false },
        { "GET", "/secrets/*", 'A', 'A', 'F', false },
        { "DELETE", "/secrets/*", 'A', 'A', 'F', false },
        { "GET", "/volumes", 'A', 'A', 'A', false },
        { "POST", "/volumes", 'A', 'A', 'F', false },
        { "GET", "/volumes/*", 'A', 'A', 'A', false },
        { "DELETE", "/volumes/*", 'A', 'A', 'F', false },
        { "POST", "/manifests/parse", 'A', 'A', 'A', false },
        { "GET", "/node", 'A', 'A', 'A', false },
        /* A webhook's URL may carry a receiver's token, and a webhook sends events off the host. */
        { "GET", "/webhooks", 'A', 'A', 'F', false },
        { "POST", "/webhooks", 'A', 'A', 'F', false },
        { "GET", "/webhooks/*", 'A', 'A', 'F', false },
        { "DELETE", "/webhooks/*", 'A', 'A', 'F', false },
        { "GET", "/webhooks/*/events", 'A', 'A', 'F', false },
};

static void test_role_matrix(void **state) {
        fixture_t *f = *state;
        static const auth_role_t roles[] = { AUTH_ROLE_ADMIN, AUTH_ROLE_OPERATOR, AUTH_ROLE_VIEWER };
        char tokens[ELEMENTSOF(roles)][AUTH_TOKEN_LEN + 1];
        size_t n;
        const http_route_t *routes = http_routes(&n);

        for (size_t k = 0; k < ELEMENTSOF(roles); k++)
                session(f, roles[k], tokens[k]);
        for (size_t i = 0; i < n; i++) {
                const struct expectation *e = NULL;
                char path[256];

                for (size_t j = 0; j < ELEMENTSOF(matrix) && !e; j++)
                        if (streq(matrix[j].method, routes[i].method) && streq(matrix[j].path, routes[i].path))
                                e = &matrix[j];
                if (!e)
                        fail_msg("%s %s has no row in the matrix: say what each role may do", routes[i].method,
                                 routes[i].path);
                concrete(&routes[i], path, sizeof(path));
                for (size_t k = 0; k < ELEMENTSOF(roles); k++) {
                        char want = k == 0 ? e->admin : k == 1 ? e->operator: e->viewer, fresh[AUTH_TOKEN_LEN + 1];
                        response_t r;

                        if (e->fresh)
                                session(f, roles[k], fresh);
                        r = request(f, routes[i].method, path, e->fresh ? fresh : tokens[k], "{}");
                        if (want == 'F' && r.status != 403)
                                fail_msg("%s %s as %s: want 403, got %ld", routes[i].method, path,
                                         auth_role_name(roles[k]), r.status);
                        if (want == 'F')
                                assert_problem(&r, 403, "urn:husk:problem:forbidden");
                        if (want == 'A' && (r.status == 401 || r.status == 403))
                                fail_msg("%s %s as %s: want it allowed, got %ld %s", routes[i].method, path,
                                         auth_role_name(roles[k]), r.status, r.body ?: "");
                        response_clear(&r);
                }
        }
}

static void test_login_logout(void **state) {
        fixture_t *f = *state;
        _cleanup_free_ char *pw = NULL, *path = NULL, *body = NULL;
        char token[AUTH_TOKEN_LEN + 1];
        struct stat st;
        response_t r;
        size_t size;

        /* The first start left the admin's password in a 0600 file of the state dir. */
        assert_true(asprintf(&path, "%s/state/admin-password", f->dir) > 0);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        assert_int_equal(read_file(path, 256, &pw, &size), 0);
        pw[strcspn(pw, "\n")] = '\0';
        assert_int_equal(strlen(pw), AUTH_INITIAL_PASSWORD_LEN);

        assert_true(asprintf(&body, "{\"username\": \"admin\", \"password\": \"%s\"}", pw) > 0);
        r = request(f, "POST", "/login", NULL, body);
        assert_int_equal(r.status, 200);
        snprintf(token, sizeof(token), "%s", json_string_value(json_object_get(r.json, "token")) ?: "");
        assert_int_equal(strlen(token), AUTH_TOKEN_LEN);
        assert_string_equal(json_string_value(json_object_get(json_object_get(r.json, "user"), "role")), "admin");
        response_clear(&r);

        r = request(f, "GET", "/users/me", token, NULL);
        assert_int_equal(r.status, 200);
        assert_string_equal(json_string_value(json_object_get(r.json, "username")), "admin");
        response_clear(&r);

        r = request(f, "POST", "/logout", token, NULL);
        assert_int_equal(r.status, 204);
        response_clear(&r);
        r = request(f, "GET", "/users/me", token, NULL);
        assert_problem(&r, 401, "urn:husk:problem:unauthorized");
        response_clear(&r);

        /* Wrong password and unknown user read the same. */
        r = request(f, "POST", "/login", NULL, "{\"username\": \"admin\", \"password\": \"wrong-password\"}");
        assert_problem(&r, 401, "urn:husk:problem:unauthorized");
        response_clear(&r);
        r = request(f, "POST", "/login", NULL, "{\"username\": \"nosuchuser\", \"password\": \"wrong-password\"}");
        assert_problem(&r, 401, "urn:husk:problem:unauthorized");
        response_clear(&r);
        r = request(f, "POST", "/login", NULL, "{\"username\": 1}");
        assert_problem(&r, 400, "urn:husk:problem:bad-request");
        response_clear(&r);
}

static void test_failed_logins_are_slowed_down(void **state) {
        fixture_t *f = *state;
        const char *bad = "{\"username\": \"slowpoke\", \"password\": \"guess-guess\"}";
        response_t r;
        int i;

        /* A few mistakes are free; then the client must wait, and is told how long. */
        for (i = 0; i < 3; i++) {
                r = request(f, "POST", "/login", NULL, bad);
                assert_problem(&r, 401, "urn:husk:problem:unauthorized");
                response_clear(&r);
        }
        r = request(f, "POST", "/login", NULL, bad);
        assert_problem(&r, 429, "urn:husk:problem:too-many-requests");
        if (!strstr(r.headers, "Retry-After: 1"))
                fail_msg("no Retry-After: %s", r.headers);
        response_clear(&r);
        /* Another user from the same address is not held up by it. */
        r = request(f, "POST", "/login", NULL, "{\"username\": \"someone\", \"password\": \"guess-guess\"}");
        assert_problem(&r, 401, "urn:husk:problem:unauthorized");
        response_clear(&r);
}

static char *login(fixture_t *f, const char *name, const char *password) {
        char body[256];
        response_t r;
        char *token = NULL;

        snprintf(body, sizeof(body), "{\"username\": \"%s\", \"password\": \"%s\"}", name, password);
        r = request(f, "POST", "/login", NULL, body);
        if (r.status == 200)
                token = strdup(json_string_value(json_object_get(r.json, "token")));
        response_clear(&r);
        return token;
}

static void test_users_roles_and_revocation(void **state) {
        fixture_t *f = *state;
        _cleanup_free_ char *carol = NULL, *again = NULL, *admin_id = NULL, *path = NULL;
        char admin[AUTH_TOKEN_LEN + 1], viewer[AUTH_TOKEN_LEN + 1], id[64];
        response_t r;

        session(f, AUTH_ROLE_ADMIN, admin);
        session(f, AUTH_ROLE_VIEWER, viewer);
        r = request(f, "POST", "/users", admin,
                    "{\"username\": \"carol\", \"password\": \"carols-secret\", "
                    "\"role\": \"viewer\"}");
        assert_int_equal(r.status, 201);
        snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(r.json, "id")));
        assert_null(json_object_get(r.json, "password_hash"));
        response_clear(&r);
        r = request(f, "POST", "/users", admin,
                    "{\"username\": \"carol\", \"password\": \"carols-secret\", "
                    "\"role\": \"viewer\"}");
        assert_problem(&r, 409, "urn:husk:problem:conflict");
        response_clear(&r);
        r = request(f, "POST", "/users", admin,
                    "{\"username\": \"dave\", \"password\": \"short\", \"role\": \"viewer\"}");
        assert_problem(&r, 422, "urn:husk:problem:invalid-user");
        response_clear(&r);

        /* carol can read but not write. */
        carol = login(f, "carol", "carols-secret");
        assert_non_null(carol);
        r = request(f, "GET", "/deployments", carol, NULL);
        assert_int_equal(r.status, 200);
        response_clear(&r);
        r = request(f, "POST", "/deployments", carol, "{\"name\": \"x\", \"image\": \"/i\"}");
        assert_problem(&r, 403, "urn:husk:problem:forbidden");
        response_clear(&r);

        /* A role change takes effect at once: her session is gone, a new one is an operator's. */
        assert_true(asprintf(&path, "/users/%s", id) > 0);
        r = request(f, "PUT", path, admin, "{\"role\": \"operator\"}");
        assert_int_equal(r.status, 200);
        assert_string_equal(json_string_value(json_object_get(r.json, "role")), "operator");
        response_clear(&r);
        r = request(f, "GET", "/deployments", carol, NULL);
        assert_problem(&r, 401, "urn:husk:problem:unauthorized");
        response_clear(&r);
        again = login(f, "carol", "carols-secret");
        assert_non_null(again);
        r = request(f, "POST", "/deployments?dryRun=All", again, "{\"name\": \"x\", \"image\": \"/i\"}");
        assert_int_equal(r.status, 200);
        response_clear(&r);

        /* Her own password: the current one proves it is her; then every session of hers ends. */
        r = request(f, "PUT", "/users/me", again,
                    "{\"current_password\": \"wrong-one\", \"password\": \"new-secret-1\"}");
        assert_problem(&r, 403, "urn:husk:problem:forbidden");
        response_clear(&r);
        r = request(f, "PUT", "/users/me", again,
                    "{\"current_password\": \"carols-secret\", \"password\": \"new-secret-1\"}");
        assert_int_equal(r.status, 200);
        response_clear(&r);
        r = request(f, "GET", "/users/me", again, NULL);
        assert_problem(&r, 401, "urn:husk:problem:unauthorized");
        response_clear(&r);
        free(again);
        again = login(f, "carol", "new-secret-1");
        assert_non_null(again);

        /* A viewer manages no one. */
        r = request(f, "DELETE", path, viewer, NULL);
        assert_problem(&r, 403, "urn:husk:problem:forbidden");
        response_clear(&r);
        r = request(f, "DELETE", path, admin, NULL);
        assert_int_equal(r.status, 204);
        response_clear(&r);
        r = request(f, "GET", "/users/me", again, NULL);
        assert_problem(&r, 401, "urn:husk:problem:unauthorized");
        response_clear(&r);
        r = request(f, "GET", path, admin, NULL);
        assert_problem(&r, 404, "urn:husk:problem:not-found");
        response_clear(&r);
}

static void test_the_last_admin_cannot_go(void **state) {
        fixture_t *f = *state;
        store_user_t *users = NULL;
        char admin[AUTH_TOKEN_LEN + 1], path[128];
        size_t n = 0;
        response_t r;

        /* Leave one admin: demote every other. */
        session(f, AUTH_ROLE_ADMIN, admin); /* test-admin */
        assert_int_equal(store_user_list(f->api->store, &users, &n), 0);
        for (size_t i = 0; i < n; i++)
                if (users[i].role == AUTH_ROLE_ADMIN && !streq(users[i].name, "test-admin"))
                        assert_int_equal(store_user_update(f->api->store, users[i].id, AUTH_ROLE_OPERATOR, NULL, NULL),
                                         0);
        free(users);
        session(f, AUTH_ROLE_ADMIN, admin);

        r = request(f, "PUT", "/users/test-admin", admin, "{\"role\": \"viewer\"}");
        assert_problem(&r, 409, "urn:husk:problem:last-admin");
        response_clear(&r);
        r = request(f, "DELETE", "/users/test-admin", admin, NULL);
        assert_problem(&r, 409, "urn:husk:problem:last-admin");
        response_clear(&r);
        /* Still admin, still logged in. */
        r = request(f, "GET", "/users/me", admin, NULL);
        assert_int_equal(r.status, 200);
        assert_string_equal(json_string_value(json_object_get(r.json, "role")), "admin");
        response_clear(&r);

        /* The first admin comes back, so that the group's other tests find things as they were. */
        snprintf(path, sizeof(path), "/users/admin");
        r = request(f, "PUT", path, admin, "{\"role\": \"admin\"}");
        assert_int_equal(r.status, 200);
        response_clear(&r);
}

/* POST /tokens as token with body; the new token's value into ret (NULL: not created). */
static long make_token(fixture_t *f, const char *token, const char *body, char *ret, char *ret_id) {
        response_t r = request(f, "POST", "/tokens", token, body);
        long status = r.status;

        if (status == 201) {
                snprintf(ret, AUTH_TOKEN_LEN + 1, "%s", json_string_value(json_object_get(r.json, "token")));
                if (ret_id)
                        snprintf(ret_id, 64, "%s", json_string_value(json_object_get(r.json, "id")));
        }
        response_clear(&r);
        return status;
}

static long status_of(fixture_t *f, const char *method, const char *path, const char *token, const char *body) {
        response_t r = request(f, method, path, token, body);
        long status = r.status;

        response_clear(&r);
        return status;
}

/* apiserver.metrics_auth: GET /metrics needs a credential that holds deployments:read. */
static void test_metrics_auth(void **state) {
        fixture_t *f = *state;
        char op[AUTH_TOKEN_LEN + 1], viewer[AUTH_TOKEN_LEN + 1], configs[AUTH_TOKEN_LEN + 1], id[64], path[96];
        response_t r;

        session(f, AUTH_ROLE_OPERATOR, op);
        session(f, AUTH_ROLE_VIEWER, viewer);
        assert_int_equal(make_token(f, op, "{\"name\": \"c\", \"scopes\": [\"configs:read\"]}", configs, id), 201);

        /* By default public: Prometheus scrapes without a credential, and gets its text. */
        r = request(f, "GET", "/metrics", NULL, NULL);
        assert_int_equal(r.status, 200);
        assert_non_null(strstr(r.headers, "Content-Type: text/plain; version=0.0.4"));
        assert_non_null(strstr(r.body, "# TYPE husk_deployments gauge"));
        response_clear(&r);

        f->api->metrics_auth = true;
        r = request(f, "GET", "/metrics", NULL, NULL);
        assert_problem(&r, 401, "urn:husk:problem:unauthorized");
        assert_non_null(strstr(r.headers, "WWW-Authenticate: Bearer"));
        response_clear(&r);
        assert_int_equal(status_of(f, "GET", "/metrics", "husk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", NULL),
                         401);
        r = request(f, "GET", "/metrics", configs, NULL);
        assert_problem(&r, 403, "urn:husk:problem:forbidden");
        response_clear(&r);
        assert_int_equal(status_of(f, "GET", "/metrics", viewer, NULL), 200);
        f->api->metrics_auth = false;
        /* The other tests count the operator's tokens. */
        snprintf(path, sizeof(path), "/tokens/%s", id);
        assert_int_equal(status_of(f, "DELETE", path, op, NULL), 204);
}

static void test_tokens_scopes_namespaces_rotation(void **state) {
        fixture_t *f = *state;
        char op[AUTH_TOKEN_LEN + 1], viewer[AUTH_TOKEN_LEN + 1], reader[AUTH_TOKEN_LEN + 1], writer[AUTH_TOKEN_LEN + 1],
                rotated[AUTH_TOKEN_LEN + 1], brief[AUTH_TOKEN_LEN + 1], id[64], web_default[64], path[160];
        response_t r;

        session(f, AUTH_ROLE_OPERATOR, op);
        session(f, AUTH_ROLE_VIEWER, viewer);
        r = request(f, "POST", "/deployments", op, "{\"name\": \"web\", \"image\": \"/i\", \"replicas\": 0}");
        assert_true(r.status == 201 || r.status == 200);
        snprintf(web_default, sizeof(web_default), "%s", json_string_value(json_object_get(r.json, "id")));
        response_clear(&r);
        assert_int_equal(status_of(f, "POST", "/deployments", op,
                                   "{\"name\": \"web\", \"namespace\": \"prod\", \"image\": \"/i\", \"replicas\": 0}"),
                         201);

        /* Nobody hands out more than they hold. */
        assert_int_equal(make_token(f, viewer, "{\"name\": \"x\", \"scopes\": [\"deployments:write\"]}", brief, NULL),
                         403);
        assert_int_equal(make_token(f, op, "{\"name\": \"x\", \"scopes\": [\"deployments:fly\"]}", brief, NULL), 422);
        assert_int_equal(make_token(f, op, "{\"name\": \"x\", \"scopes\": []}", brief, NULL), 422);

        /* A read-only token bound to prod: lists prod alone, finds nothing elsewhere, writes nothing. */
        assert_int_equal(make_token(f, op,
                                    "{\"name\": \"reader\", \"scopes\": [\"deployments:read\"], "
                                    "\"namespaces\": [\"prod\"]}",
                                    reader, id),
                         201);
        r = request(f, "GET", "/deployments", reader, NULL);
        assert_int_equal(r.status, 200);
        assert_int_equal(json_array_size(r.json), 1);
        assert_string_equal(json_string_value(json_object_get(json_array_get(r.json, 0), "namespace")), "prod");
        response_clear(&r);
        r = request(f, "GET", "/deployments?namespace=default", reader, NULL);
        assert_int_equal(r.status, 200);
        assert_int_equal(json_array_size(r.json), 0);
        response_clear(&r);
        snprintf(path, sizeof(path), "/deployments/%s", web_default);
        assert_int_equal(status_of(f, "GET", path, reader, NULL), 404);
        assert_int_equal(status_of(f, "DELETE", path, reader, NULL), 403); /* no deployments:write */
        assert_int_equal(status_of(f, "POST", "/deployments", reader, "{}"), 403);
        assert_int_equal(status_of(f, "GET", "/users", reader, NULL), 403); /* no users:read */

        /* A writer bound to prod: applies there, not into default, and deletes nothing outside. */
        assert_int_equal(make_token(f, op,
                                    "{\"name\": \"writer\", \"scopes\": [\"deployments:read\", "
                                    "\"deployments:write\"], \"namespaces\": [\"prod\"]}",
                                    writer, NULL),
                         201);
        assert_int_equal(status_of(f, "POST", "/deployments", writer,
                                   "{\"name\": \"api\", \"namespace\": \"prod\", \"image\": \"/i\", \"replicas\": 0}"),
                         201);
        r = request(f, "POST", "/deployments", writer, "{\"name\": \"api\", \"image\": \"/i\", \"replicas\": 0}");
        assert_problem(&r, 403, "urn:husk:problem:forbidden");
        response_clear(&r);
        assert_int_equal(status_of(f, "DELETE", path, writer, NULL), 404);
        assert_int_equal(status_of(f, "GET", path, op, NULL), 200);

        /* Listed without their values; rotation gives a new value, the old one stops at once. */
        r = request(f, "GET", "/tokens", op, NULL);
        assert_int_equal(r.status, 200);
        assert_int_equal(json_array_size(r.json), 2);
        assert_null(json_object_get(json_array_get(r.json, 0), "token"));
        response_clear(&r);
        snprintf(path, sizeof(path), "/tokens/%s/rotate", id);
        assert_int_equal(status_of(f, "POST", path, viewer, NULL), 404); /* not the viewer's */
        r = request(f, "POST", path, op, NULL);
        assert_int_equal(r.status, 200);
        snprintf(rotated, sizeof(rotated), "%s", json_string_value(json_object_get(r.json, "token")));
        assert_string_equal(json_string_value(json_object_get(r.json, "id")), id);
        response_clear(&r);
        assert_int_equal(status_of(f, "GET", "/deployments", reader, NULL), 401);
        assert_int_equal(status_of(f, "GET", "/deployments", rotated, NULL), 200);
        snprintf(path, sizeof(path), "/tokens/%s", id);
        assert_int_equal(status_of(f, "DELETE", path, op, NULL), 204);
        assert_int_equal(status_of(f, "GET", "/deployments", rotated, NULL), 401);
        assert_int_equal(status_of(f, "DELETE", path, op, NULL), 404);

        /* An expired token is no token. */
        assert_int_equal(make_token(f, op,
                                    "{\"name\": \"brief\", \"scopes\": [\"deployments:read\"], "
                                    "\"expires_in\": \"1s\"}",
                                    brief, NULL),
                         201);
        assert_int_equal(status_of(f, "GET", "/deployments", brief, NULL), 200);
        for (int i = 0; i < 50 && status_of(f, "GET", "/deployments", brief, NULL) != 401; i++)
                usleep(100 * 1000);
        assert_int_equal(status_of(f, "GET", "/deployments", brief, NULL), 401);
        assert_int_equal(make_token(f, op,
                                    "{\"name\": \"x\", \"scopes\": [\"deployments:read\"], "
                                    "\"expires_in\": \"400d\"}",
                                    brief, NULL),
                         422);

        /* A token manages no users, even an admin's. */
        session(f, AUTH_ROLE_ADMIN, op);
        assert_int_equal(
                make_token(f, op, "{\"name\": \"all\", \"scopes\": [\"users:read\", \"tokens:write\"]}", brief, NULL),
                201);
        assert_int_equal(status_of(f, "GET", "/users", brief, NULL), 200);
        assert_int_equal(status_of(f, "POST", "/users", brief, "{}"), 403);
}

static void test_audit_log(void **state) {
        fixture_t *f = *state;
        char op[AUTH_TOKEN_LEN + 1], admin[AUTH_TOKEN_LEN + 1], bound[AUTH_TOKEN_LEN + 1], path[160], id[64];
        const json_t *e;
        response_t r;
        size_t i;

        session(f, AUTH_ROLE_OPERATOR, op);
        session(f, AUTH_ROLE_ADMIN, admin);
        r = request(f, "POST", "/deployments", op,
                    "{\"name\": \"aud\", \"namespace\": \"audited\", \"image\": \"/i\", \"replicas\": 0, "
                    "\"environment\": {\"PASSWORD\": \"hunter2-secret\"}}");
        assert_int_equal(r.status, 201);
        snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(r.json, "id")));
        response_clear(&r);
        snprintf(path, sizeof(path), "/deployments/%s", id);
        assert_int_equal(status_of(f, "DELETE", path, op, NULL), 204);
        assert_int_equal(
                status_of(f, "POST", "/login", NULL, "{\"username\": \"mallory\", \"password\": \"pw-guess-1\"}"), 401);

        /* An action is recorded before its answer leaves: once the client has the answer, the
         * log has the action, in the order the client made them (CI once saw the DELETE
         * recorded before the POST whose 201 the client had acted on). */
        r = request(f, "GET", "/namespaces/audited/audit", op, NULL);
        assert_int_equal(r.status, 200);
        assert_int_equal(json_array_size(r.json), 2);
        e = json_array_get(r.json, 0);
        assert_string_equal(json_string_value(json_object_get(e, "action")), "POST /deployments");
        assert_string_equal(json_string_value(json_object_get(e, "actor")), "test-operator");
        assert_string_equal(json_string_value(json_object_get(e, "via")), "session");
        assert_string_equal(json_string_value(json_object_get(e, "target")), "audited/aud");
        assert_string_equal(json_string_value(json_object_get(e, "source")), "127.0.0.1");
        assert_int_equal(json_integer_value(json_object_get(e, "status")), 201);
        e = json_array_get(r.json, 1);
        assert_string_equal(json_string_value(json_object_get(e, "action")), "DELETE /deployments/{id}");
        assert_string_equal(json_string_value(json_object_get(e, "target")), id);
        assert_int_equal(json_integer_value(json_object_get(e, "status")), 204);
        /* A secret's value is in no entry. */
        assert_null(strstr(r.body, "hunter2"));
        response_clear(&r);

        /* Logins, failed ones too, with the name tried; never the password. Recorded before the
         * 401 left, too. */
        r = request(f, "GET", "/audit?limit=1000", admin, NULL);
        assert_int_equal(r.status, 200);
        json_array_foreach(r.json, i,
                           e) if (streq(json_string_value(json_object_get(e, "actor")) ?: "", "mallory")) break;
        assert_true(i < json_array_size(r.json));
        assert_string_equal(json_string_value(json_object_get(e, "action")), "POST /login");
        assert_string_equal(json_string_value(json_object_get(e, "via")), "anonymous");
        assert_int_equal(json_integer_value(json_object_get(e, "status")), 401);
        assert_null(strstr(r.body, "pw-guess-1"));
        assert_null(strstr(r.body, "hunter2"));
        response_clear(&r);
        assert_int_equal(status_of(f, "GET", "/audit", op, NULL), 403);

        /* A token bound elsewhere finds no such namespace. */
        assert_int_equal(make_token(f, op,
                                    "{\"name\": \"b\", \"scopes\": [\"audit:read\"], \"namespaces\": [\"prod\"]}",
                                    bound, NULL),
                         201);
        assert_int_equal(status_of(f, "GET", "/namespaces/audited/audit", bound, NULL), 404);
        assert_int_equal(status_of(f, "GET", "/namespaces/prod/audit", bound, NULL), 200);
}

static void test_stream_tickets(void **state) {
        fixture_t *f = *state;
        char viewer[AUTH_TOKEN_LEN + 1], ticket[128], path[256], id[64];
        response_t r;

        session(f, AUTH_ROLE_VIEWER, viewer);
        session(f, AUTH_ROLE_OPERATOR, ticket); /* an operator makes the deployment */
        r = request(f, "POST", "/deployments", ticket, "{\"name\": \"streamed\", \"image\": \"/i\", \"replicas\": 0}");
        assert_int_equal(r.status, 201);
        snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(r.json, "id")));
        response_clear(&r);

        assert_int_equal(status_of(f, "POST", "/auth/stream-ticket", NULL, NULL), 401);
        r = request(f, "POST", "/auth/stream-ticket", viewer, NULL);
        assert_int_equal(r.status, 200);
        snprintf(ticket, sizeof(ticket), "%s", json_string_value(json_object_get(r.json, "ticket")));
        response_clear(&r);

        /* Not on other routes, and no credential elsewhere: it is not a token. */
        snprintf(path, sizeof(path), "/deployments?ticket=%s", ticket);
        assert_int_equal(status_of(f, "GET", path, NULL, NULL), 401);
        assert_int_equal(status_of(f, "GET", "/deployments", ticket, NULL), 401);
        /* On a stream, once, as the viewer who asked for it. */
        snprintf(path, sizeof(path), "/deployments/%s/events?ticket=%s", id, ticket);
        assert_int_equal(status_of(f, "GET", path, NULL, NULL), 200);
        assert_int_equal(status_of(f, "GET", path, NULL, NULL), 401);
        snprintf(path, sizeof(path), "/deployments/%s/events?ticket=hst_nonsense", id);
        assert_int_equal(status_of(f, "GET", path, NULL, NULL), 401);
}

static void test_namespaces(void **state) {
        fixture_t *f = *state;
        char op[AUTH_TOKEN_LEN + 1], deployer[AUTH_TOKEN_LEN + 1], bound[AUTH_TOKEN_LEN + 1];
        response_t r;

        session(f, AUTH_ROLE_OPERATOR, op);
        assert_int_equal(status_of(f, "POST", "/namespaces", op, "{\"name\": \"team-a\"}"), 201);
        assert_int_equal(status_of(f, "POST", "/namespaces", op, "{\"name\": \"team-a\"}"), 409);
        assert_int_equal(status_of(f, "POST", "/namespaces", op, "{\"name\": \"Team_A\"}"), 422);
        r = request(f, "GET", "/namespaces/team-a", op, NULL);
        assert_int_equal(r.status, 200);
        assert_int_equal(json_integer_value(json_object_get(r.json, "deployments")), 0);
        response_clear(&r);

        /* Applying into a namespace that does not exist creates it only for who may create
         * namespaces. */
        assert_int_equal(make_token(f, op, "{\"name\": \"d\", \"scopes\": [\"deployments:write\"]}", deployer, NULL),
                         201);
        r = request(f, "POST", "/deployments", deployer,
                    "{\"name\": \"x\", \"namespace\": \"brand-new\", \"image\": \"/i\", \"replicas\": 0}");
        assert_problem(&r, 403, "urn:husk:problem:forbidden");
        response_clear(&r);
        assert_int_equal(status_of(f, "GET", "/namespaces/brand-new", op, NULL), 404);
        assert_int_equal(status_of(f, "POST", "/deployments", deployer,
                                   "{\"name\": \"x\", \"namespace\": \"team-a\", \"image\": \"/i\", \"replicas\": 0}"),
                         201);
        assert_int_equal(status_of(f, "POST", "/deployments", op,
                                   "{\"name\": \"x\", \"namespace\": \"team-b\", \"image\": \"/i\", \"replicas\": 0}"),
                         201);
        assert_int_equal(status_of(f, "GET", "/namespaces/team-b", op, NULL), 200);

        /* A namespace that holds deployments stays, unless asked to cascade. */
        r = request(f, "DELETE", "/namespaces/team-a", op, NULL);
        assert_problem(&r, 409, "urn:husk:problem:conflict");
        response_clear(&r);
        assert_int_equal(status_of(f, "DELETE", "/namespaces/team-a?cascade=true", op, NULL), 204);
        assert_int_equal(status_of(f, "GET", "/namespaces/team-a", op, NULL), 404);
        r = request(f, "GET", "/deployments?namespace=team-a", op, NULL);
        assert_string_equal(json_string_value(json_object_get(json_array_get(r.json, 0), "status")), "deleted");
        response_clear(&r);
        assert_int_equal(status_of(f, "DELETE", "/namespaces/default", op, NULL), 409);

        /* A bound token sees its own namespaces only. */
        assert_int_equal(
                make_token(f, op, "{\"name\": \"b\", \"scopes\": [\"namespaces:read\"], \"namespaces\": [\"team-b\"]}",
                           bound, NULL),
                201);
        r = request(f, "GET", "/namespaces", bound, NULL);
        assert_int_equal(r.status, 200);
        assert_int_equal(json_array_size(r.json), 1);
        assert_string_equal(json_string_value(json_object_get(json_array_get(r.json, 0), "name")), "team-b");
        response_clear(&r);
        assert_int_equal(status_of(f, "GET", "/namespaces/default", bound, NULL), 404);
}

/* As uid 65534 with group gid (and no other): GET /users/me on the socket. Exit status: 0 the
 * answer was 403, 1 another answer, 2 connect() was refused (EACCES), 3 anything else. */
static int as_stranger(const char *path, gid_t gid) {
        pid_t pid = fork();
        int status;

        assert_true(pid >= 0);
        if (pid == 0) {
                static const char req[] = "GET /users/me HTTP/1.1\r\nHost: local\r\nConnection: close\r\n\r\n";
                struct sockaddr_un a = { .sun_family = AF_UNIX };
                char buf[64] = "";
                int fd;

                if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(65534) < 0)
                        _exit(3);
                memcpy(a.sun_path, path, strlen(path));
                fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd < 0)
                        _exit(3);
                if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
                        _exit(errno == EACCES ? 2 : 3);
                if (write(fd, req, sizeof(req) - 1) != (ssize_t)sizeof(req) - 1 || read(fd, buf, sizeof(buf) - 1) <= 0)
                        _exit(3);
                _exit(strncmp(buf, "HTTP/1.1 403", 12) == 0 ? 0 : 1);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        return WEXITSTATUS(status);
}

static void test_local_socket_knows_root(void **state) {
        fixture_t *f = *state;
        char path[128], url[64];
        struct stat st;
        response_t r;

        if (geteuid() != 0)
                skip(); /* the socket's peers are told apart by uid: this needs root */
        snprintf(path, sizeof(path), "%s/api.sock", f->dir);
        assert_int_equal(stat(path, &st), 0);
        assert_true(S_ISSOCK(st.st_mode));
        assert_int_equal(st.st_mode & 0777, 0660);

        /* Root needs no password there: it is admin. */
        r = request_via(f, path, "GET", "/users/me", NULL, NULL);
        assert_int_equal(r.status, 200);
        assert_string_equal(json_string_value(json_object_get(r.json, "role")), "admin");
        assert_string_equal(json_string_value(json_object_get(r.json, "via")), "local");
        assert_string_equal(json_string_value(json_object_get(r.json, "username")), "uid:0");
        response_clear(&r);
        r = request_via(f, path, "POST", "/deployments?dryRun=All", NULL, "{\"name\": \"x\", \"image\": \"/i\"}");
        assert_int_equal(r.status, 200);
        response_clear(&r);
        /* A bearer token does not change who the kernel said it is. */
        r = request_via(f, path, "GET", "/users/me", "husk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", NULL);
        assert_int_equal(r.status, 200);
        response_clear(&r);

        /* Someone else who can open the socket (the file's group is root's, as no
         * socket_group is configured) is told no; who cannot open it, cannot. */
        assert_int_equal(chmod(f->dir, 0711), 0); /* mkdtemp's 0700 would stop both at the door */
        assert_int_equal(as_stranger(path, 0), 0);
        assert_int_equal(as_stranger(path, 65534), 2);

        /* The relay's internal listener gives nothing to whoever connects to it directly. */
        snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned)f->api->http_internal_port);
        {
                char saved[64];

                snprintf(saved, sizeof(saved), "%s", f->base);
                snprintf(f->base, sizeof(f->base), "%s", url);
                r = request(f, "GET", "/users/me", NULL, NULL);
                snprintf(f->base, sizeof(f->base), "%s", saved);
        }
        assert_problem(&r, 401, "urn:husk:problem:unauthorized");
        response_clear(&r);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_every_route_but_the_public_ones_needs_a_credential),
                cmocka_unit_test(test_metrics_auth),
                cmocka_unit_test(test_role_matrix),
                cmocka_unit_test(test_login_logout),
                cmocka_unit_test(test_failed_logins_are_slowed_down),
                cmocka_unit_test(test_local_socket_knows_root),
                cmocka_unit_test(test_users_roles_and_revocation),
                cmocka_unit_test(test_the_last_admin_cannot_go),
                cmocka_unit_test(test_tokens_scopes_namespaces_rotation),
                cmocka_unit_test(test_audit_log),
                cmocka_unit_test(test_stream_tickets),
                cmocka_unit_test(test_namespaces),
        };

        curl_global_init(CURL_GLOBAL_DEFAULT);
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
