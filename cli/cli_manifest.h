/* cli_manifest.h: Ring manifests (`deployments:` map of key -> deployment) read from YAML into
 * the JSON husk-apiserver takes, with ${VAR} expansion from the environment. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "lib/nesting.h"

/* Largest manifest file we read. */
#define CLI_MANIFEST_MAX_BYTES (16u * 1024u * 1024u)
/* Most JSON nodes one file may produce, aliases expanded (a "billion laughs" guard). */
#define CLI_MANIFEST_MAX_NODES 200000u
/* Deepest nesting of sequences and mappings: lib/nesting.h's bound, the file's own levels
 * (the document and deployments:) included. */
#define CLI_MANIFEST_MAX_DEPTH HUSK_NESTING_MAX

/* Where ${VAR} values come from: the environment first, then --env-file entries (Ring's order). */
typedef struct cli_vars {
        char **names;
        char **values;
        size_t n;
} cli_vars_t;

void cli_vars_clear(cli_vars_t *v);
const char *cli_vars_get(const cli_vars_t *v, const char *name);
/* Ring's --env-file: KEY=VALUE lines, '#' comments, optional "export ", surrounding quotes
 * dropped. A malformed line is an error "path:line: ..." in *ret_error. */
int cli_vars_load_env_file(cli_vars_t *v, const char *path, char **ret_error);

/* Expand a scalar: "${NAME}" is replaced by NAME's value and must be defined (-ENXIO, with
 * *ret_bad = NAME); a malformed "${..." is -EINVAL (*ret_bad = the fragment); "$$" is a
 * literal "$". With ring_bare, Ring's bare "$NAME" is replaced when NAME is defined and left
 * as written when not, as `ring apply` does. Any other "$" is kept. */
int cli_expand(const char *in, const cli_vars_t *vars, bool ring_bare, char **ret, char **ret_bad);

/* YAML text to JSON, one array element per document. Plain scalars are typed by the YAML 1.2
 * core schema (null/~/empty, true/false, decimal, 0o octal and 0x hex integers, floats);
 * zero-padded decimals ("0755") stay strings since YAML 1.1 and 1.2 read them differently;
 * quoted and block scalars are strings; !!str/!!int/!!float/!!bool/!!null tags are honoured;
 * anchors and aliases are resolved (copied) and "<<" merge keys applied; duplicate keys,
 * non-scalar keys, other tags, .inf/.nan and out-of-range integers are refused. Scalar values
 * (never keys) go through cli_expand() when vars is non-NULL; Ring's bare $NAME only in the
 * fields Ring expands (deployments.*.{namespace,name,image,environment.*,config.*,command[]}).
 * Errors are "FILE:LINE:COLUMN: message" (variables: "FILE:LINE: message") in *ret_error. */
int cli_yaml_to_json(const char *filename, const char *data, size_t size, const cli_vars_t *vars, json_t **ret_docs,
                     char **ret_error);
/* The same, and where each node is written: {"deployments.web.ports[0].published": LINE, ...}
 * (lines from 1; a key's line for a mapping value, the item's for a list item; the first
 * document that names a path wins). The dashboard puts the API's violations on these lines. */
int cli_yaml_to_json_lines(const char *filename, const char *data, size_t size, const cli_vars_t *vars,
                           json_t **ret_docs, json_t **ret_lines, char **ret_error);

typedef struct cli_manifest_entry {
        char *key;          /* the key under deployments: */
        char *file;         /* where it came from, for messages */
        json_t *deployment; /* the body to POST */
} cli_manifest_entry_t;

/* One entry of a top-level configs: map: created, or its data replaced, before the deployments. */
typedef struct cli_manifest_config {
        char *name;       /* the key under configs:, or its name: */
        char *namespace_; /* its namespace:, default "default" */
        char *file;       /* where it came from, for messages */
        json_t *data;     /* KEY: string value, as written in data: */
        json_t *files;    /* KEY: path of a file whose bytes are the value (files:), relative paths
                          * already joined to the manifest's directory; read by husk apply */
} cli_manifest_config_t;

typedef struct cli_manifest {
        cli_manifest_entry_t *entries;
        size_t n_entries;
        cli_manifest_config_t *configs;
        size_t n_configs;
        char **warnings; /* for the user: ignored keys and the like */
        size_t n_warnings;
        json_t *namespaces; /* namespaces: blocks, each name once, in order (an array; NULL: none) */
} cli_manifest_t;

void cli_manifest_clear(cli_manifest_t *m);

/* Parse one manifest file's text and append its deployments and namespaces to m. A deployment
 * without name: takes its key; Ring's list form of labels ([{k: v}, ...]) becomes a map. A
 * document may hold only namespaces:. On error m is left as it was and *ret_error says why. */
int cli_manifest_parse(cli_manifest_t *m, const char *filename, const char *data, size_t size, const cli_vars_t *vars,
                       char **ret_error);

/* Read a manifest file ("-" is stdin), at most CLI_MANIFEST_MAX_BYTES. */
int cli_manifest_read(const char *path, char **ret, size_t *ret_size);
