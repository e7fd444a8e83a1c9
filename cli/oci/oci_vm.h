/* oci_vm.h: a container's VM on the host: virtiofsd for its root and bind mounts, QEMU with the kit (vmm-driver's command line and spawners), QMP stop/cont. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cli/oci/oci.h"
#include "services/vmm-driver/vmm.h"

#define OCI_VM_SHARES_MAX 16 /* virtiofsd processes besides the root's: bind mounts, grouped by directory */
#define OCI_VM_QEMU_LOG "qemu.log"
#define OCI_VM_AGENT_SOCKET "agent.sock" /* vmm_qemu_argv's names, relative to the container dir */
#define OCI_VM_QMP_SOCKET "qmp.sock"
#define OCI_VM_PID_FILE "vmm.pid" /* "PID START_TIME": QEMU, for a delete after the holder was killed */
/* Where a VM's sockets and logs go when the container's directory is too long for unix socket
 * paths (Docker's /var/run/docker/runtime-X/moby/<64 hex>): a short directory named by a hash of
 * the container directory, removed with it. */
#define OCI_VM_DIR_BASE "/run/husk-oci-vm"

/* One bind mount as the agent's `start` mounts it: {tag, destination, readonly, file}. */
typedef struct oci_vm_mount {
        char tag[32];
        char *destination;
        bool readonly;
        char *file; /* a file bind mount: its name in the shared directory; NULL: the directory */
} oci_vm_mount_t;

typedef struct oci_vm {
        bool clone; /* restored from a template (--template): its root and shares are 9p, it needs its identity */
        pid_t qemu_pid;
        uint64_t qemu_start;
        int64_t fs_pid[1 + OCI_VM_SHARES_MAX]; /* [0]: the root's */
        uint64_t fs_start[1 + OCI_VM_SHARES_MAX];
        size_t n_fs;
        oci_vm_mount_t *mounts;
        size_t n_mounts;
} oci_vm_t;

/* In the container directory dir (absolute; the caller's cwd): start the virtiofsds and QEMU.
 * On failure everything started is stopped again and *ret_error says why. */
int oci_vm_start(const oci_ctx_t *ctx, const oci_spec_t *spec, const char *rootfs, const char *dir,
                 const vmm_net_t *net, oci_vm_t *vm, char **ret_error);
/* SIGKILL QEMU and the virtiofsds (those still ours) and reap them. Safe twice. */
void oci_vm_kill(oci_vm_t *vm);
void oci_vm_done(oci_vm_t *vm);
/* The VM's directory for the container directory dir into buf (made if it is not dir itself). */
int oci_vm_dir(const char *dir, char *buf, size_t size);
/* OCI_VM_PID_FILE in dir, for oci_vm_kill_orphan. */
int oci_vm_write_pid(const char *dir, const oci_vm_t *vm);
/* QEMU of dir's container if its holder is gone and it is not (OCI_VM_PID_FILE): SIGKILL. */
void oci_vm_kill_orphan(const char *dir);
/* One QMP command ("stop", "cont") on dir's QMP socket, synchronously; *ret_error on failure. */
int oci_vm_qmp(const char *dir, const char *command, char **ret_error);
/* The absolute rootfs of a bundle: root.path against the bundle, resolved, a directory. */
int oci_vm_rootfs(const char *bundle, const oci_spec_t *spec, char **ret, char **ret_error);
