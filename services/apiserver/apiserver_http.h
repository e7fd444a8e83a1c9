/* apiserver_http.h: the REST server: routing, request bodies, JSON and RFC 7807 problem replies. */
#pragma once

#include <jansson.h>
#include <stddef.h>

#include "lib/util.h"
#include "services/apiserver/apiserver.h"
#include "services/apiserver/apiserver_auth.h"

#define HTTP_BODY_MAX (1024u * 1024u)

struct mg_connection;
struct mg_request_info;

typedef struct http_request {
        struct mg_connection *conn;
        const struct mg_request_info *info;
        apiserver_t *api;
        const char *arg;            /* the {id} of a /deployments/{id} route, URL-decoded */
        bool body_read;             /* http_read_body() was called: the body is consumed or the connection closes */
        const auth_identity_t *who; /* who is asking (the router checked its scope); NULL on public routes */
        char client[64];            /* the client's address ("local": the unix socket), through TLS too */
        /* What the router's audit record of a write says beyond the route; handlers fill in
         * what only they know (never a request body: secrets must not reach the log). */
        char audit_namespace[64];       /* "": about no namespace */
        char audit_target[160];         /* "": the route's {id} */
        char audit_actor[65];           /* for POST /login: the user name tried */
        const struct http_route *route; /* the route answering, once the router found it */
        bool audited;                   /* its audit record is written (before the answer left) */
} http_request_t;

/* A route handler answers the request and returns the HTTP status it sent. */
typedef int (*http_route_fn)(http_request_t *req);

typedef struct http_route {
        const char *method;
        const char *path; /* a '*' matches one non-empty path segment, the route's arg */
        http_route_fn handler;
        const char *const *params; /* the query parameters it takes, NULL-terminated; NULL: none.
                                    * "ticket": a stream, where ?ticket= may stand in for the credential */
        auth_scope_t scope;        /* what the caller needs; left out: AUTH_SCOPE_ADMIN */
} http_route_t;

/* The router's own table, for the tests that walk every route. */
const http_route_t *http_routes(size_t *ret_n);

/* Who sent the request (apiserver_routes_auth.c): the unix socket's peer, else the bearer
 * token, else (ticket_ok: a stream route) a ?ticket= from POST /auth/stream-ticket, spent by
 * this use. 0 with *ret filled; -ENOKEY when there is no credential, -EKEYREJECTED when the
 * one given is not valid; another negative errno when the store failed. */
int http_authenticate(http_request_t *req, bool ticket_ok, auth_identity_t *ret);

/* "127.0.0.1:3030", "localhost:3030", "[::1]:3030" or "3030" (loopback) into civetweb's
 * listening_ports syntax. -EINVAL when it is none of these. */
int http_listen_spec(const char *listen, char *buf, size_t size);

/* Whether apiserver.listen serves HTTPS (apiserver.tls set): then apiserver_tls.c listens
 * there and civetweb only on its internal loopback port. */
bool http_serves_tls(const husk_config_t *config);

/* Serve apiserver.listen (unless it serves TLS) and the internal loopback listener the
 * relays use. Nothing of config is kept: it may go away once this returns. */
int http_start(apiserver_t *api, const husk_config_t *config);
void http_stop(apiserver_t *api);

/* The whole body, NUL-terminated. -EFBIG beyond HTTP_BODY_MAX, -EIO when the client went away,
 * -ETIMEDOUT when it did not all arrive in time (shorter than its Content-Length). On error the
 * connection closes after the reply. */
int http_read_body(http_request_t *req, char **ret, size_t *ret_size);

/* The answer to an http_read_body() error: 413, 408 or 400. */
int http_reply_body_error(http_request_t *req, int error);

/* The query parameter's occurrence-th value (URL-decoded) into buf: 1 when present, 0 when
 * absent, -ENAMETOOLONG when longer than size, -EINVAL when it decodes to a NUL byte. Which
 * parameters a route takes is the route table's business: others never reach the handler. */
int http_query(http_request_t *req, const char *name, unsigned occurrence, char *buf, size_t size);

/* 204, no body (RFC 9110: no Content-Length either). */
int http_reply_no_content(http_request_t *req);

/* Send body (consumed) as application/json. extra_headers: complete "Name: value\r\n" lines or NULL. */
int http_reply_json(http_request_t *req, int status, json_t *body, const char *extra_headers);
/* The same for a body that is JSON text already. */
int http_reply_json_text(http_request_t *req, int status, const char *text, size_t size, const char *extra_headers);

/* Send body with its own Content-Type (GET /metrics: Prometheus's text). */
int http_reply_typed(http_request_t *req, int status, const char *content_type, const char *body, size_t size);

/* Send an application/problem+json {type, title, status, detail, violations?}; type is
 * "urn:husk:problem:<slug>". violations is consumed (may be NULL). */
int http_reply_problem(http_request_t *req, int status, const char *slug, const char *title, json_t *violations,
                       const char *detail_fmt, ...) _printf_(6, 7);

/* The same with extra_headers: complete "Name: value\r\n" lines. */
int http_reply_problem_headers(http_request_t *req, int status, const char *slug, const char *title,
                               const char *extra_headers, const char *detail_fmt, ...) _printf_(6, 7);

/* 500, with the cause logged once (the client only learns to look at the log). */
int http_reply_internal(http_request_t *req, int error, const char *what);

/* Routes (apiserver_routes_*.c). */
/* What every route on /deployments/{id}[/...] starts with: the deployment req->arg names must
 * exist. Returns 0 with it in *ret (ret NULL: only whether it exists), else the status of the
 * reply already sent: 404 when the store has no such deployment, 500 when the store fails
 * (apiserver_routes_deployments.c). */
int route_deployment_need(http_request_t *req, store_deployment_t *ret);
/* The 404 of a deployment id that names none. */
int route_reply_no_deployment(http_request_t *req);
/* The request body as a JSON object into *ret: 0, else the status of the 400/408/413 sent
 * (what: the shape the client should send, for the message). */
int route_read_object(http_request_t *req, const char *what, json_t **ret);
/* {id, username, role, created_at, updated_at}. */
json_t *user_to_json(const store_user_t *u);
/* Give t (user_id, kind, name, scopes, namespaces, times filled in) a fresh id and value: the
 * value into token, to be shown once; only its hash is stored. */
int route_token_issue(apiserver_t *api, store_token_t *t, char token[static AUTH_TOKEN_LEN + 1]);
int route_healthz(http_request_t *req);
/* Whether path is the dashboard's (/ui or below it), and its answer: a file of
 * apiserver.ui_dir, public (apiserver_ui.c). */
bool http_ui_path(const char *path);
int route_ui(http_request_t *req);
int route_manifests_parse(http_request_t *req);
int route_login(http_request_t *req);
int route_logout(http_request_t *req);
int route_user_me(http_request_t *req);
int route_user_me_password(http_request_t *req);
int route_users_list(http_request_t *req);
int route_users_create(http_request_t *req);
int route_user_get(http_request_t *req);
int route_user_update(http_request_t *req);
int route_user_delete(http_request_t *req);
int route_tokens_list(http_request_t *req);
int route_namespace_audit(http_request_t *req);
int route_namespaces_list(http_request_t *req);
int route_namespaces_create(http_request_t *req);
int route_namespace_get(http_request_t *req);
int route_namespace_delete(http_request_t *req);
/* Mark deployment id deleted, with its event and log line: 1 when it changed, 0 when it was
 * deleted already, -ENOENT (apiserver_routes_deployments.c). */
int route_deployment_mark_deleted(apiserver_t *api, const char *id);
int route_audit(http_request_t *req);
int route_stream_ticket(http_request_t *req);
int route_tokens_create(http_request_t *req);
int route_token_delete(http_request_t *req);
int route_token_rotate(http_request_t *req);
int route_deployments_list(http_request_t *req);
int route_deployments_apply(http_request_t *req);
int route_deployment_get(http_request_t *req);
int route_deployment_delete(http_request_t *req);
int route_deployment_exec(http_request_t *req);
int route_deployment_events(http_request_t *req);
int route_deployment_logs(http_request_t *req);
int route_deployment_health_checks(http_request_t *req);
int route_deployment_metrics(http_request_t *req);
int route_metrics(http_request_t *req);
/* ?namespace= into ns (a DNS label, else the status of the 400 sent); absent: "default" when
 * required, else "" (apiserver_routes_configs.c). */
int route_query_namespace(http_request_t *req, bool required, char ns[static AUTH_NAMESPACE_MAX + 1]);
/* A write into namespace ns: 0 when the caller may (the namespace made if it may make it), else
 * the status of the 403 sent. Records ns for the audit. */
int route_namespace_for_write(http_request_t *req, const char *ns);
int route_configs_list(http_request_t *req);
int route_configs_create(http_request_t *req);
int route_config_get(http_request_t *req);
int route_config_update(http_request_t *req);
int route_config_delete(http_request_t *req);
int route_secrets_list(http_request_t *req);
int route_secrets_create(http_request_t *req);
int route_secret_get(http_request_t *req);
int route_secret_delete(http_request_t *req);
/* /volumes (apiserver_volumes.c). */
int route_volumes_list(http_request_t *req);
int route_volumes_create(http_request_t *req);
int route_volume_get(http_request_t *req);
int route_volume_delete(http_request_t *req);
int route_node(http_request_t *req);
/* /webhooks (apiserver_routes_webhooks.c). */
int route_webhooks_list(http_request_t *req);
int route_webhooks_create(http_request_t *req);
int route_webhook_get(http_request_t *req);
int route_webhook_delete(http_request_t *req);
int route_webhook_deliveries(http_request_t *req);
