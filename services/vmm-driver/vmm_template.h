/* vmm_template.h: VM templates (a kit VM booted to agent-ready, paused and saved) and the clones restored from them. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "services/vmm-driver/vmm.h"

#define VMM_TEMPLATE_KEY_LEN 16               /* hex digits of a profile's key */
#define VMM_TEMPLATE_MEMORY "memory"          /* guest RAM, mapped shared by the template, privately by clones */
#define VMM_TEMPLATE_STATE "state"            /* device state (x-ignore-shared: no RAM in it) */
#define VMM_TEMPLATE_INFO "template.json"     /* the inputs, and what the files were when saved */
#define VMM_TEMPLATE_EXPORT "empty"           /* the template's 9p export: nothing (clones get the image) */
#define VMM_TEMPLATE_VOLUME_TAG "husk-vol%zu" /* volume k of a clone, over 9p: the template's tag */
#define VMM_POOL_EXPORT "export"              /* a pool clone's 9p export: the image is bound at */
#define VMM_POOL_IMAGE "image"                /* ... this directory of it when an instance takes it */

/* A boot profile: everything a guest's memory depends on at agent-ready. Two instances with the
 * same profile may be clones of one template; nothing per instance is in it. */
typedef struct vmm_profile {
        const char *kernel, *initrd; /* absolute */
        uint32_t cpus, memory_mib;
        bool net;         /* a virtio-net device (its TAP is the clone's own) */
        bool fs;          /* a virtio-9p device for the image (rootfs or bundle) */
        uint32_t volumes; /* as many more virtio-9p devices, for the instance's volumes */
} vmm_profile_t;

/* What a runtime that has templates does, on a thread of its own (each call blocks). */
typedef struct vmm_template_ops {
        /* Boot p, wait for the agent's ready, pause, save RAM (dir/VMM_TEMPLATE_MEMORY, shared) and
         * device state (dir/VMM_TEMPLATE_STATE); QEMU is gone on return. *pid holds its pid while
         * it runs unreaped (0 otherwise, atomically): killing it ends the call at once. */
        int (*make)(const void *state, const vmm_profile_t *p, const char *dir, pid_t *pid, char **ret_error);
        /* A clone spawned with -incoming (its prepare had vmm_launch_t.template_dir): load the
         * template's state into it; it runs on success if resume, else it stays paused. */
        int (*restore)(const char *instance_dir, const char *template_dir, bool resume, uint64_t timeout_ms,
                       char **ret_error);
        /* A warm-pool clone: spawn a clone of the template in dir, in a mount namespace of its own
         * (the image is bound into it when an instance takes it: vmm_pool_bind_image), its NIC on
         * the TAP tap (which QEMU creates, and netd takes over), its 9p export
         * dir/VMM_POOL_EXPORT; restore it and leave it paused. *pid as make's. */
        int (*pool_clone)(const void *state, const vmm_profile_t *p, const char *template_dir, const char *dir,
                          const char *tap, pid_t *pid, char **ret_error);
        /* The text every input of a template is hashed from: files by identity (path, inode,
         * size, mtime), so a kit rebuilt by `make guest` never restores an old agent. */
        int (*describe)(const void *state, const vmm_profile_t *p, char **ret);
} vmm_template_ops_t;

typedef struct vmm_templates vmm_templates_t;

int vmm_templates_new(vmm_t *d, vmm_templates_t **ret);
void vmm_templates_free(vmm_templates_t *t);
/* A SIGHUP's config: -EINVAL (logged) for one the templates refuse, before anything changed. */
int vmm_templates_check_reload(const vmm_t *d, const husk_config_t *fresh);
/* ...then applied: the pool's size (0: none), at once. Templates on or off and their directory
 * apply at the next start (a notice says so). */
void vmm_templates_reload(vmm_t *d, const husk_config_t *fresh);

/* The template a new instance restores from, or NULL: boot cold. Called once its network is
 * known (create_launch); when it may be a clone but no template is ready one is made in the
 * background for the next, and a damaged one is dropped (warning event). *ret_key and
 * *ret_dir are the caller's. */
int vmm_template_choose(vmm_instance_t *i, const vmm_runtime_t *rt, const char *mode, bool cold_only,
                        const char *kernel, const char *initrd, bool net, char **ret_key, char **ret_dir);
/* A paused clone from the warm pool for an instance of this spec (create, before netd's
 * net.attach, which takes the clone's TAP over), the caller's; NULL: none ready. */
struct vmm_pool_clone *vmm_template_take_clone(vmm_t *d, const vmm_runtime_t *rt, const char *mode, bool cold_only,
                                               const instance_spec_t *s, const char *kernel, const char *initrd,
                                               bool net);
/* A clone taken from the pool took its identity: the pool may refill now. */
void vmm_template_pool_clone_ready(vmm_t *d);
/* template.list and template.drop (SCHEMA.md): the templates with their size and age; drop one
 * or all (running clones keep their mapping of its memory). */
int vmm_template_method_list(bus_request_t *req, msgpack_packer *pk, void *userdata);
int vmm_template_method_drop(bus_request_t *req, msgpack_packer *pk, void *userdata);
/* A clone of it failed to restore: drop it (it is rebuilt when next needed). */
void vmm_template_failed(vmm_t *d, const char *key, const char *why);

/* ---- the restore of a clone during its create (vmm_clone.c) ----------------------------------- */

typedef struct vmm_restore vmm_restore_t;
typedef void (*vmm_restore_fn)(int error, const char *why, void *userdata);
/* Restore the spawned clone pid on a thread; fn runs from the loop once it runs or failed. */
int vmm_restore_start(vmm_instance_t *i, const vmm_runtime_t *rt, const char *template_dir, pid_t pid,
                      vmm_restore_fn fn, void *userdata, vmm_restore_t **ret);
/* Stop waiting (fn never runs): the clone is killed and reaped. */
void vmm_restore_cancel(vmm_restore_t **r);

/* ---- identity (vmm_clone.c) ------------------------------------------------------------------ */

/* A clone whose agent has not taken its identity yet: it is not ready. */
bool vmm_clone_identity_pending(const vmm_instance_t *i);
/* Send the identity request; its answer makes the instance ready and starts the workload. */
void vmm_clone_give_identity(vmm_instance_t *i);
