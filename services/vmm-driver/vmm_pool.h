/* vmm_pool.h: the warm pool of template clones, restored and paused ahead of need (vmm_driver.templates.pool). */
#pragma once

#include <stdint.h>

#include "services/vmm-driver/vmm_template.h"

/* A paused clone: its QEMU (our unreaped child) in dir, its NIC on the TAP tap. Whoever holds
 * one owns the QEMU: vmm_pool_clone_discard() ends it. */
struct vmm_pool_clone {
        char key[VMM_TEMPLATE_KEY_LEN + 1];
        char dir[PATH_MAX];
        char tap[16];
        pid_t pid;
        int pidfd; /* while in the pool: its end refills the pool */
        zloop_t *loop;
};
typedef struct vmm_pool_clone vmm_pool_clone_t;

typedef struct vmm_pool vmm_pool_t;

/* Clones an earlier vmm-driver left: their QEMUs ended, their directories removed. */
void vmm_pool_end_leftovers(vmm_t *d);
/* size 0: *ret is NULL, no pool. */
int vmm_pool_new(vmm_t *d, uint32_t size, vmm_pool_t **ret);
/* Every clone's QEMU ended, its directory removed. */
void vmm_pool_free(vmm_pool_t *p);
/* A new size (not 0; vmm_pool_free for none): clones beyond it are ended, or more are made. */
void vmm_pool_resize(vmm_pool_t *p, uint32_t size);

/* Keep clones of this template (a complete one): made in the background, one at a time. */
void vmm_pool_want(vmm_pool_t *p, const vmm_runtime_t *rt, const char *key, const char *template_dir,
                   const vmm_profile_t *profile);
/* The template goes: its clones too. */
void vmm_pool_forget(vmm_pool_t *p, const char *key);
size_t vmm_pool_count(vmm_pool_t *p, const char *key);

/* A paused clone of the template, the caller's from now on; NULL: none ready. Another is made. */
vmm_pool_clone_t *vmm_pool_take(vmm_pool_t *p, const char *key);
void vmm_pool_clone_discard(vmm_pool_clone_t **c);
/* A clone taken is ready: the refill may take the CPU now. */
void vmm_pool_taken_ready(vmm_pool_t *p);

/* Bind image read-only at target inside the mount namespace of pid (a pool clone's QEMU). */
int vmm_pool_bind_image(pid_t pid, const char *image, const char *target);
