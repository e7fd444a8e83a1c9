/* apiserver_ui.c: the web dashboard's static files (apiserver.ui_dir) at /ui/, with the
 * headers that keep a page of ours from running anyone else's script or being framed. */
#include <civetweb.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/util.h"
#include "services/apiserver/apiserver_http.h"

#define UI_PREFIX "/ui"
#define UI_PATH_MAX 128

/* The page loads only its own files and talks only to its own origin: no inline script or
 * style (the policy has no 'unsafe-inline'), no plugin, no framing by another site, no base
 * or form target elsewhere. civetweb appends these after its own headers, without the last
 * CRLF. */
#define UI_HEADERS                                                                           \
        "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; " \
        "img-src 'self' data:; connect-src 'self'; manifest-src 'self'; base-uri 'none'; "   \
        "form-action 'none'; frame-ancestors 'none'\r\n"                                     \
        "X-Frame-Options: DENY\r\n"                                                          \
        "X-Content-Type-Options: nosniff\r\n"                                                \
        "Referrer-Policy: no-referrer"

bool http_ui_path(const char *path) {
        return strncmp(path, UI_PREFIX, strlen(UI_PREFIX)) == 0 &&
               (path[strlen(UI_PREFIX)] == '\0' || path[strlen(UI_PREFIX)] == '/');
}

/* Names of files we ship: letters, digits, '-', '_', '.', and '/' between segments; no
 * segment starts with a dot (so no "..", no hidden file). Anything else is not ours. */
static bool ui_name_valid(const char *name) {
        bool segment_start = true;

        if (strlen(name) >= UI_PATH_MAX)
                return false;
        for (const char *p = name; *p; p++) {
                bool ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                          *p == '-' || *p == '_' || *p == '.' || *p == '/';

                if (!ok || (segment_start && (*p == '.' || *p == '/')))
                        return false;
                segment_start = *p == '/';
        }
        return !segment_start;
}

int route_ui(http_request_t *req) {
        const char *path = req->info->local_uri ?: "", *name = path + strlen(UI_PREFIX);
        const char *method = req->info->request_method;
        char file[PATH_MAX];
        struct stat st;

        if (!streq(method, "GET") && !streq(method, "HEAD"))
                return http_reply_problem_headers(req, 405, "method-not-allowed", "Method not allowed",
                                                  "Allow: GET, HEAD\r\n", "%s is not supported on %s; use GET", method,
                                                  UI_PREFIX "/");
        if (!req->api->ui_dir || !req->api->ui_dir[0])
                return http_reply_problem(req, 404, "not-found", "Not found", NULL,
                                          "the dashboard is off (apiserver.ui_dir is empty)");
        /* Relative links in the page resolve against /ui/, not /. */
        if (*name == '\0') {
                static const char head[] = "HTTP/1.1 301 Moved Permanently\r\nLocation: " UI_PREFIX
                                           "/\r\nContent-Length: 0\r\nCache-Control: no-store\r\n\r\n";
                mg_write(req->conn, head, sizeof(head) - 1);
                return 301;
        }
        name++;
        if (*name == '\0')
                name = "index.html";
        if (!ui_name_valid(name) ||
            (size_t)snprintf(file, sizeof(file), "%s/%s", req->api->ui_dir, name) >= sizeof(file) ||
            stat(file, &st) < 0 || !S_ISREG(st.st_mode))
                return http_reply_problem(req, 404, "not-found", "Not found", NULL, "no such file: %s", path);
        /* civetweb answers conditional and range requests itself; static_file_max_age 0 (set
         * in http_start) makes it say no-store, so a page never mixes files of two versions. */
        mg_send_mime_file2(req->conn, file, NULL, UI_HEADERS);
        return 200;
}
