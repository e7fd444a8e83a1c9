/* cli_secret.c: `husk secret list|create|delete`: values go in once and are never shown again. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_http.h"
#include "cli/cli_manifest.h"
#include "cli/cli_output.h"

#define SECRET_VALUE_MAX 65536

static void secret_help(void) {
        printf("Usage: husk secret list [-n NS] [-o table|json]\n"
               "       husk secret create NAME [-n NS] (--value VALUE | --from-file PATH | --from-file -)\n"
               "       husk secret delete NAME [-n NS]\n"
               "\n"
               "A secret is a value (at most 64 KiB) kept encrypted by husk-apiserver and handed only to\n"
               "the guests of deployments that name it (environment: {X: {secretRef: NAME}}). No command\n"
               "shows it again. The value is the file's bytes exactly (- reads stdin); --value puts it\n"
               "on the command line, where other local users may see it in the process list.\n"
               "\n"
               "Options:\n"
               "  -n, --namespace NS      the secret's namespace (default: default; list: every one)\n"
               "  -o, --output FORMAT     table (default) or json\n");
}

static void wipe_free(char *s, size_t n) {
        if (s)
                explicit_bzero(s, n);
        free(s);
}

static int secret_create(cli_ctx_t *ctx, int argc, char **argv) {
        static const struct option options[] = {
                { "namespace", required_argument, NULL, 'n' },
                { "value", required_argument, NULL, 'v' },
                { "from-file", required_argument, NULL, 'f' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        static const char *const cmd = "husk secret create";
        const char *ns = "default", *value = NULL, *file = NULL;
        char *content = NULL;
        size_t size = 0;
        json_t *body;
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, ":n:f:h", options, NULL)) >= 0) {
                switch (c) {
                case 'n':
                        ns = optarg;
                        break;
                case 'v':
                        value = optarg;
                        break;
                case 'f':
                        file = optarg;
                        break;
                case 'h':
                        secret_help();
                        return CLI_EXIT_OK;
                default:
                        return cli_getopt_error(cmd, c, optopt, argv, optind);
                }
        }
        if (optind != argc - 1)
                return cli_usage_error(cmd, "give one secret NAME");
        if (!!value == !!file)
                return cli_usage_error(cmd, "give the value with one of --value or --from-file");
        if (file) {
                r = cli_manifest_read(file, &content, &size);
                if (r < 0) {
                        cli_error("cannot read %s: %s", streq(file, "-") ? "stdin" : file, strerror(-r));
                        return CLI_EXIT_FAILURE;
                }
                if (size > SECRET_VALUE_MAX) {
                        wipe_free(content, size);
                        cli_error("%s: %zu bytes, a secret holds at most %d", file, size, SECRET_VALUE_MAX);
                        return CLI_EXIT_FAILURE;
                }
        }
        body = json_pack("{s:s, s:s, s:s%}", "name", argv[optind], "namespace", ns, "value", value ?: content,
                         value ? strlen(value) : size);
        wipe_free(content, size);
        if (!body) {
                cli_error("the value is not UTF-8 text without NUL bytes");
                return CLI_EXIT_FAILURE;
        }
        r = cli_http_call(ctx, "POST", "/secrets", body, 201, "cannot create the secret", NULL);
        json_decref(body);
        if (r == CLI_EXIT_OK)
                printf("secret %s/%s created\n", ns, argv[optind]);
        return r;
}

static int secret_simple(cli_ctx_t *ctx, int argc, char **argv, const char *verb) {
        static const struct option options[] = {
                { "namespace", required_argument, NULL, 'n' },
                { "output", required_argument, NULL, 'o' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        static const char *const headers[] = { "NAMESPACE", "NAME", "CREATED" };
        _cleanup_(cli_table_freep) cli_table_t *t = NULL;
        _cleanup_free_ char *path = NULL, *cmd = NULL, *s = NULL, *n = NULL;
        const char *ns = NULL, *output = "table";
        json_auto_t *answer = NULL;
        json_t *e;
        size_t i;
        int c, r;

        if (asprintf(&cmd, "husk secret %s", verb) < 0)
                return CLI_EXIT_FAILURE;
        optind = 0;
        while ((c = getopt_long(argc, argv, ":n:o:h", options, NULL)) >= 0) {
                switch (c) {
                case 'n':
                        ns = optarg;
                        break;
                case 'o':
                        output = optarg;
                        break;
                case 'h':
                        secret_help();
                        return CLI_EXIT_OK;
                default:
                        return cli_getopt_error(cmd, c, optopt, argv, optind);
                }
        }
        if (!streq(output, "table") && !streq(output, "json"))
                return cli_usage_error(cmd, "-o: table or json");
        s = ns ? cli_url_escape(ns) : NULL;
        if (ns && !s)
                return CLI_EXIT_FAILURE;
        if (streq(verb, "list")) {
                if (optind != argc)
                        return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
                if (asprintf(&path, "/secrets%s%s", s ? "?namespace=" : "", s ?: "") < 0)
                        return CLI_EXIT_FAILURE;
                r = cli_http_call(ctx, "GET", path, NULL, 200, "cannot list secrets", &answer);
                if (r != CLI_EXIT_OK)
                        return r;
                if (streq(output, "json")) {
                        cli_json_write(stdout, answer);
                        return CLI_EXIT_OK;
                }
                if (cli_table_new(3, headers, &t) < 0)
                        return CLI_EXIT_FAILURE;
                json_array_foreach(answer, i, e) {
                        const char *cells[] = { cli_json_str(e, "namespace", ""), cli_json_str(e, "name", ""),
                                                cli_json_str(e, "created_at", "") };
                        if (cli_table_add_row(t, cells) < 0)
                                return CLI_EXIT_FAILURE;
                }
                cli_table_write(t, stdout);
                return CLI_EXIT_OK;
        }
        if (optind != argc - 1)
                return cli_usage_error(cmd, "give one secret NAME");
        n = cli_url_escape(argv[optind]);
        if (!n || asprintf(&path, "/secrets/%s?namespace=%s", n, s ?: "default") < 0)
                return CLI_EXIT_FAILURE;
        r = cli_http_call(ctx, "DELETE", path, NULL, 204, "cannot delete the secret", NULL);
        if (r == CLI_EXIT_OK)
                printf("secret %s/%s deleted\n", ns ?: "default", argv[optind]);
        return r;
}

/* What verb_secret dispatches, for husk completion: it refuses any other COMMAND. */
static const cli_verb_t secret_commands[] = {
        { "list", NULL, "list secrets (never their values)" },
        { "create", NULL, "create a secret" },
        { "delete", NULL, "delete a secret" },
};

const cli_verb_t *cli_secret_commands(size_t *ret_n) {
        *ret_n = ELEMENTSOF(secret_commands);
        return secret_commands;
}

int verb_secret(cli_ctx_t *ctx, int argc, char **argv) {
        if (argc >= 2 && argv[1][0] != '-' && !cli_command_known(secret_commands, ELEMENTSOF(secret_commands), argv[1]))
                return cli_usage_error("husk secret", "unknown command '%s'", argv[1]);
        if (argc < 2)
                return cli_usage_error("husk secret", "missing command: list, create or delete");
        if (streq(argv[1], "-h") || streq(argv[1], "--help")) {
                secret_help();
                return CLI_EXIT_OK;
        }
        if (streq(argv[1], "create"))
                return secret_create(ctx, argc - 1, argv + 1);
        if (streq(argv[1], "list") || streq(argv[1], "delete"))
                return secret_simple(ctx, argc - 1, argv + 1, argv[1]);
        return cli_usage_error("husk secret", "unknown command '%s'", argv[1]);
}
