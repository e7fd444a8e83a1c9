/* oci_spec.h: the parts of an OCI bundle's config.json (and of exec's process.json) husk-oci uses, parsed with bounds. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OCI_VERSION "1.0.2-dev"            /* what runc 1.1 reports in state and writes in spec */
#define OCI_CONFIG_MAX (4u << 20)          /* bytes of a config.json or process.json */
#define OCI_ARGS_MAX 1024u                 /* process.args and process.env entries */
#define OCI_STR_MAX 65536u                 /* bytes of one argument, variable or path */
#define OCI_MOUNTS_MAX 64u                 /* mounts a VM gets (each bind one a virtiofsd) */
#define OCI_RLIMITS_MAX 16u                /* process.rlimits: Linux has 16 */
#define OCI_GIDS_MAX 64u                   /* process.user.additionalGids */
#define OCI_HOSTNAME_MAX 64u               /* HOST_NAME_MAX */
#define OCI_PATH_MAX 4096u                 /* PATH_MAX */
#define OCI_MEMORY_MIN_MIB 64u             /* smallest VM a memory limit may ask for: the kit boots in it */
#define OCI_MEMORY_MAX_MIB (1024u * 1024u) /* 1 TiB: beyond it a limit is "no limit" */

typedef struct oci_rlimit {
        char *type; /* "RLIMIT_NOFILE", ... */
        uint64_t soft, hard;
} oci_rlimit_t;

typedef struct oci_process {
        bool terminal;
        uint32_t rows, cols; /* consoleSize; 0: not given */
        uint32_t uid, gid;
        uint32_t *additional_gids;
        size_t n_additional_gids;
        char **args; /* NULL-terminated, at least one */
        char **env;  /* NULL-terminated "K=V" */
        char *cwd;   /* absolute */
        oci_rlimit_t *rlimits;
        size_t n_rlimits;
        bool no_new_privileges;
} oci_process_t;

typedef struct oci_mount {
        char *destination; /* absolute, in the container */
        char *type;        /* NULL when absent (a bind mount then, as runc takes it) */
        char *source;
        bool bind;     /* type "bind" or an option "bind"/"rbind": a host path shared into the VM */
        bool readonly; /* option "ro" */
} oci_mount_t;

typedef struct oci_spec {
        char *oci_version;
        char *root_path; /* as written: relative to the bundle or absolute */
        bool root_readonly;
        oci_process_t process;
        char *hostname; /* NULL: none */
        oci_mount_t *mounts;
        size_t n_mounts;
        uint64_t memory_limit; /* linux.resources.memory.limit, bytes; 0: none */
        int64_t cpu_quota;     /* linux.resources.cpu.quota, us per period; <= 0: none */
        uint64_t cpu_period;   /* linux.resources.cpu.period, us; 0: none */
        char *netns_path;      /* linux.namespaces' network entry's path; NULL: no network namespace entry or no path */
        bool netns;            /* a network namespace entry is present */
} oci_spec_t;

/* Parse config.json text. On failure *ret is cleared, returns -EINVAL (-ENOMEM) and *ret_error
 * names the field: "process.args: must be a non-empty array of strings". */
int oci_spec_parse(const char *text, size_t size, oci_spec_t *ret, char **ret_error);
/* An OCI Process object (exec --process), field names in errors prefixed by where ("process"). */
int oci_process_parse(const json_t *o, const char *where, oci_process_t *ret, char **ret_error);
int oci_process_parse_text(const char *text, size_t size, oci_process_t *ret, char **ret_error);
void oci_spec_done(oci_spec_t *s);
void oci_process_done(oci_process_t *p);

/* The VM's size from the spec's resources: memory limit rounded up to MiB (at least
 * OCI_MEMORY_MIN_MIB), CPUs = ceil(quota / period); the defaults when the spec sets none. */
void oci_spec_vm_size(const oci_spec_t *s, uint32_t default_cpus, uint32_t default_memory_mib, uint32_t *ret_cpus,
                      uint32_t *ret_memory_mib);

/* runc spec's default config.json (args ["sh"], terminal true), as a new JSON object. */
json_t *oci_spec_default(void);
