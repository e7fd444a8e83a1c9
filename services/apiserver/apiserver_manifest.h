/* apiserver_manifest.h: validation and normalization of one deployment manifest (JSON). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "proto/health.h"
#include "proto/volume.h"

#define MANIFEST_NAME_MAX 63   /* DNS-1123 label */
#define MANIFEST_PATH_MAX 4096 /* image and kernel paths, in bytes */
#define MANIFEST_REPLICAS_MAX 100
#define MANIFEST_CPUS_MAX 256
#define MANIFEST_MEMORY_MIN_MIB 128
#define MANIFEST_MEMORY_MAX_MIB (1024u * 1024u) /* 1 TiB */
#define MANIFEST_DEFAULT_CPUS 1
#define MANIFEST_DEFAULT_MEMORY_MIB 256

/* A deployment as the user asked for it, after validation. */
typedef struct manifest {
        char *namespace_;
        char *name;
        char *runtime; /* "qemu" | "cloud-hypervisor" */
        char *kind;    /* "worker" | "job" */
        char *image;   /* absolute path */
        char *kernel;  /* absolute path, or NULL for the guest kit */
        uint32_t replicas;
        uint32_t cpus;       /* resources.limits.cpu, whole vCPUs */
        uint32_t memory_mib; /* resources.limits.memory */
        json_t *labels;      /* object of string values */
        json_t *spec;        /* the normalized manifest: defaults filled in, Ring fields kept */
} manifest_t;

void manifest_clear(manifest_t *m);

/* Validate one deployment (the value of one entry of a Ring `deployments:` map).
 *
 * Returns 0 with *m filled. Returns -EINVAL when the manifest breaks a rule, with
 * *ret_violations set to a new array of {"field": "resources.limits.memory", "reason": "..."}
 * listing every problem found, not just the first; *m is left cleared. -ENOMEM otherwise. */
int manifest_parse(const json_t *input, manifest_t *m, json_t **ret_violations);

/* The fields of a normalized spec that husk accepts and does not act on (Ring's parity table:
 * resources.requests.*, config.*), each with why: fn is called once per field, in table order.
 * apiserver_warn_ignored() turns each into an IgnoredField warning event. */
typedef void (*manifest_ignored_fn)(const char *field, const char *why, void *userdata);
void manifest_ignored_fields(const json_t *spec, manifest_ignored_fn fn, void *userdata);

/* "my-app": 1-63 of [a-z0-9-], starting and ending with a letter or digit. */
bool manifest_name_is_valid(const char *s);

/* The workload a stored spec asks for: argv = command + args (NULL when neither is given) and
 * the environment as "KEY=VALUE" entries (NULL when absent). */
int manifest_workload_from_spec(const json_t *spec, char ***ret_command, char ***ret_env);
/* The boot: the scheduler asks for: the spec's ("firmware" or "kit"), "kit" when it names a kernel:
 * (the disk is then the workload's root, as with `boot: kit`), else NULL. */
int manifest_boot_from_spec(const json_t *spec, char **ret);
/* Whether a spec names secrets or configs that each start must fetch (deployment.resolve): an
 * environment value {secretRef: NAME}, a volume of type config or secret. */
bool manifest_needs_resolve(const json_t *spec);
/* The health checks of a stored spec, defaults filled in (apiserver_manifest_health.c). */
int manifest_health_from_spec(const json_t *spec, health_check_t **ret, size_t *ret_n);
/* The volumes of a stored spec as the scheduler gets them (apiserver_manifest_volumes.c): tags
 * bind-<i>, vol-<i>, cfg-<i>, sec-<i>; a named volume's source its directory under the state dir. */
int manifest_volumes_from_spec(const json_t *spec, const char *namespace_, volume_spec_t **ret, size_t *ret_n);
