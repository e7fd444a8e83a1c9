/* cli_context.h: the user's husk contexts: named (host, user, token) triples in one 0600 JSON
 * file, $HUSK_CLI_CONFIG, else $XDG_CONFIG_HOME/husk/cli.json, else ~/.config/husk/cli.json:
 * {"current": NAME, "contexts": {NAME: {"host", "username", "token", "ca_file"?}}}. */
#pragma once

#include <jansson.h>

#define CLI_CONTEXT_DEFAULT "default"

/* The file's path (caller frees); NULL when there is no home to put it in. */
char *cli_context_path(void);
/* The file's content; an empty document when it does not exist. -EINVAL (with a warning
 * printed) when it is not such a document. */
int cli_context_load(json_t **ret);
/* Written atomically, 0600, its directory made 0700. */
int cli_context_save(const json_t *doc);
/* The context named name, or the current one (name NULL); NULL when there is none. The
 * returned object is borrowed from doc. */
json_t *cli_context_get(json_t *doc, const char *name, const char **ret_name);
