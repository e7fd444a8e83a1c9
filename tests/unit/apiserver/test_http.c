/* test_http.c: the REST API end to end in one process: status codes, JSON shapes the CLI relies on, events published. */
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

#include "lib/bus.h"
#include "lib/util.h"
#include "services/apiserver/apiserver.h"
#include "services/apiserver/apiserver_http.h"

typedef struct fixture {
        char dir[64];
        char base[64];
        husk_config_t *config;
        zloop_t *loop;
        apiserver_t *api;
        bus_sub_t *events;
        char auth[AUTH_TOKEN_LEN + 32]; /* "Authorization: Bearer <the first admin's session>" */
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

/* One server for the whole group: civetweb's mg_stop() takes up to two seconds. */
static int group_setup(void **state) {
        fixture_t *f = calloc(1, sizeof(*f));
        const char *endpoint;
        int port = free_port();

        assert_non_null(f);
        snprintf(f->dir, sizeof(f->dir), "/tmp/husk-test-http.XXXXXX");
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

        /* The first start made an admin: these tests act as it. */
        {
                store_user_t admin;
                store_token_t t = { .session = true, .created_at = now_realtime_ms() };
                char token[AUTH_TOKEN_LEN + 1];

                assert_int_equal(store_user_get(f->api->store, "admin", &admin, NULL), 0);
                snprintf(t.user_id, sizeof(t.user_id), "%s", admin.id);
                assert_int_equal(route_token_issue(f->api, &t, token), 0);
                snprintf(f->auth, sizeof(f->auth), "Authorization: Bearer %s", token);
        }

        endpoint = f->config->bus[HUSK_DAEMON_APISERVER].events;
        assert_int_equal(bus_sub_new(&endpoint, 1, &f->events), 0);
        assert_int_equal(bus_sub_subscribe(f->events, "deployment."), 0);
        zclock_sleep(200); /* ZeroMQ's slow joiner: let the subscription reach the publisher */
        *state = f;
        return 0;
}

static int group_teardown(void **state) {
        fixture_t *f = *state;

        bus_sub_destroy(&f->events);
        apiserver_free(f->api);
        zloop_destroy(&f->loop);
        husk_config_free(f->config);
        assert_int_equal(rm_rf(f->dir), 0);
        free(f);
        return 0;
}

/* Each test starts from an empty store and a drained event stream. */
static int reset(void **state) {
        fixture_t *f = *state;
        store_deployment_t *a = NULL, d = {};
        size_t n = 0;
        char *type;
        void *body;
        size_t size;

        assert_int_equal(store_deployment_list(f->api->store, NULL, &a, &n), 0);
        for (size_t i = 0; i < n; i++) {
                assert_true(store_deployment_mark_deleted(f->api->store, a[i].d.id, &d) >= 0);
                store_deployment_clear(&d);
                assert_int_equal(store_deployment_purge(f->api->store, a[i].d.id, NULL), 0);
        }
        store_deployment_array_free(a, n);
        while (bus_sub_recv(f->events, 50, &type, &body, &size) >= 0) {
                free(type);
                free(body);
        }
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

static response_t request(fixture_t *f, const char *method, const char *path, const char *body, size_t body_len) {
        struct curl_slist *headers;
        response_t r = {};
        char url[512];
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
        headers = curl_slist_append(NULL, f->auth);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
        if (body) {
                curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
                curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body_len);
        }
        assert_int_equal(curl_easy_perform(c), CURLE_OK);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
        curl_easy_cleanup(c);
        curl_slist_free_all(headers);
        if (r.body)
                r.json = json_loads(r.body, JSON_DECODE_ANY, NULL);
        return r;
}

/* JSON with single quotes, so the tests stay readable. */
static response_t post(fixture_t *f, const char *text) {
        char buf[4096];

        for (size_t i = 0; i <= strlen(text); i++)
                buf[i] = text[i] == '\'' ? '"' : text[i];
        return request(f, "POST", "/deployments", buf, strlen(buf));
}

static const char *str(const response_t *r, const char *key) {
        return json_string_value(json_object_get(r->json, key));
}

static void assert_header(const response_t *r, const char *line) {
        if (!strstr(r->headers, line))
                fail_msg("header \"%s\" missing in:\n%s", line, r->headers);
}

static void assert_problem(const response_t *r, long status, const char *type) {
        assert_int_equal(r->status, status);
        assert_header(r, "Content-Type: application/problem+json");
        assert_non_null(r->json);
        assert_string_equal(str(r, "type"), type);
        assert_int_equal(json_integer_value(json_object_get(r->json, "status")), status);
        assert_non_null(str(r, "title"));
        assert_non_null(str(r, "detail"));
}

/* The next deployment.* event, or NULL type when none comes within timeout_ms. */
static char *next_event(fixture_t *f, int timeout_ms, json_t **ret_generation) {
        char *type = NULL;
        void *body = NULL;
        size_t size;

        if (bus_sub_recv(f->events, timeout_ms, &type, &body, &size) < 0)
                return NULL;
        if (ret_generation) {
                msgpack_unpacked u;

                msgpack_unpacked_init(&u);
                assert_int_equal(msgpack_unpack_next(&u, body, size, NULL), MSGPACK_UNPACK_SUCCESS);
                for (uint32_t i = 0; i < u.data.via.map.size; i++)
                        if (strncmp(u.data.via.map.ptr[i].key.via.str.ptr, "generation", 10) == 0)
                                *ret_generation = json_integer((json_int_t)u.data.via.map.ptr[i].val.via.u64);
                msgpack_unpacked_destroy(&u);
        }
        free(body);
        return type;
}

static void assert_event(fixture_t *f, const char *want, json_int_t generation) {
        json_t *g = NULL;
        char *type = next_event(f, 2000, &g);

        assert_non_null(type);
        assert_string_equal(type, want);
        assert_non_null(g);
        assert_int_equal(json_integer_value(g), generation);
        json_decref(g);
        free(type);
}

static void assert_no_event(fixture_t *f) {
        char *type = next_event(f, 200, NULL);

        if (type)
                fail_msg("unexpected event %s", type);
}

static void test_healthz(void **state) {
        fixture_t *f = *state;
        response_t r = request(f, "GET", "/healthz", NULL, 0);

        assert_int_equal(r.status, 200);
        assert_header(&r, "Content-Type: application/json");
        /* Ring's {state: UP}, and husk's own status. */
        assert_string_equal(r.body, "{\"state\":\"UP\",\"status\":\"ok\"}");
        response_clear(&r);
}

static void test_create_unchanged_updated(void **state) {
        static const char *const keys[] = { "id",         "namespace",     "name",       "runtime",
                                            "kind",       "image",         "replicas",   "ready_replicas",
                                            "labels",     "resources",     "status",     "status_message",
                                            "generation", "restart_count", "created_at", "updated_at",
                                            "spec",       "exit_code" };
        fixture_t *f = *state;
        response_t r = post(f, "{'name': 'my-app', 'namespace': 'production', 'runtime': 'cloud-hypervisor',"
                               " 'image': '/var/lib/ring/images/ubuntu-focal.raw', 'replicas': 1,"
                               " 'resources': {'limits': {'cpu': '2', 'memory': '512Mi'}}, 'labels': {'app': 'web'}}");
        char location[128], id[64];

        assert_int_equal(r.status, 201);
        assert_header(&r, "Husk-Apply-Result: created");
        snprintf(id, sizeof(id), "%s", str(&r, "id"));
        snprintf(location, sizeof(location), "Location: /deployments/%s", id);
        assert_header(&r, location);
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                if (!json_object_get(r.json, keys[i]))
                        fail_msg("key %s missing in %s", keys[i], r.body);
        assert_int_equal(json_object_size(r.json), ELEMENTSOF(keys)); /* no kernel: none given */
        assert_string_equal(str(&r, "status"), "pending");
        assert_string_equal(str(&r, "status_message"), "");
        assert_true(json_is_null(json_object_get(r.json, "exit_code")));
        assert_int_equal(json_integer_value(json_object_get(r.json, "generation")), 1);
        assert_int_equal(json_integer_value(json_object_get(
                                 json_object_get(json_object_get(r.json, "resources"), "limits"), "cpu")),
                         2);
        assert_string_equal(json_string_value(json_object_get(
                                    json_object_get(json_object_get(r.json, "resources"), "limits"), "memory")),
                            "512Mi");
        assert_int_equal(strlen(str(&r, "created_at")), 24); /* 2026-11-22T05:30:00.123Z */
        assert_int_equal(str(&r, "created_at")[23], 'Z');
        assert_event(f, "deployment.created", 1);
        response_clear(&r);

        r = post(f, "{'name': 'my-app', 'namespace': 'production', 'runtime': 'cloud-hypervisor',"
                    " 'image': '/var/lib/ring/images/ubuntu-focal.raw', 'labels': {'app': 'web'},"
                    " 'resources': {'limits': {'cpu': 2, 'memory': 536870912}}}");
        assert_int_equal(r.status, 200);
        assert_header(&r, "Husk-Apply-Result: unchanged");
        assert_string_equal(str(&r, "id"), id);
        assert_no_event(f);
        response_clear(&r);

        r = post(f, "{'name': 'my-app', 'namespace': 'production', 'runtime': 'cloud-hypervisor',"
                    " 'image': '/var/lib/ring/images/ubuntu-focal.raw', 'replicas': 2}");
        assert_int_equal(r.status, 200);
        assert_header(&r, "Husk-Apply-Result: updated");
        assert_string_equal(str(&r, "id"), id);
        assert_int_equal(json_integer_value(json_object_get(r.json, "generation")), 2);
        assert_event(f, "deployment.updated", 2);
        response_clear(&r);
}

static void test_bad_input_stores_and_publishes_nothing(void **state) {
        fixture_t *f = *state;
        response_t r = post(f, "{'name': 'My_App', 'image': 'nginx:latest', 'runtime': 'docker'}");
        const json_t *v;

        assert_problem(&r, 422, "urn:husk:problem:invalid-manifest");
        v = json_object_get(r.json, "violations");
        assert_int_equal(json_array_size(v), 3);
        assert_string_equal(json_string_value(json_object_get(json_array_get(v, 0), "field")), "name");
        assert_non_null(json_string_value(json_object_get(json_array_get(v, 0), "reason")));
        /* Ring's names for the same: property_path, message, and a stable code. */
        assert_string_equal(json_string_value(json_object_get(json_array_get(v, 0), "property_path")), "name");
        assert_string_equal(json_string_value(json_object_get(json_array_get(v, 0), "message")),
                            json_string_value(json_object_get(json_array_get(v, 0), "reason")));
        assert_string_equal(json_string_value(json_object_get(json_array_get(v, 0), "code")),
                            "deployment.name.invalid");
        response_clear(&r);

        r = post(f, "{'name': 'x', 'image': '/i', 'ports': [{'published': 0, 'target': 80}]}");
        assert_problem(&r, 422, "urn:husk:problem:invalid-manifest");
        v = json_array_get(json_object_get(r.json, "violations"), 0);
        assert_string_equal(json_string_value(json_object_get(v, "property_path")), "ports[0].published");
        assert_string_equal(json_string_value(json_object_get(v, "code")), "deployment.ports.published.invalid");
        response_clear(&r);

        r = request(f, "POST", "/deployments", "{\"name\": \"x\",\n \"image\": }",
                    strlen("{\"name\": \"x\",\n \"image\": }"));
        assert_problem(&r, 400, "urn:husk:problem:malformed-json");
        assert_non_null(strstr(str(&r, "detail"), "line 2, column"));
        response_clear(&r);

        r = request(f, "POST", "/deployments", "", 0);
        assert_problem(&r, 400, "urn:husk:problem:malformed-json");
        response_clear(&r);

        r = request(f, "GET", "/deployments", NULL, 0);
        assert_int_equal(r.status, 200);
        assert_int_equal(json_array_size(r.json), 0);
        response_clear(&r);
        assert_no_event(f);
}

static void test_body_over_1mib_is_413(void **state) {
        fixture_t *f = *state;
        size_t size = 1024 * 1024 + 1;
        char *big = malloc(size);
        response_t r;

        assert_non_null(big);
        memset(big, ' ', size);
        r = request(f, "POST", "/deployments", big, size);
        assert_problem(&r, 413, "urn:husk:problem:payload-too-large");
        response_clear(&r);
        free(big);
}

static void test_not_found_and_method_not_allowed(void **state) {
        fixture_t *f = *state;
        response_t r = request(f, "GET", "/deployments/00000000-0000-4000-8000-000000000000", NULL, 0);

        assert_problem(&r, 404, "urn:husk:problem:not-found");
        response_clear(&r);
        r = request(f, "DELETE", "/deployments/nope", NULL, 0);
        assert_problem(&r, 404, "urn:husk:problem:not-found");
        response_clear(&r);
        r = request(f, "GET", "/nothing-here", NULL, 0);
        assert_problem(&r, 404, "urn:husk:problem:not-found");
        response_clear(&r);
        r = request(f, "PUT", "/deployments", "{}", 2);
        assert_problem(&r, 405, "urn:husk:problem:method-not-allowed");
        assert_header(&r, "Allow: GET, POST");
        response_clear(&r);
        r = request(f, "POST", "/deployments/abc", "{}", 2);
        assert_problem(&r, 405, "urn:husk:problem:method-not-allowed");
        assert_header(&r, "Allow: GET, DELETE");
        response_clear(&r);
}

static size_t list_count(fixture_t *f, const char *query, const char *first_name) {
        char path[256];
        response_t r;
        size_t n;

        snprintf(path, sizeof(path), "/deployments%s", query);
        r = request(f, "GET", path, NULL, 0);
        if (r.status != 200)
                fail_msg("GET %s: %ld %s", path, r.status, r.json ? json_dumps(r.json, 0) : "");
        assert_true(json_is_array(r.json));
        n = json_array_size(r.json);
        if (first_name) {
                assert_true(n > 0);
                assert_string_equal(json_string_value(json_object_get(json_array_get(r.json, 0), "name")), first_name);
        }
        response_clear(&r);
        return n;
}

static void test_list_filters(void **state) {
        fixture_t *f = *state;
        response_t r;

        r = post(f, "{'name': 'web', 'image': '/i', 'labels': {'app': 'web', 'tier': 'front'}}");
        response_clear(&r);
        r = post(f, "{'name': 'api', 'image': '/i', 'labels': {'app': 'api', 'tier': 'back'}}");
        response_clear(&r);
        r = post(f, "{'name': 'web', 'namespace': 'prod', 'image': '/i', 'labels': {'app': 'web'}}");
        response_clear(&r);

        assert_int_equal(list_count(f, "", "api"), 3);
        assert_int_equal(list_count(f, "?namespace=prod", "web"), 1);
        assert_int_equal(list_count(f, "?status=pending", "api"), 3);
        assert_int_equal(list_count(f, "?status=running", NULL), 0);
        assert_int_equal(list_count(f, "?label=app=web", "web"), 2);
        assert_int_equal(list_count(f, "?label=app%3Dweb&label=tier=front", "web"), 1);
        assert_int_equal(list_count(f, "?labelSelector=app=api,tier=back", "api"), 1);
        assert_int_equal(list_count(f, "?labelSelector=app=web&namespace=default", "web"), 1);
        /* Ring's forms: name[] (URL-encoded or not), repeatable (any of), kind. */
        assert_int_equal(list_count(f, "?namespace[]=prod", "web"), 1);
        assert_int_equal(list_count(f, "?namespace%5B%5D=prod&namespace%5B%5D=default", "api"), 3);
        assert_int_equal(list_count(f, "?namespace=prod&namespace=nowhere", "web"), 1);
        assert_int_equal(list_count(f, "?status[]=running&status[]=pending", "api"), 3);
        assert_int_equal(list_count(f, "?kind=worker", "api"), 3);
        assert_int_equal(list_count(f, "?kind[]=job", NULL), 0);
        assert_int_equal(list_count(f, "?label[]=app=web&namespace=prod", "web"), 1);
        assert_int_equal(list_count(f, "?instances=false", "api"), 3);

        r = request(f, "GET", "/deployments?status=zombie", NULL, 0);
        assert_problem(&r, 400, "urn:husk:problem:bad-query");
        response_clear(&r);
        r = request(f, "GET", "/deployments?namespce=prod", NULL, 0);
        assert_problem(&r, 400, "urn:husk:problem:bad-query");
        response_clear(&r);
        r = request(f, "GET", "/deployments?label=app", NULL, 0);
        assert_problem(&r, 400, "urn:husk:problem:bad-query");
        response_clear(&r);
        r = request(f, "GET", "/deployments?kind=daemon", NULL, 0);
        assert_problem(&r, 400, "urn:husk:problem:bad-query");
        response_clear(&r);
        r = request(f, "GET", "/deployments?instances=maybe", NULL, 0);
        assert_problem(&r, 400, "urn:husk:problem:bad-query");
        response_clear(&r);
        r = request(f, "GET", "/deployments?kinds[]=job", NULL, 0);
        assert_problem(&r, 400, "urn:husk:problem:bad-query");
        response_clear(&r);

        /* instances=true: each deployment's instances, or why they are unknown (no vmm-driver here). */
        r = request(f, "GET", "/deployments?instances=true&namespace=prod", NULL, 0);
        assert_int_equal(r.status, 200);
        assert_int_equal(json_array_size(r.json), 1);
        assert_true(json_is_null(json_object_get(json_array_get(r.json, 0), "instances")));
        assert_non_null(json_object_get(json_array_get(r.json, 0), "instances_error"));
        response_clear(&r);
}

static void test_get_without_vmm_driver_still_answers(void **state) {
        fixture_t *f = *state;
        response_t r = post(f, "{'name': 'web', 'image': '/i', 'kernel': '/boot/vmlinux'}");
        char path[128];

        snprintf(path, sizeof(path), "/deployments/%s", str(&r, "id"));
        response_clear(&r);
        r = request(f, "GET", path, NULL, 0);
        assert_int_equal(r.status, 200);
        assert_string_equal(str(&r, "kernel"), "/boot/vmlinux");
        assert_true(json_is_null(json_object_get(r.json, "instances")));
        assert_string_equal(str(&r, "instances_error"), "vmm-driver did not answer within 1000 ms");
        response_clear(&r);
}

static void test_delete_then_conflict(void **state) {
        fixture_t *f = *state;
        response_t r = post(f, "{'name': 'web', 'image': '/i'}");
        char path[128];

        snprintf(path, sizeof(path), "/deployments/%s", str(&r, "id"));
        response_clear(&r);
        assert_event(f, "deployment.created", 1);

        /* Ring's answer: 204 and no body; GET shows it deleted until the scheduler purged it. */
        r = request(f, "DELETE", path, NULL, 0);
        assert_int_equal(r.status, 204);
        assert_int_equal(r.body_len, 0);
        assert_null(strcasestr(r.headers, "Content-Length"));
        response_clear(&r);
        assert_event(f, "deployment.deleted", 1);
        r = request(f, "GET", path, NULL, 0);
        assert_int_equal(r.status, 200);
        assert_string_equal(str(&r, "status"), "deleted");
        response_clear(&r);

        /* DELETE again is fine and says nothing new */
        r = request(f, "DELETE", path, NULL, 0);
        assert_int_equal(r.status, 204);
        response_clear(&r);
        assert_no_event(f);
        r = request(f, "DELETE", "/deployments/00000000-0000-0000-0000-000000000000", NULL, 0);
        assert_problem(&r, 404, "urn:husk:problem:not-found");
        response_clear(&r);

        r = post(f, "{'name': 'web', 'image': '/i'}");
        assert_problem(&r, 409, "urn:husk:problem:conflict");
        response_clear(&r);
        assert_no_event(f);
}

/* SIGHUP frees the daemon's config while civetweb workers run: the apiserver must not read it
 * after apiserver_new(). A log follower used to take logd's endpoint from it (ASan:
 * heap-use-after-free). Last in the group: the fixture's config is gone afterwards. */
static void test_config_freed_by_reload_is_not_read(void **state) {
        fixture_t *f = *state;
        response_t r = post(f, "{'name': 'web', 'image': '/i'}");
        char path[160];

        assert_int_equal(r.status, 201);
        snprintf(path, sizeof(path), "/deployments/%s/logs?follow=true", str(&r, "id"));
        response_clear(&r);
        husk_config_freep(&f->config);

        /* No logd here: the follower subscribes, then finds logd silent. */
        r = request(f, "GET", path, NULL, 0);
        assert_problem(&r, 503, "urn:husk:problem:logd-unavailable");
        response_clear(&r);
}

/* n opens, a leaf, n closes, between prefix and suffix. */
static char *nested(const char *prefix, const char *open, const char *close, unsigned n, const char *suffix) {
        size_t size = strlen(prefix) + n * (strlen(open) + strlen(close)) + strlen(suffix) + 2;
        char *s = malloc(size), *p = s;

        assert_non_null(s);
        p += sprintf(p, "%s", prefix);
        for (unsigned i = 0; i < n; i++)
                p += sprintf(p, "%s", open);
        *p++ = '1';
        for (unsigned i = 0; i < n; i++)
                p += sprintf(p, "%s", close);
        sprintf(p, "%s", suffix);
        return s;
}

static void assert_violation(const response_t *r, const char *field_prefix, const char *reason_part) {
        const json_t *v = json_array_get(json_object_get(r->json, "violations"), 0);
        const char *field = json_string_value(json_object_get(v, "field"));
        const char *reason = json_string_value(json_object_get(v, "reason"));

        if (!field || strncmp(field, field_prefix, strlen(field_prefix)) != 0 || !reason ||
            !strstr(reason, reason_part))
                fail_msg("want a violation of %s... saying \"%s\", got %s", field_prefix, reason_part, r->body);
}

/* Each of these killed a civetweb worker, and with it the daemon, before the nesting bound. */
static void test_deep_bodies_are_refused_and_the_server_lives(void **state) {
        static const struct {
                const char *prefix, *open, *close;
                unsigned depth;
                const char *suffix, *field;
        } cases[] = {
                { "{\"name\":\"x\",\"image\":\"/i\",\"labels\":{\"a\":", "[", "]", 1000, "}}", "labels.a[0][0]" },
                { "{\"name\":\"x\",\"image\":\"/i\",\"config\":", "{\"a\":", "}", 250, "}", "config.a.a" },
                { "{\"name\":\"x\",\"image\":\"/i\",\"labels\":{\"v\":", "{\"a\":", "}", 250, "}}", "labels.v.a" },
                /* Accepted and stored before, and from then on every listing crashed. */
                { "{\"name\":\"x\",\"image\":\"/i\",\"config\":", "{\"a\":", "}", 241, "}", "config.a.a" },
                { "", "[", "]", 100000, "", "[0][0]" },
        };
        fixture_t *f = *state;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char *body = nested(cases[i].prefix, cases[i].open, cases[i].close, cases[i].depth, cases[i].suffix);
                response_t r = request(f, "POST", "/deployments", body, strlen(body));

                assert_problem(&r, 422, "urn:husk:problem:invalid-manifest");
                assert_violation(&r, cases[i].field, "nested deeper than 32 levels");
                response_clear(&r);
                free(body);
        }
        /* The deepest a deployment may nest is taken to the validator, which says what it thinks. */
        {
                char *body = nested("{\"name\":\"x\",\"image\":\"/i\",\"labels\":{\"a\":", "[", "]", 30, "}}");
                response_t r = request(f, "POST", "/deployments", body, strlen(body));

                assert_problem(&r, 422, "urn:husk:problem:invalid-manifest");
                assert_violation(&r, "labels.a", "must be a string, number or boolean");
                response_clear(&r);
                free(body);
        }
        assert_int_equal(list_count(f, "", NULL), 0);
        assert_no_event(f);
}

/* What a route does not take is refused at the router, for every route alike. */
static void test_unknown_query_parameters_are_refused_everywhere(void **state) {
        static const struct {
                const char *method, *path;
        } cases[] = {
                { "GET", "/healthz?verbose=1" },
                { "GET", "/deployments?namespce=prod" },
                { "POST", "/deployments?force=true" },
                { "GET", "/deployments/ID?watch=1" },
                { "DELETE", "/deployments/ID?cascade=false" },
                { "POST", "/deployments/ID/exec?tty=1" },
                { "GET", "/deployments/ID/events?from=1" },
                { "GET", "/deployments/ID/logs?container=x&lines=3" },
                { "GET", "/deployments/ID/health-checks?all=1" },
        };
        fixture_t *f = *state;
        response_t r = post(f, "{'name': 'web', 'image': '/i'}");
        char id[64];

        snprintf(id, sizeof(id), "%s", str(&r, "id"));
        response_clear(&r);
        assert_event(f, "deployment.created", 1);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char path[256], *at;

                snprintf(path, sizeof(path), "%s", cases[i].path);
                at = strstr(path, "ID");
                if (at) {
                        char rest[128];

                        snprintf(rest, sizeof(rest), "%s", at + 2);
                        snprintf(at, sizeof(path) - (size_t)(at - path), "%s%s", id, rest);
                }
                r = request(f, cases[i].method, path,
                            streq(cases[i].method, "POST") ? "{\"name\":\"web\",\"image\":\"/i\"}" : NULL,
                            streq(cases[i].method, "POST") ? strlen("{\"name\":\"web\",\"image\":\"/i\"}") : 0);
                assert_problem(&r, 400, "urn:husk:problem:bad-query");
                if (!strstr(str(&r, "detail"), "unknown query parameter"))
                        fail_msg("%s %s: %s", cases[i].method, path, r.body);
                response_clear(&r);
        }
        r = request(f, "GET", "/deployments/x?a=1", NULL, 0);
        assert_non_null(strstr(str(&r, "detail"), "GET /deployments/{id} takes none"));
        response_clear(&r);
        /* Nothing of it acted: the deployment is as it was, and still there. */
        assert_int_equal(list_count(f, "", "web"), 1);
        assert_no_event(f);
}

/* dryRun=All checks as an apply would and stores nothing; other values are refused. */
static void test_dry_run_stores_nothing(void **state) {
        fixture_t *f = *state;
        const char *good = "{\"name\":\"web\",\"image\":\"/i\",\"replicas\":2}";
        response_t r = request(f, "POST", "/deployments?dryRun=All", good, strlen(good));

        assert_int_equal(r.status, 200);
        assert_header(&r, "Husk-Apply-Result: valid");
        assert_true(json_is_true(json_object_get(r.json, "dry_run")));
        assert_int_equal(json_integer_value(json_object_get(json_object_get(r.json, "spec"), "replicas")), 2);
        response_clear(&r);
        r = request(f, "POST", "/deployments?dryRun=All", "{\"name\":\"Web\"}", strlen("{\"name\":\"Web\"}"));
        assert_problem(&r, 422, "urn:husk:problem:invalid-manifest");
        response_clear(&r);
        r = request(f, "POST", "/deployments?dryRun=true", good, strlen(good));
        assert_problem(&r, 400, "urn:husk:problem:bad-query");
        response_clear(&r);
        assert_int_equal(list_count(f, "", NULL), 0);
        assert_no_event(f);
}

/* A malformed exec body is told so whatever the instances are doing (no vmm-driver answers
 * here: before, instance: 123 got the 503 of the instance lookup, and tty: true was ignored). */
static void test_exec_body_is_checked_first(void **state) {
        static const struct {
                const char *body, *field;
        } cases[] = {
                { "{\"command\":[\"ls\"],\"instance\":123}", "instance" },
                { "{\"command\":[\"ls\"],\"tty\":true}", "tty" },
                { "{\"command\":[\"ls\"],\"instance\":\"\"}", "instance" },
                { "{\"command\":\"ls\"}", "command" },
                { "{\"command\":[\"ls\"],\"timeout\":\"soon\"}", "timeout" },
        };
        fixture_t *f = *state;
        response_t r = post(f, "{'name': 'web', 'image': '/i'}");
        char path[128], *deep;

        snprintf(path, sizeof(path), "/deployments/%s/exec", str(&r, "id"));
        response_clear(&r);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                r = request(f, "POST", path, cases[i].body, strlen(cases[i].body));
                assert_problem(&r, 400, "urn:husk:problem:invalid-exec");
                assert_violation(&r, cases[i].field, "");
                assert_int_equal(strlen(json_string_value(json_object_get(
                                         json_array_get(json_object_get(r.json, "violations"), 0), "field"))),
                                 strlen(cases[i].field));
                response_clear(&r);
        }
        deep = nested("{\"command\":[\"ls\"],\"env\":", "[", "]", 1000, "}");
        r = request(f, "POST", path, deep, strlen(deep));
        assert_problem(&r, 400, "urn:husk:problem:invalid-exec");
        assert_violation(&r, "env[0][0]", "nested deeper than 32 levels");
        response_clear(&r);
        free(deep);
        /* A good body gets as far as the instances. */
        r = request(f, "POST", path, "{\"command\":[\"ls\"]}", strlen("{\"command\":[\"ls\"]}"));
        assert_int_equal(r.status, 503);
        response_clear(&r);
}

static void test_query_values_are_checked(void **state) {
        fixture_t *f = *state;
        response_t r = post(f, "{'name': 'web', 'image': '/i'}");
        char id[64], path[256];

        snprintf(id, sizeof(id), "%s", str(&r, "id"));
        response_clear(&r);

        /* A NUL byte does not cut a value short into a valid one. */
        snprintf(path, sizeof(path), "/deployments/%s/logs?level=info%%00x", id);
        r = request(f, "GET", path, NULL, 0);
        assert_problem(&r, 400, "urn:husk:problem:bad-query");
        response_clear(&r);
        snprintf(path, sizeof(path), "/deployments/%s/events?level=info%%00x", id);
        r = request(f, "GET", path, NULL, 0);
        assert_problem(&r, 400, "urn:husk:problem:bad-query");
        response_clear(&r);

        /* events?since= as logs take it: a duration back from now or an RFC 3339 time. */
        snprintf(path, sizeof(path), "/deployments/%s/events?since=10m", id);
        r = request(f, "GET", path, NULL, 0);
        assert_int_equal(r.status, 200);
        assert_int_equal(json_array_size(r.json), 1);
        response_clear(&r);
        snprintf(path, sizeof(path), "/deployments/%s/events?since=2099-01-01T00:00:00Z", id);
        r = request(f, "GET", path, NULL, 0);
        assert_int_equal(r.status, 200);
        assert_int_equal(json_array_size(r.json), 0);
        response_clear(&r);
        snprintf(path, sizeof(path), "/deployments/%s/events?since=yesterday", id);
        r = request(f, "GET", path, NULL, 0);
        assert_problem(&r, 400, "urn:husk:problem:bad-query");
        response_clear(&r);
}

/* A config's new data reaches no running instance: each deployment whose volumes use it gets a
 * ConfigChanged event saying so; one that does not, and a PUT that changes nothing, get none. */
static void test_config_change_tells_its_users(void **state) {
        fixture_t *f = *state;
        static const char config[] = "{\"name\": \"site\", \"data\": {\"a\": \"1\"}}";
        static const char same[] = "{\"data\": {\"a\": \"1\"}}", changed[] = "{\"data\": {\"a\": \"2\"}}";
        const char *names[] = { "user", "bystander" };
        store_deployment_t d[2] = {};
        response_t r;

        for (size_t k = 0; k < 2; k++) {
                json_t *in = json_pack("{s:s, s:s, s:i}", "name", names[k], "image", "/img", "replicas", 0);
                json_t *violations = NULL;
                manifest_t m = {};

                assert_int_equal(manifest_parse(in, &m, &violations), 0);
                json_decref(in);
                /* Volumes are the volumes work's to validate; the spec is what the store reads. */
                if (k == 0)
                        json_object_set_new(m.spec, "volumes",
                                            json_pack("[{s:s, s:s, s:s}]", "type", "config", "source", "site",
                                                      "destination", "/etc/site"));
                assert_int_equal(store_deployment_apply(f->api->store, &m, &d[k]), STORE_APPLY_CREATED);
                manifest_clear(&m);
        }
        r = request(f, "POST", "/configs", config, strlen(config));
        assert_int_equal(r.status, 201);
        response_clear(&r);
        r = request(f, "PUT", "/configs/site", same, strlen(same));
        assert_int_equal(r.status, 200);
        response_clear(&r);
        r = request(f, "PUT", "/configs/site", changed, strlen(changed));
        assert_int_equal(r.status, 200);
        assert_int_equal(json_integer_value(json_object_get(r.json, "version")), 2);
        response_clear(&r);

        for (size_t k = 0; k < 2; k++) {
                event_t *e = NULL;
                size_t n = 0, found = 0;

                assert_int_equal(
                        store_event_list(f->api->store, d[k].d.id, &(store_event_filter_t){ .limit = 100 }, &e, &n), 0);
                for (size_t i = 0; i < n; i++)
                        if (streq(e[i].reason, EVENT_CONFIG_CHANGED)) {
                                assert_non_null(strstr(e[i].message, "config site changed (version 2)"));
                                found++;
                        }
                assert_int_equal(found, k == 0 ? 1 : 0);
                store_event_array_free(e, n);
                store_deployment_clear(&d[k]);
        }
        r = request(f, "DELETE", "/configs/site", NULL, 0);
        assert_int_equal(r.status, 204);
        response_clear(&r);
}

static void test_listen_spec(void **state) {
        static const struct {
                const char *in, *out;
        } ok[] = {
                { "127.0.0.1:3030", "127.0.0.1:3030" },
                { "localhost:8080", "127.0.0.1:8080" },
                { "[::1]:3030", "[::1]:3030" },
                { "3030", "127.0.0.1:3030" },
        };
        static const char *const bad[] = { "nonsense",        "127.0.0.1:", ":3030",         "127.0.0.1:0",
                                           "127.0.0.1:65536", "::1:3030",   "127.0.0.1:30x", "" };
        char buf[64];

        for (size_t i = 0; i < ELEMENTSOF(ok); i++) {
                assert_int_equal(http_listen_spec(ok[i].in, buf, sizeof(buf)), 0);
                assert_string_equal(buf, ok[i].out);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                if (http_listen_spec(bad[i], buf, sizeof(buf)) != -EINVAL)
                        fail_msg("\"%s\" accepted", bad[i]);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup(test_healthz, reset),
                cmocka_unit_test_setup(test_config_change_tells_its_users, reset),
                cmocka_unit_test_setup(test_create_unchanged_updated, reset),
                cmocka_unit_test_setup(test_bad_input_stores_and_publishes_nothing, reset),
                cmocka_unit_test_setup(test_body_over_1mib_is_413, reset),
                cmocka_unit_test_setup(test_not_found_and_method_not_allowed, reset),
                cmocka_unit_test_setup(test_list_filters, reset),
                cmocka_unit_test_setup(test_get_without_vmm_driver_still_answers, reset),
                cmocka_unit_test_setup(test_delete_then_conflict, reset),
                cmocka_unit_test_setup(test_deep_bodies_are_refused_and_the_server_lives, reset),
                cmocka_unit_test_setup(test_unknown_query_parameters_are_refused_everywhere, reset),
                cmocka_unit_test_setup(test_dry_run_stores_nothing, reset),
                cmocka_unit_test_setup(test_exec_body_is_checked_first, reset),
                cmocka_unit_test_setup(test_query_values_are_checked, reset),
                cmocka_unit_test_setup(test_config_freed_by_reload_is_not_read, reset), /* last */
        };
        const struct CMUnitTest pure[] = {
                cmocka_unit_test(test_listen_spec),
        };
        int r;

        r = cmocka_run_group_tests(pure, NULL, NULL);
        if (r != 0)
                return r;
        curl_global_init(CURL_GLOBAL_DEFAULT);
        r = cmocka_run_group_tests(tests, group_setup, group_teardown);
        curl_global_cleanup();
        return r;
}
