/* vmm_ch.h: the cloud-hypervisor runtime's own contracts, shared by the vmm_ch*.c files (and their tests) only. */
#pragma once

#include <jansson.h>

#include "services/vmm-driver/vmm.h"

/* Files of the instance directory. cloud-hypervisor runs with it as cwd: its command line
 * names them relative to it; vm.create names them by absolute path (what CH's API documents,
 * and what a VMM resolving paths elsewhere still finds). */
#define VMM_CH_LOG "cloud-hypervisor.log" /* its stdout and stderr */
#define VMM_CH_API_SOCKET "ch-api.sock"   /* --api-socket */
#define VMM_CH_EVENTS "ch-events.json"    /* --event-monitor path= */
#define VMM_CH_VSOCK_SOCKET "vsock.sock"  /* hybrid vsock: CONNECT <port> on it reaches the guest */
#define VMM_CH_CONSOLE "console.log"      /* the guest's serial port, a File (logd reads it) */
#define VMM_CH_GUEST_CID 3                /* the lowest a guest may have; each VM has its own device */

/* ---- the bodies (vmm_ch_body.c) --------------------------------------------------------------- */

/* Everything vm.create says, resolved. Paths of per-instance files may be relative. */
typedef struct vmm_ch_params {
        const char *instance_id;
        uint32_t cpus;
        uint32_t memory_mib;
        /* Kit: the kernel boots directly. Firmware boot: firmware set, kernel/initrd unused. */
        const char *kernel, *initrd;
        const char *firmware;
        const vmm_net_t *net;               /* the TAP netd made; NULL: none */
        const char *fs_socket;              /* virtiofsd's socket (tag VMM_FS_TAG); guest RAM is then shared */
        const vmm_launch_volume_t *volumes; /* one fs device each, sockets absolute; guest RAM then shared */
        size_t n_volumes;
        const char *disk;        /* kit with a disk image: read-only */
        const char *disk_format; /* "raw" or "qcow2" */
        const char *boot_disk;   /* firmware boot: the instance's copy-on-write disk, read-write */
        const char *boot_disk_format;
        const char *seed;         /* the cloud-init seed, read-only; NULL: none */
        const char *console;      /* the serial port's File */
        const char *vsock_socket; /* hybrid vsock's unix socket */
} vmm_ch_params_t;

/* The kit's kernel command line (console, the instance, the agent's network parameters). */
int vmm_ch_cmdline(const vmm_ch_params_t *p, char **ret);
/* vm.create's body (a VmConfig of the OpenAPI spec): -EINVAL when p lacks what CH needs. */
int vmm_ch_vm_config(const vmm_ch_params_t *p, json_t **ret);
/* The argv (NULL-terminated) of one cloud-hypervisor process: the API socket, the event
 * monitor, seccomp; the VM itself comes through the API. */
int vmm_ch_argv(const char *binary, const char *seccomp, char ***ret);

/* ---- the API client (vmm_ch_api.c) ------------------------------------------------------------ */

typedef struct vmm_ch_api vmm_ch_api_t;
/* The answer to one request: error 0 and the HTTP status with its body (NUL-terminated, maybe
 * empty), or error < 0 (the transport failed: -ECONNREFUSED before the socket exists,
 * -ETIMEDOUT...). Runs from the loop, never inside the call that made the request. */
typedef void (*vmm_ch_api_fn)(vmm_instance_t *i, int error, long status, const char *body, void *userdata);

/* socket_path: the API socket, reached through dir_fd when it is too long for sun_path. */
int vmm_ch_api_new(vmm_instance_t *i, const char *socket_path, vmm_ch_api_t **ret);
/* Ends every request in flight without calling back; later calls fail with -ENOTCONN. The
 * memory stays until vmm_ch_api_free(): zloop may still call a handler ended in the current
 * iteration, so only release (vmm_runtime.h) frees it. */
void vmm_ch_api_close(vmm_ch_api_t *a);
void vmm_ch_api_free(vmm_ch_api_t **a);
/* PUT or GET path ("vm.create") with body (NULL: none); fn later. */
int vmm_ch_api_call(vmm_ch_api_t *a, const char *method, const char *path, const char *body, uint64_t timeout_ms,
                    vmm_ch_api_fn fn, void *userdata);

/* ---- the event monitor (vmm_ch_events.c) ------------------------------------------------------ */

/* One record of --event-monitor, as cloud-hypervisor's event_monitor crate writes it:
 * {"timestamp": {"secs", "nanos"}, "source", "event", "properties": {...} | null}. */
typedef struct vmm_ch_event {
        char source[32];
        char event[64];
} vmm_ch_event_t;

/* Split buf (len bytes) into records: each ends with the "\n\n" the crate writes after it.
 * Calls fn for each complete one and returns how many bytes were used; a record that does
 * not parse is skipped (returned in *ret_bad). */
size_t vmm_ch_events_parse(const char *buf, size_t len, void (*fn)(const vmm_ch_event_t *e, void *userdata),
                           void *userdata, unsigned *ret_bad);

typedef struct vmm_ch_events vmm_ch_events_t;
/* Follow dir/VMM_CH_EVENTS from its start (inotify): fn for every record, from the loop. */
int vmm_ch_events_start(vmm_instance_t *i, void (*fn)(vmm_instance_t *i, const vmm_ch_event_t *e),
                        vmm_ch_events_t **ret);
/* Read what was written and not yet handled (before the exit is published). */
void vmm_ch_events_drain(vmm_ch_events_t *e);
/* Stops following (as vmm_ch_api_close: the memory stays until vmm_ch_events_free()). */
void vmm_ch_events_close(vmm_ch_events_t *e);
void vmm_ch_events_free(vmm_ch_events_t **e);
