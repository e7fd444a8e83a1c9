/* test_disk_image.c: an image path probed before anything boots it: directories, bootable raw GPT
 * disks (512-byte and 4 KiB sectors), qcow2; and every way a file is not a bootable disk, with
 * the reason in the message. The images are crafted here, a few sectors each. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/disk_image.h"
#include "lib/util.h"

/* Linux filesystem data, 0FC63DAF-8483-4772-8E79-3D69D8477DE4, on-disk order. */
static const uint8_t linux_type[16] = { 0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47,
                                        0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4 };

static char dir[] = "/tmp/husk-test-disk-image-XXXXXX";

static uint32_t crc32(const uint8_t *p, size_t n) {
        uint32_t crc = ~0u;

        while (n--) {
                crc ^= *p++;
                for (int k = 0; k < 8; k++)
                        crc = (crc >> 1) ^ (0xedb88320u & -(crc & 1));
        }
        return ~crc;
}

static void put_le32(uint8_t *p, uint32_t v) {
        v = htole32(v);
        memcpy(p, &v, 4);
}
static void put_le64(uint8_t *p, uint64_t v) {
        v = htole64(v);
        memcpy(p, &v, 8);
}
static void put_be32(uint8_t *p, uint32_t v) {
        v = htobe32(v);
        memcpy(p, &v, 4);
}
static void put_be64(uint8_t *p, uint64_t v) {
        v = htobe64(v);
        memcpy(p, &v, 8);
}

typedef struct gpt_opts {
        uint32_t ss;          /* sector size */
        uint64_t sectors;     /* file size in sectors */
        const uint8_t *type;  /* type of the one partition; NULL: none */
        uint64_t first, last; /* its LBAs */
        uint32_t n_entries;
        bool no_mbr;
        bool bad_header_crc;
        bool bad_entries_crc;
} gpt_opts_t;

/* A disk with a protective MBR, a GPT header at LBA 1 and its entries from LBA 2. */
static uint8_t *gpt_image(const gpt_opts_t *o, size_t *ret_size) {
        size_t size = (size_t)o->sectors * o->ss;
        uint8_t *d = calloc(1, size), *h, *e;
        uint32_t n = o->n_entries ? o->n_entries : 128;

        assert_non_null(d);
        if (!o->no_mbr) {
                d[446 + 4] = 0xee;
                d[510] = 0x55;
                d[511] = 0xaa;
        }
        h = d + o->ss;
        e = d + 2 * o->ss;
        if (o->type) {
                memcpy(e, o->type, 16);
                memset(e + 16, 0x11, 16);
                put_le64(e + 32, o->first);
                put_le64(e + 40, o->last);
        }
        memcpy(h, "EFI PART", 8);
        put_le32(h + 8, 0x00010000);
        put_le32(h + 12, 92);
        put_le64(h + 24, 1);
        put_le64(h + 32, o->sectors - 1);
        put_le64(h + 72, 2);
        put_le32(h + 80, n);
        put_le32(h + 84, 128);
        /* The entry array's checksum over what lies in the file (all of it for valid images). */
        if ((uint64_t)n * 128 <= size - 2 * o->ss)
                put_le32(h + 88, crc32(e, (size_t)n * 128) ^ (o->bad_entries_crc ? 1 : 0));
        put_le32(h + 16, crc32(h, 92) ^ (o->bad_header_crc ? 1 : 0));
        *ret_size = size;
        return d;
}

static char *write_image(const char *name, const void *data, size_t size) {
        char *path;

        assert_true(asprintf(&path, "%s/%s", dir, name) > 0);
        assert_int_equal(write_file_atomic(path, data, size, 0644), 0);
        return path;
}

static void expect(const char *path, int err, disk_image_kind_t kind, const char *needle) {
        char msg[DISK_IMAGE_ERROR_MAX] = "";
        disk_image_kind_t got = (disk_image_kind_t)-1;
        int r = disk_image_probe(path, &got, msg, sizeof(msg));

        if (r != err)
                fail_msg("%s: got %d (%s), want %d", path, r, msg, err);
        if (err == 0)
                assert_int_equal(got, kind);
        else if (!strstr(msg, needle) || !strstr(msg, path))
                fail_msg("%s: message [%s] lacks [%s] or the path", path, msg, needle);
}

static void expect_gpt(const char *name, const gpt_opts_t *o, int err, const char *needle) {
        size_t size;
        _cleanup_free_ uint8_t *d = gpt_image(o, &size);
        _cleanup_free_ char *path = write_image(name, d, size);

        expect(path, err, DISK_IMAGE_RAW, needle);
        unlink(path);
}

static void test_gpt(void **state) {
        gpt_opts_t ok = { .ss = 512, .sectors = 128, .type = disk_image_esp_type, .first = 40, .last = 100 };
        gpt_opts_t o;

        expect_gpt("esp.raw", &ok, 0, NULL);
        o = ok, o.ss = 4096, o.sectors = 16, o.first = 6, o.last = 12;
        expect_gpt("esp-4k.raw", &o, 0, NULL);
        o = ok, o.type = linux_type;
        expect_gpt("linux.raw", &o, -ENOEXEC, "not a bootable disk: no EFI system partition");
        o = ok, o.type = NULL;
        expect_gpt("empty-table.raw", &o, -ENOEXEC, "no EFI system partition");
        o = ok, o.last = 1000;
        expect_gpt("esp-outside.raw", &o, -ENOEXEC, "the EFI system partition lies outside the file");
        o = ok, o.first = 0;
        expect_gpt("esp-lba0.raw", &o, -ENOEXEC, "outside the file");
        o = ok, o.first = 90, o.last = 80;
        expect_gpt("esp-reversed.raw", &o, -ENOEXEC, "outside the file");
        o = ok, o.no_mbr = true;
        expect_gpt("no-mbr.raw", &o, -ENOEXEC, "GPT without a protective MBR");
        o = ok, o.bad_header_crc = true;
        expect_gpt("bad-hcrc.raw", &o, -ENOEXEC, "GPT header checksum mismatch");
        o = ok, o.bad_entries_crc = true;
        expect_gpt("bad-ecrc.raw", &o, -ENOEXEC, "GPT partition entries checksum mismatch");
        /* Headers that claim more than the file holds: never read past it. */
        o = ok, o.n_entries = 4096, o.sectors = 40;
        expect_gpt("entries-past-end.raw", &o, -ENOEXEC, "malformed GPT header");
        o = ok, o.n_entries = 100000;
        expect_gpt("entries-too-many.raw", &o, -ENOEXEC, "malformed GPT header");
}

static void test_gpt_header_fields_bounded(void **state) {
        gpt_opts_t ok = { .ss = 512, .sectors = 128, .type = disk_image_esp_type, .first = 40, .last = 100 };
        static const struct {
                size_t off;
                uint64_t value;
                unsigned width;
        } bad[] = {
                { 12, 91, 4 },             /* header size below the defined fields */
                { 12, 513, 4 },            /* header size above the sector */
                { 72, 0, 8 },              /* entries at LBA 0 */
                { 72, UINT64_MAX / 2, 8 }, /* entries far past the end (would overflow * 512) */
                { 84, 100, 4 },            /* entry size not a multiple of 128 */
                { 84, 1 << 20, 4 },        /* entry size huge */
                { 80, 0, 4 },              /* no entries */
        };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                size_t size;
                _cleanup_free_ uint8_t *d = gpt_image(&ok, &size);
                _cleanup_free_ char *path = NULL;
                uint8_t *h = d + 512;

                if (bad[i].width == 4)
                        put_le32(h + bad[i].off, (uint32_t)bad[i].value);
                else
                        put_le64(h + bad[i].off, bad[i].value);
                put_le32(h + 16, 0);
                put_le32(h + 16, crc32(h, 92));
                path = write_image("field.raw", d, size);
                expect(path, -ENOEXEC, DISK_IMAGE_RAW, "not a bootable disk:");
                unlink(path);
        }
}

static void test_qcow2(void **state) {
        uint8_t h[512] = { 'Q', 'F', 'I', 0xfb };
        _cleanup_free_ char *p2 = NULL, *p3 = NULL, *pb = NULL, *pd = NULL, *pv = NULL, *pt = NULL;

        put_be32(h + 4, 3);
        put_be64(h + 24, 1ull << 30);
        p3 = write_image("v3.qcow2", h, sizeof(h));
        expect(p3, 0, DISK_IMAGE_QCOW2, NULL);
        put_be32(h + 4, 2);
        p2 = write_image("v2.qcow2", h, sizeof(h));
        expect(p2, 0, DISK_IMAGE_QCOW2, NULL);
        put_be64(h + 8, 512);
        put_be32(h + 16, 11);
        pb = write_image("backing.qcow2", h, sizeof(h));
        expect(pb, -ENOEXEC, 0, "qcow2 with a backing file");
        put_be64(h + 8, 0);
        put_be32(h + 16, 0);
        put_be32(h + 4, 3);
        put_be64(h + 72, 1 << 2);
        pd = write_image("datafile.qcow2", h, sizeof(h));
        expect(pd, -ENOEXEC, 0, "qcow2 with an external data file");
        put_be64(h + 72, 0);
        put_be32(h + 4, 4);
        pv = write_image("v4.qcow2", h, sizeof(h));
        expect(pv, -ENOEXEC, 0, "unsupported qcow2 version");
        pt = write_image("short.qcow2", h, 40);
        expect(pt, -ENOEXEC, 0, "truncated qcow2 header");
        unlink(p2), unlink(p3), unlink(pb), unlink(pd), unlink(pv), unlink(pt);
}

static void test_not_disks(void **state) {
        static const char text[] = "#!/bin/sh\necho this is not a disk\n";
        uint8_t mbr_only[1024] = {};
        _cleanup_free_ char *empty = write_image("empty.raw", "", 0), *txt = write_image("text", text, sizeof(text)),
                            *mbr = NULL, *missing = NULL, *fifo = NULL;
        disk_image_kind_t kind;
        char msg[DISK_IMAGE_ERROR_MAX];

        expect(empty, -ENOEXEC, 0, "not a bootable disk: empty file");
        expect(txt, -ENOEXEC, 0, "not a bootable disk: no GPT partition table");
        mbr_only[510] = 0x55, mbr_only[511] = 0xaa, mbr_only[446 + 4] = 0x83;
        mbr = write_image("mbr.raw", mbr_only, sizeof(mbr_only));
        expect(mbr, -ENOEXEC, 0, "no GPT partition table");
        assert_true(asprintf(&missing, "%s/missing.raw", dir) > 0);
        expect(missing, -ENOENT, 0, "no such file or directory");
        assert_true(asprintf(&fifo, "%s/fifo", dir) > 0);
        assert_int_equal(mkfifo(fifo, 0600), 0);
        expect(fifo, -EINVAL, 0, "neither a regular file nor a directory");
        assert_int_equal(disk_image_probe(dir, &kind, msg, sizeof(msg)), 0);
        assert_int_equal(kind, DISK_IMAGE_DIRECTORY);
        assert_string_equal(disk_image_kind_name(kind), "directory");
        unlink(empty), unlink(txt), unlink(mbr), unlink(fifo);
}

static int setup(void **state) { return mkdtemp(dir) ? 0 : -1; }
static int teardown(void **state) { return rm_rf(dir); }

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_gpt),
                cmocka_unit_test(test_gpt_header_fields_bounded),
                cmocka_unit_test(test_qcow2),
                cmocka_unit_test(test_not_disks),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
