/* apiserver_http.h: the REST server: routing, request bodies, JSON and RFC 7807 problem replies. */
#pragma once

#include <jansson.h>
#include <stddef.h>

#include "lib/util.h"
#include "services/apiserver/apiserver.h"

#define HTTP_BODY_MAX (1024u * 1024u)

struct mg_connection;
struct mg_request_info;

typedef struct http_request {
        struct mg_connection *conn;
        const struct mg_request_info *info;
        apiserver_t *api;
        const char *arg; /* the {id} of a /deployments/{id} route, URL-decoded */
        bool body_read;  /* http_read_body() was called: the body is consumed or the connection closes */
} http_request_t;

/* A route handler answers the request and returns the HTTP status it sent. */
typedef int (*http_route_fn)(http_request_t *req);

/* "127.0.0.1:3030", "localhost:3030", "[::1]:3030" or "3030" (loopback) into civetweb's
 * listening_ports syntax. -EINVAL when it is none of these. */
int http_listen_spec(const char *listen, char *buf, size_t size);

/* listen: apiserver.listen (copied; the config may go away once this returns). */
int http_start(apiserver_t *api, const char *listen);
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

/* Send an application/problem+json {type, title, status, detail, violations?}; type is
 * "urn:husk:problem:<slug>". violations is consumed (may be NULL). */
int http_reply_problem(http_request_t *req, int status, const char *slug, const char *title, json_t *violations,
                       const char *detail_fmt, ...) _printf_(6, 7);

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
int route_healthz(http_request_t *req);
int route_deployments_list(http_request_t *req);
int route_deployments_apply(http_request_t *req);
int route_deployment_get(http_request_t *req);
int route_deployment_delete(http_request_t *req);
int route_deployment_exec(http_request_t *req);
int route_deployment_events(http_request_t *req);
int route_deployment_logs(http_request_t *req);
int route_deployment_health_checks(http_request_t *req);
