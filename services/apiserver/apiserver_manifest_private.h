/* apiserver_manifest_private.h: what the manifest validator's files share: parse state and the violation helpers. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "lib/util.h"
#include "services/apiserver/apiserver_manifest.h"

typedef struct parse_ctx {
        manifest_t m;
        json_t *violations; /* array of {field, reason} */
        json_t *kept;       /* Ring fields stored unchanged, already type-checked */
        json_t *requests;   /* resources.requests as given (accepted, not used yet) */
        bool oom;
} parse_ctx_t;

typedef void (*field_fn)(parse_ctx_t *c, const char *key, const json_t *v);

/* Append {field, reason} to the violations (or note the allocation failure). */
void manifest_violation(parse_ctx_t *c, const char *field, const char *fmt, ...) _printf_(3, 4);
/* "must be <expected>, got <type> <value>" */
void manifest_wrong_type(parse_ctx_t *c, const char *field, const char *expected, const json_t *v);
/* The value as the user wrote it (JSON syntax), shortened to fit buf, for messages. */
const char *manifest_show(const json_t *v, char *buf, size_t size);
/* prefix + "." + key, shortened to fit buf. */
const char *manifest_field_path(char *buf, size_t size, const char *prefix, const char *key);
/* Length of the longest prefix of s of at most max bytes that ends on a UTF-8 boundary. */
size_t manifest_utf8_prefix(const char *s, size_t max);
void manifest_set_str(parse_ctx_t *c, char **dst, const char *s);
/* Store a deep copy of v under key in the spec. */
void manifest_keep(parse_ctx_t *c, const char *key, const json_t *v);

/* Field parsers with files of their own. */
void manifest_parse_labels(parse_ctx_t *c, const char *key, const json_t *v);
void manifest_parse_resources(parse_ctx_t *c, const char *key, const json_t *v);
void manifest_parse_environment(parse_ctx_t *c, const char *key, const json_t *v);
/* ports: (apiserver_ports.c) and its cross-field rule: no ports with replicas > 1. */
void manifest_parse_ports(parse_ctx_t *c, const char *key, const json_t *v);
void manifest_check_ports(parse_ctx_t *c, const json_t *input);
/* health_checks: (apiserver_manifest_health.c), validated, kept as given. */
void manifest_parse_health_checks(parse_ctx_t *c, const char *key, const json_t *v);
/* config, network, secrets (apiserver_manifest_ring.c). */
void manifest_parse_config(parse_ctx_t *c, const char *key, const json_t *v);
void manifest_parse_network(parse_ctx_t *c, const char *key, const json_t *v);
/* volumes: (apiserver_manifest_volumes.c), normalized (permission written out), and its
 * cross-field rule: no read-write named volume with replicas > 1. */
void manifest_parse_volumes(parse_ctx_t *c, const char *key, const json_t *v);
void manifest_check_volumes(parse_ctx_t *c, const json_t *input);
void manifest_parse_secrets(parse_ctx_t *c, const char *key, const json_t *v);
/* Cross-field rule: command:/args: need kit mode. */
void manifest_check_workload(parse_ctx_t *c, const json_t *input);
void manifest_check_image(parse_ctx_t *c, const json_t *input);
void manifest_check_boot(parse_ctx_t *c, const json_t *input);
/* The normalized resources of the spec: {limits: {cpu: N, memory: "NMi"}, requests?}. */
json_t *manifest_resources_json(const parse_ctx_t *c);
