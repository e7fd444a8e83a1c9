/* cli_verb.c: verb-table dispatch and the usage errors every verb reports the same way. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

int cli_dispatch(cli_ctx_t *ctx, const cli_verb_t *verbs, size_t n_verbs, const char *prefix, int argc, char **argv) {
        if (argc < 1)
                return cli_usage_error(prefix, "missing command");
        for (size_t i = 0; i < n_verbs; i++)
                if (streq(verbs[i].name, argv[0]))
                        return verbs[i].run(ctx, argc, argv);
        return cli_usage_error(prefix, "unknown command '%s'", argv[0]);
}

bool cli_command_known(const cli_verb_t *commands, size_t n, const char *word) {
        for (size_t i = 0; i < n; i++)
                if (streq(commands[i].name, word))
                        return true;
        return false;
}

void cli_write_verbs(const cli_verb_t *verbs, size_t n_verbs) {
        size_t width = 0;

        for (size_t i = 0; i < n_verbs; i++)
                if (strlen(verbs[i].name) > width)
                        width = strlen(verbs[i].name);
        for (size_t i = 0; i < n_verbs; i++)
                printf("  %-*s  %s\n", (int)width, verbs[i].name, verbs[i].summary);
}

int cli_usage_error(const char *command, const char *fmt, ...) {
        va_list ap;

        fputs("error: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\nRun '%s --help' for usage.\n", command);
        return CLI_EXIT_USAGE;
}

/* getopt_long is called with a leading ':' in optstring and opterr = 0, so that the message
 * names the command the user typed rather than argv[0]. */
int cli_getopt_error(const char *command, int c, int optopt_, char **argv, int optind_) {
        const char *arg = optind_ > 0 ? argv[optind_ - 1] : "?";

        if (c == ':')
                return cli_usage_error(command, "option %s needs a value", arg);
        if (optopt_ > 0)
                return cli_usage_error(command, "unknown option -%c", optopt_);
        return cli_usage_error(command, "unknown option %s", arg);
}
