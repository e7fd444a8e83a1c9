/* test_webhook.c: webhook rules (signature vector, back-off schedule, filter matching, URL
 * check) and the store's side: secret sealed, deliveries queued with their event, attempts kept. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "lib/util.h"
#include "services/apiserver/apiserver_secrets.h"
#include "services/apiserver/apiserver_store_webhooks.h"
#include "services/apiserver/apiserver_webhook.h"

/* RFC 4231, test case 2: HMAC-SHA256 with the key "Jefe". A receiver's hmac.new(secret, body,
 * sha256).hexdigest() computes exactly this. */
static void test_signature_vector(void **state) {
        char sig[WEBHOOK_SIGNATURE_LEN];

        assert_true(sodium_init() >= 0);
        webhook_sign("Jefe", 4, "what do ya want for nothing?", 28, sig);
        assert_string_equal(sig, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        /* A key longer than a block is hashed first, as HMAC says (RFC 4231 test case 6). */
        {
                char key[131];
                memset(key, 0xaa, sizeof(key));
                webhook_sign(key, sizeof(key), "Test Using Larger Than Block-Size Key - Hash Key First", 54, sig);
                assert_string_equal(sig, "sha256=60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
        }
}

static void test_backoff_schedule(void **state) {
        /* Doubling from the initial wait, capped, each wait in the upper half of its step. */
        static const uint64_t step[] = { 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000 };

        for (uint32_t n = 1; n <= ELEMENTSOF(step); n++) {
                uint64_t d = step[n - 1];

                assert_int_equal(webhook_backoff_ms(1000, 30000, n, 0), d - d / 2);
                assert_int_equal(webhook_backoff_ms(1000, 30000, n, (uint32_t)(d / 2)), d);
                assert_int_equal(webhook_backoff_ms(1000, 30000, n, UINT32_MAX) <= d, true);
                assert_int_equal(webhook_backoff_ms(1000, 30000, n, UINT32_MAX) >= d - d / 2, true);
        }
        /* Jitter spreads receivers that failed together. */
        assert_int_not_equal(webhook_backoff_ms(1000, 30000, 3, 17), webhook_backoff_ms(1000, 30000, 3, 1234));
        /* Many failures neither overflow nor pass the cap. */
        assert_int_equal(webhook_backoff_ms(5000, 3600000, 200, 1800000), 3600000);
        assert_int_equal(webhook_backoff_ms(0, 0, 1, 0), 1);
}

static json_t *load(const char *text) {
        json_t *j = json_loads(text, 0, NULL);

        assert_non_null(j);
        return j;
}

static void test_filter(void **state) {
        json_t *violations = json_array(), *j;
        webhook_filter_t f = {};

        /* Empty: everything. */
        assert_int_equal(webhook_filter_from_json(NULL, "filter", violations, &f), 0);
        assert_true(webhook_filter_matches(&f, "default", "info", "Created"));
        webhook_filter_clear(&f);

        j = load("{\"reasons\": [\"Created\", \"BackOff\"], \"level\": \"warning\", \"namespaces\": [\"prod\"]}");
        assert_int_equal(webhook_filter_from_json(j, "filter", violations, &f), 0);
        json_decref(j);
        assert_true(webhook_filter_matches(&f, "prod", "warning", "BackOff"));
        assert_true(webhook_filter_matches(&f, "prod", "error", "Created"));  /* more severe passes */
        assert_false(webhook_filter_matches(&f, "prod", "info", "Created"));  /* below the level */
        assert_false(webhook_filter_matches(&f, "dev", "error", "Created"));  /* another namespace */
        assert_false(webhook_filter_matches(&f, "prod", "error", "Deleted")); /* another reason */
        j = webhook_filter_to_json(&f);
        assert_non_null(j);
        {
                char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
                assert_string_equal(
                        text,
                        "{\"level\":\"warning\",\"namespaces\":[\"prod\"],\"reasons\":[\"Created\",\"BackOff\"]}");
                free(text);
        }
        json_decref(j);
        webhook_filter_clear(&f);
        assert_int_equal(json_array_size(violations), 0);

        /* Each problem names its field. */
        j = load("{\"reasons\": [\"Created\", \"not a reason\"], \"level\": \"loud\", \"namespaces\": \"prod\", "
                 "\"kind\": 1}");
        assert_int_equal(webhook_filter_from_json(j, "filter", violations, &f), -EINVAL);
        json_decref(j);
        {
                const char *want[] = { "filter.kind", "filter.reasons[1]", "filter.namespaces", "filter.level" };
                assert_int_equal(json_array_size(violations), ELEMENTSOF(want));
                for (size_t i = 0; i < ELEMENTSOF(want); i++)
                        assert_string_equal(json_string_value(json_object_get(json_array_get(violations, i), "field")),
                                            want[i]);
        }
        json_decref(violations);
}

static void test_url(void **state) {
        static const char *const good[] = {
                "http://127.0.0.1:8080/hook",
                "https://hooks.example.com/x?token=abc",
                "HTTP://example.com",
                "http://[::1]:9/",
                "https://example.com:443/a/b%20c",
        };
        static const char *const bad[] = {
                "",           "ftp://example.com/x", "file:///etc/passwd",   "example.com/hook",
                "http://",    "http:///path",        "http://exa mple.com/", "http://example.com/\n",
                "gopher://x", "javascript:alert(1)",
        };

        for (size_t i = 0; i < ELEMENTSOF(good); i++)
                if (webhook_url_problem(good[i]))
                        fail_msg("%s refused: %s", good[i], webhook_url_problem(good[i]));
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                if (!webhook_url_problem(bad[i]))
                        fail_msg("%s accepted", bad[i]);
        assert_non_null(webhook_url_problem(NULL));
        assert_string_equal(webhook_url_problem("ftp://example.com/x"), "the scheme must be http or https");
        {
                char long_url[WEBHOOK_URL_MAX + 16];
                memset(long_url, 'a', sizeof(long_url) - 1);
                memcpy(long_url, "http://x/", 9);
                long_url[sizeof(long_url) - 1] = '\0';
                assert_non_null(webhook_url_problem(long_url));
        }
}

/* ---- the store ---- */

typedef struct fixture {
        char dir[64];
        char path[128];
        apiserver_store_t *store;
        store_deployment_t d;
} fixture_t;

static int setup(void **state) {
        fixture_t *f = calloc(1, sizeof(*f));
        json_t *in, *violations = NULL;
        uint8_t key[SECRETS_KEY_LEN];
        manifest_t m = {};

        assert_non_null(f);
        snprintf(f->dir, sizeof(f->dir), "/tmp/husk-test-webhook.XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->path, sizeof(f->path), "%s/husk.db", f->dir);
        assert_int_equal(store_open(f->path, &f->store), 0);
        assert_true(sodium_init() >= 0);
        randombytes_buf(key, sizeof(key));
        assert_int_equal(store_secrets_key_set(f->store, key), 0);
        in = json_loads("{\"name\": \"web\", \"namespace\": \"prod\", \"image\": \"/img\"}", 0, NULL);
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

static int record(fixture_t *f, const char *level, const char *reason) {
        event_t e = {
                .deployment_id = f->d.d.id,
                .level = (char *)level,
                .component = (char *)"scheduler",
                .reason = (char *)reason,
                .message = (char *)"something happened",
        };

        return store_event_record(f->store, &e);
}

static void create(fixture_t *f, const char *name, const char *filter, store_webhook_t *ret) {
        webhook_filter_t flt = {};
        json_t *j = filter ? load(filter) : NULL;

        assert_int_equal(webhook_filter_from_json(j, "filter", NULL, &flt), 0);
        json_decref(j);
        assert_int_equal(store_webhook_create(f->store, name, "http://127.0.0.1:9/hook", &flt,
                                              "0123456789abcdef-secret", 23, ret),
                         0);
        webhook_filter_clear(&flt);
}

static void test_store_queue(void **state) {
        fixture_t *f = *state;
        store_webhook_t all = {}, errors = {}, other = {}, got = {};
        store_delivery_due_t *due = NULL;
        store_delivery_t *list = NULL, d = {};
        char *url = NULL, *secret = NULL, *raw = NULL;
        size_t n = 0, secret_n = 0;
        uint64_t counts[_STORE_DELIVERY_STATE_MAX];

        /* No webhook: nothing queued. */
        assert_int_equal(record(f, "info", "Created"), 0);

        create(f, "all", NULL, &all);
        create(f, "", "{\"level\": \"error\"}", &errors);
        create(f, "other", "{\"namespaces\": [\"dev\"]}", &other);
        assert_string_equal(all.name, "all");
        assert_int_equal(store_webhook_get(f->store, "all", &got), 0); /* by name */
        assert_string_equal(got.id, all.id);
        store_webhook_clear(&got);
        {
                store_webhook_t dup = {};
                webhook_filter_t flt = {};
                assert_int_equal(store_webhook_create(f->store, "all", "http://x/", &flt, "0123456789abcdef", 16, &dup),
                                 -EEXIST);
        }

        /* The secret is sealed: its bytes are nowhere in the database's files. */
        for (int i = 0; i < 2; i++) {
                char path[160];
                snprintf(path, sizeof(path), "%s%s", f->path, i ? "-wal" : "");
                assert_int_equal(read_file(path, 64 << 20, &raw, &n), 0);
                assert_true(n > 0);
                assert_null(memmem(raw, n, "0123456789abcdef-secret", 23));
                free(raw);
        }

        /* info Created: the unfiltered webhook only; error: both in prod; never "other". */
        assert_int_equal(record(f, "info", "Created"), 1);
        assert_int_equal(record(f, "error", "Failed"), 2);
        assert_int_equal(store_delivery_list(f->store, all.id, 10, &list, &n), 0);
        assert_int_equal(n, 2);
        assert_string_equal(list[0].reason, "Failed"); /* newest first */
        assert_string_equal(list[1].reason, "Created");
        assert_int_equal(list[0].state, STORE_DELIVERY_PENDING);
        assert_non_null(strstr(list[1].body, "\"namespace\":\"prod\""));
        assert_non_null(strstr(list[1].body, "\"deployment\":\"web\""));
        assert_non_null(strstr(list[1].body, "\"reason\":\"Created\""));
        store_delivery_array_free(list, n);

        /* One due delivery per webhook, the oldest. */
        assert_int_equal(store_delivery_due(f->store, &due, &n), 0);
        assert_int_equal(n, 2);
        for (size_t i = 0; i < n; i++)
                if (streq(due[i].webhook_id, all.id)) {
                        assert_int_equal(store_delivery_load(f->store, due[i].id, &d, &url, &secret, &secret_n), 0);
                        assert_string_equal(d.reason, "Created");
                }
        free(due);
        assert_string_equal(url, "http://127.0.0.1:9/hook");
        assert_memory_equal(secret, "0123456789abcdef-secret", 23);
        secrets_free(secret, secret_n);
        free(url);

        /* Two failed attempts then a delivered one: the history keeps each. */
        for (uint32_t a = 1; a <= 3; a++) {
                store_attempt_t at = {
                        .attempt = a,
                        .at = 1000 * a,
                        .duration_ms = 5,
                        .status = a < 3 ? 503 : 200,
                        .error = (char *)(a < 3 ? "the receiver answered HTTP 503" : ""),
                };
                assert_int_equal(store_delivery_finish(f->store, d.id, &at,
                                                       a < 3 ? STORE_DELIVERY_PENDING : STORE_DELIVERY_DELIVERED, 5000),
                                 0);
        }
        {
                store_attempt_t again = { .attempt = 4 };
                /* Delivered is final. */
                assert_int_equal(store_delivery_finish(f->store, d.id, &again, STORE_DELIVERY_DEAD, 0), -ENOENT);
        }
        assert_int_equal(store_delivery_list(f->store, all.id, 10, &list, &n), 0);
        assert_int_equal(list[1].state, STORE_DELIVERY_DELIVERED);
        assert_int_equal(list[1].attempts, 3);
        assert_int_equal(list[1].n_history, 3);
        assert_int_equal(list[1].history[0].status, 503);
        assert_string_equal(list[1].history[1].error, "the receiver answered HTTP 503");
        assert_int_equal(list[1].history[2].status, 200);
        store_delivery_array_free(list, n);
        store_delivery_clear(&d);

        assert_int_equal(store_delivery_counts(f->store, counts), 0);
        assert_int_equal(counts[STORE_DELIVERY_PENDING], 2);
        assert_int_equal(counts[STORE_DELIVERY_DELIVERED], 1);

        /* Deleting a webhook takes its deliveries. */
        assert_int_equal(store_webhook_delete(f->store, errors.id), 0);
        assert_int_equal(store_webhook_delete(f->store, errors.id), -ENOENT);
        assert_int_equal(store_delivery_counts(f->store, counts), 0);
        assert_int_equal(counts[STORE_DELIVERY_PENDING], 1);

        store_webhook_clear(&all);
        store_webhook_clear(&errors);
        store_webhook_clear(&other);
}

/* A delivery is queued in the event's transaction: an event that fails to store queues none. */
static void test_store_unknown_deployment_queues_nothing(void **state) {
        fixture_t *f = *state;
        store_webhook_t w = {};
        uint64_t counts[_STORE_DELIVERY_STATE_MAX];
        event_t e = {
                .deployment_id = (char *)"00000000-0000-4000-8000-000000000000",
                .level = (char *)"error",
                .component = (char *)"scheduler",
                .reason = (char *)"Failed",
                .message = (char *)"x",
        };

        create(f, "", NULL, &w);
        assert_int_equal(store_event_record(f->store, &e), -ENOENT);
        assert_int_equal(store_delivery_counts(f->store, counts), 0);
        assert_int_equal(counts[STORE_DELIVERY_PENDING], 0);
        store_webhook_clear(&w);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_signature_vector),
                cmocka_unit_test(test_backoff_schedule),
                cmocka_unit_test(test_filter),
                cmocka_unit_test(test_url),
                cmocka_unit_test_setup_teardown(test_store_queue, setup, teardown),
                cmocka_unit_test_setup_teardown(test_store_unknown_deployment_queues_nothing, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
