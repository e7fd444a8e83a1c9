/* apiserver_auth.c: roles and scopes, argon2id password hashes and token hashes (libsodium). */
#include "services/apiserver/apiserver_auth.h"

#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "lib/util.h"

static const char *const scope_names[_AUTH_SCOPE_MAX] = {
        [AUTH_SCOPE_DEPLOYMENTS_READ] = "deployments:read", [AUTH_SCOPE_DEPLOYMENTS_WRITE] = "deployments:write",
        [AUTH_SCOPE_DEPLOYMENTS_EXEC] = "deployments:exec", [AUTH_SCOPE_LOGS_READ] = "logs:read",
        [AUTH_SCOPE_EVENTS_READ] = "events:read",           [AUTH_SCOPE_SECRETS_READ] = "secrets:read",
        [AUTH_SCOPE_SECRETS_WRITE] = "secrets:write",       [AUTH_SCOPE_NAMESPACES_READ] = "namespaces:read",
        [AUTH_SCOPE_NAMESPACES_WRITE] = "namespaces:write", [AUTH_SCOPE_AUDIT_READ] = "audit:read",
        [AUTH_SCOPE_TOKENS_WRITE] = "tokens:write",         [AUTH_SCOPE_USERS_READ] = "users:read",
        [AUTH_SCOPE_CONFIGS_READ] = "configs:read",         [AUTH_SCOPE_CONFIGS_WRITE] = "configs:write",
        [AUTH_SCOPE_WEBHOOKS_READ] = "webhooks:read",       [AUTH_SCOPE_WEBHOOKS_WRITE] = "webhooks:write",
};

static const char *const role_names[_AUTH_ROLE_MAX] = {
        [AUTH_ROLE_ADMIN] = "admin",
        [AUTH_ROLE_OPERATOR] = "operator",
        [AUTH_ROLE_VIEWER] = "viewer",
};

#define B(s) AUTH_SCOPE_BIT(AUTH_SCOPE_##s)
#define ALL_REAL ((AUTH_SCOPE_BIT(_AUTH_SCOPE_MAX) - 1) & ~(AUTH_SCOPE_BIT(AUTH_SCOPE_FIRST_REAL) - 1))

/* admin: everything (and the admin-only routes, by role). operator: everything but user
 * management, which is admin-only. viewer: reading, configs included, but neither exec (a
 * shell in a guest is not reading) nor secrets (not even their names). */
static const auth_scopes_t role_scopes[_AUTH_ROLE_MAX] = {
        [AUTH_ROLE_ADMIN] = ALL_REAL,
        [AUTH_ROLE_OPERATOR] = ALL_REAL,
        [AUTH_ROLE_VIEWER] = B(DEPLOYMENTS_READ) | B(LOGS_READ) | B(EVENTS_READ) | B(NAMESPACES_READ) | B(AUDIT_READ) |
                             B(USERS_READ) | B(TOKENS_WRITE) | B(CONFIGS_READ),
};

const char *auth_scope_name(auth_scope_t s) { return s >= 0 && s < _AUTH_SCOPE_MAX ? scope_names[s] : NULL; }

int auth_scope_from_name(const char *name) {
        for (int s = AUTH_SCOPE_FIRST_REAL; s < _AUTH_SCOPE_MAX; s++)
                if (streq(scope_names[s], name))
                        return s;
        return -EINVAL;
}

const char *auth_role_name(auth_role_t r) { return r >= 0 && r < _AUTH_ROLE_MAX ? role_names[r] : NULL; }

auth_role_t auth_role_from_name(const char *name) {
        for (int r = 0; r < _AUTH_ROLE_MAX; r++)
                if (name && streq(role_names[r], name))
                        return (auth_role_t)r;
        return AUTH_ROLE_INVALID;
}

auth_scopes_t auth_role_scopes(auth_role_t r) { return r >= 0 && r < _AUTH_ROLE_MAX ? role_scopes[r] : 0; }

bool auth_allows(const auth_identity_t *identity, auth_scope_t scope) {
        if (scope == AUTH_SCOPE_PUBLIC)
                return true;
        if (!identity)
                return false;
        switch (scope) {
        case AUTH_SCOPE_AUTHENTICATED:
                return true;
        case AUTH_SCOPE_ADMIN:
                /* No token scope grants user management: it takes the admin's own session
                 * (or local root), so a leaked automation token cannot mint users. */
                return identity->role == AUTH_ROLE_ADMIN && identity->via != AUTH_VIA_TOKEN;
        default:
                if (scope < AUTH_SCOPE_FIRST_REAL || scope >= _AUTH_SCOPE_MAX)
                        return false;
                /* A token's scopes were narrowed from its owner's role when it was read. */
                return (identity->scopes & AUTH_SCOPE_BIT(scope) & auth_role_scopes(identity->role)) != 0;
        }
}

bool auth_namespace_allowed(const auth_identity_t *identity, const char *ns) {
        if (!identity || identity->n_namespaces == 0)
                return identity != NULL;
        for (size_t i = 0; i < identity->n_namespaces; i++)
                if (streq(identity->namespaces[i], ns))
                        return true;
        return false;
}

static bool dns_label(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > AUTH_NAMESPACE_MAX || s[0] == '-' || s[n - 1] == '-')
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
                        return false;
        return true;
}

int auth_namespaces_parse(const char *text, auth_identity_t *identity) {
        json_t *a = json_loads(text, 0, NULL), *v;
        size_t i;
        int r = 0;

        identity->n_namespaces = 0;
        if (!json_is_array(a) || json_array_size(a) > AUTH_NAMESPACES_MAX)
                r = -EINVAL;
        json_array_foreach(a, i, v) {
                if (r < 0 || !json_is_string(v) || !dns_label(json_string_value(v))) {
                        r = -EINVAL;
                        break;
                }
                snprintf(identity->namespaces[identity->n_namespaces++], AUTH_NAMESPACE_MAX + 1, "%s",
                         json_string_value(v));
        }
        json_decref(a);
        /* An empty list would read as "every namespace": a bound token that lost its list is
         * bound to nothing, not freed. */
        if (r == 0 && identity->n_namespaces == 0)
                r = -EINVAL;
        if (r < 0)
                identity->n_namespaces = 0;
        return r;
}

/* ---- hashing ------------------------------------------------------------------------------ */

static pthread_mutex_t hash_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hash_free = PTHREAD_COND_INITIALIZER;
static unsigned hashing;
/* Compared against when the user is unknown (made at auth_init). */
static char dummy_hash[crypto_pwhash_STRBYTES];

/* Each argon2id run holds MEMLIMIT_INTERACTIVE (64 MiB): a thousand workers logging in at
 * once would need 64 GiB. A small gate bounds the memory; login requests queue behind it. */
static void gate_enter(void) {
        pthread_mutex_lock(&hash_lock);
        while (hashing >= AUTH_HASH_CONCURRENCY)
                pthread_cond_wait(&hash_free, &hash_lock);
        hashing++;
        pthread_mutex_unlock(&hash_lock);
}

static void gate_leave(void) {
        pthread_mutex_lock(&hash_lock);
        hashing--;
        pthread_cond_signal(&hash_free);
        pthread_mutex_unlock(&hash_lock);
}

static int init_result;

static void init_once(void) {
        char pw[AUTH_INITIAL_PASSWORD_LEN + 1];

        init_result = sodium_init() < 0 ? -EIO : 0;
        if (init_result == 0)
                init_result = auth_password_random(pw);
        if (init_result == 0 && crypto_pwhash_str(dummy_hash, pw, strlen(pw), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                                                  crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
                init_result = -ENOMEM;
        sodium_memzero(pw, sizeof(pw));
}

int auth_init(void) {
        static pthread_once_t once = PTHREAD_ONCE_INIT;

        pthread_once(&once, init_once);
        return init_result;
}

int auth_password_hash(const char *password, char ret[static AUTH_PASSWORD_HASH_MAX]) {
        _Static_assert(crypto_pwhash_STRBYTES <= AUTH_PASSWORD_HASH_MAX, "hash buffer");
        int rc;

        gate_enter();
        rc = crypto_pwhash_str(ret, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                               crypto_pwhash_MEMLIMIT_INTERACTIVE);
        gate_leave();
        return rc == 0 ? 0 : -ENOMEM;
}

int auth_password_verify(const char *hash, const char *password) {
        int rc;

        gate_enter();
        rc = crypto_pwhash_str_verify(hash ?: dummy_hash, password, strlen(password));
        gate_leave();
        return rc == 0 && hash ? 0 : -EACCES;
}

int auth_token_new(char ret[static AUTH_TOKEN_LEN + 1]) {
        uint8_t raw[32];
        size_t prefix = strlen(AUTH_TOKEN_PREFIX);

        randombytes_buf(raw, sizeof(raw));
        memcpy(ret, AUTH_TOKEN_PREFIX, prefix);
        sodium_bin2base64(ret + prefix, AUTH_TOKEN_LEN + 1 - prefix, raw, sizeof(raw),
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        sodium_memzero(raw, sizeof(raw));
        return 0;
}

int auth_token_hash(const char *token, uint8_t ret[static AUTH_TOKEN_HASH_LEN]) {
        size_t prefix = strlen(AUTH_TOKEN_PREFIX);

        if (!token || strlen(token) != AUTH_TOKEN_LEN || strncmp(token, AUTH_TOKEN_PREFIX, prefix) != 0)
                return -EINVAL;
        for (const char *p = token + prefix; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
                      *p == '_'))
                        return -EINVAL;
        crypto_hash_sha256(ret, (const unsigned char *)token, AUTH_TOKEN_LEN);
        return 0;
}

int auth_password_random(char ret[static AUTH_INITIAL_PASSWORD_LEN + 1]) {
        uint8_t raw[AUTH_INITIAL_PASSWORD_LEN * 3 / 4];

        randombytes_buf(raw, sizeof(raw));
        sodium_bin2base64(ret, AUTH_INITIAL_PASSWORD_LEN + 1, raw, sizeof(raw),
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        sodium_memzero(raw, sizeof(raw));
        return 0;
}

bool auth_name_valid(const char *name) {
        size_t n = name ? strlen(name) : 0;

        /* "me" names the caller in /users/me. */
        if (n == 0 || n > AUTH_NAME_MAX || name[0] == '.' || name[0] == '-' || name[0] == '_' || streq(name, "me"))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') || name[i] == '.' ||
                      name[i] == '_' || name[i] == '-'))
                        return false;
        return true;
}
