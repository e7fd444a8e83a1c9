/* cli_tap.c: `husk tap [PATTERN]`: every daemon's bus events, decoded and printed live. */
#include "cli/cli_tap.h"

#include <errno.h>
#include <fnmatch.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_output.h"
#include "cli/cli_tap_bus.h"
#include "lib/config.h"
#include "lib/mp.h"
#include "lib/mp_json.h"

#define GLOB_CHARS "*?["

void cli_tap_prefix(const char *pattern, char *buf, size_t size) {
        size_t n = pattern ? strcspn(pattern, GLOB_CHARS) : 0;

        snprintf(buf, size, "%.*s", (int)n, pattern ? pattern : "");
}

bool cli_tap_match(const char *pattern, const char *type) {
        if (!pattern || !*pattern)
                return true;
        if (strpbrk(pattern, GLOB_CHARS))
                return fnmatch(pattern, type, 0) == 0;
        return strncmp(type, pattern, strlen(pattern)) == 0;
}

json_t *cli_msgpack_to_json(const msgpack_object *o) { return mp_to_json(o, MP_JSON_SHOW_BYTES); }

static void print_event(const char *type, const void *body, size_t size) {
        msgpack_unpacked u;
        size_t off = 0;
        char ts[32];

        format_timestamp_ms(now_realtime_ms(), ts, sizeof(ts));
        msgpack_unpacked_init(&u);
        if (mp_check(body, size) == 0 && msgpack_unpack_next(&u, body, size, &off) == MSGPACK_UNPACK_SUCCESS) {
                json_t *j = cli_msgpack_to_json(&u.data);
                char *text = j ? json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;

                printf("%s %s %s\n", ts, type, text ? text : "null");
                free(text);
                json_decref(j);
        } else {
                printf("%s %s !malformed msgpack body (%zu bytes)\n", ts, type, size);
        }
        msgpack_unpacked_destroy(&u);
        fflush(stdout); /* live, also into a pipe */
}

static void tap_help(void) {
        printf("Usage: husk tap [PATTERN] [OPTIONS]\n"
               "\n"
               "Print every event the husk daemons publish on the bus, live, one line each:\n"
               "TIMESTAMP TYPE {body as JSON}. PATTERN is a type prefix (instance.) or a glob\n"
               "(instance.*, *.exited). The publishers' endpoints come from the config file\n"
               "(--config, else $HUSK_CONFIG, else " HUSK_DEFAULT_CONFIG ").\n"
               "\n"
               "Options:\n"
               "  -c, --count N           exit after N events\n"
               "  -t, --timeout DURATION  exit after DURATION (10, 10s, 500ms, 2m); with --count,\n"
               "                          failing when fewer than N events came\n"
               "  -h, --help              show this help\n");
}

static int tap_run(const cli_tap_bus_t *bus, bus_sub_t *sub, const char *pattern, uint64_t count, uint64_t timeout_ms) {
        uint64_t deadline = timeout_ms ? now_monotonic_ms() + timeout_ms : 0, seen = 0;

        while (count == 0 || seen < count) {
                _cleanup_free_ char *type = NULL;
                _cleanup_free_ void *body = NULL;
                uint64_t now = now_monotonic_ms();
                size_t size = 0;
                int slice = 250, r;

                if (*bus->interrupted)
                        return CLI_EXIT_OK;
                if (deadline) {
                        if (now >= deadline)
                                break;
                        if (deadline - now < (uint64_t)slice)
                                slice = (int)(deadline - now);
                }
                /* Short slices so that Ctrl-C (czmq's handler sets zsys_interrupted) is seen. */
                r = bus->sub_recv(sub, slice, &type, &body, &size);
                if (r == -EAGAIN || r == -ETIMEDOUT || r == -EINTR)
                        continue;
                if (r < 0) {
                        cli_error("cannot receive events: %s", strerror(-r));
                        return CLI_EXIT_FAILURE;
                }
                if (!cli_tap_match(pattern, type))
                        continue;
                print_event(type, body, size);
                seen++;
        }
        if (count > 0 && seen < count) {
                cli_error("timed out after %llu of %llu events", (unsigned long long)seen, (unsigned long long)count);
                return CLI_EXIT_FAILURE;
        }
        return CLI_EXIT_OK;
}

int verb_tap(cli_ctx_t *ctx, int argc, char **argv) {
        static const struct option options[] = {
                { "count", required_argument, NULL, 'c' },
                { "timeout", required_argument, NULL, 't' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        static const char *const cmd = "husk tap";
        _cleanup_(husk_config_freep) husk_config_t *config = NULL;
        _cleanup_free_ char *error = NULL;
        const char *endpoints[_HUSK_DAEMON_MAX], *pattern = NULL, *path;
        cli_tap_bus_t bus;
        bus_sub_t *sub = NULL;
        uint64_t count = 0, timeout_ms = 0;
        char prefix[BUS_TYPE_MAX + 1];
        size_t n = 0;
        int c, r;

        optind = 0;
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":c:t:h", options, NULL)) >= 0) {
                switch (c) {
                case 'c':
                        if (parse_u64(optarg, &count) < 0 || count == 0)
                                return cli_usage_error(cmd, "--count takes a positive number, not '%s'", optarg);
                        break;
                case 't':
                        if (parse_duration_ms(optarg, &timeout_ms) < 0 || timeout_ms == 0)
                                return cli_usage_error(
                                        cmd, "--timeout takes a duration such as 10, 10s or 500ms, not '%s'", optarg);
                        break;
                case 'h':
                        tap_help();
                        return CLI_EXIT_OK;
                default:
                        return cli_getopt_error(cmd, c, optopt, argv, optind);
                }
        }
        if (argc - optind > 1)
                return cli_usage_error(cmd, "one PATTERN at most");
        if (optind < argc)
                pattern = argv[optind];

        path = husk_config_path(ctx->config_path);
        r = husk_config_load(path, &config, &error);
        if (r < 0) {
                cli_error("%s", error ? error : strerror(-r));
                return CLI_EXIT_FAILURE;
        }
        for (int d = 0; d < _HUSK_DAEMON_MAX; d++)
                if (config->bus[d].events && *config->bus[d].events)
                        endpoints[n++] = config->bus[d].events;
        if (n == 0) {
                cli_error("%s names no event endpoints", path);
                return CLI_EXIT_FAILURE;
        }

        r = cli_tap_bus_load(&bus, &error);
        if (r < 0) {
                cli_error("cannot load the bus module: %s", error ? error : strerror(-r));
                return CLI_EXIT_FAILURE;
        }
        r = bus.sub_new(endpoints, n, &sub);
        if (r < 0) {
                cli_tap_bus_unload(&bus);
                cli_error("cannot connect to the bus: %s", strerror(-r));
                return CLI_EXIT_FAILURE;
        }
        cli_tap_prefix(pattern, prefix, sizeof(prefix));
        r = bus.sub_subscribe(sub, prefix);
        if (r < 0) {
                cli_error("cannot subscribe to '%s': %s", prefix, strerror(-r));
                bus.sub_destroy(&sub);
                cli_tap_bus_unload(&bus);
                return CLI_EXIT_FAILURE;
        }
        fprintf(stderr, "husk tap: listening on %zu publishers%s%s%s\n", n, pattern ? " for '" : "",
                pattern ? pattern : "", pattern ? "'" : "");
        r = tap_run(&bus, sub, pattern, count, timeout_ms);
        bus.sub_destroy(&sub);
        cli_tap_bus_unload(&bus);
        return r;
}
