/* vmm_disk.c: an instance's copy-on-write disk (see vmm_disk.h). */
#include "services/vmm-driver/vmm_disk.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/util.h"

#define QCOW2_MAGIC "QFI\xfb"
/* The overlay's geometry: qemu-img's defaults (64 KiB clusters, 16-bit refcounts). */
#define CLUSTER_BITS 16
#define CLUSTER ((uint64_t)1 << CLUSTER_BITS)
#define L2_SPAN (CLUSTER * (CLUSTER / 8)) /* guest bytes one L1 entry maps: 512 MiB */
#define REFCOUNTS_PER_BLOCK (CLUSTER / 2)
#define HEADER_V3 104
#define EXT_BACKING_FORMAT 0xe2792acau
#define BACKING_NAME_MAX 1023                /* QEMU refuses longer backing file names */
#define VIRTUAL_SIZE_MAX ((uint64_t)1 << 50) /* 1 PiB: keeps the L1 table within a few clusters' reach */

_printf_(3, 4) static int disk_fail(char **ret_error, int r, const char *fmt, ...) {
        va_list ap;

        if (ret_error) {
                va_start(ap, fmt);
                if (vasprintf(ret_error, fmt, ap) < 0)
                        *ret_error = NULL;
                va_end(ap);
        }
        return r;
}

/* FICLONE's answers that mean "not here" (another file system, or one without shared
 * extents), as opposed to a real failure. */
static bool reflink_unsupported(int err) {
        return err == EOPNOTSUPP || err == ENOTTY || err == EXDEV || err == EINVAL || err == ENOSYS || err == EPERM;
}

static int try_reflink(int src, const char *path) {
        _cleanup_close_ int dst = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        int r;

        if (dst < 0)
                return -errno;
        if (ioctl(dst, FICLONE, src) == 0)
                return 0;
        r = -errno;
        (void)unlink(path);
        return r;
}

static void put_be32(uint8_t *p, uint32_t v) {
        v = htobe32(v);
        memcpy(p, &v, sizeof(v));
}

static void put_be64(uint8_t *p, uint64_t v) {
        v = htobe64(v);
        memcpy(p, &v, sizeof(v));
}

static int pwrite_all(int fd, const void *buf, size_t n, uint64_t off) {
        size_t done = 0;

        while (done < n) {
                ssize_t k = pwrite(fd, (const uint8_t *)buf + done, n - done, (off_t)(off + done));

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                done += (size_t)k;
        }
        return 0;
}

/* The virtual size of the base: a raw file's size (rounded up to a sector, as QEMU sees it),
 * or the size a qcow2 header states. */
static int base_virtual_size(int src, const struct stat *st, bool qcow2, uint64_t *ret) {
        uint8_t hdr[32];

        if (!qcow2) {
                *ret = ((uint64_t)st->st_size + 511) & ~(uint64_t)511;
                return 0;
        }
        if (pread(src, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr))
                return -EIO;
        memcpy(ret, hdr + 24, sizeof(*ret));
        *ret = be64toh(*ret);
        return 0;
}

/* A qcow2 (version 3) overlay of size bytes on the backing file backing (absolute) of format
 * backing_fmt, written into the empty file fd: what `qemu-img create -f qcow2 -F FMT -b BASE`
 * writes, without starting qemu-img. Cluster 0: the header, the backing format extension and
 * the backing file name; cluster 1: the refcount table; cluster 2: its one refcount block;
 * clusters 3...: the L1 table, all zero (every guest read goes to the backing file). */
static int qcow2_overlay_write(int fd, const char *backing, const char *backing_fmt, uint64_t size) {
        size_t name_len = strlen(backing), fmt_len = strlen(backing_fmt);
        uint64_t l1_size = (size + L2_SPAN - 1) / L2_SPAN;
        uint64_t l1_clusters = (l1_size * 8 + CLUSTER - 1) / CLUSTER;
        uint64_t n_clusters = 3 + (l1_clusters ? l1_clusters : 1);
        _cleanup_free_ uint8_t *c = NULL;
        size_t ext, name_off;
        int r;

        if (name_len == 0 || name_len > BACKING_NAME_MAX || fmt_len == 0 || fmt_len > 16)
                return -ENAMETOOLONG;
        if (size == 0 || size > VIRTUAL_SIZE_MAX || n_clusters > REFCOUNTS_PER_BLOCK)
                return -EFBIG;
        c = calloc(1, CLUSTER);
        if (!c)
                return -ENOMEM;

        memcpy(c, QCOW2_MAGIC, 4);
        put_be32(c + 4, 3); /* version */
        put_be32(c + 20, CLUSTER_BITS);
        put_be64(c + 24, size);
        put_be32(c + 36, (uint32_t)l1_size);
        put_be64(c + 40, 3 * CLUSTER); /* L1 table */
        put_be64(c + 48, 1 * CLUSTER); /* refcount table */
        put_be32(c + 56, 1);           /* its length in clusters */
        put_be32(c + 96, 4);           /* refcount_order: 16-bit refcounts */
        put_be32(c + 100, HEADER_V3);
        /* Header extensions: the backing file's format (QEMU never probes it), then the end. */
        ext = HEADER_V3;
        put_be32(c + ext, EXT_BACKING_FORMAT);
        put_be32(c + ext + 4, (uint32_t)fmt_len);
        memcpy(c + ext + 8, backing_fmt, fmt_len);
        ext += 8 + ((fmt_len + 7) & ~(size_t)7);
        ext += 8; /* the end-of-extensions marker: type 0, length 0 (already zero) */
        name_off = ext;
        memcpy(c + name_off, backing, name_len);
        put_be64(c + 8, name_off);
        put_be32(c + 16, (uint32_t)name_len);
        r = pwrite_all(fd, c, CLUSTER, 0);
        if (r < 0)
                return r;

        /* The refcount table's one entry, then the block: every cluster of the file used once. */
        memset(c, 0, CLUSTER);
        put_be64(c, 2 * CLUSTER);
        r = pwrite_all(fd, c, CLUSTER, CLUSTER);
        if (r < 0)
                return r;
        memset(c, 0, CLUSTER);
        for (uint64_t i = 0; i < n_clusters; i++) {
                c[2 * i] = 0;
                c[2 * i + 1] = 1;
        }
        r = pwrite_all(fd, c, CLUSTER, 2 * CLUSTER);
        if (r < 0)
                return r;
        /* The L1 table: zeros, as a hole. */
        if (ftruncate(fd, (off_t)(n_clusters * CLUSTER)) < 0)
                return -errno;
        return 0;
}

int vmm_disk_create(const char *dir, const char *base, vmm_disk_t *ret, char **ret_error) {
        _cleanup_free_ char *abs = NULL, *absdir = NULL;
        _cleanup_close_ int src = -1, dst = -1;
        char magic[4] = {}, raw[PATH_MAX], qcow2[PATH_MAX];
        struct stat st;
        uint64_t size;
        int r;

        if (ret_error)
                *ret_error = NULL;
        memset(ret, 0, sizeof(*ret));
        abs = realpath(base, NULL);
        if (!abs)
                return disk_fail(ret_error, -errno, "image %s: %s", base,
                                 errno == ENOENT ? "no such file" : strerror(errno));
        absdir = realpath(dir, NULL);
        if (!absdir)
                return disk_fail(ret_error, -errno, "instance directory %s: %s", dir, strerror(errno));
        /* O_NONBLOCK: a FIFO in the image's place must not hang the open. */
        src = open(abs, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (src < 0 || fstat(src, &st) < 0)
                return disk_fail(ret_error, -errno, "image %s: %s", base, strerror(errno));
        if (!S_ISREG(st.st_mode))
                return disk_fail(ret_error, -EINVAL, "image %s: not a regular file", base);
        if (pread(src, magic, sizeof(magic), 0) == (ssize_t)sizeof(magic) &&
            memcmp(magic, QCOW2_MAGIC, sizeof(magic)) == 0)
                ret->base_format = "qcow2";
        else
                ret->base_format = "raw";

        if ((size_t)snprintf(raw, sizeof(raw), "%s/" VMM_DISK_RAW_FILE, absdir) >= sizeof(raw) ||
            (size_t)snprintf(qcow2, sizeof(qcow2), "%s/" VMM_DISK_QCOW2_FILE, absdir) >= sizeof(qcow2))
                return disk_fail(ret_error, -ENAMETOOLONG, "instance directory %s: path too long", dir);
        if (access(raw, F_OK) == 0 || access(qcow2, F_OK) == 0)
                return disk_fail(ret_error, -EEXIST, "instance directory %s already has a disk", dir);

        /* A reflink keeps the base's format: QEMU reads it as the base would be read. */
        r = try_reflink(src, streq(ret->base_format, "qcow2") ? qcow2 : raw);
        if (r == 0) {
                snprintf(ret->path, sizeof(ret->path), "%s", streq(ret->base_format, "qcow2") ? qcow2 : raw);
                ret->format = ret->base_format;
                ret->method = VMM_DISK_REFLINK;
                return 0;
        }
        if (!reflink_unsupported(-r))
                return disk_fail(ret_error, r, "image %s: cannot clone it into %s: %s", base, dir, strerror(-r));

        /* The overlay, written here: a few clusters whatever the base's size, no qemu-img to
         * start (a quarter of a second on a loaded machine). The backing path is absolute, so
         * the overlay does not depend on QEMU's working directory; the base is only read. */
        r = base_virtual_size(src, &st, streq(ret->base_format, "qcow2"), &size);
        if (r < 0)
                return disk_fail(ret_error, r, "image %s: cannot read its qcow2 header", base);
        dst = open(qcow2, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (dst < 0)
                return disk_fail(ret_error, -errno, "instance directory %s: cannot create %s: %s", dir,
                                 VMM_DISK_QCOW2_FILE, strerror(errno));
        r = qcow2_overlay_write(dst, abs, ret->base_format, size);
        if (r < 0) {
                (void)unlink(qcow2);
                if (r == -ENAMETOOLONG)
                        return disk_fail(ret_error, r, "image %s: its path is longer than qcow2 allows (%d bytes)",
                                         base, BACKING_NAME_MAX);
                if (r == -EFBIG)
                        return disk_fail(ret_error, r, "image %s: its size (%llu bytes) is too large for an overlay",
                                         base, (unsigned long long)size);
                return disk_fail(ret_error, r, "instance directory %s: cannot write %s: %s", dir, VMM_DISK_QCOW2_FILE,
                                 strerror(-r));
        }
        snprintf(ret->path, sizeof(ret->path), "%s", qcow2);
        ret->format = "qcow2";
        ret->method = VMM_DISK_OVERLAY;
        return 0;
}

void vmm_disk_remove(const char *dir) {
        char path[PATH_MAX];

        if ((size_t)snprintf(path, sizeof(path), "%s/" VMM_DISK_RAW_FILE, dir) < sizeof(path))
                (void)unlink(path);
        if ((size_t)snprintf(path, sizeof(path), "%s/" VMM_DISK_QCOW2_FILE, dir) < sizeof(path))
                (void)unlink(path);
}

const char *vmm_disk_method_name(vmm_disk_method_t m) { return m == VMM_DISK_REFLINK ? "reflink" : "overlay"; }
