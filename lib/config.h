/* config.h: the one YAML config file every husk daemon reads (default /etc/husk/config.yaml).
 *
 * Every daemon loads the whole file through one schema, so a typo in any section is reported
 * by every daemon the same way: "FILE:LINE: KEY: REASON". Unknown keys are errors. Keys under
 * runtime.* mirror Ring's [server.runtime.cloud_hypervisor] table. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HUSK_DEFAULT_CONFIG "/etc/husk/config.yaml"
#define HUSK_DEFAULT_RUNTIME_DIR "/run/husk"
/* In runtime_dir: the REST API for local users, who are told by their peer credentials. */
#define HUSK_API_SOCKET "api.sock"

typedef struct husk_endpoints {
        char *events;   /* PUB socket the daemon binds, e.g. ipc:///run/husk/vmm-driver.events */
        char *requests; /* ROUTER socket the daemon binds */
} husk_endpoints_t;

/* Daemons that publish on the bus, in the order `husk tap` and subscribers connect to them. */
typedef enum husk_daemon {
        HUSK_DAEMON_APISERVER,
        HUSK_DAEMON_SCHEDULER,
        HUSK_DAEMON_VMM_DRIVER,
        HUSK_DAEMON_NETD,
        HUSK_DAEMON_LOGD,
        _HUSK_DAEMON_MAX,
} husk_daemon_t;

/* "apiserver", "scheduler", "vmm-driver", "netd", "logd" */
const char *husk_daemon_name(husk_daemon_t d);

typedef struct husk_runtime_config {
        bool enabled;
        char *binary_path;   /* VMM binary; looked up in $PATH when relative */
        char *firmware_path; /* UEFI firmware for disk images (qemu: OVMF code, its VARS template beside it) */
        char *socket_dir;    /* cloud-hypervisor: API sockets (Ring's key) */
        char *seccomp;       /* cloud-hypervisor: "true", "false" or "log" */
        char *accel;         /* qemu: "kvm", "tcg" or "auto" */
        uint64_t tcg_translation_cache; /* qemu under tcg: bytes of translated guest code kept (tb-size) */
        uint64_t max_console_log_bytes; /* rotation threshold; 0 disables rotation */
        uint32_t max_console_log_backups;
} husk_runtime_config_t;

#define VMM_TEMPLATES_POOL_MAX 16 /* each paused clone holds ~40 MiB of the host's memory */

typedef struct husk_config {
        char *path; /* the file this was read from */

        char *state_dir;   /* durable state: database, instance directories */
        char *runtime_dir; /* sockets and other volatile files */
        int log_level;     /* syslog level */
        char *log_format;  /* "text" or "json" (lib/log.h); $HUSK_LOG_FORMAT overrides */

        husk_endpoints_t bus[_HUSK_DAEMON_MAX];

        struct {
                struct {
                        uint32_t max_attempts;       /* a delivery failing this often is dead */
                        uint64_t timeout_ms;         /* each attempt's, connecting included */
                        uint64_t backoff_initial_ms; /* the wait after the first failure, doubled per failure */
                        uint64_t backoff_max_ms;     /* ...up to this */
                        uint32_t concurrency;        /* attempts in flight at once (one per webhook) */
                } webhooks;
                char *listen;           /* "127.0.0.1:3030" */
                char *database;         /* default: <state_dir>/husk.db */
                char *socket_group;     /* members are operators on <runtime_dir>/api.sock; "": root only */
                char *tls_cert;         /* apiserver.tls.cert: PEM certificate chain; set, listen serves
                                     * HTTPS only (apiserver_tls.c) */
                char *tls_key;          /* apiserver.tls.key: its PEM private key */
                char *secrets_key_file; /* the key secrets are encrypted with at rest (32 random bytes, made
                                         * 0600 on first start); HUSK_SECRETS_KEY in the environment
                                         * (base64) takes its place. Default: <state_dir>/secrets.key */
                char *ui_dir;           /* the web dashboard's files, served at /ui/; "": no dashboard.
                                 * Default: <prefix>/share/husk/ui (HUSK_UIDIR) */
                bool metrics_auth;      /* GET /metrics needs deployments:read; default: public (Ring's) */
        } apiserver;

        struct {
                uint64_t resync_interval_ms;   /* safety-net full reconcile */
                uint64_t request_timeout_ms;   /* deadline for RPCs to other daemons */
                uint64_t host_memory_bytes;    /* guest RAM the host may hand out; 0: MemTotal */
                uint32_t create_concurrency;   /* instances booting at once, host-wide */
                uint64_t progress_deadline_ms; /* a rolling update not ready after this says so */
        } scheduler;

        struct {
                char *instances_dir;      /* default: <state_dir>/instances */
                uint64_t stop_timeout_ms; /* graceful powerdown before SIGKILL */
                uint32_t default_cpus;
                uint32_t default_memory_mib;
                /* VM templates (vmm_template.c): off unless a runtime is named. */
                bool templates_qemu;          /* vmm_driver.templates.qemu: kit instances on qemu start as clones */
                char *templates_dir;          /* vmm_driver.templates.dir; default: <runtime_dir>/templates */
                uint32_t templates_pool;      /* vmm_driver.templates.pool: paused clones kept per template */
                uint64_t metrics_interval_ms; /* the sampler's period (instance.metrics); 0: no sampling */
        } vmm_driver;

        struct {
                char *subnet;      /* guest networks are /30s carved from it: "10.42.0.0/16" */
                char *forwarder;   /* published ports: "nft", "proxy" or "auto" */
                bool outbound_nat; /* masquerade guest traffic leaving the host */
        } netd;

        struct {
                char *dir;                   /* log store: default <state_dir>/logs */
                uint32_t retained_instances; /* exited instances whose logs stay, per deployment */
        } logd;

        struct {
                char *kernel; /* kit vmlinux */
                char *initrd; /* kit initramfs */
        } kit;

        husk_runtime_config_t qemu;
        husk_runtime_config_t cloud_hypervisor;
} husk_config_t;

/* Load and validate path. On failure returns a negative errno and, when ret_error is given,
 * a message for the user such as "/etc/husk/config.yaml:12: runtime.qemu.accel: must be
 * one of kvm, tcg, auto" (caller frees). A missing file at the default path yields defaults. */
int husk_config_load(const char *path, husk_config_t **ret, char **ret_error);

/* Defaults only (every path derived from the default state and runtime dirs). */
int husk_config_new_default(husk_config_t **ret);

void husk_config_free(husk_config_t *c);
static inline void husk_config_freep(husk_config_t **c) {
        if (*c)
                husk_config_free(*c);
        *c = NULL;
}

/* The section of a runtime by its name ("qemu", "cloud-hypervisor"); NULL name: the default
 * runtime's. NULL for a name that has no section. */
const husk_runtime_config_t *husk_config_runtime(const husk_config_t *c, const char *name);

/* Path from the command line, else $HUSK_CONFIG, else HUSK_DEFAULT_CONFIG. */
const char *husk_config_path(const char *from_cmdline);
