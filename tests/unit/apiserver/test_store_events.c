/* test_store_events.c: the events table (record, newest page and follow cursor, level filter, bound, cascade on purge) and the generation guard on restart counts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/util.h"
#include "services/apiserver/apiserver_store.h"

typedef struct fixture {
        char dir[64];
        char path[128];
        apiserver_store_t *store;
        store_deployment_t d;
} fixture_t;

static int setup(void **state) {
        fixture_t *f = calloc(1, sizeof(*f));
        json_t *in, *violations = NULL;
        manifest_t m = {};

        assert_non_null(f);
        snprintf(f->dir, sizeof(f->dir), "/tmp/husk-test-events.XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->path, sizeof(f->path), "%s/husk.db", f->dir);
        assert_int_equal(store_open(f->path, &f->store), 0);
        in = json_loads("{\"name\": \"web\", \"image\": \"/img\"}", 0, NULL);
        assert_int_equal(manifest_parse(in, &m, &violations), 0);
        json_decref(in);
        assert_int_equal(store_deployment_apply(f->store, &m, &f->d), STORE_APPLY_CREATED);
        manifest_clear(&m);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        fixture_t *f = *state;

        store_deployment_clear(&f->d);
        store_close(&f->store);
        assert_int_equal(rm_rf(f->dir), 0);
        free(f);
        return 0;
}

static uint64_t record(fixture_t *f, const char *level, const char *reason, const char *message) {
        event_t e = {
                .deployment_id = f->d.d.id,
                .level = (char *)level,
                .component = (char *)"scheduler",
                .reason = (char *)reason,
                .message = (char *)message,
        };

        assert_int_equal(store_event_record(f->store, &e), 0);
        assert_true(e.id > 0);
        assert_true(e.timestamp > 0);
        return e.id;
}

static void test_record_and_list(void **state) {
        fixture_t *f = *state;
        store_event_filter_t all = {}, warn = { .min_level = "warning" }, two = { .limit = 2 };
        event_t *a = NULL;
        size_t n = 0;
        uint64_t first;

        first = record(f, "info", "InstanceStarted", "started instance a");
        record(f, "warning", "InstanceExited", "instance a exited");
        record(f, "error", "CrashLoopBackOff", "gave up");

        assert_int_equal(store_event_list(f->store, f->d.d.id, &all, &a, &n), 0);
        assert_int_equal(n, 3);
        assert_int_equal(a[0].id, first); /* oldest first */
        assert_string_equal(a[0].reason, "InstanceStarted");
        assert_string_equal(a[0].component, "scheduler");
        assert_string_equal(a[2].level, "error");
        store_event_array_free(a, n);

        /* A level means that level and the more severe ones. */
        assert_int_equal(store_event_list(f->store, f->d.d.id, &warn, &a, &n), 0);
        assert_int_equal(n, 2);
        assert_string_equal(a[0].reason, "InstanceExited");
        store_event_array_free(a, n);

        /* limit keeps the newest, still in order. */
        assert_int_equal(store_event_list(f->store, f->d.d.id, &two, &a, &n), 0);
        assert_int_equal(n, 2);
        assert_string_equal(a[0].reason, "InstanceExited");
        assert_string_equal(a[1].reason, "CrashLoopBackOff");
        store_event_array_free(a, n);

        /* A follower's cursor returns what came after it, oldest first. */
        two.after_id = first;
        two.limit = 1;
        assert_int_equal(store_event_list(f->store, f->d.d.id, &two, &a, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(a[0].reason, "InstanceExited");
        store_event_array_free(a, n);

        all.min_level = "loud";
        assert_int_equal(store_event_list(f->store, f->d.d.id, &all, &a, &n), -EINVAL);
}

static void test_unknown_deployment(void **state) {
        fixture_t *f = *state;
        event_t e = { .deployment_id = (char *)"nope",
                      .level = (char *)"info",
                      .component = (char *)"x",
                      .reason = (char *)"Y",
                      .message = (char *)"" };

        assert_int_equal(store_event_record(f->store, &e), -ENOENT);
}

static void test_bounded_per_deployment(void **state) {
        fixture_t *f = *state;
        store_event_filter_t all = { .limit = STORE_EVENTS_LIST_MAX };
        event_t *a = NULL;
        size_t n = 0;
        uint64_t last = 0;

        for (int i = 0; i < STORE_EVENTS_PER_DEPLOYMENT + 10; i++)
                last = record(f, "info", "BackOff", "again");
        assert_int_equal(store_event_list(f->store, f->d.d.id, &all, &a, &n), 0);
        assert_int_equal(n, STORE_EVENTS_PER_DEPLOYMENT);
        assert_int_equal(a[n - 1].id, last);
        assert_int_equal(a[0].id, last - STORE_EVENTS_PER_DEPLOYMENT + 1);
        store_event_array_free(a, n);
}

static void test_purge_drops_events(void **state) {
        fixture_t *f = *state;
        store_event_filter_t all = {};
        store_deployment_t d = {};
        event_t *a = NULL;
        size_t n = 0;

        record(f, "info", "Created", "created");
        assert_int_equal(store_deployment_mark_deleted(f->store, f->d.d.id, &d), 1);
        store_deployment_clear(&d);
        assert_int_equal(store_deployment_purge(f->store, f->d.d.id, NULL), 0);
        assert_int_equal(store_event_list(f->store, f->d.d.id, &all, &a, &n), 0);
        assert_int_equal(n, 0);
        store_event_array_free(a, n);
}

/* A pass planned before a re-apply must not undo the re-apply's fresh restart count. */
static void test_restart_counts_of_an_older_generation_are_dropped(void **state) {
        fixture_t *f = *state;
        store_status_update_t u = { .status = "running",
                                    .has_restart_count = true,
                                    .restart_count = 2,
                                    .has_failed_at = true,
                                    .failed_at = 5000,
                                    .generation = 1 };
        store_deployment_t d = {};

        assert_int_equal(f->d.d.generation, 1);
        assert_true(store_deployment_set_status(f->store, f->d.d.id, &u, &d) > 0);
        assert_int_equal(d.restart_count, 2);
        assert_int_equal(d.d.failed_at, 5000);
        store_deployment_clear(&d);

        u.restart_count = 3;
        u.failed_at = 6000;
        u.generation = 7; /* not the stored one */
        u.status = "creating";
        assert_true(store_deployment_set_status(f->store, f->d.d.id, &u, &d) > 0);
        assert_string_equal(d.d.status, "creating"); /* the rest of the report still counts */
        assert_int_equal(d.restart_count, 2);
        assert_int_equal(d.d.failed_at, 5000);
        store_deployment_clear(&d);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_record_and_list, setup, teardown),
                cmocka_unit_test_setup_teardown(test_unknown_deployment, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bounded_per_deployment, setup, teardown),
                cmocka_unit_test_setup_teardown(test_purge_drops_events, setup, teardown),
                cmocka_unit_test_setup_teardown(test_restart_counts_of_an_older_generation_are_dropped, setup,
                                                teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
