/* vmm_qemu.h: the qemu runtime's own contracts, shared by the vmm_qemu*.c files (and their tests) only. */
#pragma once

#include "services/vmm-driver/vmm.h"
#include "services/vmm-driver/vmm_template.h"

#define VMM_QEMU_LOG "qemu.log" /* QEMU's stdout and stderr */

/* ---- the command line (vmm_qemu.c) ---------------------------------------------------------- */

typedef struct vmm_qemu_params {
        const char *binary; /* absolute path */
        const char *accel;  /* "kvm" or "tcg", already resolved */
        const char *kernel; /* absolute */
        const char *initrd; /* absolute */
        const char *instance_id;
        uint32_t cpus;
        uint32_t memory_mib;
        uint64_t tsc_khz;        /* tcg only: host TSC frequency for the guest kernel; 0 = let it calibrate */
        uint32_t tcg_cache_mib;  /* tcg only: QEMU's translation cache (tb-size); 0 = QEMU's default */
        const vmm_net_t *net;    /* virtio-net on the instance's TAP, husk.ip/husk.gw for the agent; NULL: none */
        const char *fs_socket;   /* kit mode: virtiofsd's socket, exported to the guest as tag VMM_FS_TAG; NULL: none */
        const char *disk;        /* the kit with a disk image: the image, read-only virtio-blk (/dev/vda); NULL: none */
        const char *disk_format; /* disk's: "raw" (NULL) or "qcow2" */
        /* Firmware boot (q35 with OVMF) instead of the kit: kernel and initrd are then unused. */
        const char *firmware;      /* absolute: the UEFI code, read-only pflash; NULL: the kit boots */
        const char *firmware_vars; /* the instance's copy of the variables store, writable pflash */
        const char *boot_disk;     /* the instance's disk, read-write virtio-blk-pci, booted first */
        const char *boot_disk_format;
        const char *seed;                   /* the cloud-init seed, read-only virtio-blk-pci; NULL: none */
        const vmm_launch_volume_t *volumes; /* one vhost-user-fs device each (guest RAM then in a shared memfd) */
        size_t n_volumes;
        /* Templates (vmm_qemu_template.c): guest RAM in this file, shared by the template, mapped
         * privately by its clones; nothing per instance on the kernel command line; the image over
         * virtio-9p instead of virtio-fs. NULL: a cold boot. */
        const char *memory_file;
        bool clone;                 /* -incoming defer, RAM private; false: the template itself */
        const char *ninep_export;   /* the 9p device's host directory (the template's is empty) */
        bool ninep_export_writable; /* read-write, owners kept (husk-oci's bundle root); false: read-only */
        /* One more virtio-9p device each (tag VMM_TEMPLATE_VOLUME_TAG): a clone's volumes, the
         * template's empty directories; path and readonly of vmm_launch_volume_t. */
        const vmm_launch_volume_t *ninep_volumes;
        size_t n_ninep_volumes;
} vmm_qemu_params_t;

#define VMM_QEMU_FIRMWARE_VARS "efivars.fd" /* the instance's copy of the firmware's variables template */

/* The variables template next to firmware code: ".../OVMF_CODE_4M.fd" -> ".../OVMF_VARS_4M.fd"
 * (the last "CODE" of the file name). -EINVAL when the name has none. */
int vmm_qemu_firmware_vars(const char *firmware, char **ret);
/* The full argv (NULL-terminated, argv[0] = binary). Paths of per-instance files are relative:
 * QEMU runs with the instance directory as cwd, which keeps unix socket paths short. */
int vmm_qemu_argv(const vmm_qemu_params_t *p, char ***ret);
/* configured "kvm"/"tcg"/"auto" -> "kvm" or "tcg"; NULL when configured is none of those. */
const char *vmm_qemu_accel_resolve(const char *configured, bool kvm_usable);
bool vmm_kvm_usable(void);
/* The host's invariant TSC frequency, measured; -EOPNOTSUPP without an invariant TSC. */
int vmm_host_tsc_khz(uint64_t *ret);

/* ---- templates (vmm_qemu_template.c) ------------------------------------------------------ */

extern const vmm_template_ops_t vmm_qemu_template_ops;
typedef struct vmm_qemu vmm_qemu_t;
/* A template's parameters (a clone's once memory_file, clone, ninep_export and net are set). */
int vmm_qemu_template_params(const vmm_qemu_t *q, const vmm_profile_t *p, vmm_qemu_params_t *ret);

/* ---- QMP client (vmm_qemu_qmp.c) ------------------------------------------------------------ */

typedef enum vmm_qmp_state {
        VMM_QMP_IDLE,
        VMM_QMP_CONNECTING, /* waiting for QEMU to create qmp.sock */
        VMM_QMP_GREETING,
        VMM_QMP_NEGOTIATING, /* qmp_capabilities sent */
        VMM_QMP_READY,
} vmm_qmp_state_t;

typedef struct vmm_qmp {
        int fd;
        vmm_qmp_state_t state;
        int timer;            /* connect retry; 0 when none */
        unsigned delay_ms;    /* next retry delay */
        uint64_t deadline_ms; /* monotonic; give up connecting after it */
        char *buf;            /* partial input line */
        size_t len, cap;
} vmm_qmp_t;

void vmm_qmp_start(vmm_instance_t *i);
void vmm_qmp_stop(vmm_instance_t *i);
/* Read and handle whatever QEMU already wrote (its SHUTDOWN event before it exited). */
void vmm_qmp_drain(vmm_instance_t *i);
int vmm_qmp_execute(vmm_instance_t *i, const char *command);

/* ---- the runtime (vmm_qemu_runtime.c) ------------------------------------------------------- */

/* Daemon-wide: what runtime.qemu resolved to. */
typedef struct vmm_qemu {
        char *binary_name;      /* as configured, for messages */
        char *binary;           /* resolved; NULL when not found */
        char *version;          /* the first line of its --version; NULL: unknown */
        const char *accel;      /* resolved "kvm" or "tcg" */
        char *firmware;         /* runtime.qemu.firmware_path (OVMF code) */
        char *firmware_vars;    /* its variables template: the same name with CODE -> VARS, beside it; NULL: none */
        uint64_t tsc_khz;       /* tcg: host TSC frequency passed to guests, 0 if unknown */
        uint32_t tcg_cache_mib; /* runtime.qemu.tcg_translation_cache, in MiB (QEMU's unit) */
} vmm_qemu_t;

/* Per instance (i->runtime_data). */
typedef struct vmm_qemu_instance {
        vmm_qmp_t qmp;
        char **argv;       /* built by prepare, used by spawn; NULL after */
        const char *accel; /* for the log line at spawn */
} vmm_qemu_instance_t;

static inline vmm_qemu_instance_t *vmm_qemu_of(const vmm_instance_t *i) { return i->runtime_data; }
