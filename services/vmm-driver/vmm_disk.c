/* vmm_disk.c: an instance's copy-on-write disk (see vmm_disk.h). */
#include "services/vmm-driver/vmm_disk.h"

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

#include "lib/run.h"
#include "lib/util.h"

#define QCOW2_MAGIC "QFI\xfb"

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
        return err == EOPNOTSUPP || err == ENOTTY || err == EXDEV || err == EINVAL || err == ENOSYS ||
               err == EPERM;
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

int vmm_disk_create(const char *dir, const char *base, vmm_disk_t *ret, char **ret_error) {
        _cleanup_free_ char *abs = NULL, *absdir = NULL, *output = NULL;
        _cleanup_close_ int src = -1, dst = -1;
        char magic[4] = {}, raw[PATH_MAX], qcow2[PATH_MAX];
        struct stat st;
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

        /* The overlay: created 0600 here, then qemu-img writes its header into it (it truncates
         * an existing file and keeps its mode). The backing path is absolute, so the overlay
         * does not depend on QEMU's working directory; qemu-img opens the base read-only to
         * learn its size and never writes it. */
        dst = open(qcow2, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (dst < 0)
                return disk_fail(ret_error, -errno, "instance directory %s: cannot create %s: %s", dir,
                                 VMM_DISK_QCOW2_FILE, strerror(errno));
        dst = (close(dst), -1);
        {
                char *const argv[] = {
                        "qemu-img", "create", "-q", "-f", "qcow2", "-F", (char *)ret->base_format,
                        "-b", abs, qcow2, NULL,
                };

                r = run_tool(argv, NULL, &output);
        }
        if (r < 0) {
                (void)unlink(qcow2);
                if (r == -ENOENT)
                        return disk_fail(ret_error, r, "image %s: qemu-img not found (install qemu-utils)", base);
                return disk_fail(ret_error, r, "image %s: qemu-img create failed: %s", base,
                                 output && *output ? output : strerror(-r));
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

const char *vmm_disk_method_name(vmm_disk_method_t m) {
        return m == VMM_DISK_REFLINK ? "reflink" : "overlay";
}
