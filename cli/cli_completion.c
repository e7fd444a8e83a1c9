/* cli_completion.c: `husk completion bash|zsh|fish`: completion scripts written from the CLI's own tables (main.c's verbs, each verb's commands and the options before the verb), never from a list kept by hand. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

/* The COMMANDs of verb, NULL when it has none. */
static const cli_verb_t *commands_of(const cli_ctx_t *ctx, const char *verb, size_t *ret_n) {
        for (size_t i = 0; i < ctx->n_verb_commands; i++)
                if (streq(ctx->verb_commands[i].verb, verb))
                        return ctx->verb_commands[i].commands(ret_n);
        return NULL;
}

static void completion_help(void) {
        printf("Usage: husk completion bash|zsh|fish\n"
               "\n"
               "Prints a completion script for the shell: husk's verbs and each verb's commands, as\n"
               "this husk has them.\n"
               "\n"
               "  bash:  source <(husk completion bash)     or save it as /etc/bash_completion.d/husk\n"
               "  zsh:   source <(husk completion zsh)      (after compinit) or save it as _husk in $fpath\n"
               "  fish:  husk completion fish | source     or save it as ~/.config/fish/completions/husk.fish\n");
}

/* "-H --host -c --config ..." of the options that take a value (sep between), or of all. */
static void write_options(const struct option *o, bool with_value_only, const char *sep) {
        bool first = true;

        for (; o && o->name; o++) {
                if (with_value_only && o->has_arg != required_argument)
                        continue;
                if (o->val > 0 && o->val < 128)
                        printf("%s-%c", first ? "" : sep, o->val);
                printf("%s--%s", o->val > 0 && o->val < 128 ? sep : first ? "" : sep, o->name);
                first = false;
        }
}

/* s inside single quotes for sh-like shells ('\'' for a quote); colon: zsh's _describe separator too. */
static void write_quoted(const char *s, bool colon) {
        for (; *s; s++) {
                if (*s == '\'')
                        fputs("'\\''", stdout);
                else if (colon && *s == ':')
                        fputs("\\:", stdout);
                else
                        putchar(*s);
        }
}

static void bash(const cli_ctx_t *ctx) {
        printf("# bash completion for husk %s, written by `husk completion bash` from its own tables.\n"
               "_husk() {\n"
               "    local cur=${COMP_WORDS[COMP_CWORD]} i verb= at=0\n"
               "    for ((i = 1; i < COMP_CWORD; i++)); do\n"
               "        case ${COMP_WORDS[i]} in\n"
               "        ",
               HUSK_VERSION);
        write_options(ctx->options, true, "|");
        printf(") ((++i >= COMP_CWORD)) && return 0 ;;\n"
               "        -*) ;;\n"
               "        *) verb=${COMP_WORDS[i]} at=$i; break ;;\n"
               "        esac\n"
               "    done\n"
               "    if [[ -z $verb ]]; then\n"
               "        if [[ $cur == -* ]]; then\n"
               "            COMPREPLY=($(compgen -W \"");
        write_options(ctx->options, false, " ");
        printf("\" -- \"$cur\"))\n"
               "        else\n"
               "            COMPREPLY=($(compgen -W \"");
        for (size_t i = 0; i < ctx->n_verbs; i++)
                printf("%s%s", i ? " " : "", ctx->verbs[i].name);
        printf("\" -- \"$cur\"))\n"
               "        fi\n"
               "        return 0\n"
               "    fi\n"
               "    ((COMP_CWORD == at + 1)) || return 0\n"
               "    case $verb in\n");
        for (size_t i = 0; i < ctx->n_verbs; i++) {
                const cli_verb_t *cmds;
                size_t n;

                cmds = commands_of(ctx, ctx->verbs[i].name, &n);
                if (!cmds)
                        continue;
                printf("    %s) COMPREPLY=($(compgen -W \"", ctx->verbs[i].name);
                for (size_t k = 0; k < n; k++)
                        printf("%s%s", k ? " " : "", cmds[k].name);
                printf("\" -- \"$cur\")) ;;\n");
        }
        printf("    esac\n"
               "}\n"
               "complete -F _husk husk\n");
}

static void zsh_describe(const char *array, const cli_verb_t *v, size_t n) {
        printf("%s=(", array);
        for (size_t k = 0; k < n; k++) {
                printf("%s'", k ? " " : "");
                write_quoted(v[k].name, true);
                putchar(':');
                write_quoted(v[k].summary ?: "", true);
                putchar('\'');
        }
        printf(")");
}

static void zsh(const cli_ctx_t *ctx) {
        printf("#compdef husk\n"
               "# zsh completion for husk %s, written by `husk completion zsh` from its own tables.\n"
               "_husk() {\n"
               "  local -a verbs commands\n"
               "  local i=2 verb=\n"
               "  while (( i < CURRENT )); do\n"
               "    case $words[i] in\n"
               "      ",
               HUSK_VERSION);
        write_options(ctx->options, true, "|");
        printf(") (( i += 2 )); continue ;;\n"
               "      -*) (( i++ )); continue ;;\n"
               "    esac\n"
               "    verb=$words[i]\n"
               "    break\n"
               "  done\n"
               "  if [[ -z $verb ]]; then\n"
               "    (( i == CURRENT )) || return 1\n"
               "    ");
        zsh_describe("verbs", ctx->verbs, ctx->n_verbs);
        printf("\n"
               "    _describe -t commands 'husk command' verbs\n"
               "    return\n"
               "  fi\n"
               "  (( CURRENT == i + 1 )) || return 1\n"
               "  case $verb in\n");
        for (size_t i = 0; i < ctx->n_verbs; i++) {
                const cli_verb_t *cmds;
                size_t n;

                cmds = commands_of(ctx, ctx->verbs[i].name, &n);
                if (!cmds)
                        continue;
                printf("    %s) ", ctx->verbs[i].name);
                zsh_describe("commands", cmds, n);
                printf(" ;;\n");
        }
        printf("    *) return 1 ;;\n"
               "  esac\n"
               "  _describe -t commands \"husk $verb command\" commands\n"
               "}\n"
               "if [[ $zsh_eval_context[-1] == loadautofunc ]]; then\n"
               "  _husk \"$@\"\n"
               "else\n"
               "  compdef _husk husk\n"
               "fi\n");
}

/* fish's single quotes escape only \\ and \'. */
static void fish_quoted(const char *s) {
        putchar('\'');
        for (; *s; s++) {
                if (*s == '\'' || *s == '\\')
                        putchar('\\');
                putchar(*s);
        }
        putchar('\'');
}

static void fish(const cli_ctx_t *ctx) {
        printf("# fish completion for husk %s, written by `husk completion fish` from its own tables.\n"
               "# The words before the cursor but the options before the verb (and their values).\n"
               "function __husk_words\n"
               "    set -l words (commandline -opc)\n"
               "    set -e words[1]\n"
               "    set -l skip 0\n"
               "    for w in $words\n"
               "        if test $skip -eq 1\n"
               "            set skip 0\n"
               "            continue\n"
               "        end\n"
               "        switch $w\n"
               "            case ",
               HUSK_VERSION);
        write_options(ctx->options, true, " ");
        printf("\n"
               "                set skip 1\n"
               "            case '-*'\n"
               "            case '*'\n"
               "                echo $w\n"
               "        end\n"
               "    end\n"
               "end\n"
               "# True when the words so far are exactly the arguments.\n"
               "function __husk_at\n"
               "    set -l words (__husk_words)\n"
               "    test (count $words) -eq (count $argv); and test \"$words\" = \"$argv\"\n"
               "end\n"
               "complete -c husk -f\n");
        for (size_t i = 0; i < ctx->n_verbs; i++) {
                printf("complete -c husk -n __husk_at -a %s -d ", ctx->verbs[i].name);
                fish_quoted(ctx->verbs[i].summary ?: "");
                putchar('\n');
        }
        for (size_t i = 0; i < ctx->n_verbs; i++) {
                const cli_verb_t *cmds;
                size_t n;

                cmds = commands_of(ctx, ctx->verbs[i].name, &n);
                if (!cmds)
                        continue;
                for (size_t k = 0; k < n; k++) {
                        printf("complete -c husk -n '__husk_at %s' -a %s -d ", ctx->verbs[i].name, cmds[k].name);
                        fish_quoted(cmds[k].summary ?: "");
                        putchar('\n');
                }
        }
}

static const cli_verb_t completion_commands[] = {
        {
                "bash",
                NULL,
                "a bash completion script",
        },
        {
                "zsh",
                NULL,
                "a zsh completion script",
        },
        {
                "fish",
                NULL,
                "a fish completion script",
        },
};

const cli_verb_t *cli_completion_commands(size_t *ret_n) {
        *ret_n = ELEMENTSOF(completion_commands);
        return completion_commands;
}

int verb_completion(cli_ctx_t *ctx, int argc, char **argv) {
        if (argc == 2 && (streq(argv[1], "-h") || streq(argv[1], "--help"))) {
                completion_help();
                return CLI_EXIT_OK;
        }
        if (argc >= 2 && !cli_command_known(completion_commands, ELEMENTSOF(completion_commands), argv[1]))
                return cli_usage_error("husk completion", "unknown command '%s'", argv[1]);
        if (argc != 2)
                return cli_usage_error("husk completion", "use: husk completion bash|zsh|fish");
        if (streq(argv[1], "bash"))
                bash(ctx);
        else if (streq(argv[1], "zsh"))
                zsh(ctx);
        else
                fish(ctx);
        return CLI_EXIT_OK;
}
