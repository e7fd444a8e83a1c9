/* cli_token.c: `husk token create|list|delete|rotate`: one's own API tokens. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_http.h"
#include "cli/cli_output.h"

static void token_help(void) {
        printf("Usage: husk token create NAME --scope SCOPE... [--namespace NS...] [--expires-in 30d]\n"
               "       husk token list [-o table|json]\n"
               "       husk token delete ID\n"
               "       husk token rotate ID\n"
               "\n"
               "API tokens act for you with the scopes you give them (deployments:read,\n"
               "deployments:write, deployments:exec, logs:read, events:read, secrets:write, ...; never\n"
               "more than your role holds), optionally only in some namespaces and until an expiry.\n"
               "A token's value is printed once, by create and rotate, on standard output; send it as\n"
               "--token or $HUSK_TOKEN. rotate gives a new value and the old one stops working.\n");
}

static int token_create(cli_ctx_t *ctx, int argc, char **argv) {
        static const struct option options[] = {
                { "scope", required_argument, NULL, 's' },
                { "namespace", required_argument, NULL, 'n' },
                { "expires-in", required_argument, NULL, 'e' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        json_auto_t *body = json_object(), *scopes = json_array(), *namespaces = json_array(), *token = NULL;
        const char *expires = NULL;
        int c, r;

        if (!body || !scopes || !namespaces)
                return CLI_EXIT_FAILURE;
        optind = 0;
        while ((c = getopt_long(argc, argv, ":s:n:e:h", options, NULL)) >= 0) {
                switch (c) {
                case 's':
                        json_array_append_new(scopes, json_string(optarg));
                        break;
                case 'n':
                        json_array_append_new(namespaces, json_string(optarg));
                        break;
                case 'e':
                        expires = optarg;
                        break;
                case 'h':
                        token_help();
                        return CLI_EXIT_OK;
                default:
                        return cli_getopt_error("husk token create", c, optopt, argv, optind);
                }
        }
        if (optind != argc - 1)
                return cli_usage_error("husk token create", "give one token NAME");
        if (json_array_size(scopes) == 0)
                return cli_usage_error("husk token create", "give at least one --scope");
        json_object_set_new(body, "name", json_string(argv[optind]));
        json_object_set(body, "scopes", scopes);
        if (json_array_size(namespaces) > 0)
                json_object_set(body, "namespaces", namespaces);
        if (expires)
                json_object_set_new(body, "expires_in", json_string(expires));
        r = cli_http_call(ctx, "POST", "/tokens", body, 201, "cannot create the token", &token);
        if (r != CLI_EXIT_OK)
                return r;
        fprintf(stderr, "Token %s (%s) created; its value is shown only now:\n", cli_json_str(token, "name", "?"),
                cli_json_str(token, "id", "?"));
        printf("%s\n", cli_json_str(token, "token", ""));
        return CLI_EXIT_OK;
}

static char *join(const json_t *a) {
        _cleanup_free_ char *out = NULL;
        size_t size = 0, i;
        FILE *f = open_memstream(&out, &size);
        json_t *v;

        if (!f)
                return NULL;
        json_array_foreach(a, i, v) fprintf(f, "%s%s", i ? "," : "", json_string_value(v) ?: "?");
        fclose(f);
        return TAKE_PTR(out);
}

static int token_list(cli_ctx_t *ctx, int argc, char **argv) {
        static const char *const headers[] = { "ID", "NAME", "SCOPES", "NAMESPACES", "EXPIRES" };
        _cleanup_(cli_table_freep) cli_table_t *t = NULL;
        json_auto_t *tokens = NULL;
        bool json = argc == 3 && streq(argv[1], "-o") && streq(argv[2], "json");
        json_t *tk;
        size_t i;
        int r;

        if (argc != 1 && !json && !(argc == 3 && streq(argv[1], "-o") && streq(argv[2], "table")))
                return cli_usage_error("husk token", "use: husk token list [-o table|json]");
        r = cli_http_call(ctx, "GET", "/tokens", NULL, 200, "cannot list tokens", &tokens);
        if (r != CLI_EXIT_OK)
                return r;
        if (json) {
                cli_json_write(stdout, tokens);
                return CLI_EXIT_OK;
        }
        if (cli_table_new(5, headers, &t) < 0)
                return CLI_EXIT_FAILURE;
        json_array_foreach(tokens, i, tk) {
                _cleanup_free_ char *scopes = join(json_object_get(tk, "scopes"));
                _cleanup_free_ char *ns = json_is_array(json_object_get(tk, "namespaces"))
                                                  ? join(json_object_get(tk, "namespaces"))
                                                  : strdup("*");
                const char *cells[] = { cli_json_str(tk, "id", ""), cli_json_str(tk, "name", ""), scopes ?: "",
                                        ns ?: "", cli_json_str(tk, "expires_at", "never") };

                if (cli_table_add_row(t, cells) < 0)
                        return CLI_EXIT_FAILURE;
        }
        cli_table_write(t, stdout);
        return CLI_EXIT_OK;
}

static int token_by_id(cli_ctx_t *ctx, int argc, char **argv, bool rotate) {
        _cleanup_free_ char *escaped = NULL, *path = NULL;
        json_auto_t *token = NULL;
        int r;

        if (argc != 2)
                return cli_usage_error(rotate ? "husk token rotate" : "husk token delete", "give one token ID");
        escaped = cli_url_escape(argv[1]);
        if (!escaped || asprintf(&path, "/tokens/%s%s", escaped, rotate ? "/rotate" : "") < 0)
                return CLI_EXIT_FAILURE;
        if (!rotate) {
                r = cli_http_call(ctx, "DELETE", path, NULL, 204, "cannot delete the token", NULL);
                if (r == CLI_EXIT_OK)
                        printf("Token %s deleted\n", argv[1]);
                return r;
        }
        r = cli_http_call(ctx, "POST", path, NULL, 200, "cannot rotate the token", &token);
        if (r != CLI_EXIT_OK)
                return r;
        fprintf(stderr, "Token %s rotated: the old value no longer works; the new one is shown only now:\n", argv[1]);
        printf("%s\n", cli_json_str(token, "token", ""));
        return CLI_EXIT_OK;
}

/* What verb_token dispatches, for husk completion: it refuses any other COMMAND. */
static const cli_verb_t token_commands[] = {
        { "create", NULL, "create an API token (shown once)" },
        { "list", NULL, "list your tokens" },
        { "delete", NULL, "delete a token" },
        { "rotate", NULL, "replace a token's value" },
};

const cli_verb_t *cli_token_commands(size_t *ret_n) {
        *ret_n = ELEMENTSOF(token_commands);
        return token_commands;
}

int verb_token(cli_ctx_t *ctx, int argc, char **argv) {
        if (argc >= 2 && argv[1][0] != '-' && !cli_command_known(token_commands, ELEMENTSOF(token_commands), argv[1]))
                return cli_usage_error("husk token", "unknown command '%s'", argv[1]);
        if (argc < 2)
                return cli_usage_error("husk token", "missing command: create, list, delete or rotate");
        if (streq(argv[1], "-h") || streq(argv[1], "--help")) {
                token_help();
                return CLI_EXIT_OK;
        }
        if (streq(argv[1], "create"))
                return token_create(ctx, argc - 1, argv + 1);
        if (streq(argv[1], "list"))
                return token_list(ctx, argc - 1, argv + 1);
        if (streq(argv[1], "delete"))
                return token_by_id(ctx, argc - 1, argv + 1, false);
        if (streq(argv[1], "rotate"))
                return token_by_id(ctx, argc - 1, argv + 1, true);
        return cli_usage_error("husk token", "unknown command '%s'", argv[1]);
}
