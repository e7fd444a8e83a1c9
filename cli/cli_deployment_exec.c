/* cli_deployment_exec.c: `husk deployment exec`: run a command in a deployment's VM, print its output, exit with its code. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_deployment.h"
#include "cli/cli_http.h"
#include "cli/cli_output.h"

#define STDIN_MAX (1u << 20)

static void exec_help(void) {
        printf("Usage: husk deployment exec ID|NAME [OPTIONS] -- COMMAND [ARGS...]\n"
               "\n"
               "Run COMMAND in a VM of the deployment (kit mode: through husk-agent, in the workload's\n"
               "root file system and environment), print its stdout and stderr, and exit with its exit\n"
               "code (128+N when killed by signal N).\n"
               "\n"
               "Options:\n"
               "  -n, --namespace NS      look NAME up in namespace NS\n"
               "      --instance ID       the instance to run in (default: the oldest ready one)\n"
               "  -e, --env KEY=VALUE     set a variable for the command (repeatable)\n"
               "  -w, --workdir DIR       working directory (default: the workload's)\n"
               "  -t, --timeout DURATION  kill the command after DURATION (default 60s)\n"
               "  -i, --stdin             send what this command reads on stdin (at most 1 MiB)\n"
               "  -h, --help              show this help\n");
}

static int read_stdin(char **ret, size_t *ret_size) {
        size_t len = 0, cap = 65536;
        char *buf = malloc(cap);

        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t n;

                if (len == cap) {
                        char *p;
                        if (cap >= STDIN_MAX + 1) {
                                free(buf);
                                return -EFBIG;
                        }
                        cap *= 2;
                        p = realloc(buf, cap);
                        if (!p) {
                                free(buf);
                                return -ENOMEM;
                        }
                        buf = p;
                }
                n = read(STDIN_FILENO, buf + len, cap - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        free(buf);
                        return -errno;
                }
                if (n == 0)
                        break;
                len += (size_t)n;
                if (len > STDIN_MAX) {
                        free(buf);
                        return -EFBIG;
                }
        }
        *ret = buf;
        *ret_size = len;
        return 0;
}

int cli_deployment_exec(cli_ctx_t *ctx, int argc, char **argv) {
        static const struct option options[] = {
                { "namespace", required_argument, NULL, 'n' },
                { "instance", required_argument, NULL, 'I' },
                { "env", required_argument, NULL, 'e' },
                { "workdir", required_argument, NULL, 'w' },
                { "timeout", required_argument, NULL, 't' },
                { "stdin", no_argument, NULL, 'i' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        static const char *const cmd = "husk deployment exec";
        _cleanup_(cli_http_freep) cli_http_t *h = NULL;
        _cleanup_(json_decrefp) json_t *body = json_object(), *env = json_object(), *command = json_array();
        _cleanup_(cli_response_clear) cli_response_t resp = {};
        _cleanup_free_ char *id = NULL, *path = NULL, *error = NULL, *input = NULL, *what = NULL;
        const char *namespace_ = NULL, *ref = NULL;
        int c, r, n_opts = argc, first_cmd = -1;
        bool with_stdin = false;
        size_t input_size = 0;
        json_t *out_j, *err_j;

        if (!body || !env || !command)
                return CLI_EXIT_FAILURE;
        /* Everything after "--" is the command, options included. */
        for (int k = 1; k < argc; k++)
                if (streq(argv[k], "--")) {
                        n_opts = k;
                        first_cmd = k + 1;
                        break;
                }
        optind = 0;
        opterr = 0;
        /* Without "--" the first word after ID starts the command: stop there ("+"). */
        while ((c = getopt_long(n_opts, argv, first_cmd < 0 ? "+:n:e:w:t:ih" : ":n:e:w:t:ih", options, NULL)) >= 0) {
                switch (c) {
                case 'n':
                        namespace_ = optarg;
                        break;
                case 'I':
                        json_object_set_new(body, "instance", json_string(optarg));
                        break;
                case 'e': {
                        const char *eq = strchr(optarg, '=');
                        _cleanup_free_ char *key = eq ? strndup(optarg, (size_t)(eq - optarg)) : NULL;

                        if (!eq || eq == optarg)
                                return cli_usage_error(cmd, "--env wants KEY=VALUE, got '%s'", optarg);
                        if (!key || json_object_set_new(env, key, json_string(eq + 1)) < 0)
                                return CLI_EXIT_FAILURE;
                        break;
                }
                case 'w':
                        json_object_set_new(body, "cwd", json_string(optarg));
                        break;
                case 't':
                        json_object_set_new(body, "timeout", json_string(optarg));
                        break;
                case 'i':
                        with_stdin = true;
                        break;
                case 'h':
                        exec_help();
                        return CLI_EXIT_OK;
                default:
                        return cli_getopt_error(cmd, c, optopt, argv, optind);
                }
        }
        if (optind >= n_opts)
                return cli_usage_error(cmd, "missing ID or NAME");
        ref = argv[optind++];
        if (first_cmd < 0)
                first_cmd = optind;
        else if (optind < n_opts)
                return cli_usage_error(cmd, "unexpected '%s' before '--'", argv[optind]);
        if (first_cmd >= argc)
                return cli_usage_error(cmd, "missing COMMAND (after '--')");
        for (int k = first_cmd; k < argc; k++)
                json_array_append_new(command, json_string(argv[k]));
        json_object_set(body, "command", command);
        if (json_object_size(env) > 0)
                json_object_set(body, "env", env);
        if (with_stdin) {
                r = read_stdin(&input, &input_size);
                if (r < 0) {
                        cli_error("cannot read stdin: %s", r == -EFBIG ? "more than 1 MiB" : strerror(-r));
                        return CLI_EXIT_FAILURE;
                }
                json_object_set_new(body, "stdin", json_stringn(input, input_size));
        }

        r = cli_deployment_open(ctx, ref, namespace_, &h, &id);
        if (r != CLI_EXIT_OK)
                return r;
        if (cli_deployment_path(id, "exec", NULL, &path) < 0)
                return CLI_EXIT_FAILURE;
        r = cli_http_request(h, "POST", path, body, &resp, &error);
        if (r < 0)
                return cli_http_report_failure(h, r, error);
        if (resp.status != 200) {
                if (asprintf(&what, "cannot exec in deployment '%s'", ref) < 0)
                        what = NULL;
                return cli_http_report_status(what ?: "cannot exec", &resp);
        }
        out_j = json_object_get(resp.json, "stdout");
        err_j = json_object_get(resp.json, "stderr");
        fwrite(json_string_value(out_j) ?: "", 1, json_string_length(out_j), stdout);
        fflush(stdout);
        fwrite(json_string_value(err_j) ?: "", 1, json_string_length(err_j), stderr);
        if (json_is_true(json_object_get(resp.json, "truncated")))
                cli_error("output truncated (at most 1 MiB each of stdout and stderr are kept)");
        if (json_is_true(json_object_get(resp.json, "timed_out")))
                cli_error("command killed: it ran longer than its timeout");
        r = (int)json_integer_value(json_object_get(resp.json, "exit_status"));
        return r < 0 || r > 255 ? CLI_EXIT_FAILURE : r;
}
