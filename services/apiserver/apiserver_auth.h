/* apiserver_auth.h: who a request comes from and what it may do: roles, scopes, password and
 * token hashing. No I/O here beyond the random bytes; the store keeps users and token hashes,
 * the router (apiserver_http.c) asks auth_allows() once per request. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a route needs. The zero value is AUTH_SCOPE_ADMIN, so that a route whose table row
 * names no scope is for admins alone (fail-closed). The scopes from AUTH_SCOPE_FIRST_REAL on
 * are the ones roles hold and tokens carry, written "<resource>:<action>" on the wire. */
typedef enum auth_scope {
        AUTH_SCOPE_ADMIN = 0,     /* admin role alone; no token scope grants it */
        AUTH_SCOPE_PUBLIC,        /* no credential: GET /healthz, POST /login */
        AUTH_SCOPE_AUTHENTICATED, /* any valid credential: /users/me, /logout */
        AUTH_SCOPE_DEPLOYMENTS_READ,
        AUTH_SCOPE_FIRST_REAL = AUTH_SCOPE_DEPLOYMENTS_READ,
        AUTH_SCOPE_DEPLOYMENTS_WRITE,
        AUTH_SCOPE_DEPLOYMENTS_EXEC,
        AUTH_SCOPE_LOGS_READ,
        AUTH_SCOPE_EVENTS_READ,
        AUTH_SCOPE_SECRETS_READ,
        AUTH_SCOPE_SECRETS_WRITE,
        AUTH_SCOPE_NAMESPACES_READ,
        AUTH_SCOPE_NAMESPACES_WRITE,
        AUTH_SCOPE_AUDIT_READ,
        AUTH_SCOPE_TOKENS_WRITE, /* create, rotate and delete one's own tokens */
        AUTH_SCOPE_USERS_READ,
        AUTH_SCOPE_CONFIGS_READ,
        AUTH_SCOPE_CONFIGS_WRITE,
        AUTH_SCOPE_WEBHOOKS_READ,  /* webhooks and their deliveries (URLs, event bodies) */
        AUTH_SCOPE_WEBHOOKS_WRITE, /* create and delete webhooks: events leave the host */
        _AUTH_SCOPE_MAX,
} auth_scope_t;

typedef uint32_t auth_scopes_t; /* a set: bit (1u << scope) */
#define AUTH_SCOPE_BIT(s) ((auth_scopes_t)1u << (s))

typedef enum auth_role {
        AUTH_ROLE_ADMIN,
        AUTH_ROLE_OPERATOR,
        AUTH_ROLE_VIEWER,
        _AUTH_ROLE_MAX,
        AUTH_ROLE_INVALID = -EINVAL,
} auth_role_t;

/* "deployments:read" ...; NULL for the markers below AUTH_SCOPE_FIRST_REAL. */
const char *auth_scope_name(auth_scope_t s);
/* -EINVAL for a name that is no scope (the markers have no name). */
int auth_scope_from_name(const char *name);
const char *auth_role_name(auth_role_t r);
auth_role_t auth_role_from_name(const char *name);
/* The scopes a role holds. */
auth_scopes_t auth_role_scopes(auth_role_t r);

#define AUTH_NAME_MAX 64
#define AUTH_ID_LEN 36

typedef enum auth_via {
        AUTH_VIA_SESSION, /* a token from POST /login */
        AUTH_VIA_TOKEN,   /* an API token from POST /tokens */
        AUTH_VIA_LOCAL,   /* the unix socket's peer credentials */
} auth_via_t;

/* A token may be bound to a few namespaces (DNS labels, as manifests name them). */
#define AUTH_NAMESPACES_MAX 16
#define AUTH_NAMESPACE_MAX 63

/* Who a request comes from, as the router established it. */
typedef struct auth_identity {
        auth_via_t via;
        auth_role_t role;
        auth_scopes_t scopes;           /* what the credential may do: the role's, narrowed by a token's */
        char user_id[AUTH_ID_LEN + 1];  /* "" for a local peer (it is no user of the store) */
        char name[AUTH_NAME_MAX + 1];   /* the user's name, or "uid:N" for a local peer */
        char token_id[AUTH_ID_LEN + 1]; /* the session or token, "" for a local peer */
        size_t n_namespaces;            /* 0: every namespace */
        char namespaces[AUTH_NAMESPACES_MAX][AUTH_NAMESPACE_MAX + 1];
} auth_identity_t;

/* Whether identity may see objects of namespace ns (a namespace-bound token sees only its
 * own: everything else is as if it did not exist). */
bool auth_namespace_allowed(const auth_identity_t *identity, const char *ns);
/* A JSON array of namespace names (as tokens store them) into identity. -EINVAL when it is not
 * one, or holds more than AUTH_NAMESPACES_MAX or a name that is no DNS label. */
int auth_namespaces_parse(const char *json, auth_identity_t *identity);

/* Whether identity (NULL: no credential) may call a route that needs scope. */
bool auth_allows(const auth_identity_t *identity, auth_scope_t scope);

/* Once, before anything below (libsodium's own initialization; idempotent). */
int auth_init(void);

/* An argon2id hash (libsodium's crypto_pwhash_str: its own salt, the parameters inside) of
 * password into ret (AUTH_PASSWORD_HASH_MAX bytes). At most AUTH_HASH_CONCURRENCY hashes
 * run at once (each takes crypto_pwhash_MEMLIMIT_INTERACTIVE of memory); callers wait. */
#define AUTH_PASSWORD_HASH_MAX 128
#define AUTH_PASSWORD_MIN 8
#define AUTH_PASSWORD_MAX 256
#define AUTH_HASH_CONCURRENCY 2
int auth_password_hash(const char *password, char ret[static AUTH_PASSWORD_HASH_MAX]);
/* 0 when password matches hash, -EACCES when it does not; hash NULL: compare against a fixed
 * dummy hash and fail, so that an unknown user costs as long as a wrong password. */
int auth_password_verify(const char *hash, const char *password);

/* Tokens: AUTH_TOKEN_PREFIX then 43 base64url characters of 32 random bytes. Only their
 * SHA-256 is stored: a token has 256 bits of entropy, so a fast hash suffices (nothing to
 * brute-force) and lets the store look a token up by its hash. */
#define AUTH_TOKEN_PREFIX "husk_"
#define AUTH_TOKEN_LEN (sizeof(AUTH_TOKEN_PREFIX) - 1 + 43)
#define AUTH_TOKEN_HASH_LEN 32
int auth_token_new(char ret[static AUTH_TOKEN_LEN + 1]);
/* -EINVAL when token does not have a token's shape (then nothing needs looking up). */
int auth_token_hash(const char *token, uint8_t ret[static AUTH_TOKEN_HASH_LEN]);

/* A password for the first admin: 24 base64url characters (144 random bits). */
#define AUTH_INITIAL_PASSWORD_LEN 24
int auth_password_random(char ret[static AUTH_INITIAL_PASSWORD_LEN + 1]);

/* A user name: 1..AUTH_NAME_MAX of [a-z0-9._-], starting with a letter or digit; not "me". */
bool auth_name_valid(const char *name);
