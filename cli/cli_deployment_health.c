/* cli_deployment_health.c: `husk deployment health-checks ID|NAME`: each check of each instance, its status and latest results. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_deployment.h"
#include "cli/cli_http.h"
#include "cli/cli_output.h"

static void health_help(void) {
        printf("Usage: husk deployment health-checks ID|NAME [OPTIONS]\n"
               "\n"
               "Show the health checks the scheduler runs on each instance of a deployment: status,\n"
               "consecutive failures and the latest result (the last 10 are kept; -o json shows them).\n"
               "\n"
               "Options:\n"
               "  -n, --namespace NS      look NAME up in namespace NS\n"
               "  -o, --output FORMAT     table (default) or json\n"
               "  -h, --help              show this help\n");
}

int cli_deployment_health_checks(struct cli_ctx *ctx, int argc, char **argv) {
        static const char *const headers[] = {
                "INSTANCE", "CHECK", "TARGET", "READINESS", "STATUS", "FAILURES", "LAST"
        };
        _cleanup_(cli_http_freep) cli_http_t *h = NULL;
        _cleanup_(cli_table_freep) cli_table_t *t = NULL;
        _cleanup_(json_decrefp) json_t *list = NULL;
        _cleanup_free_ char *id = NULL, *path = NULL;
        const json_t *c;
        cli_verb_args_t a;
        size_t i;
        int r;

        r = cli_deployment_verb_args("husk deployment health-checks", health_help, "table", argc, argv, &a);
        if (r != CLI_EXIT_OK || a.help)
                return r;
        r = cli_deployment_open(ctx, a.ref, a.namespace_, &h, &id);
        if (r != CLI_EXIT_OK)
                return r;
        if (cli_deployment_path(id, "health-checks", NULL, &path) < 0)
                return CLI_EXIT_FAILURE;
        r = cli_http_get_json(h, path, "cannot read the health checks", &list);
        if (r != CLI_EXIT_OK)
                return r;
        if (!json_is_array(list)) {
                cli_error("cannot read the health checks: husk-apiserver did not answer with a list");
                return CLI_EXIT_FAILURE;
        }
        if (streq(a.output, "json")) {
                cli_json_write(stdout, list);
                return CLI_EXIT_OK;
        }
        if (json_array_size(list) == 0) {
                printf("no health checks running (none configured, or no instance running)\n");
                return CLI_EXIT_OK;
        }
        if (cli_table_new(ELEMENTSOF(headers), headers, &t) < 0)
                return CLI_EXIT_FAILURE;
        json_array_foreach(list, i, c) {
                const json_t *hist = json_object_get(c, "history");
                const json_t *last = json_array_get(hist, json_array_size(hist) - 1);
                char check[16], failures[16];
                const char *cells[7];

                snprintf(check, sizeof(check), "%lld", (long long)json_integer_value(json_object_get(c, "check")));
                snprintf(failures, sizeof(failures), "%lld/%lld",
                         (long long)json_integer_value(json_object_get(c, "consecutive_failures")),
                         (long long)json_integer_value(json_object_get(c, "threshold")));
                cells[0] = cli_json_str(c, "instance_id", "?");
                cells[1] = check;
                cells[2] = cli_json_str(c, "target", "?");
                cells[3] = json_is_true(json_object_get(c, "readiness")) ? "yes" : "no";
                cells[4] = cli_json_str(c, "status", "?");
                cells[5] = failures;
                cells[6] = last ? cli_json_str(last, "message", "") : "-";
                if (cli_table_add_row(t, cells) < 0)
                        return CLI_EXIT_FAILURE;
        }
        cli_table_write(t, stdout);
        return CLI_EXIT_OK;
}
