/* main.c: `husk`, the command-line client: global options, then one verb from the table. */
#include <curl/curl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "cli/cli_output.h"
#include "cli/cli_context.h"
#include "lib/config.h"

static const cli_verb_t verbs[] = {
        { "apply", verb_apply, "create or update deployments from Ring manifests (-f FILE)" },
        { "completion", verb_completion, "print a shell completion script: bash, zsh or fish" },
        { "config", verb_config, "list, inspect, create and delete configs (key/value data for deployments)" },
        { "context", verb_context, "list the contexts you logged in to, or pick the current one" },
        { "deployment", verb_deployment, "list, inspect and delete deployments" },
        { "doctor", verb_doctor, "check this host and the daemons; print the command that fixes each failure" },
        { "login", verb_login, "log in to husk-apiserver and keep the token in a context" },
        { "logout", verb_logout, "end the current context's session" },
        { "namespace", verb_namespace, "list, create and delete namespaces; read their audit log" },
        { "node", verb_node, "show the host: kernel, CPUs, memory, disk, runtimes, VMs, daemons' versions" },
        { "secret", verb_secret, "list, create and delete secrets (values never shown again)" },
        { "tap", verb_tap, "print the daemons' bus events live" },
        { "token", verb_token, "create, list, delete and rotate your API tokens" },
        { "user", verb_user, "list, create, change and delete users; change your password" },
        { "volume", verb_volume, "list, inspect and delete named volumes" },
};

/* The COMMANDs of each verb that has some: the very tables the verbs dispatch with (a verb refuses
 * a COMMAND its table lacks), for husk completion; test_completion.py finds a verb missing here. */
static const cli_verb_commands_t verb_commands[] = {
        { "completion", cli_completion_commands },
        { "config", cli_config_commands },
        { "context", cli_context_commands },
        { "deployment", cli_deployment_commands },
        { "namespace", cli_namespace_commands },
        { "node", cli_node_commands },
        { "secret", cli_secret_commands },
        { "token", cli_token_commands },
        { "user", cli_user_commands },
        { "volume", cli_volume_commands },
};

/* The options before the verb (husk completion skips those that take a value). */
static const struct option options[] = {
        { "host", required_argument, NULL, 'H' },    { "config", required_argument, NULL, 'c' },
        { "help", no_argument, NULL, 'h' },          { "version", no_argument, NULL, 'V' },
        { "token", required_argument, NULL, 'T' },   { "context", required_argument, NULL, 'C' },
        { "ca-file", required_argument, NULL, 'A' }, {},
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
               "  -T, --token TOKEN   credential to send (default: $HUSK_TOKEN, else the context's);\n"
               "                      without one, a local apiserver is asked over its unix socket\n"
               "  -C, --context NAME  the context to use (default: $HUSK_CONTEXT, else the current one;\n"
               "                      see husk login and husk context)\n"
               "  -A, --ca-file PATH  CA certificates to verify an https:// host with (default:\n"
               "                      $HUSK_CA_FILE, else the context's from husk login, else the\n"
               "                      system's); never skipped\n"
               "  -h, --help          show this help\n"
               "  -V, --version       show the version\n"
               "\n"
               "Run 'husk COMMAND --help' for a command's options.\n"
               "Exit status: 0 ok, 1 error, 2 usage or not authorized, 3 husk-apiserver unreachable,\n"
               "4 not found, 5 conflict.\n");
}

/* The context (--context, $HUSK_CONTEXT, else the current one) gives the host when none was
 * given, and its token and CA file when none was given, but only for its own host: a token is
 * never sent to another server than the one that issued it. Strings point into *ret. */
static int resolve_context(cli_ctx_t *ctx, bool login, json_t **ret) {
        const char *name = NULL, *host;
        json_t *c;

        if (cli_context_load(ret) < 0)
                return ctx->context ? CLI_EXIT_FAILURE : CLI_EXIT_OK;
        c = cli_context_get(*ret, ctx->context, &name);
        if (!c) {
                if (ctx->context && !login) {
                        cli_error("no context '%s': husk context list shows them, husk --context %s login makes it",
                                  ctx->context, ctx->context);
                        return CLI_EXIT_USAGE;
                }
                return CLI_EXIT_OK;
        }
        ctx->context = name;
        host = cli_json_str(c, "host", NULL);
        if (!ctx->host)
                ctx->host = host;
        if (host && ctx->host && streq(host, ctx->host)) {
                if (!ctx->token)
                        ctx->token = cli_json_str(c, "token", NULL);
                if (!ctx->ca_file)
                        ctx->ca_file = cli_json_str(c, "ca_file", NULL);
        }
        return CLI_EXIT_OK;
}

int main(int argc, char **argv) {
        cli_ctx_t ctx = { .host = getenv("HUSK_HOST"),
                          .token = getenv("HUSK_TOKEN"),
                          .context = getenv("HUSK_CONTEXT"),
                          .ca_file = getenv("HUSK_CA_FILE"),
                          .verbs = verbs,
                          .options = options,
                          .verb_commands = verb_commands,
                          .n_verb_commands = ELEMENTSOF(verb_commands),
                          .n_verbs = ELEMENTSOF(verbs) };
        json_auto_t *contexts = NULL;
        int c, r;

        opterr = 0;
        /* "+": stop at the verb, whose options are its own. */
        while ((c = getopt_long(argc, argv, "+:H:c:T:C:A:hV", options, NULL)) >= 0) {
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
                case 'C':
                        ctx.context = optarg;
                        break;
                case 'A':
                        ctx.ca_file = optarg;
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
        if (ctx.host && !*ctx.host)
                ctx.host = NULL;
        if (ctx.token && !*ctx.token) /* HUSK_TOKEN= says "none", as an unset one does */
                ctx.token = NULL;
        if (ctx.context && !*ctx.context)
                ctx.context = NULL;
        if (optind < argc && !streq(argv[optind], "context")) {
                r = resolve_context(&ctx, streq(argv[optind], "login"), &contexts);
                if (r != CLI_EXIT_OK)
                        return r;
        }
        if (!ctx.host)
                ctx.host = CLI_DEFAULT_HOST;
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
