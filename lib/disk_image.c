/* disk_image.c: classify an image path as a directory, a bootable raw GPT disk or a qcow2
 * (see disk_image.h). Every read is a pread of a fixed, small size; every offset read from a
 * header is checked against the file's size, with overflow checks, before it is read. */
#include "lib/disk_image.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/util.h"

const uint8_t disk_image_esp_type[16] = {
        0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b,
};

#define GPT_SIGNATURE "EFI PART"
#define GPT_HEADER_MIN 92       /* the header's defined fields */
#define GPT_ENTRIES_MAX 4096    /* far above the 128 every tool writes */
#define GPT_ENTRY_SIZE_MAX 4096 /* 128 * 2^n, bounded */
#define QCOW2_MAGIC "QFI\xfb"
#define QCOW2_HEADER_V2 72
#define QCOW2_INCOMPAT_DATA_FILE (1ULL << 2)

static uint32_t get_le32(const uint8_t *p) {
        uint32_t v;
        memcpy(&v, p, sizeof(v));
        return le32toh(v);
}

static uint64_t get_le64(const uint8_t *p) {
        uint64_t v;
        memcpy(&v, p, sizeof(v));
        return le64toh(v);
}

static uint32_t get_be32(const uint8_t *p) {
        uint32_t v;
        memcpy(&v, p, sizeof(v));
        return be32toh(v);
}

static uint64_t get_be64(const uint8_t *p) {
        uint64_t v;
        memcpy(&v, p, sizeof(v));
        return be64toh(v);
}

/* CRC-32 (IEEE, reflected), as the GPT header and entry array checksums use it. */
static uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n) {
        crc = ~crc;
        while (n--) {
                crc ^= *p++;
                for (int k = 0; k < 8; k++)
                        crc = (crc >> 1) ^ (0xedb88320u & -(crc & 1));
        }
        return ~crc;
}

/* Exactly n bytes at off, or -EIO: a short read means the header lied about the file. */
static int read_at(int fd, void *buf, size_t n, uint64_t off) {
        size_t done = 0;

        while (done < n) {
                ssize_t k = pread(fd, (uint8_t *)buf + done, n - done, (off_t)(off + done));

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        return -EIO;
                done += (size_t)k;
        }
        return 0;
}

/* A protective MBR (a partition of type 0xEE) is what makes firmware look for a GPT. */
static bool protective_mbr(const uint8_t mbr[512]) {
        if (mbr[510] != 0x55 || mbr[511] != 0xaa)
                return false;
        for (int i = 0; i < 4; i++)
                if (mbr[446 + 16 * i + 4] == 0xee)
                        return true;
        return false;
}

/* The GPT whose header sits at LBA 1 for sector size ss: 1 when it has an EFI system
 * partition inside the file, 0 when there is no GPT header for this sector size, or
 * -ENOEXEC with reason. */
static int gpt_probe(int fd, uint64_t size, uint32_t ss, const char **reason) {
        uint8_t hdr[4096], entry[GPT_ENTRY_SIZE_MAX];
        uint32_t hdr_size, hdr_crc, n_entries, entry_size, entries_crc, crc = 0;
        uint64_t entries_lba, entries_off, entries_len, last_lba;
        bool esp = false, esp_outside = false;
        int r;

        if (size < 2 * (uint64_t)ss)
                return 0;
        r = read_at(fd, hdr, ss, ss);
        if (r < 0)
                return r;
        if (memcmp(hdr, GPT_SIGNATURE, 8) != 0)
                return 0;

        hdr_size = get_le32(hdr + 12);
        if (hdr_size < GPT_HEADER_MIN || hdr_size > ss)
                goto malformed;
        hdr_crc = get_le32(hdr + 16);
        memset(hdr + 16, 0, 4);
        if (crc32_update(0, hdr, hdr_size) != hdr_crc) {
                *reason = "GPT header checksum mismatch";
                return -ENOEXEC;
        }
        entries_lba = get_le64(hdr + 72);
        n_entries = get_le32(hdr + 80);
        entry_size = get_le32(hdr + 84);
        entries_crc = get_le32(hdr + 88);
        if (n_entries == 0 || n_entries > GPT_ENTRIES_MAX || entry_size < 128 || entry_size > GPT_ENTRY_SIZE_MAX ||
            entry_size % 128 != 0)
                goto malformed;
        /* The array must lie inside the file; every product below is bounded by the checks. */
        if (entries_lba < 2 || entries_lba > size / ss)
                goto malformed;
        entries_off = entries_lba * ss;
        entries_len = (uint64_t)n_entries * entry_size;
        if (entries_len > size - entries_off)
                goto malformed;
        last_lba = size / ss - 1;

        for (uint32_t i = 0; i < n_entries; i++) {
                uint64_t first, last;

                r = read_at(fd, entry, entry_size, entries_off + (uint64_t)i * entry_size);
                if (r < 0)
                        return r;
                crc = crc32_update(crc, entry, entry_size);
                if (memcmp(entry, disk_image_esp_type, 16) != 0)
                        continue;
                first = get_le64(entry + 32);
                last = get_le64(entry + 40);
                if (first >= 1 && first <= last && last <= last_lba)
                        esp = true;
                else
                        esp_outside = true;
        }
        /* Firmware ignores a table whose checksum does not match: so do we. */
        if (crc != entries_crc) {
                *reason = "GPT partition entries checksum mismatch";
                return -ENOEXEC;
        }
        if (esp)
                return 1;
        *reason = esp_outside ? "the EFI system partition lies outside the file" : "no EFI system partition";
        return -ENOEXEC;

malformed:
        *reason = "malformed GPT header";
        return -ENOEXEC;
}

static int qcow2_probe(const uint8_t *hdr, size_t n, uint64_t size, const char **reason) {
        uint32_t version;

        if (n < QCOW2_HEADER_V2 || size < QCOW2_HEADER_V2) {
                *reason = "truncated qcow2 header";
                return -ENOEXEC;
        }
        version = get_be32(hdr + 4);
        if (version != 2 && version != 3) {
                *reason = "unsupported qcow2 version";
                return -ENOEXEC;
        }
        /* A backing file or an external data file is a path the image's author chose, opened
         * by QEMU on this host: refused, the image must stand alone. */
        if (get_be64(hdr + 8) != 0 || get_be32(hdr + 16) != 0) {
                *reason = "qcow2 with a backing file (flatten it with qemu-img convert)";
                return -ENOEXEC;
        }
        if (version == 3 && n >= 80 && (get_be64(hdr + 72) & QCOW2_INCOMPAT_DATA_FILE)) {
                *reason = "qcow2 with an external data file";
                return -ENOEXEC;
        }
        return 0;
}

int disk_image_probe_fd(int fd, uint64_t size, disk_image_kind_t *ret_kind, const char **reason) {
        uint8_t first[512];
        size_t n = size < sizeof(first) ? (size_t)size : sizeof(first);
        bool mbr;
        int r;

        *reason = NULL;
        if (size == 0) {
                *reason = "empty file";
                return -ENOEXEC;
        }
        r = read_at(fd, first, n, 0);
        if (r < 0)
                return r;
        if (n >= 4 && memcmp(first, QCOW2_MAGIC, 4) == 0) {
                r = qcow2_probe(first, n, size, reason);
                if (r < 0)
                        return r;
                *ret_kind = DISK_IMAGE_QCOW2;
                return 0;
        }
        mbr = n == sizeof(first) && protective_mbr(first);
        /* 512-byte sectors first (every image tool's default), then 4 KiB. */
        for (uint32_t ss = 512; ss <= 4096; ss *= 8) {
                r = gpt_probe(fd, size, ss, reason);
                if (r < 0)
                        return r;
                if (r > 0) {
                        if (!mbr) {
                                *reason = "GPT without a protective MBR";
                                return -ENOEXEC;
                        }
                        *ret_kind = DISK_IMAGE_RAW;
                        return 0;
                }
        }
        *reason = "no GPT partition table";
        return -ENOEXEC;
}

int disk_image_probe(const char *path, disk_image_kind_t *ret_kind, char *err, size_t errsize) {
        _cleanup_close_ int fd = -1;
        const char *reason = NULL;
        struct stat st;
        int r;

        if (stat(path, &st) < 0) {
                r = -errno;
                if (errsize)
                        snprintf(err, errsize, "image %s: %s", path,
                                 r == -ENOENT ? "no such file or directory" : strerror(-r));
                return r;
        }
        if (S_ISDIR(st.st_mode)) {
                *ret_kind = DISK_IMAGE_DIRECTORY;
                return 0;
        }
        if (!S_ISREG(st.st_mode)) {
                if (errsize)
                        snprintf(err, errsize, "image %s: neither a regular file nor a directory", path);
                return -EINVAL;
        }
        /* O_NONBLOCK: should the path become a FIFO between stat and open, open does not hang. */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0 || fstat(fd, &st) < 0) {
                r = -errno;
                if (errsize)
                        snprintf(err, errsize, "image %s: %s", path, strerror(-r));
                return r;
        }
        if (!S_ISREG(st.st_mode)) {
                if (errsize)
                        snprintf(err, errsize, "image %s: neither a regular file nor a directory", path);
                return -EINVAL;
        }
        r = disk_image_probe_fd(fd, (uint64_t)st.st_size, ret_kind, &reason);
        if (r == -ENOEXEC) {
                if (errsize)
                        snprintf(err, errsize, "image %s: not a bootable disk: %s", path, reason);
        } else if (r < 0 && errsize)
                snprintf(err, errsize, "image %s: cannot read it: %s", path, strerror(-r));
        return r;
}

const char *disk_image_kind_name(disk_image_kind_t kind) {
        switch (kind) {
        case DISK_IMAGE_DIRECTORY:
                return "directory";
        case DISK_IMAGE_RAW:
                return "raw";
        case DISK_IMAGE_QCOW2:
                return "qcow2";
        }
        return "unknown";
}
