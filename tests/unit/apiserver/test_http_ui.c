/* test_http_ui.c: the dashboard's files at /ui/ (public, our headers, only files of ui_dir) and
 * POST /manifests/parse (the CLI's reading of a manifest, with the line of each field). */
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
#include <sys/socket.h>
#include <sys/stat.h>

#include "lib/util.h"
#include "services/apiserver/apiserver.h"
#include "services/apiserver/apiserver_http.h"

typedef struct fixture {
        char dir[64];
        char base[64];
        husk_config_t *config;
        zloop_t *loop;
        apiserver_t *api;
        char auth[AUTH_TOKEN_LEN + 32];
} fixture_t;

typedef struct response {
        long status;
        char headers[4096];
        size_t headers_len;
        char body[8192];
        size_t body_len;
} response_t;

static void set(char **field, const char *fmt, ...) _printf_(2, 3);
static void set(char **field, const char *fmt, ...) {
        va_list ap;

        free(*field);
        va_start(ap, fmt);
        assert_true(vasprintf(field, fmt, ap) > 0);
        va_end(ap);
}

static void write_file(const char *dir, const char *name, const char *text) {
        char path[256];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        f = fopen(path, "we");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
}

static int group_setup(void **state) {
        fixture_t *f = calloc(1, sizeof(*f));
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof(a);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        char path[128];

        assert_non_null(f);
        assert_true(fd >= 0);
        assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
        close(fd);
        snprintf(f->dir, sizeof(f->dir), "/tmp/husk-test-ui.XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        /* ui/ holds the page; next to it, a file that must never be served. */
        snprintf(path, sizeof(path), "%s/ui", f->dir);
        assert_int_equal(mkdir(path, 0755), 0);
        snprintf(path, sizeof(path), "%s/ui/sub", f->dir);
        assert_int_equal(mkdir(path, 0755), 0);
        snprintf(path, sizeof(path), "%s/ui", f->dir);
        write_file(path, "index.html", "<!doctype html><title>husk</title>");
        write_file(path, "app.js", "export const x = 1;\n");
        write_file(path, ".hidden", "hidden\n");
        write_file(f->dir, "secret.txt", "not for browsers\n");

        assert_int_equal(husk_config_new_default(&f->config), 0);
        set(&f->config->state_dir, "%s/state", f->dir);
        set(&f->config->runtime_dir, "%s", f->dir);
        set(&f->config->apiserver.database, "%s/state/husk.db", f->dir);
        set(&f->config->apiserver.secrets_key_file, "%s/state/secrets.key", f->dir);
        set(&f->config->apiserver.ui_dir, "%s/ui", f->dir);
        set(&f->config->apiserver.listen, "127.0.0.1:%d", ntohs(a.sin_port));
        for (int d = 0; d < _HUSK_DAEMON_MAX; d++) {
                set(&f->config->bus[d].events, "ipc://%s/%s.events", f->dir, husk_daemon_name(d));
                set(&f->config->bus[d].requests, "ipc://%s/%s.requests", f->dir, husk_daemon_name(d));
        }
        snprintf(f->base, sizeof(f->base), "http://127.0.0.1:%d", ntohs(a.sin_port));
        f->loop = zloop_new();
        assert_non_null(f->loop);
        assert_int_equal(apiserver_new(f->config, f->loop, &f->api), 0);
        {
                store_user_t admin;
                store_token_t t = { .session = true, .created_at = now_realtime_ms() };
                char token[AUTH_TOKEN_LEN + 1];

                assert_int_equal(store_user_get(f->api->store, "admin", &admin, NULL), 0);
                snprintf(t.user_id, sizeof(t.user_id), "%s", admin.id);
                assert_int_equal(route_token_issue(f->api, &t, token), 0);
                snprintf(f->auth, sizeof(f->auth), "Authorization: Bearer %s", token);
        }
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
        size_t take = size * n < sizeof(r->body) - 1 - r->body_len ? size * n : sizeof(r->body) - 1 - r->body_len;

        memcpy(r->body + r->body_len, data, take);
        r->body_len += take;
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

/* The path goes out as written (no "/../" folded by curl): what a hostile client would send. */
static response_t request(fixture_t *f, const char *method, const char *path, const char *body, bool auth) {
        struct curl_slist *headers = NULL;
        response_t r = {};
        char url[512];
        CURL *c = curl_easy_init();

        assert_non_null(c);
        snprintf(url, sizeof(url), "%s%s", f->base, path);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
        headers = curl_slist_append(headers, "Content-Type: application/yaml");
        if (auth)
                headers = curl_slist_append(headers, f->auth);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
        if (body)
                curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        assert_int_equal(curl_easy_perform(c), CURLE_OK);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
        curl_easy_cleanup(c);
        curl_slist_free_all(headers);
        return r;
}

static void assert_header(const response_t *r, const char *line) {
        if (!strcasestr(r->headers, line))
                fail_msg("header \"%s\" missing in:\n%s", line, r->headers);
}

static void test_page_is_public_with_our_headers(void **state) {
        fixture_t *f = *state;
        response_t r = request(f, "GET", "/ui/", NULL, false);

        assert_int_equal(r.status, 200);
        assert_header(&r, "Content-Type: text/html");
        assert_header(&r, "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'");
        assert_header(&r, "frame-ancestors 'none'");
        assert_header(&r, "X-Frame-Options: DENY");
        assert_header(&r, "X-Content-Type-Options: nosniff");
        assert_header(&r, "Cache-Control: no-cache, no-store");
        assert_non_null(strstr(r.body, "<title>husk</title>"));

        r = request(f, "GET", "/ui/app.js", NULL, false);
        assert_int_equal(r.status, 200);
        assert_header(&r, "Content-Type: application/javascript"); /* ES modules need a JS type */
        assert_string_equal(r.body, "export const x = 1;\n");

        r = request(f, "GET", "/ui", NULL, false);
        assert_int_equal(r.status, 301);
        assert_header(&r, "Location: /ui/");

        r = request(f, "POST", "/ui/", "x", false);
        assert_int_equal(r.status, 405);
}

static void test_only_files_of_ui_dir(void **state) {
        static const char *const refused[] = {
                "/ui/../secret.txt", "/ui/%2e%2e/secret.txt", "/ui/.hidden", "/ui/sub",
                "/ui/sub/",          "/ui/missing.js",        "/ui/a%20b",   "/uiapp.js",
        };
        fixture_t *f = *state;

        for (size_t i = 0; i < ELEMENTSOF(refused); i++) {
                response_t r = request(f, "GET", refused[i], NULL, false);

                if (r.status == 200 || strstr(r.body, "not for browsers") || strstr(r.body, "hidden\n"))
                        fail_msg("GET %s: %ld %s", refused[i], r.status, r.body);
        }
}

static void test_api_answers_are_not_pages(void **state) {
        fixture_t *f = *state;
        response_t r = request(f, "GET", "/healthz", NULL, false);

        assert_header(&r, "Cache-Control: no-store");
        assert_header(&r, "X-Content-Type-Options: nosniff");
        assert_header(&r, "X-Frame-Options: DENY");
        r = request(f, "GET", "/deployments", NULL, false);
        assert_int_equal(r.status, 401);
        assert_header(&r, "X-Frame-Options: DENY");
}

static void test_manifest_parse(void **state) {
        fixture_t *f = *state;
        json_auto_t *j = NULL, *bad = NULL;
        response_t r;

        r = request(f, "POST", "/manifests/parse", "deployments: {}\n", false);
        assert_int_equal(r.status, 401);

        r = request(f, "POST", "/manifests/parse",
                    "namespaces: [team]\n"
                    "deployments:\n"
                    "  web:\n"
                    "    namespace: team\n"
                    "    labels: [{app: web}]\n"
                    "    ports:\n"
                    "      - {published: 99999, target: 80}\n",
                    true);
        assert_int_equal(r.status, 200);
        j = json_loads(r.body, 0, NULL);
        assert_non_null(j);
        /* As the CLI sends it: the name from the key, labels as a map. */
        assert_string_equal(
                json_string_value(json_object_get(
                        json_object_get(json_array_get(json_object_get(j, "deployments"), 0), "deployment"), "name")),
                "web");
        assert_string_equal(
                json_string_value(json_object_get(
                        json_object_get(
                                json_object_get(json_array_get(json_object_get(j, "deployments"), 0), "deployment"),
                                "labels"),
                        "app")),
                "web");
        assert_string_equal(json_string_value(json_array_get(json_object_get(j, "namespaces"), 0)), "team");
        assert_int_equal(
                json_integer_value(json_object_get(json_object_get(j, "lines"), "deployments.web.ports[0].published")),
                7);

        r = request(f, "POST", "/manifests/parse", "deployments:\n  web: [\n", true);
        assert_int_equal(r.status, 422);
        bad = json_loads(r.body, 0, NULL);
        assert_non_null(bad);
        assert_int_equal(
                json_integer_value(json_object_get(json_array_get(json_object_get(bad, "violations"), 0), "line")), 3);
        json_decref(bad);

        r = request(f, "POST", "/manifests/parse", "deployments:\n  web:\n    labels: 3\n", true);
        assert_int_equal(r.status, 422);
        bad = json_loads(r.body, 0, NULL);
        assert_string_equal(
                json_string_value(json_object_get(json_array_get(json_object_get(bad, "violations"), 0), "field")),
                "deployments.web.labels");
        json_decref(bad);

        /* files: names files on the CLI's machine: refused, never read on the server. */
        r = request(f, "POST", "/manifests/parse", "configs:\n  c:\n    files: {k: /etc/passwd}\n", true);
        assert_int_equal(r.status, 422);
        assert_non_null(strstr(r.body, "configs.c.files"));
        assert_null(strstr(r.body, "root:"));
        bad = NULL;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_page_is_public_with_our_headers),
                cmocka_unit_test(test_only_files_of_ui_dir),
                cmocka_unit_test(test_api_answers_are_not_pages),
                cmocka_unit_test(test_manifest_parse),
        };
        int r;

        curl_global_init(CURL_GLOBAL_DEFAULT);
        r = cmocka_run_group_tests(tests, group_setup, group_teardown);
        curl_global_cleanup();
        return r;
}
