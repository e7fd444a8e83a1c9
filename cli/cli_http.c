/* cli_http.c: libcurl requests to husk-apiserver, JSON and problem+json answers, and how
 * their failures are told to the user. */
#include "cli/cli_http.h"

#include <curl/curl.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "cli/cli.h"
#include "cli/cli_output.h"
#include "lib/config.h"

struct cli_http {
        char *base;    /* normalized, no trailing slash */
        CURL *curl;    /* reused so that consecutive requests share one connection */
        char *auth;    /* "Authorization: Bearer <token>", or NULL */
        char *socket;  /* the local apiserver's unix socket, or NULL: TCP to base */
        char *ca_file; /* CA certificates to verify an https server with; NULL: the system's */
};

void cli_response_clear(cli_response_t *r) {
        json_decref(r->json);
        free(r->body);
        *r = (cli_response_t){};
}

int cli_normalize_host(const char *host, char **ret) {
        const char *sep;
        char *s;
        size_t len;

        if (!host || !*host)
                return -EINVAL;
        sep = strstr(host, "://");
        if (sep) {
                size_t scheme = (size_t)(sep - host);
                if (!((scheme == 4 && strncasecmp(host, "http", 4) == 0) ||
                      (scheme == 5 && strncasecmp(host, "https", 5) == 0)))
                        return -EINVAL;
                if (sep[3] == '\0' || sep[3] == '/')
                        return -EINVAL;
                s = strdup(host);
        } else if (asprintf(&s, "http://%s", host) < 0) {
                s = NULL;
        }
        if (!s)
                return -ENOMEM;
        len = strlen(s);
        while (len > 0 && s[len - 1] == '/')
                s[--len] = '\0';
        *ret = s;
        return 0;
}

int cli_http_new(const char *base_url, cli_http_t **ret) {
        _cleanup_free_ char *base = NULL;
        cli_http_t *h;
        int r;

        r = cli_normalize_host(base_url, &base);
        if (r < 0)
                return r;
        h = calloc(1, sizeof(*h));
        if (!h)
                return -ENOMEM;
        h->curl = curl_easy_init();
        if (!h->curl) {
                free(h);
                return -ENOMEM;
        }
        h->base = TAKE_PTR(base);
        *ret = h;
        return 0;
}

void cli_http_free(cli_http_t *h) {
        if (!h)
                return;
        curl_easy_cleanup(h->curl);
        free(h->base);
        free(h->auth);
        free(h->socket);
        free(h->ca_file);
        free(h);
}

const char *cli_http_base(const cli_http_t *h) { return h->base; }

int cli_http_set_token(cli_http_t *h, const char *token) {
        char *auth = NULL;

        /* A header line cannot carry a line break: a token with one is a mistake, not a token. */
        if (token && (strpbrk(token, "\r\n") || !*token))
                return -EINVAL;
        if (token && asprintf(&auth, "Authorization: Bearer %s", token) < 0)
                return -ENOMEM;
        free(h->auth);
        h->auth = auth;
        return 0;
}

int cli_http_set_socket(cli_http_t *h, const char *path) {
        char *copy = path ? strdup(path) : NULL;

        if (path && !copy)
                return -ENOMEM;
        free(h->socket);
        h->socket = copy;
        return 0;
}

const char *cli_http_socket(const cli_http_t *h) { return h->socket; }

int cli_http_prepare(const cli_http_t *h, CURL *c, struct curl_slist **headers) {
        if (h->auth) {
                struct curl_slist *nh = curl_slist_append(*headers, h->auth);
                if (!nh)
                        return -ENOMEM;
                *headers = nh;
        }
        if (h->socket)
                curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, h->socket);
        /* curl verifies the peer and its name by default; we only say against what. */
        if (h->ca_file)
                curl_easy_setopt(c, CURLOPT_CAINFO, h->ca_file);
        return 0;
}

typedef struct body_buf {
        char *data;
        size_t size, cap;
        bool too_big;
} body_buf_t;

static size_t body_write(char *ptr, size_t size, size_t nmemb, void *userdata) {
        body_buf_t *b = userdata;
        size_t n = size * nmemb;

        if (n > CLI_HTTP_MAX_BODY - b->size) {
                b->too_big = true;
                return 0; /* makes curl fail with CURLE_WRITE_ERROR */
        }
        if (b->size + n + 1 > b->cap) {
                size_t cap = b->cap ? b->cap : 4096;
                char *nd;
                while (cap < b->size + n + 1)
                        cap *= 2;
                nd = realloc(b->data, cap);
                if (!nd)
                        return 0;
                b->data = nd;
                b->cap = cap;
        }
        memcpy(b->data + b->size, ptr, n);
        b->size += n;
        b->data[b->size] = '\0';
        return n;
}

static int errno_from_curl(CURLcode c, bool too_big) {
        switch (c) {
        case CURLE_COULDNT_CONNECT:
                return -ECONNREFUSED;
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
                return -EHOSTUNREACH;
        case CURLE_OPERATION_TIMEDOUT:
                return -ETIMEDOUT;
        case CURLE_URL_MALFORMAT:
        case CURLE_UNSUPPORTED_PROTOCOL:
                return -EINVAL;
        case CURLE_OUT_OF_MEMORY:
                return -ENOMEM;
        case CURLE_WRITE_ERROR:
                return too_big ? -EFBIG : -ENOMEM;
        default:
                return -ECONNRESET;
        }
}

int cli_http_request(cli_http_t *h, const char *method, const char *path, const json_t *body, cli_response_t *ret,
                     char **ret_error) {
        static const char *const body_headers[] = { "Content-Type: application/json", "Expect:" };
        _cleanup_free_ char *url = NULL, *payload = NULL;
        char errbuf[CURL_ERROR_SIZE] = "";
        struct curl_slist *headers, *nh;
        body_buf_t buf = {};
        const char *ctype = NULL;
        CURLcode c;
        long status = 0;

        *ret = (cli_response_t){};
        if (asprintf(&url, "%s%s", h->base, path) < 0) {
                url = NULL;
                return -ENOMEM;
        }
        if (body) {
                payload = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
                if (!payload)
                        return -ENOMEM;
        }

        headers = curl_slist_append(NULL, "Accept: application/json, application/problem+json");
        if (!headers)
                return -ENOMEM;
        /* No "Expect: 100-continue": for a body over 1 KiB curl would wait up to a second
         * for a 100 Continue that a server or proxy may never send (civetweb does send it). */
        for (size_t i = 0; payload && i < ELEMENTSOF(body_headers); i++) {
                nh = curl_slist_append(headers, body_headers[i]);
                if (!nh) {
                        curl_slist_free_all(headers);
                        return -ENOMEM;
                }
                headers = nh;
        }

        curl_easy_reset(h->curl);
        if (cli_http_prepare(h, h->curl, &headers) < 0) {
                curl_slist_free_all(headers);
                return -ENOMEM;
        }
        curl_easy_setopt(h->curl, CURLOPT_URL, url);
        curl_easy_setopt(h->curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h->curl, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
        curl_easy_setopt(h->curl, CURLOPT_TIMEOUT_MS, 120000L);
        curl_easy_setopt(h->curl, CURLOPT_USERAGENT, "husk/" HUSK_VERSION);
        curl_easy_setopt(h->curl, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(h->curl, CURLOPT_ERRORBUFFER, errbuf);
        curl_easy_setopt(h->curl, CURLOPT_WRITEFUNCTION, body_write);
        curl_easy_setopt(h->curl, CURLOPT_WRITEDATA, &buf);
        if (payload) {
                curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, payload);
                curl_easy_setopt(h->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(payload));
        }
        if (!streq(method, payload ? "POST" : "GET"))
                curl_easy_setopt(h->curl, CURLOPT_CUSTOMREQUEST, method);

        c = curl_easy_perform(h->curl);
        curl_slist_free_all(headers);
        if (c != CURLE_OK) {
                int r = errno_from_curl(c, buf.too_big);
                free(buf.data);
                if (ret_error)
                        *ret_error = strdup(buf.too_big ? "response larger than 64 MiB"
                                            : *errbuf   ? errbuf
                                                        : curl_easy_strerror(c));
                return r;
        }

        curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(h->curl, CURLINFO_CONTENT_TYPE, &ctype);
        if (!buf.data) {
                buf.data = strdup("");
                if (!buf.data)
                        return -ENOMEM;
        }
        ret->status = status;
        ret->body = buf.data;
        ret->body_size = buf.size;
        if (buf.size > 0)
                ret->json = json_loadb(buf.data, buf.size, 0, NULL);
        ret->problem = ctype && strncasecmp(ctype, "application/problem+json", 24) == 0 && json_is_object(ret->json);
        return 0;
}

char *cli_http_header(cli_http_t *h, const char *name) {
        struct curl_header *hdr = NULL;

        if (curl_easy_header(h->curl, name, 0, CURLH_HEADER, -1, &hdr) != CURLHE_OK || !hdr->value)
                return NULL;
        return strdup(hdr->value);
}

char *cli_url_escape(const char *s) {
        static const char hex[] = "0123456789ABCDEF";
        size_t len = strlen(s);
        char *out = malloc(3 * len + 1), *p = out;

        if (!out)
                return NULL;
        for (; *s; s++) {
                unsigned char ch = (unsigned char)*s;
                if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
                    ch == '.' || ch == '_' || ch == '~') {
                        *p++ = (char)ch;
                } else {
                        *p++ = '%';
                        *p++ = hex[ch >> 4];
                        *p++ = hex[ch & 15];
                }
        }
        *p = '\0';
        return out;
}

void cli_query_add(FILE *f, bool *first, const char *key, const char *value) {
        _cleanup_free_ char *k = cli_url_escape(key), *v = cli_url_escape(value);

        if (!k || !v)
                return;
        fprintf(f, "%c%s=%s", *first ? '?' : '&', k, v);
        *first = false;
}

int cli_exit_from_status(long status) {
        if (status >= 200 && status < 300)
                return CLI_EXIT_OK;
        if (status == 404)
                return CLI_EXIT_NOT_FOUND;
        if (status == 409)
                return CLI_EXIT_CONFLICT;
        if (status == 401 || status == 403)
                return CLI_EXIT_AUTH;
        return CLI_EXIT_FAILURE;
}

void cli_problem_write(FILE *f, const json_t *problem, const char *indent) {
        const json_t *violations = json_object_get(problem, "violations");
        const char *detail = cli_json_str(problem, "detail", NULL);
        size_t i;
        json_t *v;

        if (json_is_array(violations) && json_array_size(violations) > 0) {
                json_array_foreach(violations, i, v) {
                        const char *field = cli_json_str(v, "field", cli_json_str(v, "property_path", NULL));
                        const char *reason = cli_json_str(v, "reason", cli_json_str(v, "message", NULL));

                        if (field && *field)
                                fprintf(f, "%s%s: %s\n", indent, field, reason ? reason : "invalid");
                        else
                                fprintf(f, "%s%s\n", indent, reason ? reason : "invalid");
                }
                return;
        }
        if (detail && *detail && !streq(detail, cli_json_str(problem, "title", "")))
                fprintf(f, "%s%s\n", indent, detail);
}

int cli_http_report_failure(const cli_http_t *h, int r, const char *error) {
        const char *why = error ? error : strerror(-r);

        if (r == -EINVAL) {
                cli_error("cannot use %s as the husk-apiserver URL: %s (check --host or HUSK_HOST)", cli_http_base(h),
                          why);
                return CLI_EXIT_USAGE;
        }
        if (r == -ENOMEM || r == -EFBIG) {
                cli_error("request to %s failed: %s", cli_http_base(h), why);
                return CLI_EXIT_FAILURE;
        }
        cli_error("cannot reach husk-apiserver at %s: %s\n"
                  "Is husk-apiserver running? Point husk at it with --host URL or HUSK_HOST.",
                  cli_http_base(h), why);
        return CLI_EXIT_CONNECTION;
}

static const char *reason_phrase(long status) {
        static const struct {
                long status;
                const char *phrase;
        } phrases[] = {
                { 400, "Bad Request" },       { 401, "Unauthorized" },         { 403, "Forbidden" },
                { 404, "Not Found" },         { 405, "Method Not Allowed" },   { 409, "Conflict" },
                { 413, "Payload Too Large" }, { 422, "Unprocessable Entity" }, { 500, "Internal Server Error" },
                { 502, "Bad Gateway" },       { 503, "Service Unavailable" },
        };

        for (size_t i = 0; i < ELEMENTSOF(phrases); i++)
                if (phrases[i].status == status)
                        return phrases[i].phrase;
        return "request failed";
}

int cli_http_report_status(const char *what, const cli_response_t *resp) {
        const char *title = cli_json_str(resp->json, "title", cli_json_str(resp->json, "error", NULL));

        cli_error("%s: %s (%ld)", what, title ? title : reason_phrase(resp->status), resp->status);
        if (json_is_object(resp->json)) {
                cli_problem_write(stderr, resp->json, "  ");
        } else if (resp->body && resp->body_size > 0 && resp->body_size <= 2000) {
                /* Not JSON (a proxy, a different server): show it rather than guess. */
                fprintf(stderr, "  %.*s\n", (int)strcspn(resp->body, "\r\n"), resp->body);
        }
        return cli_exit_from_status(resp->status);
}

/* The local apiserver's unix socket, when the client talks to the local apiserver (the
 * default address or a loopback one) and has no token of its own: the kernel tells apiserver
 * who we are. The socket's place is the config's runtime_dir (the default one when the config
 * cannot be read: an unprivileged user may not read /etc/husk). */
static char *local_socket(const cli_ctx_t *ctx) {
        _cleanup_(husk_config_freep) husk_config_t *config = NULL;
        _cleanup_free_ char *path = NULL;
        const char *h = ctx->host, *sep = strstr(h, "://");

        if (ctx->token || strncasecmp(h, "https://", 8) == 0)
                return NULL;
        if (sep)
                h = sep + 3;
        if (strncmp(h, "127.", 4) != 0 && strncmp(h, "localhost", 9) != 0 && strncmp(h, "[::1]", 5) != 0)
                return NULL;
        if (husk_config_load(husk_config_path(ctx->config_path), &config, NULL) < 0)
                config = NULL;
        if (asprintf(&path, "%s/" HUSK_API_SOCKET, config ? config->runtime_dir : HUSK_DEFAULT_RUNTIME_DIR) < 0)
                return NULL;
        return access(path, F_OK) == 0 ? TAKE_PTR(path) : NULL;
}

int cli_http_open(const cli_ctx_t *ctx, cli_http_t **ret) {
        _cleanup_(cli_http_freep) cli_http_t *h = NULL;
        _cleanup_free_ char *socket = NULL;
        int r = cli_http_new(ctx->host, &h);

        if (r == -EINVAL) {
                cli_error("invalid husk-apiserver URL '%s' (--host or HUSK_HOST): use http://HOST:PORT or HOST:PORT",
                          ctx->host);
                return CLI_EXIT_USAGE;
        }
        if (r >= 0 && ctx->token) {
                r = cli_http_set_token(h, ctx->token);
                if (r == -EINVAL) {
                        cli_error("the token (--token or HUSK_TOKEN) holds a line break or is empty");
                        return CLI_EXIT_USAGE;
                }
        }
        if (r >= 0 && ctx->ca_file && !(h->ca_file = strdup(ctx->ca_file)))
                r = -ENOMEM;
        socket = r >= 0 ? local_socket(ctx) : NULL;
        if (r >= 0 && socket)
                r = cli_http_set_socket(h, socket);
        if (r < 0) {
                cli_error("cannot set up HTTP: %s", strerror(-r));
                return CLI_EXIT_FAILURE;
        }
        *ret = TAKE_PTR(h);
        return CLI_EXIT_OK;
}

int cli_http_get_json(cli_http_t *h, const char *path, const char *what, json_t **ret) {
        _cleanup_free_ char *error = NULL;
        cli_response_t resp;
        int r;

        r = cli_http_request(h, "GET", path, NULL, &resp, &error);
        if (r < 0)
                return cli_http_report_failure(h, r, error);
        if (resp.status != 200) {
                r = cli_http_report_status(what, &resp);
        } else if (!resp.json) {
                cli_error("%s: husk-apiserver answered with something that is not JSON", what);
                r = CLI_EXIT_FAILURE;
        } else {
                *ret = TAKE_PTR(resp.json);
                r = CLI_EXIT_OK;
        }
        cli_response_clear(&resp);
        return r;
}

int cli_http_call(cli_ctx_t *ctx, const char *method, const char *path, json_t *body, long want, const char *what,
                  json_t **ret) {
        _cleanup_(cli_http_freep) cli_http_t *h = NULL;
        _cleanup_free_ char *error = NULL;
        cli_response_t resp;
        int r;

        r = cli_http_open(ctx, &h);
        if (r != CLI_EXIT_OK)
                return r;
        r = cli_http_request(h, method, path, body, &resp, &error);
        if (r < 0)
                return cli_http_report_failure(h, r, error);
        if (resp.status != want) {
                r = cli_http_report_status(what, &resp);
                cli_response_clear(&resp);
                return r;
        }
        if (ret)
                *ret = TAKE_PTR(resp.json);
        cli_response_clear(&resp);
        return CLI_EXIT_OK;
}
