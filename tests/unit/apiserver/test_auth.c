/* test_auth.c: password and token hashing, scope checks per role, and the users and tokens
 * tables (revocation on a role or password change, the last admin). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/util.h"
#include "services/apiserver/apiserver_auth.h"
#include "services/apiserver/apiserver_store.h"

static void test_password_hashes_are_salted_and_verify(void **state) {
        char a[AUTH_PASSWORD_HASH_MAX], b[AUTH_PASSWORD_HASH_MAX];

        assert_int_equal(auth_init(), 0);
        assert_int_equal(auth_password_hash("correct horse", a), 0);
        assert_int_equal(auth_password_hash("correct horse", b), 0);
        /* Equal passwords, different hashes: each has its own salt. */
        assert_string_not_equal(a, b);
        assert_true(strncmp(a, "$argon2id$", 10) == 0);
        assert_int_equal(auth_password_verify(a, "correct horse"), 0);
        assert_int_equal(auth_password_verify(b, "correct horse"), 0);
        assert_int_equal(auth_password_verify(a, "correct horsE"), -EACCES);
        assert_int_equal(auth_password_verify(a, ""), -EACCES);
        /* An unknown user: the dummy hash is checked, and fails whatever the password. */
        assert_int_equal(auth_password_verify(NULL, "correct horse"), -EACCES);
        assert_int_equal(auth_password_verify(NULL, ""), -EACCES);
}

static void test_tokens_are_random_and_hash_by_value(void **state) {
        char t1[AUTH_TOKEN_LEN + 1], t2[AUTH_TOKEN_LEN + 1], bad[AUTH_TOKEN_LEN + 1];
        uint8_t h1[AUTH_TOKEN_HASH_LEN], h1again[AUTH_TOKEN_HASH_LEN], h2[AUTH_TOKEN_HASH_LEN];

        assert_int_equal(auth_init(), 0);
        assert_int_equal(auth_token_new(t1), 0);
        assert_int_equal(auth_token_new(t2), 0);
        assert_int_equal(strlen(t1), AUTH_TOKEN_LEN);
        assert_true(strncmp(t1, AUTH_TOKEN_PREFIX, strlen(AUTH_TOKEN_PREFIX)) == 0);
        assert_string_not_equal(t1, t2);
        assert_int_equal(auth_token_hash(t1, h1), 0);
        assert_int_equal(auth_token_hash(t1, h1again), 0);
        assert_int_equal(auth_token_hash(t2, h2), 0);
        assert_memory_equal(h1, h1again, sizeof(h1));
        assert_memory_not_equal(h1, h2, sizeof(h1));
        /* What is no token is refused before any lookup. */
        assert_int_equal(auth_token_hash("", h2), -EINVAL);
        assert_int_equal(auth_token_hash("husk_short", h2), -EINVAL);
        memcpy(bad, t1, sizeof(bad));
        bad[10] = '%';
        assert_int_equal(auth_token_hash(bad, h2), -EINVAL);
        memcpy(bad, t1, sizeof(bad));
        bad[0] = 'H';
        assert_int_equal(auth_token_hash(bad, h2), -EINVAL);
}

static auth_identity_t who(auth_via_t via, auth_role_t role, auth_scopes_t scopes) {
        return (auth_identity_t){ .via = via, .role = role, .scopes = scopes };
}

static void test_scopes_per_role(void **state) {
        auth_identity_t admin = who(AUTH_VIA_SESSION, AUTH_ROLE_ADMIN, auth_role_scopes(AUTH_ROLE_ADMIN));
        auth_identity_t operator= who(AUTH_VIA_SESSION, AUTH_ROLE_OPERATOR, auth_role_scopes(AUTH_ROLE_OPERATOR));
        auth_identity_t viewer = who(AUTH_VIA_SESSION, AUTH_ROLE_VIEWER, auth_role_scopes(AUTH_ROLE_VIEWER));
        auth_identity_t admin_token = who(AUTH_VIA_TOKEN, AUTH_ROLE_ADMIN, AUTH_SCOPE_BIT(AUTH_SCOPE_DEPLOYMENTS_READ));
        /* A token that claims more than its owner's role holds gets no more. */
        auth_identity_t viewer_token = who(AUTH_VIA_TOKEN, AUTH_ROLE_VIEWER, ~(auth_scopes_t)0);

        /* No credential: public routes only. */
        assert_true(auth_allows(NULL, AUTH_SCOPE_PUBLIC));
        assert_false(auth_allows(NULL, AUTH_SCOPE_AUTHENTICATED));
        assert_false(auth_allows(NULL, AUTH_SCOPE_DEPLOYMENTS_READ));
        assert_false(auth_allows(NULL, AUTH_SCOPE_ADMIN));

        for (int s = AUTH_SCOPE_FIRST_REAL; s < _AUTH_SCOPE_MAX; s++) {
                assert_true(auth_allows(&admin, s));
                assert_true(auth_allows(&operator, s));
        }
        assert_true(auth_allows(&admin, AUTH_SCOPE_ADMIN));
        assert_false(auth_allows(&operator, AUTH_SCOPE_ADMIN));
        assert_false(auth_allows(&viewer, AUTH_SCOPE_ADMIN));

        assert_true(auth_allows(&viewer, AUTH_SCOPE_DEPLOYMENTS_READ));
        assert_true(auth_allows(&viewer, AUTH_SCOPE_LOGS_READ));
        assert_false(auth_allows(&viewer, AUTH_SCOPE_DEPLOYMENTS_WRITE));
        assert_false(auth_allows(&viewer, AUTH_SCOPE_DEPLOYMENTS_EXEC));
        assert_false(auth_allows(&viewer, AUTH_SCOPE_SECRETS_READ));
        assert_false(auth_allows(&viewer, AUTH_SCOPE_SECRETS_WRITE));
        assert_true(auth_allows(&viewer, AUTH_SCOPE_AUTHENTICATED));

        assert_true(auth_allows(&admin_token, AUTH_SCOPE_DEPLOYMENTS_READ));
        assert_false(auth_allows(&admin_token, AUTH_SCOPE_DEPLOYMENTS_WRITE));
        assert_false(auth_allows(&admin_token, AUTH_SCOPE_ADMIN)); /* no token manages users */
        assert_false(auth_allows(&viewer_token, AUTH_SCOPE_DEPLOYMENTS_EXEC));
        assert_false(auth_allows(&viewer_token, AUTH_SCOPE_SECRETS_READ));
        assert_true(auth_allows(&viewer_token, AUTH_SCOPE_DEPLOYMENTS_READ));

        /* An out-of-range scope is nobody's. */
        assert_false(auth_allows(&admin, _AUTH_SCOPE_MAX));
        assert_false(auth_allows(&admin, (auth_scope_t)-1));
}

static void test_scope_and_role_names(void **state) {
        for (int s = AUTH_SCOPE_FIRST_REAL; s < _AUTH_SCOPE_MAX; s++) {
                assert_non_null(auth_scope_name(s));
                assert_int_equal(auth_scope_from_name(auth_scope_name(s)), s);
        }
        assert_null(auth_scope_name(AUTH_SCOPE_ADMIN));
        assert_null(auth_scope_name(AUTH_SCOPE_PUBLIC));
        assert_int_equal(auth_scope_from_name("deployments:delete"), -EINVAL);
        assert_int_equal(auth_role_from_name("operator"), AUTH_ROLE_OPERATOR);
        assert_int_equal(auth_role_from_name("root"), AUTH_ROLE_INVALID);
        assert_int_equal(auth_role_from_name(NULL), AUTH_ROLE_INVALID);
        assert_true(auth_name_valid("alice"));
        assert_true(auth_name_valid("ci-bot.2"));
        assert_false(auth_name_valid(""));
        assert_false(auth_name_valid("Alice"));
        assert_false(auth_name_valid("-x"));
        assert_false(auth_name_valid("a b"));
        assert_false(auth_name_valid("me"));
}

/* ---- the store ----------------------------------------------------------------------------- */

typedef struct fixture {
        char dir[64];
        char path[128];
        apiserver_store_t *store;
} fixture_t;

static int setup(void **state) {
        fixture_t *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        snprintf(f->dir, sizeof(f->dir), "/tmp/husk-test-auth.XXXXXX");
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

/* A credential for u, as POST /login makes one; its value into token. */
static void issue(fixture_t *f, const store_user_t *u, bool session, uint64_t expires_at,
                  char token[static AUTH_TOKEN_LEN + 1], uint8_t hash[AUTH_TOKEN_HASH_LEN]) {
        store_token_t t = { .session = session, .created_at = now_realtime_ms(), .expires_at = expires_at };

        assert_int_equal(store_uuid_new(t.id), 0);
        snprintf(t.user_id, sizeof(t.user_id), "%s", u->id);
        assert_int_equal(auth_token_new(token), 0);
        assert_int_equal(auth_token_hash(token, hash), 0);
        assert_int_equal(store_token_insert(f->store, &t, hash), 0);
}

static int find(fixture_t *f, const uint8_t hash[AUTH_TOKEN_HASH_LEN]) {
        store_token_t t;
        store_user_t u;
        int r = store_token_find(f->store, hash, now_realtime_ms(), &t, &u);

        if (r == 0)
                store_token_clear(&t);
        return r;
}

static void test_users_and_their_sessions(void **state) {
        fixture_t *f = *state;
        char token[AUTH_TOKEN_LEN + 1], stored[AUTH_PASSWORD_HASH_MAX];
        uint8_t h1[AUTH_TOKEN_HASH_LEN], h2[AUTH_TOKEN_HASH_LEN], old[AUTH_TOKEN_HASH_LEN];
        store_user_t admin, alice, got;
        store_token_t t;

        assert_int_equal(store_user_count(f->store), 0);
        assert_int_equal(store_user_create(f->store, "admin", AUTH_ROLE_ADMIN, "$argon2id$x", &admin), 0);
        assert_int_equal(store_user_create(f->store, "alice", AUTH_ROLE_VIEWER, "$argon2id$y", &alice), 0);
        assert_int_equal(store_user_create(f->store, "alice", AUTH_ROLE_ADMIN, "$argon2id$z", NULL), -EEXIST);
        assert_int_equal(store_user_create(f->store, "Bad Name", AUTH_ROLE_ADMIN, "$argon2id$z", NULL), -EINVAL);
        assert_int_equal(store_user_count(f->store), 2);

        /* By name or id; the hash only when asked for. */
        assert_int_equal(store_user_get(f->store, "alice", &got, stored), 0);
        assert_string_equal(got.id, alice.id);
        assert_string_equal(stored, "$argon2id$y");
        assert_int_equal(got.role, AUTH_ROLE_VIEWER);
        assert_int_equal(store_user_get(f->store, alice.id, &got, NULL), 0);
        assert_string_equal(got.name, "alice");
        assert_int_equal(store_user_get(f->store, "bob", &got, NULL), -ENOENT);

        issue(f, &alice, true, 0, token, h1);
        issue(f, &alice, false, 0, token, h2);
        issue(f, &admin, true, 0, token, old);
        assert_int_equal(store_token_find(f->store, h1, now_realtime_ms(), &t, &got), 0);
        assert_true(t.session);
        assert_string_equal(got.name, "alice");
        store_token_clear(&t);

        /* A role change revokes every credential of that user at once, and no one else's. */
        assert_int_equal(store_user_update(f->store, alice.id, AUTH_ROLE_OPERATOR, NULL, &got), 0);
        assert_int_equal(got.role, AUTH_ROLE_OPERATOR);
        assert_int_equal(find(f, h1), -ENOENT);
        assert_int_equal(find(f, h2), -ENOENT);
        assert_int_equal(find(f, old), 0);

        /* So does a password change. */
        issue(f, &alice, true, 0, token, h1);
        assert_int_equal(store_user_update(f->store, alice.id, -1, "$argon2id$new", NULL), 0);
        assert_int_equal(find(f, h1), -ENOENT);
        assert_int_equal(store_user_get(f->store, "alice", &got, stored), 0);
        assert_string_equal(stored, "$argon2id$new");

        /* An expired credential is no credential. */
        issue(f, &alice, true, now_realtime_ms() - 1, token, h1);
        assert_int_equal(find(f, h1), -ENOENT);

        /* Logout: the one session goes, only for its owner. */
        issue(f, &alice, true, 0, token, h1);
        assert_int_equal(store_token_find(f->store, h1, now_realtime_ms(), &t, &got), 0);
        assert_int_equal(store_token_delete(f->store, t.id, admin.id), -ENOENT);
        assert_int_equal(store_token_delete(f->store, t.id, alice.id), 0);
        assert_int_equal(find(f, h1), -ENOENT);
        store_token_clear(&t);

        /* Deleting a user takes its credentials along. */
        issue(f, &alice, false, 0, token, h2);
        assert_int_equal(store_user_delete(f->store, alice.id), 0);
        assert_int_equal(find(f, h2), -ENOENT);
        assert_int_equal(store_user_delete(f->store, alice.id), -ENOENT);
}

static void test_the_last_admin_stays(void **state) {
        fixture_t *f = *state;
        store_user_t a, b, got;

        assert_int_equal(store_user_create(f->store, "a", AUTH_ROLE_ADMIN, "$h", &a), 0);
        assert_int_equal(store_user_update(f->store, a.id, AUTH_ROLE_VIEWER, NULL, NULL), -EBUSY);
        assert_int_equal(store_user_delete(f->store, a.id), -EBUSY);
        assert_int_equal(store_user_get(f->store, a.id, &got, NULL), 0);
        assert_int_equal(got.role, AUTH_ROLE_ADMIN);
        /* Its password may change: it stays an admin. */
        assert_int_equal(store_user_update(f->store, a.id, -1, "$h2", NULL), 0);
        assert_int_equal(store_user_update(f->store, a.id, AUTH_ROLE_ADMIN, NULL, NULL), 0);

        /* With a second admin, either may go, but not both. */
        assert_int_equal(store_user_create(f->store, "b", AUTH_ROLE_ADMIN, "$h", &b), 0);
        assert_int_equal(store_user_update(f->store, a.id, AUTH_ROLE_OPERATOR, NULL, NULL), 0);
        assert_int_equal(store_user_delete(f->store, b.id), -EBUSY);
        assert_int_equal(store_user_delete(f->store, a.id), 0);
        assert_int_equal(store_user_count(f->store), 1);
}

static void test_api_tokens_list_and_rehash(void **state) {
        fixture_t *f = *state;
        char token[AUTH_TOKEN_LEN + 1];
        uint8_t hash[AUTH_TOKEN_HASH_LEN], fresh[AUTH_TOKEN_HASH_LEN];
        store_token_t t = { .session = false,
                            .has_scopes = true,
                            .scopes = AUTH_SCOPE_BIT(AUTH_SCOPE_LOGS_READ) |
                                      AUTH_SCOPE_BIT(AUTH_SCOPE_DEPLOYMENTS_READ) };
        store_token_t *list = NULL, got;
        store_user_t u, owner;
        size_t n = 0;

        assert_int_equal(store_user_create(f->store, "ci", AUTH_ROLE_OPERATOR, "$h", &u), 0);
        assert_int_equal(store_uuid_new(t.id), 0);
        snprintf(t.user_id, sizeof(t.user_id), "%s", u.id);
        snprintf(t.name, sizeof(t.name), "deploy-bot");
        t.namespaces = strdup("[\"prod\"]");
        t.created_at = now_realtime_ms();
        assert_int_equal(auth_token_new(token), 0);
        assert_int_equal(auth_token_hash(token, hash), 0);
        assert_int_equal(store_token_insert(f->store, &t, hash), 0);
        /* A session is no API token: it is not listed. */
        issue(f, &u, true, 0, token, fresh);

        assert_int_equal(store_token_list(f->store, u.id, &list, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(list[0].name, "deploy-bot");
        assert_true(list[0].has_scopes);
        assert_int_equal(list[0].scopes, t.scopes);
        assert_string_equal(list[0].namespaces, "[\"prod\"]");
        store_token_array_free(list, n);

        /* Rotation: the old value stops working, the new one works, the id stays. */
        assert_int_equal(auth_token_new(token), 0);
        assert_int_equal(auth_token_hash(token, fresh), 0);
        assert_int_equal(store_token_rehash(f->store, t.id, u.id, fresh, 0, &got), 0);
        assert_string_equal(got.id, t.id);
        store_token_clear(&got);
        assert_int_equal(find(f, hash), -ENOENT);
        assert_int_equal(store_token_find(f->store, fresh, now_realtime_ms(), &got, &owner), 0);
        assert_string_equal(got.id, t.id);
        store_token_clear(&got);
        assert_int_equal(store_token_rehash(f->store, t.id, "someone-else", fresh, 0, NULL), -ENOENT);
        store_token_clear(&t);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_password_hashes_are_salted_and_verify),
                cmocka_unit_test(test_tokens_are_random_and_hash_by_value),
                cmocka_unit_test(test_scopes_per_role),
                cmocka_unit_test(test_scope_and_role_names),
                cmocka_unit_test_setup_teardown(test_users_and_their_sessions, setup, teardown),
                cmocka_unit_test_setup_teardown(test_the_last_admin_stays, setup, teardown),
                cmocka_unit_test_setup_teardown(test_api_tokens_list_and_rehash, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
