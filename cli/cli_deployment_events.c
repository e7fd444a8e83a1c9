/* cli_deployment_events.c: `husk deployment events ID|NAME [--follow]`; follow polls GET .../events?after= every 500 ms. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/cli_deployment.h"
#include "cli/cli_http.h"
#include "cli/cli_output.h"

#define FOLLOW_POLL_MS 500

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig) { interrupted = 1; }

static void events_help(void) {
        printf("Usage: husk deployment events ID|NAME [OPTIONS]\n"
               "\n"
               "Show a deployment's events (decisions and state changes), oldest first.\n"
               "\n"
               "Options:\n"
               "  -n, --namespace NS      look NAME up in namespace NS\n"
               "  -l, --level LEVEL       info, warning or error: that level and the more severe\n"
               "      --limit N           the newest N events (default 100, at most 1000)\n"
               "  -f, --follow            keep printing new events (polls every %d ms) until interrupted\n"
               "  -o, --output FORMAT     table (default) or json (one object per line with --follow)\n"
               "  -h, --help              show this help\n",
               FOLLOW_POLL_MS);
}

static void print_events(const json_t *list, bool json, bool *header_done, uint64_t *last_id) {
        const json_t *e;
        size_t i;

        json_array_foreach(list, i, e) {
                json_int_t id = json_integer_value(json_object_get(e, "id"));

                if (id > 0 && (uint64_t)id > *last_id)
                        *last_id = (uint64_t)id;
                if (json) {
                        char *line = json_dumps(e, JSON_COMPACT | JSON_PRESERVE_ORDER);
                        if (line)
                                printf("%s\n", line);
                        free(line);
                        continue;
                }
                if (!*header_done) {
                        printf("%-24s  %-7s  %-9s  %-20s  %s\n", "TIME", "LEVEL", "COMPONENT", "REASON", "MESSAGE");
                        *header_done = true;
                }
                printf("%-24s  %-7s  %-9s  %-20s  %s\n", cli_json_str(e, "timestamp", "-"),
                       cli_json_str(e, "level", "-"), cli_json_str(e, "component", "-"), cli_json_str(e, "reason", "-"),
                       cli_json_str(e, "message", ""));
        }
        fflush(stdout);
}

static int events_path(const char *id, const char *level, const char *limit, uint64_t after, char **ret) {
        char num[24];
        const char *query[] = { "level", level, "limit", after ? NULL : limit, "after", after ? num : NULL, NULL };

        snprintf(num, sizeof(num), "%llu", (unsigned long long)after);
        return cli_deployment_path(id, "events", query, ret);
}

int cli_deployment_events(struct cli_ctx *ctx, int argc, char **argv) {
        static const struct option options[] = {
                { "namespace", required_argument, NULL, 'n' },
                { "level", required_argument, NULL, 'l' },
                { "limit", required_argument, NULL, 'L' },
                { "follow", no_argument, NULL, 'f' },
                { "output", required_argument, NULL, 'o' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        static const char *const cmd = "husk deployment events";
        _cleanup_(cli_http_freep) cli_http_t *h = NULL;
        _cleanup_free_ char *id = NULL;
        const char *namespace_ = NULL, *level = NULL, *limit = NULL, *output = "table", *ref;
        bool follow = false, header_done = false;
        uint64_t last_id = 0, n;
        int c, r;

        optind = 0;
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":n:l:fo:h", options, NULL)) >= 0) {
                switch (c) {
                case 'n':
                        namespace_ = optarg;
                        break;
                case 'l':
                        level = optarg;
                        break;
                case 'L':
                        limit = optarg;
                        break;
                case 'f':
                        follow = true;
                        break;
                case 'o':
                        output = optarg;
                        break;
                case 'h':
                        events_help();
                        return CLI_EXIT_OK;
                default:
                        return cli_getopt_error(cmd, c, optopt, argv, optind);
                }
        }
        r = cli_deployment_args(cmd, argc, argv, output, "table", &ref);
        if (r != CLI_EXIT_OK)
                return r;
        if (level && !streq(level, "info") && !streq(level, "warning") && !streq(level, "error"))
                return cli_usage_error(cmd, "unknown level '%s' (info, warning or error)", level);
        if (limit && (parse_u64(limit, &n) < 0 || n == 0 || n > 1000))
                return cli_usage_error(cmd, "--limit takes a number from 1 to 1000");

        r = cli_deployment_open(ctx, ref, namespace_, &h, &id);
        if (r != CLI_EXIT_OK)
                return r;
        if (follow)
                signal(SIGINT, on_sigint);
        do {
                _cleanup_free_ char *path = NULL;
                _cleanup_(json_decrefp) json_t *list = NULL;

                if (events_path(id, level, limit, last_id, &path) < 0)
                        return CLI_EXIT_FAILURE;
                r = cli_http_get_json(h, path, "cannot read the events", &list);
                if (r != CLI_EXIT_OK)
                        return r;
                if (!json_is_array(list)) {
                        cli_error("cannot read the events: husk-apiserver did not answer with a list");
                        return CLI_EXIT_FAILURE;
                }
                if (streq(output, "json") && !follow) {
                        cli_json_write(stdout, list);
                        return CLI_EXIT_OK;
                }
                print_events(list, streq(output, "json"), &header_done, &last_id);
                if (follow && !interrupted)
                        nanosleep(&(struct timespec){ .tv_nsec = FOLLOW_POLL_MS * 1000000L }, NULL);
        } while (follow && !interrupted);
        if (!header_done && !streq(output, "json"))
                printf("no events\n");
        return CLI_EXIT_OK;
}
