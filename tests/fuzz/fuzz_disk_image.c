/* fuzz_disk_image.c: libFuzzer target for the image probe (lib/disk_image.c), which reads headers
 * of a user's file at apply time: any bytes, any size, never a read past the file or a crash. */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib/disk_image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        disk_image_kind_t kind;
        const char *reason = NULL;
        int fd = memfd_create("fuzz-disk-image", MFD_CLOEXEC);
        int r;

        if (fd < 0)
                return 0;
        if (write(fd, data, size) != (ssize_t)size) {
                close(fd);
                return 0;
        }
        r = disk_image_probe_fd(fd, size, &kind, &reason);
        if (r == 0)
                assert(kind == DISK_IMAGE_RAW || kind == DISK_IMAGE_QCOW2);
        else
                assert(r == -ENOEXEC && reason && *reason);
        close(fd);
        return 0;
}
