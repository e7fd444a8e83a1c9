/* test_secrets.c: the secrets key (made 0600, read back, from the environment, refused when others
 * may read it), sealing (round trip, wrong key, another row, a changed byte), and the store's
 * configs and secrets (no value in the clear in the database file, a wrong key refused). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/util.h"
#include "services/apiserver/apiserver_secrets.h"
#include "services/apiserver/apiserver_store.h"

#define VALUE "s3cr3t-Value-that-must-never-show"

typedef struct fixture {
        char dir[64];
        char key_path[128];
        char db_path[128];
} fixture_t;

static int setup(void **state) {
        fixture_t *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        snprintf(f->dir, sizeof(f->dir), "/tmp/husk-test-secrets.XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->key_path, sizeof(f->key_path), "%s/secrets.key", f->dir);
        snprintf(f->db_path, sizeof(f->db_path), "%s/husk.db", f->dir);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        fixture_t *f = *state;

        assert_int_equal(rm_rf(f->dir), 0);
        free(f);
        return 0;
}

static void test_key_file_made_once(void **state) {
        fixture_t *f = *state;
        uint8_t a[SECRETS_KEY_LEN], b[SECRETS_KEY_LEN];
        struct stat st;
        int made;

        assert_int_equal(secrets_key_load(f->key_path, NULL, a, &made), 0);
        assert_int_equal(made, 1);
        assert_int_equal(stat(f->key_path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(st.st_size, SECRETS_KEY_LEN);
        assert_int_equal(secrets_key_load(f->key_path, "", b, &made), 0);
        assert_int_equal(made, 0);
        assert_memory_equal(a, b, SECRETS_KEY_LEN);

        /* Readable by others: refused, not used. */
        assert_int_equal(chmod(f->key_path, 0644), 0);
        assert_int_equal(secrets_key_load(f->key_path, NULL, b, &made), -EPERM);
}

static void test_key_from_env(void **state) {
        fixture_t *f = *state;
        uint8_t raw[SECRETS_KEY_LEN], key[SECRETS_KEY_LEN];
        char b64[sodium_base64_ENCODED_LEN(SECRETS_KEY_LEN, sodium_base64_VARIANT_ORIGINAL)];
        int made;

        randombytes_buf(raw, sizeof(raw));
        sodium_bin2base64(b64, sizeof(b64), raw, sizeof(raw), sodium_base64_VARIANT_ORIGINAL);
        assert_int_equal(secrets_key_load(f->key_path, b64, key, &made), 0);
        assert_memory_equal(raw, key, SECRETS_KEY_LEN);
        assert_int_equal(made, 0);
        assert_int_equal(access(f->key_path, F_OK), -1); /* no file made */
        assert_int_equal(secrets_key_load(f->key_path, "c2hvcnQ=", key, &made), -EINVAL);
        assert_int_equal(secrets_key_load(f->key_path, "not base64 at all!", key, &made), -EINVAL);
}

static void test_seal_round_trip_and_refusals(void **state) {
        uint8_t key[SECRETS_KEY_LEN], other[SECRETS_KEY_LEN], *sealed = NULL;
        size_t n = 0, plain_n = 0;
        char *plain = NULL;

        (void)state;
        randombytes_buf(key, sizeof(key));
        randombytes_buf(other, sizeof(other));
        assert_int_equal(secrets_seal(key, "row-1", VALUE, strlen(VALUE), &sealed, &n), 0);
        assert_int_equal(n, strlen(VALUE) + SECRETS_OVERHEAD);
        assert_null(memmem(sealed, n, VALUE, strlen(VALUE)));

        assert_int_equal(secrets_open(key, "row-1", sealed, n, &plain, &plain_n), 0);
        assert_int_equal(plain_n, strlen(VALUE));
        assert_string_equal(plain, VALUE);
        secrets_free(plain, plain_n);

        /* Another key, another row, a changed byte, a short blob: an error, never garbage. */
        plain = NULL;
        assert_int_equal(secrets_open(other, "row-1", sealed, n, &plain, &plain_n), -EKEYREJECTED);
        assert_int_equal(secrets_open(key, "row-2", sealed, n, &plain, &plain_n), -EKEYREJECTED);
        sealed[n / 2] ^= 1;
        assert_int_equal(secrets_open(key, "row-1", sealed, n, &plain, &plain_n), -EKEYREJECTED);
        assert_int_equal(secrets_open(key, "row-1", sealed, SECRETS_OVERHEAD - 1, &plain, &plain_n), -EBADMSG);
        assert_null(plain);
        free(sealed);
}

static bool file_holds(const char *path, const char *needle) {
        _cleanup_free_ char *data = NULL;
        size_t size = 0;

        if (read_file(path, 64u << 20, &data, &size) < 0)
                return false;
        return memmem(data, size, needle, strlen(needle)) != NULL;
}

static void test_store_secrets(void **state) {
        fixture_t *f = *state;
        uint8_t key[SECRETS_KEY_LEN], other[SECRETS_KEY_LEN];
        apiserver_store_t *s = NULL;
        store_secret_t sec, *list = NULL;
        char *value = NULL, wal[160];
        size_t n = 0;
        int made;

        randombytes_buf(other, sizeof(other));
        assert_int_equal(secrets_key_load(f->key_path, NULL, key, &made), 0);
        assert_int_equal(store_open(f->db_path, &s), 0);
        /* No key yet: nothing is sealed under none. */
        assert_int_equal(store_secret_create(s, "default", "db", VALUE, strlen(VALUE), &sec), -ENOKEY);
        assert_int_equal(store_secrets_key_set(s, key), 0);
        assert_int_equal(store_secret_create(s, "default", "db", VALUE, strlen(VALUE), &sec), 0);
        assert_string_equal(sec.name, "db");
        assert_int_equal(store_secret_create(s, "default", "db", "x", 1, NULL), -EEXIST);
        assert_int_equal(store_secret_create(s, "prod", "db", "other", 5, NULL), 0);
        assert_int_equal(store_secret_list(s, "default", &list, &n), 0);
        assert_int_equal(n, 1);
        free(list);
        assert_int_equal(store_secret_get(s, "prod", "db", NULL), 0);
        assert_int_equal(store_secret_get(s, "prod", sec.id, NULL), 0); /* an id finds it anywhere */

        assert_int_equal(store_secret_reveal(s, "default", "db", &value, &n), 0);
        assert_string_equal(value, VALUE);
        secrets_free(value, n);
        assert_int_equal(store_secret_reveal(s, "default", "nope", &value, &n), -ENOENT);
        store_close(&s);

        snprintf(wal, sizeof(wal), "%s-wal", f->db_path);
        assert_false(file_holds(f->db_path, VALUE));
        assert_false(file_holds(wal, VALUE));

        /* Another key: refused at once, not found out at the first reveal. */
        assert_int_equal(store_open(f->db_path, &s), 0);
        assert_int_equal(store_secrets_key_set(s, other), -EKEYREJECTED);
        assert_int_equal(store_secret_reveal(s, "default", "db", &value, &n), -ENOKEY);
        assert_int_equal(store_secrets_key_set(s, key), 0);
        assert_int_equal(store_secret_reveal(s, "default", "db", &value, &n), 0);
        secrets_free(value, n);
        assert_int_equal(store_secret_delete(s, sec.id), 0);
        assert_int_equal(store_secret_delete(s, sec.id), -ENOENT);
        store_close(&s);
}

static void test_store_configs(void **state) {
        fixture_t *f = *state;
        apiserver_store_t *s = NULL;
        store_config_t c = {}, got = {};

        assert_int_equal(store_open(f->db_path, &s), 0);
        assert_int_equal(store_config_create(s, "default", "web", "{\"a\": \"1\"}", &c), 0);
        assert_int_equal(c.version, 1);
        assert_int_equal(store_config_create(s, "default", "web", "{}", NULL), -EEXIST);
        /* The same data, spelt otherwise: no change, no new version. */
        assert_int_equal(store_config_update(s, c.id, "{ \"a\":\"1\" }", &got), 0);
        assert_int_equal(got.version, 1);
        store_config_clear(&got);
        assert_int_equal(store_config_update(s, c.id, "{\"a\": \"2\"}", &got), 1);
        assert_int_equal(got.version, 2);
        store_config_clear(&got);
        assert_int_equal(store_config_get(s, "default", "web", &got), 0);
        assert_string_equal(got.data, "{\"a\":\"2\"}");
        store_config_clear(&got);
        assert_int_equal(store_config_get(s, "prod", "web", &got), -ENOENT);
        assert_int_equal(store_config_delete(s, c.id), 0);
        assert_int_equal(store_config_update(s, c.id, "{}", &got), -ENOENT);
        store_config_clear(&c);

        /* A namespace's configs and secrets go with it. */
        assert_int_equal(store_namespace_create(s, "gone", NULL), 0);
        assert_int_equal(store_config_create(s, "gone", "web", "{}", NULL), 0);
        assert_int_equal(store_config_create(s, "default", "web", "{}", NULL), 0);
        assert_int_equal(store_namespace_delete(s, "gone"), 0);
        assert_int_equal(store_config_get(s, "gone", "web", &got), -ENOENT);
        assert_int_equal(store_config_get(s, "default", "web", &got), 0);
        store_config_clear(&got);
        store_close(&s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_key_file_made_once, setup, teardown),
                cmocka_unit_test_setup_teardown(test_key_from_env, setup, teardown),
                cmocka_unit_test_setup_teardown(test_seal_round_trip_and_refusals, setup, teardown),
                cmocka_unit_test_setup_teardown(test_store_secrets, setup, teardown),
                cmocka_unit_test_setup_teardown(test_store_configs, setup, teardown),
        };

        assert_true(sodium_init() >= 0);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
