/* apiserver_http.c: civetweb on the configured loopback address, a route table, and the reply helpers every route uses. */
#include "services/apiserver/apiserver_http.h"

#include <civetweb.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lib/log.h"

#define HTTP_THREADS "8"

static const struct route {
        const char *method;
        const char *path; /* a '*' matches one non-empty path segment, the route's arg */
        http_route_fn handler;
} routes[] = {
        { "GET", "/healthz", route_healthz },
        { "GET", "/deployments", route_deployments_list },
        { "POST", "/deployments", route_deployments_apply },
        { "GET", "/deployments/*", route_deployment_get },
        { "DELETE", "/deployments/*", route_deployment_delete },
        { "POST", "/deployments/*/exec", route_deployment_exec },
        { "GET", "/deployments/*/events", route_deployment_events },
        { "GET", "/deployments/*/logs", route_deployment_logs },
        { "GET", "/deployments/*/health-checks", route_deployment_health_checks },
};

/* A '*' matches one non-empty path segment, copied into arg (a segment that does not fit
 * matches nothing). */
static bool route_match(const struct route *r, const char *path, char *arg, size_t size) {
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

/* Headers and body leave in one write: two small writes meet Nagle and the peer's delayed ACK
 * and cost 40 ms each time. */
static int send_reply(http_request_t *req, int status, const char *content_type, const char *body, size_t size,
                      const char *extra_headers) {
        _cleanup_free_ char *buf = NULL;
        int n;

        n = asprintf(&buf,
                     "HTTP/1.1 %d %s\r\n"
                     "Content-Type: %s\r\n"
                     "Content-Length: %zu\r\n"
                     "Cache-Control: no-store\r\n"
                     "%s\r\n"
                     "%.*s",
                     status, mg_get_response_code_text(req->conn, status), content_type, size, extra_headers ?: "",
                     (int)size, body);
        if (n < 0) {
                mg_disable_connection_keep_alive(req->conn);
                return 500;
        }
        mg_write(req->conn, buf, (size_t)n);
        return status;
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

static int reply_problem_v(http_request_t *req, int status, const char *slug, const char *title, json_t *violations,
                           const char *extra_headers, const char *fmt, va_list ap) {
        _cleanup_free_ char *text = NULL;
        json_auto_t *p = NULL;
        char type[96], detail[1024];

        vsnprintf(detail, sizeof(detail), fmt, ap);
        snprintf(type, sizeof(type), "urn:husk:problem:%s", slug);
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

static int reply_problem_headers(http_request_t *req, int status, const char *slug, const char *title,
                                 const char *extra_headers, const char *fmt, ...) _printf_(6, 7);

static int reply_problem_headers(http_request_t *req, int status, const char *slug, const char *title,
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
                n = mg_read(req->conn, buf + size, allocated - size - 1);
                if (n < 0)
                        return -EIO;
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
        buf[size] = '\0';
        *ret_size = size;
        *ret = TAKE_PTR(buf);
        return 0;
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
        return 1;
}

static int on_request(struct mg_connection *conn, void *userdata) {
        const struct mg_request_info *info = mg_get_request_info(conn);
        http_request_t req = { .conn = conn, .info = info, .api = userdata };
        const char *path = info->local_uri ?: "";
        char allow[64] = "";
        size_t len = 0;

        char arg[256];

        for (size_t i = 0; i < ELEMENTSOF(routes); i++) {
                if (!route_match(&routes[i], path, arg, sizeof(arg)))
                        continue;
                if (streq(routes[i].method, info->request_method)) {
                        req.arg = arg;
                        return routes[i].handler(&req);
                }
                len += (size_t)snprintf(allow + len, sizeof(allow) - len, "%s%s", len ? ", " : "", routes[i].method);
        }
        if (len > 0) {
                char headers[96];

                snprintf(headers, sizeof(headers), "Allow: %s\r\n", allow);
                return reply_problem_headers(&req, 405, "method-not-allowed", "Method not allowed", headers,
                                             "%s is not supported on %s; use %s", info->request_method, path, allow);
        }
        return http_reply_problem(&req, 404, "not-found", "Not found", NULL, "no such endpoint: %s", path);
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

int http_start(apiserver_t *api) {
        char ports[128];
        const char *options[] = {
                "listening_ports", ports,
                "num_threads", HTTP_THREADS,
                "enable_keep_alive", "yes",
                "request_timeout_ms", "30000",
                "tcp_nodelay", "1",
                NULL,
        };
        struct mg_callbacks callbacks = {
                .http_error = on_http_error,
                .log_message = on_log_message,
        };
        int r;

        r = http_listen_spec(api->config->apiserver.listen, ports, sizeof(ports));
        if (r < 0)
                return log_error_errno(r, "apiserver.listen: \"%s\" is not host:port", api->config->apiserver.listen);

        /* There is no authentication yet: anything that can connect can deploy. */
        if (strncmp(ports, "127.", 4) != 0 && strncmp(ports, "[::1]:", 6) != 0)
                log_warning("apiserver.listen %s is not a loopback address, and the API has no authentication: "
                            "anyone who can reach it can run VMs here",
                            ports);

        mg_init_library(0);
        api->http = mg_start(&callbacks, api, options);
        if (!api->http) {
                mg_exit_library();
                return log_error_errno(EADDRINUSE, "Failed to listen on %s (in use, or not a local address)", ports);
        }
        mg_set_request_handler(api->http, "/", on_request, api);
        log_info("REST API listening on http://%s", ports);
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
