/* cli_deployment_logs.c: `husk deployment logs ID|NAME`: console logs as Server-Sent Events, printed as they arrive. */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_deployment.h"
#include "cli/cli_http.h"
#include "cli/cli_output.h"

#define SSE_LINE_MAX (4u * 1024u * 1024u) /* an entry is at most ~50 KiB; anything longer is not ours */
#define ERROR_BODY_MAX (64u * 1024u)

typedef enum logs_format {
        FORMAT_TEXT,       /* the message */
        FORMAT_TIMESTAMPS, /* time, message */
        FORMAT_WIDE,       /* time, level, instance, stream, message */
        FORMAT_JSON,       /* one entry object per line */
} logs_format_t;

typedef struct sse {
        logs_format_t format;
        long status; /* the HTTP status, once headers are in */
        char *line;  /* partial line */
        size_t len, cap;
        char event[32];
        char *data; /* data lines of the event being read */
        size_t data_len, data_cap;
        bool ended;       /* "end" received: the server finished */
        bool failed;      /* "error" received */
        char *error_body; /* a non-200 answer, kept for the problem report */
        size_t error_len;
        bool too_long;
} sse_t;

static void logs_help(void) {
        printf("Usage: husk deployment logs ID|NAME [OPTIONS]\n"
               "\n"
               "Print a deployment's console logs (kernel, agent and workload lines of every instance,\n"
               "oldest first, merged by capture time), as husk-logd stored them.\n"
               "\n"
               "Options:\n"
               "  -n, --namespace NS      look NAME up in namespace NS\n"
               "      --tail N            only the last N lines (cost depends on N, not on the history)\n"
               "      --since D           lines from the last D (10m, 1h, 30s) or since an RFC 3339 time\n"
               "  -l, --level LEVEL       error, warning, info, debug or unknown: that level and the more\n"
               "                          severe (unknown: everything)\n"
               "  -i, --instance ID       one instance only\n"
               "  -f, --follow            keep printing new lines until interrupted\n"
               "  -t, --timestamps        prefix each line with its capture time\n"
               "  -w, --wide              time, level, instance and stream columns before the message\n"
               "  -o, --output FORMAT     text (default) or json (one object per line: instance, stream,\n"
               "                          level, timestamp, message)\n"
               "  -h, --help              show this help\n");
}

static void print_entry(const sse_t *s, const char *data) {
        json_t *e = json_loads(data, 0, NULL);
        const char *msg;

        if (!json_is_object(e)) {
                json_decref(e);
                return;
        }
        msg = cli_json_str(e, "message", "");
        switch (s->format) {
        case FORMAT_JSON:
                printf("%s\n", data);
                break;
        case FORMAT_TIMESTAMPS:
                printf("%s %s\n", cli_json_str(e, "timestamp", "-"), msg);
                break;
        case FORMAT_WIDE:
                printf("%-24s  %-7s  %-12s  %-8s  %s\n", cli_json_str(e, "timestamp", "-"),
                       cli_json_str(e, "level", "-"), cli_json_str(e, "instance", "-"), cli_json_str(e, "stream", "-"),
                       msg);
                break;
        case FORMAT_TEXT:
                printf("%s\n", msg);
                break;
        }
        json_decref(e);
}

static void dispatch(sse_t *s) {
        const char *data = s->data ? s->data : "";

        if (s->event[0] == '\0' || streq(s->event, "message")) {
                if (s->data_len > 0)
                        print_entry(s, data);
        } else if (streq(s->event, "end")) {
                s->ended = true;
        } else if (streq(s->event, "error")) {
                json_t *e = json_loads(data, 0, NULL);
                cli_error("the log stream broke off: %s", cli_json_str(e, "detail", "unknown error"));
                json_decref(e);
                s->failed = true;
        }
        s->event[0] = '\0';
        s->data_len = 0;
        if (s->data)
                s->data[0] = '\0';
}

static int append(char **buf, size_t *len, size_t *cap, const char *p, size_t n) {
        if (*len + n + 1 > *cap) {
                size_t c = *cap ? *cap : 4096;
                char *nb;

                while (c < *len + n + 1)
                        c *= 2;
                nb = realloc(*buf, c);
                if (!nb)
                        return -ENOMEM;
                *buf = nb;
                *cap = c;
        }
        memcpy(*buf + *len, p, n);
        *len += n;
        (*buf)[*len] = '\0';
        return 0;
}

/* One complete line of the event stream. */
static int on_line(sse_t *s, char *line, size_t len) {
        if (len > 0 && line[len - 1] == '\r')
                line[--len] = '\0';
        if (len == 0) {
                dispatch(s);
                return 0;
        }
        if (line[0] == ':')
                return 0; /* keepalive */
        if (strncmp(line, "data:", 5) == 0) {
                const char *v = line + 5 + (line[5] == ' ');
                if (s->data_len > 0 && append(&s->data, &s->data_len, &s->data_cap, "\n", 1) < 0)
                        return -ENOMEM;
                return append(&s->data, &s->data_len, &s->data_cap, v, strlen(v));
        }
        if (strncmp(line, "event:", 6) == 0)
                snprintf(s->event, sizeof(s->event), "%s", line + 6 + (line[6] == ' '));
        return 0;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata) {
        sse_t *s = userdata;
        size_t n = size * nmemb;

        if (s->status != 200) {
                /* A problem document: kept (bounded) for the report. */
                size_t keep = s->error_len + n > ERROR_BODY_MAX ? ERROR_BODY_MAX - s->error_len : n;
                size_t cap = ERROR_BODY_MAX + 1;
                if (!s->error_body && !(s->error_body = calloc(1, cap)))
                        return 0;
                memcpy(s->error_body + s->error_len, ptr, keep);
                s->error_len += keep;
                return n;
        }
        for (size_t i = 0; i < n; i++) {
                if (ptr[i] != '\n') {
                        if (s->len >= SSE_LINE_MAX) {
                                s->too_long = true;
                                return 0;
                        }
                        if (append(&s->line, &s->len, &s->cap, ptr + i, 1) < 0)
                                return 0;
                        continue;
                }
                if (!s->line && append(&s->line, &s->len, &s->cap, "", 0) < 0)
                        return 0;
                if (on_line(s, s->line, s->len) < 0)
                        return 0;
                s->len = 0;
                s->line[0] = '\0';
        }
        fflush(stdout);
        return n;
}

static size_t on_header(char *buffer, size_t size, size_t nitems, void *userdata) {
        sse_t *s = userdata;

        if (strncmp(buffer, "HTTP/", 5) == 0) {
                const char *sp = memchr(buffer, ' ', size * nitems);
                if (sp)
                        s->status = strtol(sp + 1, NULL, 10);
        }
        return size * nitems;
}

static int logs_path(const char *id, const char *tail, const char *since, const char *level, const char *instance,
                     bool follow, char **ret) {
        const char *query[] = { "tail", tail,       "since",  since,    "level",
                                level,  "instance", instance, "follow", follow ? "true" : NULL,
                                NULL };

        return cli_deployment_path(id, "logs", query, ret);
}

static int stream(cli_http_t *h, const char *path, const char *ref, sse_t *s) {
        _cleanup_free_ char *url = NULL;
        char errbuf[CURL_ERROR_SIZE] = "";
        struct curl_slist *headers = NULL;
        CURL *c = curl_easy_init();
        CURLcode code;
        int r;

        if (!c || asprintf(&url, "%s%s", cli_http_base(h), path) < 0) {
                curl_easy_cleanup(c);
                return CLI_EXIT_FAILURE;
        }
        headers = curl_slist_append(NULL, "Accept: text/event-stream, application/problem+json");
        if (!headers || cli_http_prepare(h, c, &headers) < 0) {
                curl_slist_free_all(headers);
                curl_easy_cleanup(c);
                return CLI_EXIT_FAILURE;
        }
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
        curl_easy_setopt(c, CURLOPT_USERAGENT, "husk/" HUSK_VERSION);
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, s);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
        /* Lines as they come: no buffering between the server and the terminal. */
        curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 16384L);
        code = curl_easy_perform(c);
        curl_slist_free_all(headers);
        curl_easy_cleanup(c);

        if (s->status != 0 && s->status != 200) {
                cli_response_t resp = { .status = s->status, .body = s->error_body ?: "", .body_size = s->error_len };
                _cleanup_free_ char *what = NULL;

                resp.json = s->error_body ? json_loadb(s->error_body, s->error_len, 0, NULL) : NULL;
                if (asprintf(&what, "cannot read the logs of deployment '%s'", ref) < 0)
                        what = NULL;
                r = cli_http_report_status(what ?: "cannot read the logs", &resp);
                json_decref(resp.json);
                return r;
        }
        if (s->failed)
                return CLI_EXIT_FAILURE;
        if (code != CURLE_OK && !(s->ended && code == CURLE_PARTIAL_FILE)) {
                if (s->too_long) {
                        cli_error("the log stream sent a line longer than %u bytes", SSE_LINE_MAX);
                        return CLI_EXIT_FAILURE;
                }
                if (s->status == 0)
                        return cli_http_report_failure(h, code == CURLE_COULDNT_CONNECT ? -ECONNREFUSED : -ECONNRESET,
                                                       *errbuf ? errbuf : curl_easy_strerror(code));
                cli_error("the log stream broke off: %s", *errbuf ? errbuf : curl_easy_strerror(code));
                return CLI_EXIT_CONNECTION;
        }
        if (!s->ended) {
                cli_error("the log stream ended early (husk-apiserver went away?)");
                return CLI_EXIT_CONNECTION;
        }
        return CLI_EXIT_OK;
}

int cli_deployment_logs(cli_ctx_t *ctx, int argc, char **argv) {
        static const struct option options[] = {
                { "namespace", required_argument, NULL, 'n' },
                { "tail", required_argument, NULL, 'T' },
                { "since", required_argument, NULL, 'S' },
                { "level", required_argument, NULL, 'l' },
                { "instance", required_argument, NULL, 'i' },
                { "follow", no_argument, NULL, 'f' },
                { "timestamps", no_argument, NULL, 't' },
                { "wide", no_argument, NULL, 'w' },
                { "output", required_argument, NULL, 'o' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        static const char *const cmd = "husk deployment logs";
        static const char *const levels[] = { "error", "warning", "info", "debug", "unknown" };
        _cleanup_(cli_http_freep) cli_http_t *h = NULL;
        _cleanup_free_ char *id = NULL, *path = NULL;
        const char *namespace_ = NULL, *tail = NULL, *since = NULL, *level = NULL, *instance = NULL, *output = "text";
        const char *ref;
        bool follow = false, timestamps = false, wide = false, known = false;
        sse_t s = { .format = FORMAT_TEXT };
        uint64_t n;
        int c, r;

        optind = 0;
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":n:l:i:fto:wh", options, NULL)) >= 0) {
                switch (c) {
                case 'n':
                        namespace_ = optarg;
                        break;
                case 'T':
                        tail = optarg;
                        break;
                case 'S':
                        since = optarg;
                        break;
                case 'l':
                        level = optarg;
                        break;
                case 'i':
                        instance = optarg;
                        break;
                case 'f':
                        follow = true;
                        break;
                case 't':
                        timestamps = true;
                        break;
                case 'w':
                        wide = true;
                        break;
                case 'o':
                        output = optarg;
                        break;
                case 'h':
                        logs_help();
                        return CLI_EXIT_OK;
                default:
                        return cli_getopt_error(cmd, c, optopt, argv, optind);
                }
        }
        r = cli_deployment_args(cmd, argc, argv, output, NULL, &ref);
        if (r != CLI_EXIT_OK)
                return r;
        if (tail && !streq(tail, "all") && (parse_u64(tail, &n) < 0))
                return cli_usage_error(cmd, "--tail takes a number of lines, not '%s'", tail);
        for (size_t k = 0; level && k < ELEMENTSOF(levels); k++)
                known = known || streq(level, levels[k]);
        if (level && !known)
                return cli_usage_error(cmd, "--level takes error, warning, info, debug or unknown, not '%s'", level);
        if (streq(output, "json"))
                s.format = FORMAT_JSON;
        else if (!streq(output, "text"))
                return cli_usage_error(cmd, "unknown output format '%s' (text or json)", output);
        else if (wide)
                s.format = FORMAT_WIDE;
        else if (timestamps)
                s.format = FORMAT_TIMESTAMPS;

        r = cli_deployment_open(ctx, ref, namespace_, &h, &id);
        if (r != CLI_EXIT_OK)
                return r;
        if (logs_path(id, tail, since, level, instance, follow, &path) < 0)
                return CLI_EXIT_FAILURE;
        r = stream(h, path, ref, &s);
        free(s.line);
        free(s.data);
        free(s.error_body);
        return r;
}
