/* cli_apply.c: `husk apply -f FILE`: every manifest parsed and expanded, every deployment
 * checked by the server (dryRun=All), and only then each one POSTed and its outcome told in one
 * line: a file with one bad deployment applies nothing. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_http.h"
#include "cli/cli_manifest.h"
#include "cli/cli_output.h"

static void apply_help(void) {
        printf("Usage: husk apply -f FILE [-f FILE]... [OPTIONS]\n"
               "\n"
               "Create or update the deployments of Ring manifests: a top-level deployments: map of\n"
               "key -> deployment (name: defaults to the key), and a namespaces: block (a list of\n"
               "names, or name: {} entries) whose namespaces are created first unless they exist.\n"
               "${VAR} in values is replaced by the environment variable VAR (an undefined one is an\n"
               "error), $$ is a literal $, and Ring's bare $VAR works where Ring expands it. Nothing is\n"
               "applied unless every file parses and the server finds every deployment valid (each is\n"
               "checked with dryRun=All first).\n"
               "\n"
               "Options:\n"
               "  -f, --file FILE         manifest to apply; - reads stdin (repeatable)\n"
               "  -e, --env-file FILE     KEY=VALUE lines for variables the environment lacks (repeatable)\n"
               "  -d, --dry-run           print the JSON that would be sent, send nothing\n"
               "  -h, --help              show this help\n");
}

/* husk-apiserver says what a POST did in Husk-Apply-Result (created, updated, unchanged);
 * without it (another server) a 200 cannot be told apart and is reported as "applied". */
static void report_outcome(const cli_manifest_entry_t *e, const cli_response_t *resp, const char *result) {
        const json_t *d = resp->json, *gen = json_object_get(d, "generation");
        const char *name = cli_json_str(d, "name", e->key);

        if (resp->status == 201 || (result && streq(result, "created")))
                printf("deployment %s created (id %s)\n", name, cli_json_str(d, "id", "?"));
        else if (result && streq(result, "unchanged"))
                printf("deployment %s unchanged\n", name);
        else if (json_is_integer(gen))
                printf("deployment %s %s (generation %lld)\n", name,
                       result && streq(result, "updated") ? "updated" : "applied", (long long)json_integer_value(gen));
        else
                printf("deployment %s applied\n", name);
}

/* POST one deployment (check_only: with dryRun=All, which stores nothing) and say what came of
 * it; a check that passes says nothing. Returns an exit code. */
static int apply_one(cli_http_t *h, const cli_manifest_entry_t *e, bool check_only) {
        _cleanup_free_ char *error = NULL, *what = NULL, *result = NULL;
        cli_response_t resp;
        int r;

        r = cli_http_request(h, "POST", check_only ? "/deployments?dryRun=All" : "/deployments", e->deployment, &resp,
                             &error);
        if (r < 0)
                return cli_http_report_failure(h, r, error);
        if (resp.status == 200 || resp.status == 201) {
                result = cli_http_header(h, "Husk-Apply-Result");
                if (!check_only || !result || !streq(result, "valid")) {
                        report_outcome(e, &resp, result);
                        if (check_only) /* a server from before dryRun applied it */
                                cli_warning("the server does not check without applying: deployment %s was applied "
                                            "while being checked",
                                            e->key);
                }
                r = CLI_EXIT_OK;
        } else if (resp.status == 422 || resp.status == 400) {
                fprintf(stderr, "deployment %s: invalid\n", e->key);
                if (json_is_object(resp.json))
                        cli_problem_write(stderr, resp.json, "  ");
                else
                        fprintf(stderr, "  %.*s\n", (int)strcspn(resp.body, "\r\n"), resp.body);
                r = CLI_EXIT_FAILURE;
        } else {
                if (asprintf(&what, "deployment %s", e->key) < 0)
                        what = NULL;
                r = cli_http_report_status(what ? what : "deployment", &resp);
        }
        cli_response_clear(&resp);
        return r;
}

/* A namespaces: entry: created, or left as it is when it exists. Returns an exit code. */
static int apply_namespace(cli_http_t *h, const char *name) {
        _cleanup_free_ char *error = NULL, *what = NULL;
        json_auto_t *body = json_pack("{s:s}", "name", name);
        cli_response_t resp;
        int r;

        if (!body)
                return CLI_EXIT_FAILURE;
        r = cli_http_request(h, "POST", "/namespaces", body, &resp, &error);
        if (r < 0)
                return cli_http_report_failure(h, r, error);
        if (resp.status == 201)
                printf("namespace %s created\n", name);
        else if (resp.status == 409)
                printf("namespace %s unchanged\n", name);
        if (resp.status == 201 || resp.status == 409)
                r = CLI_EXIT_OK;
        else {
                if (asprintf(&what, "namespace %s", name) < 0)
                        what = NULL;
                r = cli_http_report_status(what ? what : "namespace", &resp);
        }
        cli_response_clear(&resp);
        return r;
}

/* Read, parse and expand every file; report every file that fails. */
static int load_manifests(char *const *files, size_t n_files, const cli_vars_t *vars, cli_manifest_t *m) {
        int ret = CLI_EXIT_OK;

        for (size_t i = 0; i < n_files; i++) {
                const char *name = streq(files[i], "-") ? "<stdin>" : files[i];
                _cleanup_free_ char *data = NULL, *error = NULL;
                size_t size = 0;
                int r;

                r = cli_manifest_read(files[i], &data, &size);
                if (r < 0) {
                        cli_error("cannot read %s: %s", name, r == -EFBIG ? "larger than 16 MiB" : strerror(-r));
                        ret = CLI_EXIT_FAILURE;
                        continue;
                }
                r = cli_manifest_parse(m, name, data, size, vars, &error);
                if (r < 0) {
                        cli_error("%s", error ? error : strerror(-r));
                        ret = CLI_EXIT_FAILURE;
                }
        }
        return ret;
}

int verb_apply(cli_ctx_t *ctx, int argc, char **argv) {
        static const struct option options[] = {
                { "file", required_argument, NULL, 'f' },
                { "env-file", required_argument, NULL, 'e' },
                { "dry-run", no_argument, NULL, 'd' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        static const char *const cmd = "husk apply";
        _cleanup_(cli_manifest_clear) cli_manifest_t m = {};
        _cleanup_(cli_vars_clear) cli_vars_t vars = {};
        _cleanup_(cli_http_freep) cli_http_t *h = NULL;
        _cleanup_free_ char **files = calloc((size_t)argc, sizeof(char *));
        size_t n_files = 0;
        bool dry_run = false, stdin_used = false;
        int c, r, ret = CLI_EXIT_OK;

        if (!files)
                return CLI_EXIT_FAILURE;
        optind = 0;
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":f:e:dh", options, NULL)) >= 0) {
                switch (c) {
                case 'f':
                        if (streq(optarg, "-")) {
                                if (stdin_used)
                                        return cli_usage_error(cmd, "-f - can be given once");
                                stdin_used = true;
                        }
                        files[n_files++] = optarg;
                        break;
                case 'e': {
                        _cleanup_free_ char *error = NULL;

                        r = cli_vars_load_env_file(&vars, optarg, &error);
                        if (r < 0) {
                                cli_error("%s", error ? error : strerror(-r));
                                return CLI_EXIT_FAILURE;
                        }
                        break;
                }
                case 'd':
                        dry_run = true;
                        break;
                case 'h':
                        apply_help();
                        return CLI_EXIT_OK;
                default:
                        return cli_getopt_error(cmd, c, optopt, argv, optind);
                }
        }
        if (optind < argc)
                return cli_usage_error(cmd, "unexpected argument '%s' (manifests are given with -f)", argv[optind]);
        if (n_files == 0)
                return cli_usage_error(cmd, "no manifest given: use -f FILE (or -f - for stdin)");

        r = load_manifests(files, n_files, &vars, &m);
        if (r != CLI_EXIT_OK) {
                fprintf(stderr, "Nothing was applied.\n");
                return r;
        }
        for (size_t i = 0; i < m.n_warnings; i++)
                cli_warning("%s", m.warnings[i]);
        if (m.n_entries == 0 && json_array_size(m.namespaces) == 0) {
                cli_warning("no deployments in %s, nothing to apply", n_files == 1 ? files[0] : "the manifests");
                return CLI_EXIT_OK;
        }

        if (dry_run) {
                _cleanup_(json_decrefp) json_t *all = json_array();

                for (size_t i = 0; all && i < m.n_entries; i++)
                        json_array_append(all, m.entries[i].deployment);
                if (!all)
                        return CLI_EXIT_FAILURE;
                cli_json_write(stdout, all);
                for (size_t i = 0; i < json_array_size(m.namespaces); i++)
                        fprintf(stderr, "namespace %s would be created unless it exists\n",
                                json_string_value(json_array_get(m.namespaces, i)));
                return CLI_EXIT_OK;
        }

        r = cli_http_open(ctx, &h);
        if (r != CLI_EXIT_OK)
                return r;
        /* Every deployment checked first, every problem told: an operator fixing a file wants
         * all of them at once, and none of the file applied until it is right. */
        for (size_t i = 0; i < m.n_entries; i++) {
                r = apply_one(h, &m.entries[i], true);
                if (r == CLI_EXIT_CONNECTION)
                        return r;
                if (r != CLI_EXIT_OK && ret == CLI_EXIT_OK)
                        ret = r;
        }
        if (ret != CLI_EXIT_OK) {
                fprintf(stderr, "Nothing was applied.\n");
                return ret;
        }
        /* Namespaces before what goes into them; one that cannot be made (a role that may not
         * create namespaces) stops the apply before any deployment. */
        for (size_t i = 0; i < json_array_size(m.namespaces); i++) {
                r = apply_namespace(h, json_string_value(json_array_get(m.namespaces, i)));
                if (r != CLI_EXIT_OK) {
                        fprintf(stderr, "No deployment was applied.\n");
                        return r;
                }
        }
        for (size_t i = 0; i < m.n_entries; i++) {
                r = apply_one(h, &m.entries[i], false);
                if (r == CLI_EXIT_CONNECTION)
                        return r; /* the server went away: the rest would fail alike */
                if (r != CLI_EXIT_OK && ret == CLI_EXIT_OK)
                        ret = r;
                if (r != CLI_EXIT_OK)
                        /* It passed its check: something changed since (a port taken by an
                         * earlier deployment of the same file, a name being deleted). */
                        fprintf(stderr,
                                "deployment %s was not applied (each one reported created, updated or "
                                "unchanged was)\n",
                                m.entries[i].key);
        }
        return ret;
}
