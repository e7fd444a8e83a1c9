/* cli_user.c: `husk user list|create|set|delete|passwd`: the users of husk-apiserver. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_http.h"
#include "cli/cli_output.h"

#define PASSWORD_MAX 256

static void user_help(void) {
        printf("Usage: husk user list [-o table|json]\n"
               "       husk user create NAME --role ROLE [--password-stdin]\n"
               "       husk user set NAME [--role ROLE] [--password] [--password-stdin]\n"
               "       husk user delete NAME\n"
               "       husk user passwd [--password-stdin]\n"
               "\n"
               "Users of husk-apiserver and their roles: admin (everything), operator (everything but\n"
               "users), viewer (reading; no exec, no secrets). Creating, changing and deleting users is\n"
               "for admins; changing a user's role or password ends all of its sessions and tokens.\n"
               "`passwd` changes your own password (asked for the current one first). Passwords are\n"
               "asked for without echo, or read one per line from standard input (--password-stdin).\n");
}

static int ask(const char *prompt, bool from_stdin, char *buf, size_t size) {
        int r = cli_read_password(prompt, from_stdin, buf, size);

        if (r == -ENOTTY) {
                cli_error("no terminal to ask for the password on: use --password-stdin");
                return CLI_EXIT_USAGE;
        }
        if (r < 0) {
                cli_error("no password given");
                return CLI_EXIT_USAGE;
        }
        return CLI_EXIT_OK;
}

static int user_list(cli_ctx_t *ctx, int argc, char **argv) {
        static const char *const headers[] = { "NAME", "ROLE", "AGE", "ID" };
        _cleanup_(cli_table_freep) cli_table_t *t = NULL;
        json_auto_t *users = NULL;
        bool json = argc == 3 && streq(argv[1], "-o") && streq(argv[2], "json");
        uint64_t now = now_realtime_ms();
        json_t *u;
        size_t i;
        int r;

        if (argc != 1 && !json && !(argc == 3 && streq(argv[1], "-o") && streq(argv[2], "table")))
                return cli_usage_error("husk user", "use: husk user list [-o table|json]");
        r = cli_http_call(ctx, "GET", "/users", NULL, 200, "cannot list users", &users);
        if (r != CLI_EXIT_OK)
                return r;
        if (json) {
                cli_json_write(stdout, users);
                return CLI_EXIT_OK;
        }
        if (cli_table_new(4, headers, &t) < 0)
                return CLI_EXIT_FAILURE;
        json_array_foreach(users, i, u) {
                char age[32];
                const char *cells[] = { cli_json_str(u, "username", ""), cli_json_str(u, "role", ""),
                                        cli_format_json_age(json_object_get(u, "created_at"), now, age, sizeof(age)),
                                        cli_json_str(u, "id", "") };

                if (cli_table_add_row(t, cells) < 0)
                        return CLI_EXIT_FAILURE;
        }
        cli_table_write(t, stdout);
        return CLI_EXIT_OK;
}

/* create and set: NAME, --role, --password, --password-stdin. */
static int user_write(cli_ctx_t *ctx, bool create, int argc, char **argv) {
        static const struct option options[] = {
                { "role", required_argument, NULL, 'r' },
                { "password", no_argument, NULL, 'p' },
                { "password-stdin", no_argument, NULL, 'P' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *cmd = create ? "husk user create" : "husk user set", *role = NULL;
        _cleanup_free_ char *escaped = NULL, *path = NULL;
        char password[PASSWORD_MAX + 2];
        json_auto_t *body = json_object(), *user = NULL;
        bool want_password = create, from_stdin = false;
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, ":r:ph", options, NULL)) >= 0) {
                switch (c) {
                case 'r':
                        role = optarg;
                        break;
                case 'p':
                        want_password = true;
                        break;
                case 'P':
                        want_password = from_stdin = true;
                        break;
                case 'h':
                        user_help();
                        return CLI_EXIT_OK;
                default:
                        return cli_getopt_error(cmd, c, optopt, argv, optind);
                }
        }
        if (optind != argc - 1)
                return cli_usage_error(cmd, "give one user NAME");
        if (create && !role)
                return cli_usage_error(cmd, "give the new user's --role (admin, operator or viewer)");
        if (!create && !role && !want_password)
                return cli_usage_error(cmd, "give --role ROLE, --password or both");
        if (!body)
                return CLI_EXIT_FAILURE;
        if (create)
                json_object_set_new(body, "username", json_string(argv[optind]));
        if (role)
                json_object_set_new(body, "role", json_string(role));
        if (want_password) {
                r = ask("New password: ", from_stdin, password, sizeof(password));
                if (r != CLI_EXIT_OK)
                        return r;
                json_object_set_new(body, "password", json_string(password));
                explicit_bzero(password, sizeof(password));
        }
        if (create) {
                r = cli_http_call(ctx, "POST", "/users", body, 201, "cannot create the user", &user);
        } else {
                escaped = cli_url_escape(argv[optind]);
                if (!escaped || asprintf(&path, "/users/%s", escaped) < 0)
                        return CLI_EXIT_FAILURE;
                r = cli_http_call(ctx, "PUT", path, body, 200, "cannot change the user", &user);
        }
        if (r != CLI_EXIT_OK)
                return r;
        printf("User %s: %s%s\n", cli_json_str(user, "username", argv[optind]), cli_json_str(user, "role", "?"),
               create ? " (created)" : "; its sessions and tokens are revoked");
        return CLI_EXIT_OK;
}

static int user_delete(cli_ctx_t *ctx, int argc, char **argv) {
        _cleanup_free_ char *escaped = NULL, *path = NULL;
        int r;

        if (argc != 2)
                return cli_usage_error("husk user delete", "give one user NAME");
        escaped = cli_url_escape(argv[1]);
        if (!escaped || asprintf(&path, "/users/%s", escaped) < 0)
                return CLI_EXIT_FAILURE;
        r = cli_http_call(ctx, "DELETE", path, NULL, 204, "cannot delete the user", NULL);
        if (r == CLI_EXIT_OK)
                printf("User %s deleted\n", argv[1]);
        return r;
}

static int user_passwd(cli_ctx_t *ctx, int argc, char **argv) {
        char current[PASSWORD_MAX + 2], fresh[PASSWORD_MAX + 2];
        bool from_stdin = argc == 2 && streq(argv[1], "--password-stdin");
        json_auto_t *body = NULL;
        int r;

        if (argc != 1 && !from_stdin)
                return cli_usage_error("husk user passwd", "use: husk user passwd [--password-stdin]");
        r = ask("Current password: ", from_stdin, current, sizeof(current));
        if (r == CLI_EXIT_OK)
                r = ask("New password: ", from_stdin, fresh, sizeof(fresh));
        if (r != CLI_EXIT_OK)
                return r;
        body = json_pack("{s:s, s:s}", "current_password", current, "password", fresh);
        explicit_bzero(current, sizeof(current));
        explicit_bzero(fresh, sizeof(fresh));
        if (!body)
                return CLI_EXIT_FAILURE;
        r = cli_http_call(ctx, "PUT", "/users/me", body, 200, "cannot change the password", NULL);
        if (r == CLI_EXIT_OK)
                printf("Password changed; every session of yours has ended: husk login again\n");
        return r;
}

/* What verb_user dispatches, for husk completion: it refuses any other COMMAND. */
static const cli_verb_t user_commands[] = {
        { "list", NULL, "list users" },
        { "create", NULL, "create a user" },
        { "set", NULL, "change a user's role or password" },
        { "delete", NULL, "delete a user" },
        { "passwd", NULL, "change your own password" },
};

const cli_verb_t *cli_user_commands(size_t *ret_n) {
        *ret_n = ELEMENTSOF(user_commands);
        return user_commands;
}

int verb_user(cli_ctx_t *ctx, int argc, char **argv) {
        if (argc >= 2 && argv[1][0] != '-' && !cli_command_known(user_commands, ELEMENTSOF(user_commands), argv[1]))
                return cli_usage_error("husk user", "unknown command '%s'", argv[1]);
        if (argc < 2)
                return cli_usage_error("husk user", "missing command: list, create, set, delete or passwd");
        if (streq(argv[1], "-h") || streq(argv[1], "--help")) {
                user_help();
                return CLI_EXIT_OK;
        }
        if (streq(argv[1], "list"))
                return user_list(ctx, argc - 1, argv + 1);
        if (streq(argv[1], "create"))
                return user_write(ctx, true, argc - 1, argv + 1);
        if (streq(argv[1], "set"))
                return user_write(ctx, false, argc - 1, argv + 1);
        if (streq(argv[1], "delete"))
                return user_delete(ctx, argc - 1, argv + 1);
        if (streq(argv[1], "passwd"))
                return user_passwd(ctx, argc - 1, argv + 1);
        return cli_usage_error("husk user", "unknown command '%s'", argv[1]);
}
