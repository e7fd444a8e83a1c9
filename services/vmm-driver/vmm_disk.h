/* vmm_disk.h: an instance's own disk, made from a base image in O(1) and never writing to the
 * base: a reflink (FICLONE) where the file system shares extents, else a qcow2 overlay that
 * reads the base and writes to the instance directory. Its own header so that the runtime
 * table can use it without depending on the rest of vmm.h. */
#pragma once

#include <limits.h>

#define VMM_DISK_RAW_FILE "disk.raw"     /* a reflink of a raw base */
#define VMM_DISK_QCOW2_FILE "disk.qcow2" /* a reflink of a qcow2 base, or an overlay */

typedef enum vmm_disk_method {
        VMM_DISK_REFLINK, /* a copy sharing the base's extents */
        VMM_DISK_OVERLAY, /* qcow2 with the base as its backing file (absolute path) */
} vmm_disk_method_t;

typedef struct vmm_disk {
        char path[PATH_MAX];     /* absolute, inside the instance directory */
        const char *format;      /* what QEMU is told: "raw" or "qcow2" */
        const char *base_format; /* the base's format: "raw" or "qcow2" */
        vmm_disk_method_t method;
} vmm_disk_t;

/* Make dir's disk from base. base must be a regular file (symlinks resolved: the overlay
 * records the resolved absolute path). The disk file is mode 0600. Returns 0, or a negative
 * errno with a message naming the image in *ret_error (malloc'd; may be NULL): -ENOENT (no
 * base), -EINVAL (base not a regular file), -EEXIST (dir already has a disk), -ENAMETOOLONG
 * (the base's path is too long for a qcow2 backing file name), -EFBIG, -EIO. Starts no
 * process: the overlay is written here, a few clusters (256 KiB sparse) whatever the size. */
int vmm_disk_create(const char *dir, const char *base, vmm_disk_t *ret, char **ret_error);

/* Remove dir's disk, whichever method made it. Missing files are not an error. */
void vmm_disk_remove(const char *dir);

const char *vmm_disk_method_name(vmm_disk_method_t m);
