/* main.c: `husk`, the command-line client: global options, then one verb from the table. */
#include <curl/curl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "lib/config.h"

static const cli_verb_t verbs[] = {
        { "apply", verb_apply, "create or update deployments from Ring manifests (-f FILE)" },
        { "deployment", verb_deployment, "list, inspect and delete deployments" },
        { "tap", verb_tap, "print the daemons' bus events live" },
};

static void help(void) {
        printf("Usage: husk [--host URL] [--config PATH] COMMAND [ARGS]\n"
               "\n"
               "The husk command-line client: talks to husk-apiserver over its REST API.\n"
               "\n"
               "Commands:\n");
        cli_write_verbs(verbs, ELEMENTSOF(verbs));
        printf("\n"
               "Options:\n"
               "  -H, --host URL      husk-apiserver to talk to, http://HOST:PORT or HOST:PORT\n"
               "                      (default: $HUSK_HOST, else " CLI_DEFAULT_HOST ")\n"
               "  -c, --config PATH   husk config file, for `tap` and the local socket (default:\n"
               "                      $HUSK_CONFIG, else " HUSK_DEFAULT_CONFIG ")\n"
               "  -T, --token TOKEN   credential to send (default: $HUSK_TOKEN); without one, a\n"
               "                      local apiserver is asked over its unix socket when it has one\n"
               "  -h, --help          show this help\n"
               "  -V, --version       show the version\n"
               "\n"
               "Run 'husk COMMAND --help' for a command's options.\n"
               "Exit status: 0 ok, 1 error, 2 usage or not authorized, 3 husk-apiserver unreachable,\n"
               "4 not found, 5 conflict.\n");
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "host", required_argument, NULL, 'H' }, { "config", required_argument, NULL, 'c' },
                { "help", no_argument, NULL, 'h' },       { "version", no_argument, NULL, 'V' },
                { "token", required_argument, NULL, 'T' },
                {},
        };
        cli_ctx_t ctx = { .host = getenv("HUSK_HOST"), .token = getenv("HUSK_TOKEN") };
        int c, r;

        opterr = 0;
        /* "+": stop at the verb, whose options are its own. */
        while ((c = getopt_long(argc, argv, "+:H:c:T:hV", options, NULL)) >= 0) {
                switch (c) {
                case 'H':
                        ctx.host = optarg;
                        break;
                case 'c':
                        ctx.config_path = optarg;
                        break;
                case 'T':
                        ctx.token = optarg;
                        break;
                case 'h':
                        help();
                        return CLI_EXIT_OK;
                case 'V':
                        printf("husk %s\n", HUSK_VERSION);
                        return CLI_EXIT_OK;
                default:
                        return cli_getopt_error("husk", c, optopt, argv, optind);
                }
        }
        if (!ctx.host || !*ctx.host)
                ctx.host = CLI_DEFAULT_HOST;
        if (ctx.token && !*ctx.token) /* HUSK_TOKEN= says "none", as an unset one does */
                ctx.token = NULL;
        if (optind == argc) {
                help();
                return CLI_EXIT_USAGE;
        }
        if (streq(argv[optind], "help")) {
                help();
                return CLI_EXIT_OK;
        }

        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
                cli_error("cannot initialize libcurl");
                return CLI_EXIT_FAILURE;
        }
        r = cli_dispatch(&ctx, verbs, ELEMENTSOF(verbs), "husk", argc - optind, argv + optind);
        curl_global_cleanup();
        return r;
}
