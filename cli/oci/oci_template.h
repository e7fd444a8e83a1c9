/* oci_template.h: husk-oci's VM templates (--template DIR, runV's flag): a container's VM restored from a template of its boot profile, made in DIR by the first container that needs it. */
#pragma once

#include <sys/types.h>

#include "services/vmm-driver/vmm_qemu.h"
#include "services/vmm-driver/vmm_template.h"

/* A container's VM as a clone: the template's inputs and what is the container's own. */
typedef struct oci_clone {
        const vmm_qemu_t *qemu;             /* binary, accel, tsc_khz */
        vmm_profile_t profile;              /* fs is always set (the bundle's root over 9p); volumes: bind shares */
        const char *rootfs;                 /* absolute: the 9p export */
        bool rootfs_writable;               /* the spec's root.readonly, inverted */
        const vmm_launch_volume_t *volumes; /* profile.volumes of them: path and readonly */
        const vmm_net_t *net;               /* the NIC's TAP when profile.net */
} oci_clone_t;

/* In dir (the VM's directory, QEMU's cwd): start QEMU as a clone of the template for c's
 * profile kept in template_dir (made there first when it has none; another husk-oci making it
 * meanwhile is waited for), restored and running. *ret_pid: QEMU, our child. On failure
 * nothing runs and *ret_error says why; a template that did not restore is removed, so that
 * the next container makes it again. */
int oci_template_start(const char *template_dir, const oci_clone_t *c, const char *dir, pid_t *ret_pid,
                       char **ret_error);
