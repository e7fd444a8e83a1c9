/* cli_login.c: `husk login` and `husk logout`: a session from husk-apiserver, kept in the
 * user's contexts file, and the password read without echo. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_context.h"
#include "cli/cli_http.h"
#include "cli/cli_output.h"

#define PASSWORD_MAX 256

/* One line of f without its newline into buf. -EINVAL when empty or longer than the buffer. */
static int read_line(FILE *f, char *buf, size_t size) {
        size_t n;

        if (!fgets(buf, (int)size, f))
                return -EIO;
        n = strcspn(buf, "\r\n");
        if (buf[n] == '\0' && n == size - 1)
                return -EINVAL; /* no newline within the buffer: too long */
        buf[n] = '\0';
        return n > 0 ? 0 : -EINVAL;
}

int cli_read_password(const char *prompt, bool from_stdin, char *buf, size_t size) {
        struct termios saved, quiet;
        FILE *tty;
        int r;

        if (from_stdin)
                return read_line(stdin, buf, size);
        tty = fopen("/dev/tty", "r+e");
        if (!tty)
                return -ENOTTY;
        fputs(prompt, tty);
        fflush(tty);
        if (tcgetattr(fileno(tty), &saved) < 0) {
                fclose(tty);
                return -ENOTTY;
        }
        quiet = saved;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        (void)tcsetattr(fileno(tty), TCSAFLUSH, &quiet);
        r = read_line(tty, buf, size);
        (void)tcsetattr(fileno(tty), TCSAFLUSH, &saved);
        fputc('\n', tty);
        fclose(tty);
        return r;
}

static void login_help(void) {
        printf("Usage: husk login [--username USER] [--password-stdin]\n"
               "\n"
               "Log in to husk-apiserver (--host) and keep the session token in the current context\n"
               "(--context NAME, else the current one, else \"" CLI_CONTEXT_DEFAULT "\"), in a file only you can\n"
               "read ("
               "$HUSK_CLI_CONFIG, else ~/.config/husk/cli.json). The password is asked for without\n"
               "echo unless --password-stdin reads it from the first line of standard input.\n"
               "\n"
               "Options:\n"
               "  -u, --username USER     who to log in as (default: admin)\n"
               "      --password-stdin    read the password from standard input\n"
               "  -h, --help              show this help\n");
}

int verb_login(cli_ctx_t *ctx, int argc, char **argv) {
        static const struct option options[] = {
                { "username", required_argument, NULL, 'u' },
                { "password-stdin", no_argument, NULL, 'P' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_(cli_http_freep) cli_http_t *h = NULL;
        _cleanup_free_ char *error = NULL;
        json_auto_t *body = NULL, *doc = NULL;
        const char *username = "admin", *name = ctx->context, *token;
        json_t *entry;
        char password[PASSWORD_MAX + 2];
        cli_ctx_t anonymous = *ctx;
        bool from_stdin = false;
        cli_response_t resp;
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, ":u:h", options, NULL)) >= 0) {
                switch (c) {
                case 'u':
                        username = optarg;
                        break;
                case 'P':
                        from_stdin = true;
                        break;
                case 'h':
                        login_help();
                        return CLI_EXIT_OK;
                default:
                        return cli_getopt_error("husk login", c, optopt, argv, optind);
                }
        }
        if (optind != argc)
                return cli_usage_error("husk login", "unexpected argument '%s'", argv[optind]);
        if (cli_context_load(&doc) < 0)
                return CLI_EXIT_FAILURE;
        if (!name)
                cli_context_get(doc, NULL, &name);
        if (!name)
                name = CLI_CONTEXT_DEFAULT;

        r = cli_read_password("Password: ", from_stdin, password, sizeof(password));
        if (r == -ENOTTY) {
                cli_error("no terminal to ask for the password on: use --password-stdin");
                return CLI_EXIT_USAGE;
        }
        if (r < 0) {
                cli_error("no password given");
                return CLI_EXIT_USAGE;
        }
        body = json_pack("{s:s, s:s}", "username", username, "password", password);
        explicit_bzero(password, sizeof(password));
        if (!body)
                return CLI_EXIT_FAILURE;

        /* Logging in sends no credential of its own. */
        anonymous.token = NULL;
        r = cli_http_open(&anonymous, &h);
        if (r != CLI_EXIT_OK)
                return r;
        r = cli_http_request(h, "POST", "/login", body, &resp, &error);
        if (r < 0)
                return cli_http_report_failure(h, r, error);
        if (resp.status != 200) {
                r = cli_http_report_status("cannot log in", &resp);
                cli_response_clear(&resp);
                return r;
        }
        token = cli_json_str(resp.json, "token", NULL);
        if (!token) {
                cli_response_clear(&resp);
                cli_error("cannot log in: husk-apiserver answered without a token");
                return CLI_EXIT_FAILURE;
        }
        entry = json_pack("{s:s, s:s, s:s}", "host", ctx->host, "username", username, "token", token);
        /* The CA the server was verified with goes with the context, as a path that works from
         * any directory: later commands verify the same server the same way. */
        if (entry && ctx->ca_file) {
                _cleanup_free_ char *ca = realpath(ctx->ca_file, NULL);

                json_object_set_new(entry, "ca_file", json_string(ca ?: ctx->ca_file));
        }
        json_object_set_new(json_object_get(doc, "contexts"), name, entry);
        json_object_set_new(doc, "current", json_string(name));
        r = cli_context_save(doc);
        if (r < 0) {
                cli_response_clear(&resp);
                cli_error("logged in, but cannot save the token: %s", strerror(-r));
                return CLI_EXIT_FAILURE;
        }
        printf("Logged in to %s as %s (%s); context %s\n", cli_http_base(h), username,
               cli_json_str(json_object_get(resp.json, "user"), "role", "?"), name);
        cli_response_clear(&resp);
        return CLI_EXIT_OK;
}

int verb_logout(cli_ctx_t *ctx, int argc, char **argv) {
        _cleanup_(cli_http_freep) cli_http_t *h = NULL;
        _cleanup_free_ char *error = NULL;
        json_auto_t *doc = NULL;
        const char *name = NULL;
        cli_response_t resp;
        json_t *c;
        int r;

        if (argc > 1) {
                if (streq(argv[1], "-h") || streq(argv[1], "--help")) {
                        printf("Usage: husk logout\n\nEnd the session of the current context (--context NAME) on the "
                               "server and forget its token.\n");
                        return CLI_EXIT_OK;
                }
                return cli_usage_error("husk logout", "unexpected argument '%s'", argv[1]);
        }
        if (cli_context_load(&doc) < 0)
                return CLI_EXIT_FAILURE;
        c = cli_context_get(doc, ctx->context, &name);
        if (!c || !json_string_value(json_object_get(c, "token"))) {
                cli_error("not logged in%s%s", name ? " in context " : "", name ?: "");
                return CLI_EXIT_AUTH;
        }
        r = cli_http_open(ctx, &h);
        if (r != CLI_EXIT_OK)
                return r;
        r = cli_http_request(h, "POST", "/logout", NULL, &resp, &error);
        if (r < 0)
                return cli_http_report_failure(h, r, error);
        /* 401: the session had ended already; either way it is forgotten here. */
        if (resp.status != 204 && resp.status != 401) {
                r = cli_http_report_status("cannot log out", &resp);
                cli_response_clear(&resp);
                return r;
        }
        cli_response_clear(&resp);
        json_object_del(c, "token");
        r = cli_context_save(doc);
        if (r < 0) {
                cli_error("logged out, but cannot save the contexts: %s", strerror(-r));
                return CLI_EXIT_FAILURE;
        }
        printf("Logged out of %s (context %s)\n", cli_http_base(h), name);
        return CLI_EXIT_OK;
}
