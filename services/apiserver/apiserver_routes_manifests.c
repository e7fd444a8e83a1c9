/* apiserver_routes_manifests.c: POST /manifests/parse, a YAML manifest read exactly as
 * `husk apply` reads it, for clients that have no YAML reader of their own (the dashboard). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_manifest.h"
#include "lib/util.h"
#include "services/apiserver/apiserver_http.h"

/* What the CLI's reader calls the text in its messages ("manifest:3:7: ..."). */
#define MANIFEST_NAME "manifest"

/* The reader's message as a violation: "manifest:LINE:COLUMN: why" gives the line,
 * "manifest: deployments.web.labels: why" the field. */
static json_t *error_violation(const char *error) {
        const char *rest = error + strlen(MANIFEST_NAME);
        unsigned long line = 0;
        char *end;

        if (strncmp(error, MANIFEST_NAME ":", strlen(MANIFEST_NAME ":")) != 0)
                return json_pack("[{s:s, s:s}]", "field", "manifest", "reason", error);
        rest++;
        if (*rest >= '0' && *rest <= '9') {
                line = strtoul(rest, &end, 10);
                rest = end;
                if (*rest == ':' && rest[1] >= '0' && rest[1] <= '9')
                        (void)strtoul(rest + 1, (char **)&rest, 10);
                if (*rest == ':')
                        rest++;
                while (*rest == ' ')
                        rest++;
                return json_pack("[{s:s, s:s, s:I}]", "field", "manifest", "reason", rest, "line", (json_int_t)line);
        }
        while (*rest == ' ')
                rest++;
        end = strstr(rest, ": ");
        if (!end || memchr(rest, ' ', (size_t)(end - rest)))
                return json_pack("[{s:s, s:s}]", "field", "manifest", "reason", rest);
        return json_pack("[{s:s%, s:s}]", "field", rest, (size_t)(end - rest), "reason", end + 2);
}

static json_t *manifest_to_json(const cli_manifest_t *m, json_t *lines) {
        json_auto_t *deployments = json_array(), *configs = json_array(), *warnings = json_array();

        if (!deployments || !configs || !warnings)
                return NULL;
        for (size_t i = 0; i < m->n_entries; i++)
                if (json_array_append_new(deployments, json_pack("{s:s, s:O}", "key", m->entries[i].key, "deployment",
                                                                 m->entries[i].deployment)) < 0)
                        return NULL;
        for (size_t i = 0; i < m->n_configs; i++)
                if (json_array_append_new(configs, json_pack("{s:s, s:s, s:O}", "name", m->configs[i].name, "namespace",
                                                             m->configs[i].namespace_, "data", m->configs[i].data)) < 0)
                        return NULL;
        for (size_t i = 0; i < m->n_warnings; i++)
                if (json_array_append_new(warnings, json_string(m->warnings[i])) < 0)
                        return NULL;
        return json_pack("{s:O, s:O, s:O*, s:O, s:o}", "deployments", deployments, "configs", configs, "namespaces",
                         m->namespaces, "warnings", warnings, "lines", lines);
}

int route_manifests_parse(http_request_t *req) {
        _cleanup_(cli_manifest_clear) cli_manifest_t m = {};
        _cleanup_free_ char *body = NULL, *error = NULL;
        json_auto_t *docs = NULL, *lines = NULL, *answer = NULL;
        size_t size = 0;
        int r;

        r = http_read_body(req, &body, &size);
        if (r < 0)
                return http_reply_body_error(req, r);
        /* No ${VAR} expansion: the server's environment is not the user's. */
        r = cli_manifest_parse(&m, MANIFEST_NAME, body, size, NULL, &error);
        if (r == -ENOMEM)
                return http_reply_internal(req, -r, "reading the manifest");
        if (r < 0)
                return http_reply_problem(req, 422, "invalid-manifest", "Invalid manifest",
                                          error_violation(error ?: "manifest: not a manifest"), "%s",
                                          error ?: "not a manifest");
        /* files: names files on the machine that runs husk apply; here there is none. */
        for (size_t i = 0; i < m.n_configs; i++)
                if (json_object_size(m.configs[i].files) > 0) {
                        char field[160];

                        snprintf(field, sizeof(field), "configs.%s.files", m.configs[i].name);
                        return http_reply_problem(
                                req, 422, "invalid-manifest", "Invalid manifest",
                                json_pack("[{s:s, s:s}]", "field", field, "reason",
                                          "files are read by husk apply on its machine; here, write the values "
                                          "under data:"),
                                "%s: files are read by husk apply on its machine", field);
                }
        r = cli_yaml_to_json_lines(MANIFEST_NAME, body, size, NULL, &docs, &lines, NULL);
        if (r < 0)
                return http_reply_internal(req, -r, "reading the manifest");
        answer = manifest_to_json(&m, TAKE_PTR(lines));
        if (!answer)
                return http_reply_internal(req, ENOMEM, "encoding the manifest");
        return http_reply_json(req, 200, TAKE_PTR(answer), NULL);
}
