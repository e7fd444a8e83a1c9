/* cli_http.h: the husk-apiserver client: libcurl requests answered with status, JSON and
 * RFC 7807 problem details, and the one place that turns failures into messages and exit codes. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "lib/util.h"

/* Bodies we accept from the server; a bigger answer is refused (-EFBIG), not buffered. */
#define CLI_HTTP_MAX_BODY (64u * 1024u * 1024u)

typedef struct cli_http cli_http_t;

typedef struct cli_response {
        long status;  /* HTTP status */
        json_t *json; /* parsed body; NULL when empty or not JSON */
        char *body;   /* raw body, NUL-terminated (never NULL after a response) */
        size_t body_size;
        bool problem; /* Content-Type: application/problem+json with an object body */
} cli_response_t;

void cli_response_clear(cli_response_t *r);

/* "host:port" and "host" gain "http://"; trailing slashes go. -EINVAL for an empty host or
 * a scheme other than http/https. */
int cli_normalize_host(const char *host, char **ret);

/* base_url as the user gave it (normalized here). */
int cli_http_new(const char *base_url, cli_http_t **ret);
void cli_http_free(cli_http_t *h);
static inline void cli_http_freep(cli_http_t **h) {
        if (*h)
                cli_http_free(*h);
        *h = NULL;
}
const char *cli_http_base(const cli_http_t *h);
/* Send "Authorization: Bearer <token>" with every request (NULL: none). -EINVAL for a token
 * that cannot be a header value. */
int cli_http_set_token(cli_http_t *h, const char *token);
/* Talk HTTP over the unix socket at path instead of TCP to the base URL (NULL: TCP). */
int cli_http_set_socket(cli_http_t *h, const char *path);
const char *cli_http_socket(const cli_http_t *h);
/* What every request of h needs on a curl handle of its own (a stream's): the credential
 * appended to *headers, and the unix socket. -ENOMEM. */
typedef void CURL;
struct curl_slist;
int cli_http_prepare(const cli_http_t *h, CURL *c, struct curl_slist **headers);

/* One request: method ("GET", "POST", "DELETE"), path starting with "/" (query included,
 * already escaped), optional JSON body. Returns 0 when the server answered, whatever the
 * status, or a negative errno when it did not (-ECONNREFUSED, -EHOSTUNREACH, -ETIMEDOUT,
 * -ECONNRESET, -EFBIG, -EINVAL for a URL curl refuses), with *ret_error describing it. */
int cli_http_request(cli_http_t *h, const char *method, const char *path, const json_t *body, cli_response_t *ret,
                     char **ret_error);

/* A header of the last response (name case-insensitive), copied; NULL when absent. */
char *cli_http_header(cli_http_t *h, const char *name);

/* A query parameter appended to a path being built in f: "?key=value" for the first one,
 * "&key=value" after; key and value are percent-escaped. */
void cli_query_add(FILE *f, bool *first, const char *key, const char *value);
/* Percent-escape one path segment or query component (RFC 3986 unreserved kept). */
char *cli_url_escape(const char *s);

/* Ring's exit code for an HTTP status: 2xx 0, 401 and 403 2, 404 4, 409 5, else 1. */
int cli_exit_from_status(long status);

/* The lines of a problem (without its title): "<indent><field>: <reason>" per violation
 * (Ring's {property_path, message} are read too), else "<indent><detail>" when there is one. */
void cli_problem_write(FILE *f, const json_t *problem, const char *indent);

/* The client for ctx's host (--host / HUSK_HOST) with its credential (--token / HUSK_TOKEN),
 * over the local apiserver's unix socket when it has none and the host is local; or an error
 * reported here. Returns an exit code. */
typedef struct cli_ctx cli_ctx_t;
int cli_http_open(const cli_ctx_t *ctx, cli_http_t **ret);

/* GET path and expect a JSON body. Failures are reported here, as "<what>: ..."; returns an
 * exit code (CLI_EXIT_OK with *ret set). */
int cli_http_get_json(cli_http_t *h, const char *path, const char *what, json_t **ret);

/* One request on a connection of its own, reported once on failure as "<what>: ...": returns an
 * exit code, CLI_EXIT_OK when the status was want (with *ret, when given, the answer's JSON). */
int cli_http_call(cli_ctx_t *ctx, const char *method, const char *path, json_t *body, long want, const char *what,
                  json_t **ret);

/* Report a transport failure of cli_http_request() once, naming the URL and pointing at
 * husk-apiserver and --host; returns CLI_EXIT_CONNECTION (CLI_EXIT_USAGE for a bad URL). */
int cli_http_report_failure(const cli_http_t *h, int r, const char *error);

/* Report an unsuccessful response once as "error: <what>: <title> (<status>)" followed by
 * the problem's lines; returns the exit code for its status. */
int cli_http_report_status(const char *what, const cli_response_t *resp);
