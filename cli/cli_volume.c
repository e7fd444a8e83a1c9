/* cli_volume.c: `husk volume list|inspect|delete`: named volumes (a volume in use is not deleted). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_http.h"
#include "cli/cli_output.h"

static void volume_help(void) {
        printf("Usage: husk volume list [-n NS]\n"
               "       husk volume inspect NAME [-n NS] [-o table|json]\n"
               "       husk volume delete NAME [-n NS]\n"
               "\n"
               "Named volumes (type: volume in a manifest) are directories husk makes on first use\n"
               "and keeps across deletes and re-applies, until deleted here. A volume a deployment\n"
               "still uses is not deleted: delete the deployment first.\n"
               "\n"
               "Options:\n"
               "  -n, --namespace NS      the volume's namespace (default: default)\n"
               "  -o, --output FORMAT     table (default) or json\n");
}

static char *volume_path(const char *name, const char *namespace_) {
        _cleanup_free_ char *n = cli_url_escape(name ?: ""), *ns = cli_url_escape(namespace_);
        char *path = NULL;

        if (!n || !ns || asprintf(&path, name ? "/volumes/%s?namespace=%s" : "/volumes%s?namespace=%s", n, ns) < 0)
                return NULL;
        return path;
}

static const char *users_text(const json_t *v, char *buf, size_t size) {
        const json_t *u;
        size_t i, len = 0;

        buf[0] = '\0';
        json_array_foreach(json_object_get(v, "used_by"), i, u) len += (size_t)snprintf(
                buf + len, len < size ? size - len : 0, "%s%s", i ? "," : "", json_string_value(u) ?: "");
        return buf[0] ? buf : "-";
}

static int volume_list(cli_ctx_t *ctx, const char *namespace_) {
        static const char *const headers[] = { "NAME", "NAMESPACE", "USED BY", "CREATED" };
        _cleanup_(cli_table_freep) cli_table_t *t = NULL;
        _cleanup_free_ char *path = volume_path(NULL, namespace_);
        json_auto_t *list = NULL;
        json_t *v;
        size_t i;
        int r;

        if (!path)
                return CLI_EXIT_FAILURE;
        r = cli_http_call(ctx, "GET", path, NULL, 200, "cannot list volumes", &list);
        if (r != CLI_EXIT_OK)
                return r;
        if (cli_table_new(4, headers, &t) < 0)
                return CLI_EXIT_FAILURE;
        json_array_foreach(list, i, v) {
                char users[256];
                const char *cells[] = { cli_json_str(v, "name", ""), cli_json_str(v, "namespace", ""),
                                        users_text(v, users, sizeof(users)), cli_json_str(v, "created_at", "") };

                if (cli_table_add_row(t, cells) < 0)
                        return CLI_EXIT_FAILURE;
        }
        cli_table_write(t, stdout);
        return CLI_EXIT_OK;
}

static int volume_inspect(cli_ctx_t *ctx, const char *name, const char *namespace_, const char *output) {
        _cleanup_free_ char *path = volume_path(name, namespace_);
        json_auto_t *v = NULL;
        char users[512];
        int r;

        if (!path)
                return CLI_EXIT_FAILURE;
        r = cli_http_call(ctx, "GET", path, NULL, 200, "cannot read the volume", &v);
        if (r != CLI_EXIT_OK)
                return r;
        if (streq(output, "json")) {
                cli_json_write(stdout, v);
                return CLI_EXIT_OK;
        }
        printf("Name:       %s\n"
               "Namespace:  %s\n"
               "Driver:     %s\n"
               "Path:       %s\n"
               "Created:    %s\n"
               "Used by:    %s\n",
               cli_json_str(v, "name", ""), cli_json_str(v, "namespace", ""), cli_json_str(v, "driver", ""),
               cli_json_str(v, "path", ""), cli_json_str(v, "created_at", ""), users_text(v, users, sizeof(users)));
        return CLI_EXIT_OK;
}

static int volume_delete(cli_ctx_t *ctx, const char *name, const char *namespace_) {
        _cleanup_free_ char *path = volume_path(name, namespace_);
        int r;

        if (!path)
                return CLI_EXIT_FAILURE;
        r = cli_http_call(ctx, "DELETE", path, NULL, 204, "cannot delete the volume", NULL);
        if (r == CLI_EXIT_OK)
                printf("Volume %s deleted\n", name);
        return r;
}

/* What verb_volume dispatches, for husk completion: it refuses any other COMMAND. */
static const cli_verb_t volume_commands[] = {
        { "list", NULL, "list named volumes" },
        { "inspect", NULL, "show a named volume" },
        { "delete", NULL, "delete a named volume" },
};

const cli_verb_t *cli_volume_commands(size_t *ret_n) {
        *ret_n = ELEMENTSOF(volume_commands);
        return volume_commands;
}

int verb_volume(cli_ctx_t *ctx, int argc, char **argv) {
        const char *namespace_ = "default", *output = "table", *name = NULL, *what;

        if (argc >= 2 && argv[1][0] != '-' && !cli_command_known(volume_commands, ELEMENTSOF(volume_commands), argv[1]))
                return cli_usage_error("husk volume", "unknown command '%s'", argv[1]);
        if (argc >= 2 && (streq(argv[1], "-h") || streq(argv[1], "--help"))) {
                volume_help();
                return CLI_EXIT_OK;
        }
        if (argc < 2)
                return cli_usage_error("husk volume", "use: husk volume list|inspect NAME|delete NAME");
        what = argv[1];
        for (int k = 2; k < argc; k++) {
                if ((streq(argv[k], "-n") || streq(argv[k], "--namespace")) && k + 1 < argc)
                        namespace_ = argv[++k];
                else if ((streq(argv[k], "-o") || streq(argv[k], "--output")) && k + 1 < argc)
                        output = argv[++k];
                else if (argv[k][0] == '-')
                        return cli_usage_error("husk volume", "unknown option %s", argv[k]);
                else if (!name)
                        name = argv[k];
                else
                        return cli_usage_error("husk volume", "give one volume NAME");
        }
        if (!streq(output, "table") && !streq(output, "json"))
                return cli_usage_error("husk volume", "-o: table or json");
        if (streq(what, "list") && !name)
                return volume_list(ctx, namespace_);
        if (streq(what, "inspect") && name)
                return volume_inspect(ctx, name, namespace_, output);
        if (streq(what, "delete") && name)
                return volume_delete(ctx, name, namespace_);
        return cli_usage_error("husk volume", "use: husk volume list|inspect NAME|delete NAME");
}
