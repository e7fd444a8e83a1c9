/* apiserver_http.c: civetweb on the configured loopback address, a route table, and the reply helpers every route uses. */
#include "services/apiserver/apiserver_http.h"

#include <civetweb.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "lib/log.h"
#include "services/apiserver/apiserver_local.h"
#include "services/apiserver/apiserver_tls.h"

/* How the API stays up under idle, slow and long-lived connections (issue 10).
 *
 * civetweb 1.15 gives every connection a worker thread of its own, from the moment it is
 * accepted until it closes: an idle connection, a half-sent request head, a body that never
 * completes and a log follower each hold one. Nothing in 1.15 parks a connection without a
 * thread (no async mode; `prespawn_threads` came later), so the defence is in three parts:
 *
 * - Many workers (HTTP_WORKERS): 1024. The load we hold is 500 idle connections, 100
 *   half-sent heads and 50 followers at once, with a GET still answered at once; 1024 leaves
 *   room above that. A worker costs a parked thread (its stack is reserved, barely touched)
 *   and a max_request_size buffer malloc'd once (16 KiB x 1024, pages untouched until used).
 *   Beyond 1024 slow connections, new requests wait in the accept queue for a worker, that
 *   is at most HTTP_REQUEST_TIMEOUT_MS: slow connections cannot hold a worker for longer.
 * - Bounded timeouts (HTTP_REQUEST_TIMEOUT_MS): the whole request head must arrive within
 *   10 s of the worker taking the connection (civetweb measures it from the start of the
 *   request, so a byte at a time does not extend it); the body likewise (http_read_body adds
 *   its own deadline, since civetweb's applies to each read); a reply write that does not
 *   progress for as long ends the connection. Between keep-alive requests a connection may
 *   idle HTTP_KEEP_ALIVE_TIMEOUT_MS. No SO_LINGER: a linger makes close() wait for a peer
 *   that does not read.
 * - Followers (apiserver_routes_logs.c) are capped at 64 workers, answered 503 beyond.
 *
 * No per-client connection cap: the API listens on loopback, so every client, the CLI and a
 * hostile local process alike, has the address 127.0.0.1; a cap per address would turn the
 * very stall this prevents into a refusal of the CLI. The bound is the worker count and
 * the timeouts, whoever the client is. */
#define HTTP_WORKERS "1024"
#define HTTP_REQUEST_TIMEOUT_MS 10000
#define HTTP_KEEP_ALIVE_TIMEOUT_MS "2000"
/* Connections the kernel completes while every worker is busy wait here, then in civetweb's
 * queue, instead of being dropped (a dropped SYN is retried a second later). */
#define HTTP_LISTEN_BACKLOG "1024"
#define HTTP_CONNECTION_QUEUE "256"
#define HTTP_MAX_REQUEST_SIZE "16384"

/* An answer of the API is data, never a page: a browser must not sniff it into one, run
 * anything in it, or frame it. */
#define HTTP_API_HEADERS                                                          \
        "X-Content-Type-Options: nosniff\r\n"                                     \
        "Content-Security-Policy: default-src 'none'; frame-ancestors 'none'\r\n" \
        "X-Frame-Options: DENY\r\n"

#define PARAMS(...) ((const char *const[]){ __VA_ARGS__, NULL })

/* The route table, and the one place access is decided: on_request() checks the row's scope
 * before any handler runs, so a handler never checks access itself. A row that names no
 * scope is for admins alone: AUTH_SCOPE_ADMIN is 0, what a designated initializer leaves out
 * (and a positional row without one does not compile: -Wmissing-field-initializers).
 * tests/unit/apiserver/test_http_auth.c walks this table (http_routes()). */
static const http_route_t routes[] = {
        { "GET", "/healthz", route_healthz, NULL, AUTH_SCOPE_PUBLIC },
        { "POST", "/login", route_login, NULL, AUTH_SCOPE_PUBLIC },
        { "POST", "/logout", route_logout, NULL, AUTH_SCOPE_AUTHENTICATED },
        { "GET", "/users/me", route_user_me, NULL, AUTH_SCOPE_AUTHENTICATED },
        { "PUT", "/users/me", route_user_me_password, NULL, AUTH_SCOPE_AUTHENTICATED },
        { "GET", "/users", route_users_list, NULL, AUTH_SCOPE_USERS_READ },
        { "POST", "/users", route_users_create, NULL, AUTH_SCOPE_ADMIN },
        /* After /users/me, which the first matching row takes ("me" is no user name). */
        { "GET", "/users/*", route_user_get, NULL, AUTH_SCOPE_USERS_READ },
        { "PUT", "/users/*", route_user_update, NULL, AUTH_SCOPE_ADMIN },
        { "DELETE", "/users/*", route_user_delete, NULL, AUTH_SCOPE_ADMIN },
        { "GET", "/tokens", route_tokens_list, NULL, AUTH_SCOPE_TOKENS_WRITE },
        { "POST", "/tokens", route_tokens_create, NULL, AUTH_SCOPE_TOKENS_WRITE },
        { "DELETE", "/tokens/*", route_token_delete, NULL, AUTH_SCOPE_TOKENS_WRITE },
        { "POST", "/tokens/*/rotate", route_token_rotate, NULL, AUTH_SCOPE_TOKENS_WRITE },
        { "POST", "/auth/stream-ticket", route_stream_ticket, NULL, AUTH_SCOPE_AUTHENTICATED },
        { "GET", "/namespaces", route_namespaces_list, NULL, AUTH_SCOPE_NAMESPACES_READ },
        { "POST", "/namespaces", route_namespaces_create, NULL, AUTH_SCOPE_NAMESPACES_WRITE },
        { "GET", "/namespaces/*", route_namespace_get, NULL, AUTH_SCOPE_NAMESPACES_READ },
        { "DELETE", "/namespaces/*", route_namespace_delete, PARAMS("cascade"), AUTH_SCOPE_NAMESPACES_WRITE },
        { "GET", "/namespaces/*/audit", route_namespace_audit, PARAMS("limit"), AUTH_SCOPE_AUDIT_READ },
        { "GET", "/audit", route_audit, PARAMS("limit"), AUTH_SCOPE_ADMIN },
        { "GET", "/deployments", route_deployments_list,
          PARAMS("namespace", "status", "kind", "label", "labelSelector", "instances"), AUTH_SCOPE_DEPLOYMENTS_READ },
        { "POST", "/deployments", route_deployments_apply, PARAMS("dryRun"), AUTH_SCOPE_DEPLOYMENTS_WRITE },
        { "GET", "/deployments/*", route_deployment_get, NULL, AUTH_SCOPE_DEPLOYMENTS_READ },
        { "DELETE", "/deployments/*", route_deployment_delete, NULL, AUTH_SCOPE_DEPLOYMENTS_WRITE },
        { "POST", "/deployments/*/exec", route_deployment_exec, NULL, AUTH_SCOPE_DEPLOYMENTS_EXEC },
        { "GET", "/deployments/*/events", route_deployment_events, PARAMS("level", "limit", "after", "since", "ticket"),
          AUTH_SCOPE_EVENTS_READ },
        { "GET", "/deployments/*/logs", route_deployment_logs,
          PARAMS("tail", "since", "level", "instance", "container", "follow", "ticket"), AUTH_SCOPE_LOGS_READ },
        { "GET", "/deployments/*/health-checks", route_deployment_health_checks, NULL, AUTH_SCOPE_DEPLOYMENTS_READ },
        { "GET", "/deployments/*/metrics", route_deployment_metrics, NULL, AUTH_SCOPE_DEPLOYMENTS_READ },
        /* Public as Ring's unless apiserver.metrics_auth: the route checks that itself. */
        { "GET", "/metrics", route_metrics, NULL, AUTH_SCOPE_PUBLIC },
        { "GET", "/configs", route_configs_list, PARAMS("namespace"), AUTH_SCOPE_CONFIGS_READ },
        { "POST", "/configs", route_configs_create, NULL, AUTH_SCOPE_CONFIGS_WRITE },
        { "GET", "/configs/*", route_config_get, PARAMS("namespace"), AUTH_SCOPE_CONFIGS_READ },
        { "PUT", "/configs/*", route_config_update, PARAMS("namespace"), AUTH_SCOPE_CONFIGS_WRITE },
        { "DELETE", "/configs/*", route_config_delete, PARAMS("namespace"), AUTH_SCOPE_CONFIGS_WRITE },
        /* Metadata only: no route answers a secret's value. */
        { "GET", "/secrets", route_secrets_list, PARAMS("namespace"), AUTH_SCOPE_SECRETS_READ },
        { "POST", "/secrets", route_secrets_create, NULL, AUTH_SCOPE_SECRETS_WRITE },
        { "GET", "/secrets/*", route_secret_get, PARAMS("namespace"), AUTH_SCOPE_SECRETS_READ },
        { "DELETE", "/secrets/*", route_secret_delete, PARAMS("namespace"), AUTH_SCOPE_SECRETS_WRITE },
        /* Named volumes hold deployments' data: the deployments scopes guard them. */
        { "GET", "/volumes", route_volumes_list, PARAMS("namespace"), AUTH_SCOPE_DEPLOYMENTS_READ },
        { "POST", "/volumes", route_volumes_create, NULL, AUTH_SCOPE_DEPLOYMENTS_WRITE },
        { "GET", "/volumes/*", route_volume_get, PARAMS("namespace"), AUTH_SCOPE_DEPLOYMENTS_READ },
        { "DELETE", "/volumes/*", route_volume_delete, PARAMS("namespace"), AUTH_SCOPE_DEPLOYMENTS_WRITE },
        /* Reads a manifest as husk apply does and changes nothing (the dashboard's YAML). */
        { "POST", "/manifests/parse", route_manifests_parse, NULL, AUTH_SCOPE_AUTHENTICATED },
        /* The host and its daemons: what a reader of deployments may see (namespace-bound tokens may not). */
        { "GET", "/node", route_node, NULL, AUTH_SCOPE_DEPLOYMENTS_READ },
        { "GET", "/webhooks", route_webhooks_list, NULL, AUTH_SCOPE_WEBHOOKS_READ },
        { "POST", "/webhooks", route_webhooks_create, NULL, AUTH_SCOPE_WEBHOOKS_WRITE },
        { "GET", "/webhooks/*", route_webhook_get, NULL, AUTH_SCOPE_WEBHOOKS_READ },
        { "DELETE", "/webhooks/*", route_webhook_delete, NULL, AUTH_SCOPE_WEBHOOKS_WRITE },
        { "GET", "/webhooks/*/events", route_webhook_deliveries, PARAMS("limit"), AUTH_SCOPE_WEBHOOKS_READ },
};

const http_route_t *http_routes(size_t *ret_n) {
        *ret_n = ELEMENTSOF(routes);
        return routes;
}

/* The first query parameter the route does not take, into name (bytes a message cannot show
 * replaced by '?'); NULL when there is none. A misspelt filter would list everything and a
 * misspelt option (?dryRun=All where none exists) would act for real: neither is ignored. */
static const char *unknown_param(const http_route_t *r, const char *query, char *name, size_t size) {
        for (const char *p = query; p && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
                size_t n = strcspn(p, "=&");
                char decoded[64];
                bool known = false;
                int len;

                if (n == 0)
                        continue;
                /* Names compare URL-decoded, and Ring's repeatable form name[] is the name. */
                len = mg_url_decode(p, (int)n, decoded, (int)sizeof(decoded), 1);
                if (len > 0 && (size_t)len == strlen(decoded)) { /* no NUL inside a name */
                        if (len > 2 && streq(decoded + len - 2, "[]"))
                                decoded[len - 2] = '\0';
                        for (const char *const *k = r->params; k && *k && !known; k++)
                                known = streq(*k, decoded);
                }
                if (known)
                        continue;
                snprintf(name, size, "%.*s", (int)(n < size ? n : size - 1), p);
                for (char *c = name; *c; c++)
                        if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f || *c == '"' || *c == '\\')
                                *c = '?';
                return name;
        }
        return NULL;
}

/* 400 naming the parameter and what the route takes. */
static int reply_unknown_param(http_request_t *req, const http_route_t *r, const char *name) {
        char list[128] = "", shown[64] = "";
        const char *star = strchr(r->path, '*');
        size_t len = 0;

        /* The table writes a path segment as a star; users read "{id}". */
        if (star)
                snprintf(shown, sizeof(shown), "%.*s{id}%s", (int)(star - r->path), r->path, star + 1);
        for (const char *const *k = r->params; k && *k && len < sizeof(list); k++)
                len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s", len ? ", " : "", *k);
        return http_reply_problem(req, 400, "bad-query", "Bad request",
                                  json_pack("[{s:s, s:s}]", "field", name, "reason", "unknown query parameter"),
                                  "unknown query parameter \"%s\": %s %s takes %s", name, r->method,
                                  star ? shown : r->path, len ? list : "none");
}

/* A '*' matches one non-empty path segment, copied into arg (a segment that does not fit
 * matches nothing). */
static bool route_match(const http_route_t *r, const char *path, char *arg, size_t size) {
        const char *star = strchr(r->path, '*'), *suffix;
        size_t n, len_path = strlen(path), len_suffix, len_arg;

        if (!star) {
                arg[0] = '\0';
                return streq(r->path, path);
        }
        n = (size_t)(star - r->path);
        suffix = star + 1;
        len_suffix = strlen(suffix);
        if (strncmp(r->path, path, n) != 0 || len_path < n + len_suffix + 1 ||
            !streq(path + len_path - len_suffix, suffix))
                return false;
        len_arg = len_path - n - len_suffix;
        if (len_arg >= size || memchr(path + n, '/', len_arg))
                return false;
        memcpy(arg, path + n, len_arg);
        arg[len_arg] = '\0';
        return true;
}

static void audit_before_answer(http_request_t *req, int status);

/* Headers and body leave in one write: two small writes meet Nagle and the peer's delayed ACK
 * and cost 40 ms each time. */
static int send_reply(http_request_t *req, int status, const char *content_type, const char *body, size_t size,
                      const char *extra_headers) {
        _cleanup_free_ char *head = NULL, *buf = NULL;
        int n;

        n = asprintf(&head,
                     "HTTP/1.1 %d %s\r\n"
                     "Content-Type: %s\r\n"
                     "Content-Length: %zu\r\n"
                     "Cache-Control: no-store\r\n" HTTP_API_HEADERS "%s\r\n",
                     status, mg_get_response_code_text(req->conn, status), content_type, size, extra_headers ?: "");
        buf = n < 0 ? NULL : malloc((size_t)n + size);
        if (!buf) {
                mg_disable_connection_keep_alive(req->conn);
                return 500;
        }
        /* Copied, not formatted: bodies run to megabytes, and stdio's %s is slow on them. */
        memcpy(buf, head, (size_t)n);
        memcpy(buf + n, body, size);
        audit_before_answer(req, status);
        mg_write(req->conn, buf, (size_t)n + size);
        return status;
}

int http_reply_no_content(http_request_t *req) {
        static const char head[] = "HTTP/1.1 204 No Content\r\nCache-Control: no-store\r\n" HTTP_API_HEADERS "\r\n";

        audit_before_answer(req, 204);
        mg_write(req->conn, head, sizeof(head) - 1);
        return 204;
}

int http_reply_json(http_request_t *req, int status, json_t *body, const char *extra_headers) {
        _cleanup_free_ char *text = NULL;

        if (body)
                text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
        json_decref(body);
        if (!text)
                return http_reply_internal(req, ENOMEM, "encoding the reply");
        return send_reply(req, status, "application/json", text, strlen(text), extra_headers);
}

int http_reply_json_text(http_request_t *req, int status, const char *text, size_t size, const char *extra_headers) {
        return send_reply(req, status, "application/json", text, size, extra_headers);
}

int http_reply_typed(http_request_t *req, int status, const char *content_type, const char *body, size_t size) {
        return send_reply(req, status, content_type, body, size, NULL);
}

/* Ring's code for a violation of field: "<resource>.<field without indices>.invalid", e.g.
 * "deployment.ports.published.invalid" for ports[0].published. */
static void violation_code(const char *slug, const char *field, char *buf, size_t size) {
        const char *resource = streq(slug, "invalid-manifest") ? "deployment"
                               : streq(slug, "invalid-exec")   ? "exec"
                                                               : slug;
        size_t n = (size_t)snprintf(buf, size, "%s.", resource);

        for (const char *p = field; *p && n + 1 < size; p++) {
                if (*p == '[') {
                        const char *close = strchr(p, ']');
                        if (close) {
                                p = close;
                                continue;
                        }
                }
                buf[n++] = *p;
        }
        snprintf(buf + n, size - n, ".invalid");
}

/* husk names a violation {field, reason}; Ring {property_path, message, code}. Each gets both,
 * so that scripts written for either read it. */
static void add_ring_names(json_t *violations, const char *slug) {
        json_t *v;
        size_t i;

        json_array_foreach(violations, i, v) {
                const char *field = json_string_value(json_object_get(v, "field"));
                const char *reason = json_string_value(json_object_get(v, "reason"));
                char code[160];

                if (field && !json_object_get(v, "property_path"))
                        json_object_set(v, "property_path", json_object_get(v, "field"));
                if (reason && !json_object_get(v, "message"))
                        json_object_set(v, "message", json_object_get(v, "reason"));
                if (field && !json_object_get(v, "code")) {
                        violation_code(slug, field, code, sizeof(code));
                        json_object_set_new(v, "code", json_string(code));
                }
        }
}

static int reply_problem_v(http_request_t *req, int status, const char *slug, const char *title, json_t *violations,
                           const char *extra_headers, const char *fmt, va_list ap) {
        _cleanup_free_ char *text = NULL;
        json_auto_t *p = NULL;
        char type[96], detail[1024];

        vsnprintf(detail, sizeof(detail), fmt, ap);
        snprintf(type, sizeof(type), "urn:husk:problem:%s", slug);
        add_ring_names(violations, slug);
        p = json_pack("{s:s, s:s, s:i, s:s, s:o*}", "type", type, "title", title, "status", status, "detail", detail,
                      "violations", violations);
        if (p)
                text = json_dumps(p, JSON_COMPACT);
        if (!text) {
                static const char fallback[] = "{\"type\":\"urn:husk:problem:internal\",\"title\":\"Internal error\","
                                               "\"status\":500,\"detail\":\"out of memory\"}";
                return send_reply(req, 500, "application/problem+json", fallback, sizeof(fallback) - 1, NULL);
        }
        return send_reply(req, status, "application/problem+json", text, strlen(text), extra_headers);
}

int http_reply_problem(http_request_t *req, int status, const char *slug, const char *title, json_t *violations,
                       const char *detail_fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, detail_fmt);
        r = reply_problem_v(req, status, slug, title, violations, NULL, detail_fmt, ap);
        va_end(ap);
        return r;
}

int http_reply_problem_headers(http_request_t *req, int status, const char *slug, const char *title,
                               const char *extra_headers, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = reply_problem_v(req, status, slug, title, NULL, extra_headers, fmt, ap);
        va_end(ap);
        return r;
}

int http_reply_internal(http_request_t *req, int error, const char *what) {
        log_error_errno(error, "%s %s: %s failed: %m", req->info->request_method, req->info->local_uri ?: "", what);
        return http_reply_problem(req, 500, "internal", "Internal error", NULL,
                                  "%s failed; the apiserver log has the cause", what);
}

int http_read_body(http_request_t *req, char **ret, size_t *ret_size) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 0, allocated;
        long long announced = req->info->content_length;
        uint64_t deadline = now_monotonic_ms() + HTTP_REQUEST_TIMEOUT_MS;

        /* Whatever happens below, the body has been dealt with: on_request need not close. */
        req->body_read = true;
        /* Refuse before reading when the client tells us; otherwise read at most one byte past
         * the cap to learn that it was exceeded. */
        if (announced > (long long)HTTP_BODY_MAX) {
                mg_disable_connection_keep_alive(req->conn);
                return -EFBIG;
        }
        allocated = announced >= 0 ? (size_t)announced + 1 : 64 * 1024;
        buf = malloc(allocated);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                int n;

                if (size + 1 >= allocated) {
                        size_t want = allocated * 2 > HTTP_BODY_MAX + 2 ? HTTP_BODY_MAX + 2 : allocated * 2;
                        char *grown;

                        if (want <= allocated)
                                break;
                        grown = realloc(buf, want);
                        if (!grown)
                                return -ENOMEM;
                        buf = grown;
                        allocated = want;
                }
                /* civetweb's mg_read() waits up to request_timeout_ms for each call; the
                 * deadline bounds the whole body, so that a client sending a byte now and then
                 * cannot hold the worker. */
                if (now_monotonic_ms() >= deadline) {
                        mg_disable_connection_keep_alive(req->conn);
                        return -ETIMEDOUT;
                }
                n = mg_read(req->conn, buf + size, allocated - size - 1);
                if (n < 0) {
                        mg_disable_connection_keep_alive(req->conn);
                        return -EIO;
                }
                if (n == 0)
                        break;
                size += (size_t)n;
                if (size > HTTP_BODY_MAX)
                        break;
        }
        if (size > HTTP_BODY_MAX || announced > (long long)HTTP_BODY_MAX) {
                /* The rest of the body is still on the wire: this connection cannot carry
                 * another request. */
                mg_disable_connection_keep_alive(req->conn);
                return -EFBIG;
        }
        if (announced >= 0 && size < (size_t)announced) {
                /* mg_read() gives 0 both at the end and when the client stopped sending: a body
                 * shorter than its Content-Length timed out, and is not parsed as if whole. */
                mg_disable_connection_keep_alive(req->conn);
                return -ETIMEDOUT;
        }
        buf[size] = '\0';
        *ret_size = size;
        *ret = TAKE_PTR(buf);
        return 0;
}

int http_reply_body_error(http_request_t *req, int error) {
        if (error == -EFBIG)
                return http_reply_problem(req, 413, "payload-too-large", "Payload too large", NULL,
                                          "the request body exceeds %u bytes", HTTP_BODY_MAX);
        if (error == -ETIMEDOUT)
                return http_reply_problem(req, 408, "request-timeout", "Request timeout", NULL,
                                          "the request body did not arrive within %d s (Content-Length: %lld)",
                                          HTTP_REQUEST_TIMEOUT_MS / 1000, req->info->content_length);
        return http_reply_problem(req, 400, "bad-request", "Bad request", NULL, "could not read the request body: %s",
                                  strerror(-error));
}

int http_query(http_request_t *req, const char *name, unsigned occurrence, char *buf, size_t size) {
        const char *q = req->info->query_string;
        int n;

        if (!q)
                return 0;
        n = mg_get_var2(q, strlen(q), name, buf, size, occurrence);
        if (n == -1)
                return 0;
        if (n < 0)
                return -ENAMETOOLONG;
        /* "level=info%00x" must not read as "info". */
        if (memchr(buf, '\0', (size_t)n))
                return -EINVAL;
        return 1;
}

/* A body the route did not read is drained here, within the body deadline and up to
 * HTTP_BODY_MAX: civetweb would drain it itself before the next request on the connection,
 * one mg_read() timeout after the other for as long as a client trickles it. A body that does
 * not end in time closes the connection instead. */
static void request_done(http_request_t *req) {
        uint64_t deadline = now_monotonic_ms() + HTTP_REQUEST_TIMEOUT_MS;
        size_t drained = 0;
        char buf[4096];
        int n;

        if (req->body_read || (req->info->content_length <= 0 && !mg_get_header(req->conn, "Transfer-Encoding")))
                return;
        do {
                if (now_monotonic_ms() >= deadline || drained > HTTP_BODY_MAX) {
                        mg_disable_connection_keep_alive(req->conn);
                        return;
                }
                n = mg_read(req->conn, buf, sizeof(buf));
                drained += n > 0 ? (size_t)n : 0;
        } while (n > 0);
        /* n == 0 also when the client stopped sending: civetweb sees the body incomplete and
         * closes the connection itself. */
        if (n < 0)
                mg_disable_connection_keep_alive(req->conn);
}

static bool takes_ticket(const http_route_t *r) {
        for (const char *const *k = r->params; k && *k; k++)
                if (streq(*k, "ticket"))
                        return true;
        return false;
}

/* 401 (no credential, or one that is not valid) or 403 (valid, but not enough), with the
 * reason: what the client must do differs. */
static int reply_denied(http_request_t *req, const http_route_t *r, int authenticated) {
        if (authenticated < 0)
                return http_reply_problem_headers(
                        req, 401, "unauthorized", "Unauthorized", "WWW-Authenticate: Bearer realm=\"husk\"\r\n", "%s",
                        authenticated == -ENOKEY ? "this request needs a credential: log in (husk login) "
                                                   "or send Authorization: Bearer <token>"
                                                 : "the credential is not valid (expired, revoked or mistyped)");
        if (r->scope == AUTH_SCOPE_ADMIN || !auth_scope_name(r->scope))
                return http_reply_problem(req, 403, "forbidden", "Forbidden", NULL, "%s %s is for admins", r->method,
                                          r->path);
        return http_reply_problem(req, 403, "forbidden", "Forbidden", NULL, "%s %s needs the scope %s", r->method,
                                  r->path, auth_scope_name(r->scope));
}

/* Who connected: a relay's client (the local socket's peer, a TLS client) or civetweb's. */
static void client_address(http_request_t *req) {
        relay_origin_t origin;

        if (apiserver_tls_origin(req->api, req->info, &origin) == 0)
                snprintf(req->client, sizeof(req->client), "%s", origin.addr);
        else if (apiserver_local_identity(req->api, req->info, &origin.identity) == 0)
                snprintf(req->client, sizeof(req->client), "local");
        else
                snprintf(req->client, sizeof(req->client), "%s", req->info->remote_addr);
}

/* Every request that may change something (all but GET) and every login, whatever the
 * answer: who, what, on which namespace, from where, and the status. Here, at the router and
 * its replies, so that no write route can forget it; written before the answer leaves, so that
 * a client acting on the answer (a DELETE after its POST's 201) finds its actions in the log in
 * the order it made them, whichever civetweb thread records first. */
static void audit_before_answer(http_request_t *req, int status) {
        const http_route_t *r = req->route;
        const auth_identity_t *who = req->who;
        static const char *const via[] = {
                [AUTH_VIA_SESSION] = "session", [AUTH_VIA_TOKEN] = "token", [AUTH_VIA_LOCAL] = "local"
        };
        char action[96], path[80];
        const char *star = r ? strchr(r->path, '*') : NULL;
        store_audit_t e = { .status = status };
        int k;

        if (!r || req->audited || (streq(r->method, "GET") && r->handler != route_login))
                return;
        req->audited = true;
        if (star) {
                snprintf(path, sizeof(path), "%.*s{id}%s", (int)(star - r->path), r->path, star + 1);
        } else
                snprintf(path, sizeof(path), "%s", r->path);
        snprintf(action, sizeof(action), "%s %s", req->info->request_method, path);
        e.action = action;
        e.actor = who ? (char *)who->name : req->audit_actor[0] ? req->audit_actor : (char *)"anonymous";
        e.actor_id = who ? (char *)who->token_id : (char *)"";
        e.via = who ? (char *)via[who->via] : (char *)"anonymous";
        e.namespace_ = req->audit_namespace[0] ? req->audit_namespace : NULL;
        e.target = req->audit_target[0] ? req->audit_target : (char *)(req->arg ?: "");
        e.source = req->client;
        k = store_audit_record(req->api->store, &e);
        if (k < 0)
                log_warning_errno(k, "Failed to record %s in the audit log, ignoring: %m", action);
}

static int on_request(struct mg_connection *conn, void *userdata) {
        const struct mg_request_info *info = mg_get_request_info(conn);
        http_request_t req = { .conn = conn, .info = info, .api = userdata };
        const char *path = info->local_uri ?: "";
        auth_identity_t identity;
        const http_route_t *found = NULL;
        char allow[64] = "", arg[256], name[64];
        int status, authenticated = 1; /* 1: not asked yet */
        size_t len = 0;

        client_address(&req);
        /* The dashboard's files are public: what they show comes from the API, with the
         * user's own credential. */
        if (http_ui_path(path)) {
                status = route_ui(&req);
                request_done(&req);
                return status;
        }
        for (size_t i = 0; i < ELEMENTSOF(routes); i++) {
                if (!route_match(&routes[i], path, arg, sizeof(arg)))
                        continue;
                if (streq(routes[i].method, info->request_method)) {
                        found = &routes[i];
                        req.route = found;
                        break;
                }
                len += (size_t)snprintf(allow + len, sizeof(allow) - len, "%s%s", len ? ", " : "", routes[i].method);
        }
        /* Closed by default: who is asking is settled before anything else is said, even
         * whether a path exists, unless the route is public. */
        if (!found || found->scope != AUTH_SCOPE_PUBLIC) {
                authenticated = http_authenticate(&req, found && takes_ticket(found), &identity);
                if (authenticated < 0 && authenticated != -ENOKEY && authenticated != -EKEYREJECTED) {
                        status = http_reply_internal(&req, authenticated, "checking the credential");
                        goto done;
                }
                if (authenticated >= 0)
                        req.who = &identity;
        }
        if (found) {
                req.arg = arg;
                if (!auth_allows(req.who, found->scope))
                        status = reply_denied(&req, found, authenticated);
                else if (unknown_param(found, info->query_string, name, sizeof(name)))
                        status = reply_unknown_param(&req, found, name);
                else
                        status = found->handler(&req);
        } else if (!req.who) {
                status = reply_denied(&req, NULL, authenticated);
        } else if (len > 0) {
                char headers[96];

                snprintf(headers, sizeof(headers), "Allow: %s\r\n", allow);
                status = http_reply_problem_headers(&req, 405, "method-not-allowed", "Method not allowed", headers,
                                                    "%s is not supported on %s; use %s", info->request_method, path,
                                                    allow);
        } else
                status = http_reply_problem(&req, 404, "not-found", "Not found", NULL, "no such endpoint: %s", path);
done:
        /* A handler that answered by other means than the replies above is recorded now. */
        audit_before_answer(&req, status);
        request_done(&req);
        return status;
}

/* civetweb's own error pages are HTML; keep every answer a problem document. */
static int on_http_error(struct mg_connection *conn, int status, const char *msg) {
        http_request_t req = { .conn = conn, .info = mg_get_request_info(conn) };

        http_reply_problem(&req, status, "http", mg_get_response_code_text(conn, status), NULL, "%s", msg ?: "");
        return 0;
}

static int on_log_message(const struct mg_connection *conn, const char *message) {
        log_debug("civetweb: %s", message);
        return 1;
}

int http_listen_spec(const char *listen, char *buf, size_t size) {
        const char *colon = strrchr(listen, ':');
        const char *host = "127.0.0.1", *port = listen;
        size_t host_len = strlen(host);
        uint64_t p;

        if (colon) {
                host = listen;
                host_len = (size_t)(colon - listen);
                port = colon + 1;
        }
        if (parse_u64(port, &p) < 0 || p == 0 || p > 65535 || host_len == 0)
                return -EINVAL;
        /* civetweb takes addresses, not names. */
        if (host_len == strlen("localhost") && strncmp(host, "localhost", host_len) == 0) {
                host = "127.0.0.1";
                host_len = strlen(host);
        }
        if (host[0] == '[' ? host[host_len - 1] != ']' : memchr(host, ':', host_len) != NULL)
                return -EINVAL;
        if ((size_t)snprintf(buf, size, "%.*s:%" PRIu64, (int)host_len, host, p) >= size)
                return -ENAMETOOLONG;
        return 0;
}

/* A thousand connections and the followers' bus sockets need more descriptors than the
 * usual soft limit of 1024 (systemd's default); the hard limit is ours to take. */
static void raise_fd_limit(void) {
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                (void)setrlimit(RLIMIT_NOFILE, &rl);
        }
}

bool http_serves_tls(const husk_config_t *config) { return config->apiserver.tls_cert || config->apiserver.tls_key; }

int http_start(apiserver_t *api, const husk_config_t *config) {
        const char *listen = config->apiserver.listen;
        char ports[160], public[128];
        struct mg_server_port bound[2];
        bool tls;
        int n_ports;
        const char *options[] = {
                "listening_ports",
                ports,
                "num_threads",
                HTTP_WORKERS,
                "enable_keep_alive",
                "yes",
                "request_timeout_ms",
                STRINGIFY(HTTP_REQUEST_TIMEOUT_MS),
                "keep_alive_timeout_ms",
                HTTP_KEEP_ALIVE_TIMEOUT_MS,
                "listen_backlog",
                HTTP_LISTEN_BACKLOG,
                "connection_queue",
                HTTP_CONNECTION_QUEUE,
                "max_request_size",
                HTTP_MAX_REQUEST_SIZE,
                "tcp_nodelay",
                "1",
                /* The dashboard's files (apiserver_ui.c): never cached, revalidated each load. */
                "static_file_max_age",
                "0",
                NULL,
        };
        struct mg_callbacks callbacks = {
                .http_error = on_http_error,
                .log_message = on_log_message,
        };
        int r;

        r = http_listen_spec(listen, public, sizeof(public));
        if (r < 0)
                return log_error_errno(r, "apiserver.listen: \"%s\" is not host:port", listen);
        /* Civetweb's own TLS is never used (apiserver_tls.c says why): with apiserver.tls,
         * apiserver terminates TLS on the public address and civetweb serves only the internal
         * listener, an ephemeral loopback port the relays use (apiserver_relay.h). */
        tls = http_serves_tls(config);
        if (tls)
                snprintf(ports, sizeof(ports), "127.0.0.1:0");
        else
                snprintf(ports, sizeof(ports), "%s,127.0.0.1:0", public);

        raise_fd_limit();
        mg_init_library(0);
        api->http = mg_start(&callbacks, api, options);
        if (!api->http) {
                mg_exit_library();
                return log_error_errno(EADDRINUSE, "Failed to listen on %s (in use, or not a local address)", public);
        }
        n_ports = tls ? 1 : 2;
        if (mg_get_server_ports(api->http, n_ports, bound) != n_ports || bound[n_ports - 1].port <= 0) {
                http_stop(api);
                return log_error_errno(EADDRNOTAVAIL, "Failed to find the internal listener's port");
        }
        api->http_internal_port = (uint16_t)bound[n_ports - 1].port;
        mg_set_request_handler(api->http, "/", on_request, api);
        if (!tls)
                log_info("REST API listening on http://%s", public);
        return 0;
}

void http_stop(apiserver_t *api) {
        if (!api->http)
                return;
        /* mg_stop() waits for every handler to return, log followers too. */
        __atomic_store_n(&api->stopping, true, __ATOMIC_SEQ_CST);
        mg_stop(api->http);
        mg_exit_library();
        api->http = NULL;
}
