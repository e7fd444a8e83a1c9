/* test_store.c: the deployment store on a real sqlite file: migrations, apply, filters, status, delete and purge. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/util.h"
#include "lib/nesting.h"
#include "services/apiserver/apiserver_json.h"
#include "services/apiserver/apiserver_manifest.h"
#include "services/apiserver/apiserver_ports.h"
#include "services/apiserver/apiserver_store.h"

typedef struct fixture {
        char dir[64];
        char path[128];
        apiserver_store_t *store;
} fixture_t;

static int setup(void **state) {
        fixture_t *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        snprintf(f->dir, sizeof(f->dir), "/tmp/husk-test-store.XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->path, sizeof(f->path), "%s/husk.db", f->dir);
        assert_int_equal(store_open(f->path, &f->store), 0);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        fixture_t *f = *state;

        store_close(&f->store);
        assert_int_equal(rm_rf(f->dir), 0);
        free(f);
        return 0;
}

/* A manifest through the real validator, so the store sees what the REST route gives it. */
static manifest_t manifest(const char *text) {
        char buf[2048];
        json_t *in, *violations = NULL;
        manifest_t m = {};

        for (size_t i = 0; i <= strlen(text); i++)
                buf[i] = text[i] == '\'' ? '"' : text[i];
        in = json_loads(buf, 0, NULL);
        assert_non_null(in);
        assert_int_equal(manifest_parse(in, &m, &violations), 0);
        json_decref(in);
        return m;
}

/* Apply a manifest and hand back the stored row. */
static store_deployment_t apply(fixture_t *f, const char *text, int want) {
        manifest_t m = manifest(text);
        store_deployment_t d = {};

        assert_int_equal(store_deployment_apply(f->store, &m, &d), want);
        manifest_clear(&m);
        return d;
}

static void test_migrations_fresh_and_reopen(void **state) {
        fixture_t *f = *state;
        store_deployment_t d = apply(f, "{'name': 'web', 'image': '/img'}", STORE_APPLY_CREATED), again = {};
        struct stat st;

        assert_int_equal(store_schema_version(f->store), 9);
        assert_int_equal(stat(f->path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);

        /* Re-opening runs no migration twice and keeps the data. */
        store_close(&f->store);
        assert_int_equal(store_open(f->path, &f->store), 0);
        assert_int_equal(store_schema_version(f->store), 9);
        assert_int_equal(store_deployment_get(f->store, d.d.id, &again), 0);
        assert_string_equal(again.d.name, "web");
        assert_int_equal(store_ping(f->store), 0);
        store_deployment_clear(&d);
        store_deployment_clear(&again);
}

static void test_database_from_newer_husk_is_refused(void **state) {
        fixture_t *f = *state;
        sqlite3 *db;

        store_close(&f->store);
        assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
        assert_int_equal(store_open(f->path, &f->store), -EPROTONOSUPPORT);
        assert_null(f->store);
}

static void test_apply_creates_with_every_column(void **state) {
        fixture_t *f = *state;
        store_deployment_t d =
                apply(f,
                      "{'name': 'web', 'namespace': 'prod', 'runtime': 'cloud-hypervisor', 'kind': 'job',"
                      " 'image': '/img.raw', 'kernel': '/vmlinux', 'replicas': 1,"
                      " 'labels': {'app': 'web'}, 'ports': [{'published': 80, 'target': 8080}],"
                      " 'resources': {'limits': {'cpu': 2, 'memory': '1Gi'}}}",
                      STORE_APPLY_CREATED);
        uint64_t now = now_realtime_ms();
        json_auto_t *spec = json_loads(d.spec, 0, NULL);

        assert_int_equal(strlen(d.d.id), STORE_UUID_LEN);
        assert_string_equal(d.d.namespace_, "prod");
        assert_string_equal(d.d.name, "web");
        assert_int_equal(d.d.generation, 1);
        assert_string_equal(d.d.status, "pending");
        assert_string_equal(d.status_message, "");
        assert_string_equal(d.d.runtime, "cloud-hypervisor");
        assert_string_equal(d.d.kind, "job");
        assert_string_equal(d.d.image, "/img.raw");
        assert_string_equal(d.d.kernel, "/vmlinux");
        assert_int_equal(d.d.replicas, 1); /* ports: need a single replica */
        assert_int_equal(d.d.cpus, 2);
        assert_int_equal(d.d.memory_mib, 1024);
        assert_int_equal(d.d.ready_replicas, 0);
        assert_int_equal(d.restart_count, 0);
        assert_string_equal(d.labels, "{\"app\":\"web\"}");
        assert_non_null(spec);
        assert_int_equal(
                json_integer_value(json_object_get(json_array_get(json_object_get(spec, "ports"), 0), "target")), 8080);
        assert_true(d.created_at <= now && d.created_at + 10000 > now);
        assert_int_equal(d.updated_at, d.created_at);
        store_deployment_clear(&d);
}

static void test_get_by_id_and_name(void **state) {
        fixture_t *f = *state;
        store_deployment_t d = apply(f, "{'name': 'web', 'image': '/img'}", STORE_APPLY_CREATED), g = {};

        assert_int_equal(store_deployment_get(f->store, d.d.id, &g), 0);
        assert_string_equal(g.d.name, "web");
        assert_null(g.d.kernel);
        store_deployment_clear(&g);
        assert_int_equal(store_deployment_get_by_name(f->store, "default", "web", &g), 0);
        assert_string_equal(g.d.id, d.d.id);
        store_deployment_clear(&g);
        assert_int_equal(store_deployment_get(f->store, "00000000-0000-4000-8000-000000000000", &g), -ENOENT);
        assert_int_equal(store_deployment_get_by_name(f->store, "other", "web", &g), -ENOENT);
        store_deployment_clear(&d);
}

static void test_reapply_unchanged_then_updated(void **state) {
        fixture_t *f = *state;
        store_deployment_t a =
                apply(f, "{'name': 'web', 'image': '/img', 'resources': {'limits': {'memory': '512Mi'}}}",
                      STORE_APPLY_CREATED);
        /* the same manifest written differently is the same spec */
        store_deployment_t b = apply(f,
                                     "{'name': 'web', 'namespace': 'default', 'image': '/img', 'replicas': 1,"
                                     " 'resources': {'limits': {'memory': 536870912}}}",
                                     STORE_APPLY_UNCHANGED);
        store_deployment_t c = {}, u = {};
        store_status_update_t running = { .status = "running", .message = "1/1 instances ready" };

        assert_string_equal(b.d.id, a.d.id);
        assert_int_equal(b.d.generation, 1);

        /* a live status survives a new generation: the scheduler rolls instances over */
        assert_true(store_deployment_set_status(f->store, a.d.id, &running, &u) > 0);
        store_deployment_clear(&u);
        c = apply(f, "{'name': 'web', 'image': '/img2', 'replicas': 2, 'labels': {'v': '2'}}", STORE_APPLY_UPDATED);
        assert_string_equal(c.d.id, a.d.id);
        assert_int_equal(c.d.generation, 2);
        assert_string_equal(c.d.status, "running");
        assert_string_equal(c.status_message, "1/1 instances ready");
        assert_string_equal(c.d.image, "/img2");
        assert_int_equal(c.d.replicas, 2);
        assert_int_equal(c.d.memory_mib, 256);
        assert_string_equal(c.labels, "{\"v\":\"2\"}");
        assert_int_equal(c.created_at, a.created_at);
        store_deployment_clear(&a);
        store_deployment_clear(&b);
        store_deployment_clear(&c);
}

static void test_new_generation_restarts_a_finished_deployment(void **state) {
        fixture_t *f = *state;
        store_deployment_t a = apply(f, "{'name': 'batch', 'kind': 'job', 'image': '/img'}", STORE_APPLY_CREATED),
                           b = {};
        store_status_update_t failed = { .status = "failed", .message = "job exited with status 1" };

        assert_true(store_deployment_set_status(f->store, a.d.id, &failed, &b) > 0);
        store_deployment_clear(&b);
        b = apply(f, "{'name': 'batch', 'kind': 'job', 'image': '/img', 'command': ['/bin/true']}",
                  STORE_APPLY_UPDATED);
        assert_int_equal(b.d.generation, 2);
        assert_string_equal(b.d.status, "pending");
        assert_string_equal(b.status_message, "");
        store_deployment_clear(&a);
        store_deployment_clear(&b);
}

static void test_unique_name_conflict(void **state) {
        fixture_t *f = *state;
        manifest_t m = manifest("{'name': 'web', 'image': '/img'}");
        manifest_t other_ns = manifest("{'name': 'web', 'namespace': 'staging', 'image': '/img'}");
        store_deployment_t d = {}, e = {};

        assert_int_equal(store_deployment_insert(f->store, &m, &d), 0);
        assert_int_equal(store_deployment_insert(f->store, &m, &e), -EEXIST);
        assert_int_equal(store_deployment_insert(f->store, &other_ns, &e), 0);
        assert_string_not_equal(d.d.id, e.d.id);
        store_deployment_clear(&d);
        store_deployment_clear(&e);
        manifest_clear(&m);
        manifest_clear(&other_ns);
}

/* A filter matching one value. */
#define ONE(s) \
        { .v = { s }, .n = 1 }

static size_t count(fixture_t *f, const store_filter_t *filter, const char *first_name) {
        store_deployment_t *a = NULL;
        size_t n = 0;

        assert_int_equal(store_deployment_list(f->store, filter, &a, &n), 0);
        if (first_name) {
                assert_true(n > 0);
                assert_string_equal(a[0].d.name, first_name);
        }
        store_deployment_array_free(a, n);
        return n;
}

static void test_list_filters(void **state) {
        fixture_t *f = *state;
        store_deployment_t d[] = {
                apply(f, "{'name': 'web', 'image': '/i', 'labels': {'app': 'web', 'tier': 'front'}}",
                      STORE_APPLY_CREATED),
                apply(f, "{'name': 'api', 'image': '/i', 'labels': {'app': 'api', 'tier': 'back'}}",
                      STORE_APPLY_CREATED),
                apply(f, "{'name': 'web', 'namespace': 'prod', 'image': '/i', 'labels': {'app': 'web'}}",
                      STORE_APPLY_CREATED),
        };
        store_deployment_t u = {};
        store_status_update_t running = { .status = "running" };
        store_label_t app_web[] = { { "app", "web" } }, web_front[] = { { "app", "web" }, { "tier", "front" } },
                      none[] = { { "app", "db" } }, key_only[] = { { "tier", "" } };
        store_label_t too_many[STORE_LABEL_FILTERS_MAX + 1] = {};
        store_deployment_t *a = NULL;
        size_t n = 0;

        assert_true(store_deployment_set_status(f->store, d[1].d.id, &running, &u) > 0);
        store_deployment_clear(&u);

        /* ordered by namespace, then name */
        assert_int_equal(count(f, NULL, "api"), 3);
        assert_int_equal(count(f, &(store_filter_t){ .namespaces = ONE("default") }, "api"), 2);
        assert_int_equal(count(f, &(store_filter_t){ .namespaces = ONE("prod") }, "web"), 1);
        assert_int_equal(count(f, &(store_filter_t){ .namespaces = ONE("nowhere") }, NULL), 0);
        assert_int_equal(count(f, &(store_filter_t){ .statuses = ONE("running") }, "api"), 1);
        assert_int_equal(count(f, &(store_filter_t){ .statuses = ONE("pending") }, "web"), 2);
        assert_int_equal(count(f, &(store_filter_t){ .labels = app_web, .n_labels = 1 }, "web"), 2);
        assert_int_equal(count(f, &(store_filter_t){ .labels = web_front, .n_labels = 2 }, "web"), 1);
        assert_int_equal(count(f, &(store_filter_t){ .labels = none, .n_labels = 1 }, NULL), 0);
        assert_int_equal(count(f, &(store_filter_t){ .labels = key_only, .n_labels = 1 }, NULL), 0);
        assert_int_equal(
                count(f, &(store_filter_t){ .namespaces = ONE("prod"), .labels = web_front, .n_labels = 2 }, NULL), 0);
        assert_int_equal(count(f,
                               &(store_filter_t){ .namespaces = ONE("default"),
                                                  .statuses = ONE("pending"),
                                                  .labels = app_web,
                                                  .n_labels = 1 },
                               "web"),
                         1);
        /* Any of several values (Ring's namespace[]=a&namespace[]=b), and the kind. */
        assert_int_equal(count(f, &(store_filter_t){ .namespaces = { .v = { "prod", "default" }, .n = 2 } }, "api"), 3);
        assert_int_equal(count(f, &(store_filter_t){ .statuses = { .v = { "running", "failed" }, .n = 2 } }, "api"), 1);
        assert_int_equal(count(f, &(store_filter_t){ .kinds = ONE("worker") }, "api"), 3);
        assert_int_equal(count(f, &(store_filter_t){ .kinds = ONE("job") }, NULL), 0);
        assert_int_equal(
                store_deployment_list(f->store,
                                      &(store_filter_t){ .labels = too_many, .n_labels = STORE_LABEL_FILTERS_MAX + 1 },
                                      &a, &n),
                -E2BIG);
        assert_int_equal(
                store_deployment_list(f->store, &(store_filter_t){ .kinds = { .n = STORE_ANY_OF_MAX + 1 } }, &a, &n),
                -E2BIG);
        for (size_t i = 0; i < ELEMENTSOF(d); i++)
                store_deployment_clear(&d[i]);
}

static void test_set_status(void **state) {
        fixture_t *f = *state;
        store_deployment_t d = apply(f, "{'name': 'web', 'image': '/i', 'replicas': 2}", STORE_APPLY_CREATED), u = {};
        store_status_update_t creating = {
                .status = "creating", .message = "0/2 instances ready", .has_ready_replicas = true, .ready_replicas = 0
        };
        store_status_update_t one_ready = {
                .status = "creating", .message = "1/2 instances ready", .has_ready_replicas = true, .ready_replicas = 1
        };
        store_status_update_t restarted = {
                .status = "creating", .message = "1/2 instances ready", .has_restart_count = true, .restart_count = 4
        };

        assert_int_equal(store_deployment_set_status(f->store, d.d.id, &creating, &u),
                         STORE_CHANGED_STATUS | STORE_CHANGED_MESSAGE);
        assert_string_equal(u.d.status, "creating");
        assert_string_equal(u.status_message, "0/2 instances ready");
        store_deployment_clear(&u);

        /* the same report again changes nothing */
        assert_int_equal(store_deployment_set_status(f->store, d.d.id, &creating, &u), 0);
        store_deployment_clear(&u);

        assert_int_equal(store_deployment_set_status(f->store, d.d.id, &one_ready, &u),
                         STORE_CHANGED_MESSAGE | STORE_CHANGED_COUNTS);
        assert_int_equal(u.d.ready_replicas, 1);
        store_deployment_clear(&u);

        /* counts not given are kept */
        assert_int_equal(store_deployment_set_status(f->store, d.d.id, &restarted, &u), STORE_CHANGED_COUNTS);
        assert_int_equal(u.d.ready_replicas, 1);
        assert_int_equal(u.restart_count, 4);
        assert_int_equal(u.d.generation, 1);
        store_deployment_clear(&u);

        /* a report without a message clears the old one */
        assert_int_equal(
                store_deployment_set_status(f->store, d.d.id, &(store_status_update_t){ .status = "running" }, &u),
                STORE_CHANGED_STATUS | STORE_CHANGED_MESSAGE);
        assert_string_equal(u.status_message, "");
        store_deployment_clear(&u);

        assert_int_equal(
                store_deployment_set_status(f->store, d.d.id, &(store_status_update_t){ .status = "zombie" }, &u),
                -EINVAL);
        assert_int_equal(store_deployment_set_status(f->store, d.d.id, &(store_status_update_t){}, &u), -EINVAL);
        assert_int_equal(store_deployment_set_status(f->store, "nope", &creating, &u), -ENOENT);
        /* only DELETE marks deleted */
        assert_int_equal(
                store_deployment_set_status(f->store, d.d.id, &(store_status_update_t){ .status = "deleted" }, &u),
                -EBUSY);
        store_deployment_clear(&d);
}

static void test_delete_mark_then_purge(void **state) {
        fixture_t *f = *state;
        store_deployment_t d = apply(f, "{'name': 'web', 'image': '/i'}", STORE_APPLY_CREATED), u = {};
        store_status_update_t running = { .status = "running" };
        manifest_t m = manifest("{'name': 'web', 'image': '/i'}");

        assert_int_equal(store_deployment_purge(f->store, d.d.id, NULL), -EBUSY);

        assert_int_equal(store_deployment_mark_deleted(f->store, d.d.id, &u), 1);
        assert_string_equal(u.d.status, "deleted");
        store_deployment_clear(&u);
        assert_int_equal(store_deployment_mark_deleted(f->store, d.d.id, &u), 0);
        store_deployment_clear(&u);

        /* still listed (the scheduler must see it to stop its instances), never revived */
        assert_int_equal(count(f, &(store_filter_t){ .statuses = ONE("deleted") }, "web"), 1);
        assert_int_equal(store_deployment_set_status(f->store, d.d.id, &running, &u), -EBUSY);
        assert_int_equal(store_deployment_apply(f->store, &m, &u), -EBUSY);
        /* the scheduler may still report counts while it tears down */
        assert_int_equal(store_deployment_set_status(f->store, d.d.id,
                                                     &(store_status_update_t){ .status = "deleted",
                                                                               .has_ready_replicas = true,
                                                                               .ready_replicas = 0 },
                                                     &u),
                         0);
        store_deployment_clear(&u);

        assert_int_equal(store_deployment_purge(f->store, d.d.id, &u), 0);
        assert_string_equal(u.d.name, "web");
        store_deployment_clear(&u);
        assert_int_equal(store_deployment_purge(f->store, d.d.id, NULL), -ENOENT);
        assert_int_equal(store_deployment_get(f->store, d.d.id, &u), -ENOENT);
        assert_int_equal(store_deployment_mark_deleted(f->store, d.d.id, &u), -ENOENT);

        /* the name is free again */
        assert_int_equal(store_deployment_apply(f->store, &m, &u), STORE_APPLY_CREATED);
        assert_string_not_equal(u.d.id, d.d.id);
        store_deployment_clear(&u);
        manifest_clear(&m);
        store_deployment_clear(&d);
}

/* A record written before the nesting bound (config: 241 levels deep was accepted then) is
 * listed, read and shown with that column as null and the reason beside it: no reader walks it. */
static void test_record_nested_too_deep_is_reported_not_fatal(void **state) {
        fixture_t *f = *state;
        store_deployment_t d =
                apply(f, "{'name': 'deep', 'image': '/img', 'command': ['/bin/true']}", STORE_APPLY_CREATED);
        store_deployment_t *a = NULL, got = {};
        store_filter_t all = {};
        _cleanup_free_ char *spec = NULL, *sql = NULL;
        size_t n = 0;
        json_t *o;
        sqlite3 *db;
        size_t len = 0;

        spec = malloc(64 + 241 * 6);
        assert_non_null(spec);
        len += (size_t)sprintf(spec, "{\"name\":\"deep\",\"command\":[\"/bin/true\"],\"config\":");
        for (int i = 0; i < 241; i++)
                len += (size_t)sprintf(spec + len, "{\"a\":");
        len += (size_t)sprintf(spec + len, "1");
        for (int i = 0; i < 242; i++)
                spec[len++] = '}';
        spec[len] = '\0';
        assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
        sql = sqlite3_mprintf("UPDATE deployments SET spec = %Q, labels = %Q WHERE id = %Q", spec, spec, d.d.id);
        assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
        sqlite3_free(TAKE_PTR(sql));
        sqlite3_close(db);

        assert_null(stored_json_load(spec));
        assert_int_equal(store_deployment_list(f->store, &all, &a, &n), 0);
        assert_int_equal(n, 1);
        /* What the scheduler is told: the spec cannot be read, so no command, checks or ports. */
        assert_int_equal(store_deployment_derive(&a[0]), 0);
        assert_null(a[0].d.command);
        assert_int_equal(a[0].d.n_health_checks, 0);
        assert_int_equal(a[0].d.n_ports, 0);
        o = deployment_to_json(&a[0]);
        assert_non_null(o);
        assert_true(json_is_null(json_object_get(o, "spec")));
        assert_true(json_is_null(json_object_get(o, "labels")));
        assert_non_null(strstr(json_string_value(json_object_get(o, "spec_error")), "cannot be read"));
        assert_non_null(json_object_get(o, "labels_error"));
        assert_string_equal(json_string_value(json_object_get(o, "name")), "deep");
        json_decref(o);
        store_deployment_array_free(a, n);

        assert_int_equal(store_deployment_get(f->store, d.d.id, &got), 0);
        assert_int_equal(store_deployment_derive(&got), 0);
        assert_null(got.d.command);
        assert_null(got.d.environment);

        /* Applying it again replaces the record, which reads back whole. */
        store_deployment_clear(&got);
        got = apply(f, "{'name': 'deep', 'image': '/img'}", STORE_APPLY_UPDATED);
        o = deployment_to_json(&got);
        assert_true(json_is_object(json_object_get(o, "spec")));
        assert_null(json_object_get(o, "spec_error"));
        json_decref(o);
        store_deployment_clear(&got);
        store_deployment_clear(&d);
}

/* A job's exit code is stored with its status, kept by reports without one, and cleared by a re-apply. */
static void test_exit_code(void **state) {
        fixture_t *f = *state;
        store_deployment_t d = apply(f, "{'name': 'batch', 'kind': 'job', 'image': '/img'}", STORE_APPLY_CREATED),
                           u = {};
        store_status_update_t failed = { .status = "failed",
                                         .message = "job exited with status 3",
                                         .has_exit_code = true,
                                         .exit_code = 3,
                                         .generation = 1 };
        store_status_update_t stale = { .status = "failed",
                                        .message = "job exited with status 3",
                                        .has_exit_code = true,
                                        .exit_code = 9,
                                        .generation = 7 };

        assert_false(d.has_exit_code);
        assert_int_equal(store_deployment_set_status(f->store, d.d.id, &failed, &u),
                         STORE_CHANGED_STATUS | STORE_CHANGED_MESSAGE | STORE_CHANGED_COUNTS);
        assert_true(u.has_exit_code);
        assert_int_equal(u.exit_code, 3);
        store_deployment_clear(&u);
        assert_int_equal(store_deployment_get(f->store, d.d.id, &u), 0);
        assert_true(u.has_exit_code && u.exit_code == 3);
        store_deployment_clear(&u);

        /* Planned against another generation: dropped. Without one: the stored code stays. */
        assert_int_equal(store_deployment_set_status(f->store, d.d.id, &stale, &u), 0);
        assert_int_equal(u.exit_code, 3);
        store_deployment_clear(&u);
        assert_int_equal(
                store_deployment_set_status(f->store, d.d.id, &(store_status_update_t){ .status = "failed" }, &u),
                STORE_CHANGED_MESSAGE);
        assert_true(u.has_exit_code && u.exit_code == 3);
        store_deployment_clear(&u);

        /* A new generation runs the job again: no exit code until it ends. */
        u = apply(f, "{'name': 'batch', 'kind': 'job', 'image': '/img', 'command': ['/bin/true']}",
                  STORE_APPLY_UPDATED);
        assert_false(u.has_exit_code);
        store_deployment_clear(&u);
        store_deployment_clear(&d);
}

static store_exit_t exited(const char *id, uint64_t exited_at, int64_t status) {
        return (store_exit_t){ .instance_id = (char *)id,
                               .generation = 1,
                               .address = "10.42.0.2",
                               .started_at = exited_at - 1000,
                               .exited_at = exited_at,
                               .exit_reason = "guest-shutdown",
                               .exit_status = status };
}

/* The newest STORE_EXITS_PER_DEPLOYMENT exits, newest first; a resend is stored once; gone with
 * the deployment. */
static void test_exited_instances(void **state) {
        fixture_t *f = *state;
        store_deployment_t d = apply(f, "{'name': 'web', 'image': '/i'}", STORE_APPLY_CREATED), u = {};
        store_exit_t e = exited("00000000000a", 1795325000000ULL, 3), *a = NULL;
        size_t n = 0;

        assert_int_equal(store_exit_list(f->store, d.d.id, &a, &n), 0);
        assert_int_equal(n, 0);
        store_exit_array_free(a, n);

        assert_int_equal(store_exit_record(f->store, d.d.id, &e), 0);
        assert_int_equal(store_exit_record(f->store, d.d.id, &e), 0); /* a resend */
        assert_int_equal(store_exit_list(f->store, d.d.id, &a, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(a[0].instance_id, "00000000000a");
        assert_string_equal(a[0].address, "10.42.0.2");
        assert_string_equal(a[0].exit_reason, "guest-shutdown");
        assert_int_equal(a[0].exit_status, 3);
        assert_int_equal(a[0].started_at, 1795324999000ULL);
        assert_int_equal(a[0].exited_at, 1795325000000ULL);
        assert_int_equal(a[0].generation, 1);
        store_exit_array_free(a, n);

        /* Recorded out of order: the newest by exit time stay. No address: NULL. */
        e = exited("00000000000c", 1795325300000ULL, 137);
        e.address = NULL;
        assert_int_equal(store_exit_record(f->store, d.d.id, &e), 0);
        e = exited("00000000000b", 1795325200000ULL, 1);
        assert_int_equal(store_exit_record(f->store, d.d.id, &e), 0);
        e = exited("00000000000d", 1795325400000ULL, 0);
        assert_int_equal(store_exit_record(f->store, d.d.id, &e), 0);
        assert_int_equal(store_exit_list(f->store, d.d.id, &a, &n), 0);
        assert_int_equal(n, STORE_EXITS_PER_DEPLOYMENT);
        assert_string_equal(a[0].instance_id, "00000000000d");
        assert_string_equal(a[1].instance_id, "00000000000c");
        assert_null(a[1].address);
        assert_string_equal(a[2].instance_id, "00000000000b");
        store_exit_array_free(a, n);

        e = exited("00000000000e", 1795325400000ULL, 0);
        assert_int_equal(store_exit_record(f->store, "no-such-deployment", &e), -ENOENT);

        /* Purged with its deployment. */
        assert_int_equal(store_deployment_mark_deleted(f->store, d.d.id, &u), 1);
        store_deployment_clear(&u);
        assert_int_equal(store_deployment_purge(f->store, d.d.id, NULL), 0);
        assert_int_equal(store_exit_list(f->store, d.d.id, &a, &n), 0);
        assert_int_equal(n, 0);
        store_exit_array_free(a, n);
        store_deployment_clear(&d);
}

static void test_uuid_v4(void **state) {
        char a[STORE_UUID_LEN + 1], b[STORE_UUID_LEN + 1];

        assert_int_equal(store_uuid_new(a), 0);
        assert_int_equal(store_uuid_new(b), 0);
        assert_int_equal(strlen(a), 36);
        assert_string_not_equal(a, b);
        for (size_t i = 0; i < 36; i++)
                if (i == 8 || i == 13 || i == 18 || i == 23)
                        assert_int_equal(a[i], '-');
                else
                        assert_non_null(strchr("0123456789abcdef", a[i]));
        assert_int_equal(a[14], '4');
        assert_non_null(strchr("89ab", a[19]));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_migrations_fresh_and_reopen, setup, teardown),
                cmocka_unit_test_setup_teardown(test_database_from_newer_husk_is_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_apply_creates_with_every_column, setup, teardown),
                cmocka_unit_test_setup_teardown(test_get_by_id_and_name, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reapply_unchanged_then_updated, setup, teardown),
                cmocka_unit_test_setup_teardown(test_new_generation_restarts_a_finished_deployment, setup, teardown),
                cmocka_unit_test_setup_teardown(test_unique_name_conflict, setup, teardown),
                cmocka_unit_test_setup_teardown(test_list_filters, setup, teardown),
                cmocka_unit_test_setup_teardown(test_set_status, setup, teardown),
                cmocka_unit_test_setup_teardown(test_delete_mark_then_purge, setup, teardown),
                cmocka_unit_test_setup_teardown(test_record_nested_too_deep_is_reported_not_fatal, setup, teardown),
                cmocka_unit_test_setup_teardown(test_exit_code, setup, teardown),
                cmocka_unit_test_setup_teardown(test_exited_instances, setup, teardown),
                cmocka_unit_test(test_uuid_v4),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
