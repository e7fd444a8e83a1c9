/* cli_context.c: the contexts file (who is logged in where), and `husk context list|use`. */
#include "cli/cli_context.h"

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_output.h"

#define CONTEXT_FILE_MAX (1024 * 1024)

char *cli_context_path(void) {
        const char *env = getenv("HUSK_CLI_CONFIG"), *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
        char *path = NULL;

        if (env && *env)
                return strdup(env);
        if (xdg && *xdg && asprintf(&path, "%s/husk/cli.json", xdg) >= 0)
                return path;
        if (home && *home && asprintf(&path, "%s/.config/husk/cli.json", home) >= 0)
                return path;
        return NULL;
}

int cli_context_load(json_t **ret) {
        _cleanup_free_ char *path = cli_context_path(), *text = NULL;
        json_t *doc;
        size_t size;
        int r;

        r = path ? read_file(path, CONTEXT_FILE_MAX, &text, &size) : -ENOENT;
        if (r == -ENOENT) {
                doc = json_pack("{s:o}", "contexts", json_object());
                if (!doc)
                        return -ENOMEM;
                *ret = doc;
                return 0;
        }
        if (r < 0) {
                cli_warning("cannot read %s: %s", path, strerror(-r));
                return r;
        }
        doc = json_loadb(text, size, 0, NULL);
        if (!json_is_object(doc) || !json_is_object(json_object_get(doc, "contexts"))) {
                json_decref(doc);
                cli_warning("%s is not a husk contexts file ({\"current\", \"contexts\": {...}})", path);
                return -EINVAL;
        }
        *ret = doc;
        return 0;
}

int cli_context_save(const json_t *doc) {
        _cleanup_free_ char *path = cli_context_path(), *dir = NULL, *text = NULL;
        int r;

        if (!path)
                return -ENOENT;
        dir = strdup(path);
        text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (!dir || !text)
                return -ENOMEM;
        r = mkdir_p(dirname(dir), 0700);
        if (r < 0)
                return r;
        /* Tokens inside: readable by the user alone. */
        return write_file_atomic(path, text, strlen(text), 0600);
}

json_t *cli_context_get(json_t *doc, const char *name, const char **ret_name) {
        if (!name)
                name = json_string_value(json_object_get(doc, "current"));
        if (ret_name)
                *ret_name = name;
        return name ? json_object_get(json_object_get(doc, "contexts"), name) : NULL;
}

/* ---- husk context ----------------------------------------------------------------------- */

static void context_help(void) {
        printf("Usage: husk context list\n"
               "       husk context use NAME\n"
               "\n"
               "Contexts are the husk-apiserver you logged in to (`husk login`), as whom, with its\n"
               "token; `use` makes one the current context, --context NAME picks one per command.\n");
}

static int context_list(void) {
        static const char *const headers[] = { "CURRENT", "NAME", "HOST", "USERNAME" };
        _cleanup_(cli_table_freep) cli_table_t *t = NULL;
        json_auto_t *doc = NULL;
        const char *name, *current;
        json_t *c;

        if (cli_context_load(&doc) < 0 || cli_table_new(4, headers, &t) < 0)
                return CLI_EXIT_FAILURE;
        current = json_string_value(json_object_get(doc, "current"));
        json_object_foreach(json_object_get(doc, "contexts"), name, c) {
                const char *cells[] = { current && streq(current, name) ? "*" : "", name, cli_json_str(c, "host", ""),
                                        cli_json_str(c, "username", "") };

                if (cli_table_add_row(t, cells) < 0)
                        return CLI_EXIT_FAILURE;
        }
        cli_table_write(t, stdout);
        return CLI_EXIT_OK;
}

static int context_use(const char *name) {
        json_auto_t *doc = NULL;
        int r;

        if (cli_context_load(&doc) < 0)
                return CLI_EXIT_FAILURE;
        if (!json_object_get(json_object_get(doc, "contexts"), name)) {
                cli_error("no context '%s' (husk context list shows them; husk --context %s login makes it)", name,
                          name);
                return CLI_EXIT_NOT_FOUND;
        }
        json_object_set_new(doc, "current", json_string(name));
        r = cli_context_save(doc);
        if (r < 0) {
                cli_error("cannot save the contexts: %s", strerror(-r));
                return CLI_EXIT_FAILURE;
        }
        printf("Current context: %s\n", name);
        return CLI_EXIT_OK;
}

/* What verb_context dispatches, for husk completion: it refuses any other COMMAND. */
static const cli_verb_t context_commands[] = {
        { "list", NULL, "list the contexts" },
        { "use", NULL, "make a context the current one" },
};

const cli_verb_t *cli_context_commands(size_t *ret_n) {
        *ret_n = ELEMENTSOF(context_commands);
        return context_commands;
}

int verb_context(cli_ctx_t *ctx, int argc, char **argv) {
        if (argc >= 2 && argv[1][0] != '-' &&
            !cli_command_known(context_commands, ELEMENTSOF(context_commands), argv[1]))
                return cli_usage_error("husk context", "unknown command '%s'", argv[1]);
        if (argc >= 2 && (streq(argv[1], "-h") || streq(argv[1], "--help"))) {
                context_help();
                return CLI_EXIT_OK;
        }
        if (argc == 2 && streq(argv[1], "list"))
                return context_list();
        if (argc == 3 && streq(argv[1], "use"))
                return context_use(argv[2]);
        return cli_usage_error("husk context", "use: husk context list | husk context use NAME");
}
