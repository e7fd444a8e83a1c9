/* vmm_runtime.h: what a runtime (one VMM) does for vmm-driver; each is one row of the table in vmm_runtime.c. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include <msgpack.h>

#include "lib/config.h"
#include "proto/instance.h"

typedef struct vmm vmm_t;
typedef struct vmm_instance vmm_instance_t;
typedef struct vmm_net vmm_net_t;
typedef struct vmm_exit_facts vmm_exit_facts_t;
typedef struct vmm_template_ops vmm_template_ops_t;

#define VMM_RUNTIMES_MAX 8 /* rows of the table, implemented or not */

/* One volume as the VMM sees it: a vhost-user-fs device on virtiofsd's socket. */
typedef struct vmm_launch_volume {
        const char *tag;    /* the guest's virtio-fs tag */
        const char *socket; /* virtiofsd's socket, a file name in the instance directory */
        /* A template clone's volume, over virtio-9p (VMM_TEMPLATE_VOLUME_TAG): no virtiofsd. */
        const char *path; /* the host directory */
        bool readonly;
} vmm_launch_volume_t;

/* What the runtime-independent part of a create resolved, for the runtime's command line. */
typedef struct vmm_launch {
        const char *kernel;   /* absolute: the spec's, else the kit's */
        const char *initrd;   /* absolute: the spec's, else the kit's */
        const vmm_net_t *net; /* the instance's TAP and /30 (netd); NULL: no network */
        const char *
                fs_socket; /* kit mode: virtiofsd's socket in the instance directory, exported as tag VMM_FS_TAG; NULL: none */
        const char *
                disk; /* the kit boots with a disk image: the image, read-only, as the guest's first disk; NULL: none */
        const char *disk_format; /* disk's: "raw" or "qcow2" */
        /* Firmware boot (a disk image without `kernel:` or a command): the VMM boots this disk
         * through UEFI firmware instead of the kit. NULL: the kit boots. */
        const char *boot_disk;              /* the instance's own copy-on-write disk (vmm_disk.h), read-write */
        const char *boot_disk_format;       /* "raw" or "qcow2" */
        const char *seed;                   /* the cloud-init NoCloud seed (vmm_seed.h), read-only */
        const vmm_launch_volume_t *volumes; /* the spec's volumes, in order, each served by its virtiofsd */
        size_t n_volumes;
        /* A clone (vmm_template.h): restored from this template, the image (ninep_export) over
         * virtio-9p; started waiting for its state (vmm_template_ops_t.restore). NULL: cold. */
        const char *template_dir;
        const char *ninep_export;
} vmm_launch_t;

/* A runtime as its setup found it; every pointer into the runtime's state (NULL: none). */
typedef struct vmm_runtime_probe {
        const char *binary_name; /* as configured */
        const char *binary;      /* resolved; NULL when not found */
        const char *version;     /* the first line of `binary --version`; NULL: unknown */
        const char *accel;       /* resolved accelerator ("kvm", "tcg"); NULL when the runtime has none */
        const char *firmware;    /* for disk images; NULL: not configured */
} vmm_runtime_probe_t;

/* One runtime. Its functions run on the event loop and never block it. The per-instance
 * functions keep their own state behind i->runtime_data: prepare or adopt makes it, release
 * frees it (after disconnect, once no loop callback can reach the instance). */
typedef struct vmm_runtime {
        const char *name;            /* the spec's `runtime` */
        const char *console_file;    /* the guest's serial console in the instance directory (logd reads it) */
        const char *output_file;     /* the VMM's own stdout and stderr there, quoted when it crashes */
        const char *agent_transport; /* how the host reaches husk-agent, for messages ("virtio-serial") */
        const char *agent_socket;    /* ... through this unix socket of the instance directory */
        /* A line the host writes on that socket before frames flow (hybrid vsock's "CONNECT
         * <port>\n"), and the start of the line that accepts it ("OK "); NULL: frames flow at once. */
        const char *agent_handshake;
        const char *agent_handshake_ok;

        /* From the runtime's config section, at start and on SIGHUP: *state (NULL the first
         * time) is replaced on success. Fails only on a config it cannot run with at all. */
        int (*setup)(const husk_runtime_config_t *c, void **state);
        void (*free_state)(void *state);
        /* Can this host run the spec now (the VMM binary found...)? *ret_error says why not. */
        int (*check)(const void *state, const instance_spec_t *s, char **ret_error);
        /* In the new instance directory, before the spawn: build what the VMM is started with. */
        int (*prepare)(vmm_instance_t *i, const void *state, const vmm_launch_t *l, char **ret_error);
        int (*spawn)(vmm_instance_t *i, pid_t *ret_pid, char **ret_error);
        /* The control channel (events, graceful stop): connect once spawned. */
        void (*connect)(vmm_instance_t *i);
        /* After a vmm-driver restart, of a VMM that still runs: make the state, connect. */
        int (*adopt)(vmm_instance_t *i);
        /* Read what the VMM said before its exit was seen (its shutdown reason). */
        void (*drain)(vmm_instance_t *i);
        void (*disconnect)(vmm_instance_t *i);
        void (*release)(vmm_instance_t *i);
        /* Ask the guest to power off; SIGKILL after the stop timeout is the caller's. */
        int (*shutdown)(vmm_instance_t *i);
        /* A non-blocking, cloexec stream to husk-agent, or -errno; frames flow once the
         * agent_handshake, if any, was accepted (vmm_agent.c does it, from the loop). */
        int (*agent_connect)(vmm_instance_t *i);
        /* Templates and clones (vmm_template.h); NULL: this runtime's instances always boot cold. */
        const vmm_template_ops_t *templates;
        /* What setup found, for runtime.list (GET /node, husk doctor); state may be NULL. */
        void (*probe)(const void *state, struct vmm_runtime_probe *ret);
} vmm_runtime_t;

/* The one way from a runtime name to its row. 0: *ret is the runtime. Else *ret_error says
 * why, in the words instance.create answers: -EINVAL (missing or not a runtime the API
 * accepts; *ret NULL), -EOPNOTSUPP (accepted, but this vmm-driver has no implementation;
 * *ret NULL), -EPERM (not enabled in the config; *ret is set: its VMMs still need watching). */
int vmm_runtime_lookup(const husk_config_t *c, const char *name, const vmm_runtime_t **ret, char **ret_error);

/* Every implemented runtime's setup, at start and on SIGHUP. */
int vmm_runtime_setup_all(vmm_t *d, const husk_config_t *c);
void vmm_runtime_free_all(vmm_t *d);
/* The daemon-wide state rt->setup made. */
void *vmm_runtime_state(const vmm_t *d, const vmm_runtime_t *rt);
/* runtime.list's answer: every row of the table, what the config says and what setup found. */
void vmm_runtime_pack_list(const vmm_t *d, const husk_config_t *c, msgpack_packer *pk);
