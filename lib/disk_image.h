/* disk_image.h: what an `image:` path is, probed before anything boots it: a directory (a kit
 * rootfs or an OCI bundle), a raw GPT disk with an EFI system partition, or a qcow2 disk.
 * Reads a few sectors with bounded reads; sizes and offsets in the headers are checked
 * against the file before they are used. */
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef enum disk_image_kind {
        DISK_IMAGE_DIRECTORY, /* kit mode: a rootfs or an OCI bundle */
        DISK_IMAGE_RAW,       /* raw disk: GPT with an EFI system partition */
        DISK_IMAGE_QCOW2,     /* qcow2 (version 2 or 3) without a backing or external data file */
} disk_image_kind_t;

#define DISK_IMAGE_ERROR_MAX 256

/* The GPT partition type of an EFI system partition, C12A7328-F81F-11D2-BA4B-00A0C93EC93B, in
 * its on-disk byte order (the first three fields little-endian). */
extern const uint8_t disk_image_esp_type[16];

/* Probe path. Returns 0 with *ret_kind set, or a negative errno with a message naming the
 * path in err (size errsize, may be 0): -ENOENT (no such file), -EINVAL (neither a regular
 * file nor a directory), -ENOEXEC (a file that is not a bootable disk: why), -EACCES, -EIO. */
int disk_image_probe(const char *path, disk_image_kind_t *ret_kind, char *err, size_t errsize);

/* The same for an open regular file of size bytes (the fuzzer's entry point). reason gets a
 * static string saying why it is not a bootable disk (for -ENOEXEC). */
int disk_image_probe_fd(int fd, uint64_t size, disk_image_kind_t *ret_kind, const char **reason);

const char *disk_image_kind_name(disk_image_kind_t kind);
