/* test_disk.c: instance disks: made without copying the base (the overlay, written by vmm_disk
 * itself, passes qemu-img check, is small whatever the base's size and backs onto its absolute
 * path), written without touching the base, and an
 * error naming the image when the base is missing or not a regular file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/run.h"
#include "lib/util.h"
#include "services/vmm-driver/vmm_disk.h"
#include "tests/unit/require.h"

static char *make_dir(void) {
        char *dir = strdup("/tmp/husk-test-disk-XXXXXX");

        assert_non_null(dir);
        assert_non_null(mkdtemp(dir));
        return dir;
}

/* A sparse base of size bytes with a recognisable first MiB. */
static void make_base(const char *path, uint64_t size) {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        char block[4096];

        assert_true(fd >= 0);
        memset(block, 0x5a, sizeof(block));
        for (int i = 0; i < 256; i++)
                assert_int_equal(write(fd, block, sizeof(block)), (ssize_t)sizeof(block));
        assert_int_equal(ftruncate(fd, (off_t)size), 0);
}

/* The base's identity: sha256 of its data (SEEK_DATA to SEEK_HOLE runs: a sparse 64 GiB base
 * is not read as 64 GiB of zeros), its size and its modification time. */
static char *fingerprint(const char *path) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        _cleanup_free_ char *sum = NULL;
        char *out = NULL, *script = NULL;
        struct stat st;

        assert_true(fd >= 0);
        assert_int_equal(fstat(fd, &st), 0);
        /* The written first 2 MiB and the extent map: a write anywhere else allocates blocks. */
        assert_true(asprintf(&script, "{ head -c 2097152 '%s'; filefrag -e '%s' | tail -n +4; } | sha256sum", path,
                             path) > 0);
        {
                char *const argv[] = { "/bin/sh", "-c", script, NULL };

                assert_int_equal(run_tool(argv, NULL, &sum), 0);
        }
        free(script);
        assert_true(asprintf(&out, "%s size %lld mtime %lld.%09ld", sum, (long long)st.st_size,
                             (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec) > 0);
        return out;
}

static bool have_qemu_tools(void) {
        _cleanup_free_ char *a = NULL, *b = NULL;

        return run_find_tool("qemu-img", &a) == 0 && run_find_tool("qemu-io", &b) == 0;
}

/* The disk of each of two bases, 64 MiB and 64 GiB (sparse): both small, both backing onto their base
 * (or sharing its extents), the base unchanged after the guest-side write. */
static void test_disk_is_copy_on_write(void **state) {
        static const uint64_t sizes[] = { 64ull << 20, 64ull << 30 };
        _cleanup_free_ char *dir = make_dir();

        require(have_qemu_tools(), "needs qemu-img and qemu-io (qemu-utils)");
        for (size_t i = 0; i < ELEMENTSOF(sizes); i++) {
                _cleanup_free_ char *before = NULL, *after = NULL, *error = NULL, *info = NULL, *io = NULL;
                char base[256], inst[256], want[320];
                vmm_disk_t disk;
                struct stat st;

                snprintf(base, sizeof(base), "%s/base-%zu.raw", dir, i);
                snprintf(inst, sizeof(inst), "%s/inst-%zu", dir, i);
                assert_int_equal(mkdir(inst, 0700), 0);
                make_base(base, sizes[i]);
                before = fingerprint(base);

                if (vmm_disk_create(inst, base, &disk, &error) < 0)
                        fail_msg("vmm_disk_create: %s", error);
                assert_string_equal(disk.base_format, "raw");
                assert_int_equal(stat(disk.path, &st), 0);
                assert_int_equal(st.st_mode & 07777, 0600);
                assert_true(strncmp(disk.path, inst, strlen(inst)) == 0);
                if (disk.method == VMM_DISK_OVERLAY) {
                        char *const argv[] = { "qemu-img", "info", "--output=json", "-U", disk.path, NULL };

                        assert_string_equal(disk.format, "qcow2");
                        /* Its header and tables only: the base's size costs it nothing. */
                        assert_true((uint64_t)st.st_blocks * 512 < (1u << 20));
                        assert_int_equal(run_tool(argv, NULL, &info), 0);
                        snprintf(want, sizeof(want), "\"backing-filename\": \"%s\"", base);
                        if (!strstr(info, want) || !strstr(info, "\"backing-filename-format\": \"raw\""))
                                fail_msg("qemu-img info: %s", info);
                        snprintf(want, sizeof(want), "\"virtual-size\": %llu,", (unsigned long long)sizes[i]);
                        if (!strstr(info, want))
                                fail_msg("qemu-img info: %s", info);
                        /* Written by vmm_disk, not qemu-img: QEMU's own consistency check. */
                        {
                                _cleanup_free_ char *check = NULL;
                                char *const c[] = { "qemu-img", "check", "-U", disk.path, NULL };

                                if (run_tool(c, NULL, &check) < 0 || !strstr(check, "No errors were found"))
                                        fail_msg("qemu-img check: %s", check);
                        }
                } else
                        assert_string_equal(disk.format, "raw");

                /* The guest's write, through QEMU's block layer, then read back. */
                {
                        char *const w[] = { "qemu-io", "-f", (char *)disk.format, "-c", "write -P 0xab 0 1M",
                                            disk.path, NULL };
                        char *const r[] = { "qemu-io", "-f", (char *)disk.format, "-c", "read -P 0xab 0 1M",
                                            disk.path, NULL };

                        assert_int_equal(run_tool(w, NULL, &io), 0);
                        free(io), io = NULL;
                        assert_int_equal(run_tool(r, NULL, &io), 0);
                        if (strstr(io, "Pattern verification failed"))
                                fail_msg("read back: %s", io);
                }
                after = fingerprint(base);
                assert_string_equal(before, after);

                /* One disk per instance directory. */
                free(error), error = NULL;
                assert_int_equal(vmm_disk_create(inst, base, &(vmm_disk_t){}, &error), -EEXIST);
                vmm_disk_remove(inst);
                assert_int_equal(access(disk.path, F_OK), -1);
                assert_int_equal(rmdir(inst), 0);
                assert_int_equal(unlink(base), 0);
        }
        assert_int_equal(rmdir(dir), 0);
}

/* A symlink to the image: the overlay records where it points, not the link. */
static void test_symlink_base_resolved(void **state) {
        _cleanup_free_ char *dir = make_dir(), *error = NULL, *info = NULL;
        char base[256], link[256], want[320];
        vmm_disk_t disk;

        require(have_qemu_tools(), "needs qemu-img (qemu-utils)");
        snprintf(base, sizeof(base), "%s/base.raw", dir);
        snprintf(link, sizeof(link), "%s/link.raw", dir);
        make_base(base, 8 << 20);
        assert_int_equal(symlink("base.raw", link), 0);
        if (vmm_disk_create(dir, link, &disk, &error) < 0)
                fail_msg("vmm_disk_create: %s", error);
        if (disk.method == VMM_DISK_OVERLAY) {
                char *const argv[] = { "qemu-img", "info", "--output=json", "-U", disk.path, NULL };

                assert_int_equal(run_tool(argv, NULL, &info), 0);
                snprintf(want, sizeof(want), "\"backing-filename\": \"%s\"", base);
                if (!strstr(info, want))
                        fail_msg("qemu-img info: %s", info);
        }
        vmm_disk_remove(dir);
        unlink(link);
        unlink(base);
        assert_int_equal(rmdir(dir), 0);
}

/* A qcow2 base: the overlay says so (QEMU never probes a backing file's format) and has its
 * virtual size, not its file size. */
static void test_qcow2_base(void **state) {
        _cleanup_free_ char *dir = make_dir(), *error = NULL, *info = NULL, *out = NULL;
        char base[256], inst[256];
        vmm_disk_t disk;

        require(have_qemu_tools(), "needs qemu-img (qemu-utils)");
        snprintf(base, sizeof(base), "%s/base.qcow2", dir);
        snprintf(inst, sizeof(inst), "%s/inst", dir);
        assert_int_equal(mkdir(inst, 0700), 0);
        {
                char *const argv[] = { "qemu-img", "create", "-q", "-f", "qcow2", base, "3G", NULL };

                assert_int_equal(run_tool(argv, NULL, &out), 0);
        }
        if (vmm_disk_create(inst, base, &disk, &error) < 0)
                fail_msg("vmm_disk_create: %s", error);
        assert_string_equal(disk.base_format, "qcow2");
        assert_string_equal(disk.format, "qcow2");
        if (disk.method == VMM_DISK_OVERLAY) {
                char *const argv[] = { "qemu-img", "info", "--output=json", "-U", disk.path, NULL };

                assert_int_equal(run_tool(argv, NULL, &info), 0);
                if (!strstr(info, "\"backing-filename-format\": \"qcow2\"") ||
                    !strstr(info, "\"virtual-size\": 3221225472,"))
                        fail_msg("qemu-img info: %s", info);
        }
        vmm_disk_remove(inst);
        assert_int_equal(rmdir(inst), 0);
        assert_int_equal(unlink(base), 0);
        assert_int_equal(rmdir(dir), 0);
}

static void expect_error(const char *dir, const char *base, int err, const char *needle) {
        _cleanup_free_ char *error = NULL;
        vmm_disk_t disk;

        assert_int_equal(vmm_disk_create(dir, base, &disk, &error), err);
        assert_non_null(error);
        if (!strstr(error, needle))
                fail_msg("message [%s] lacks [%s]", error, needle);
}

static void test_errors_name_the_image(void **state) {
        _cleanup_free_ char *dir = make_dir();
        char missing[256], want[320], fifo[256];

        snprintf(missing, sizeof(missing), "%s/no-such.raw", dir);
        snprintf(want, sizeof(want), "image %s: no such file", missing);
        expect_error(dir, missing, -ENOENT, want);
        snprintf(want, sizeof(want), "image %s: not a regular file", dir);
        expect_error(dir, dir, -EINVAL, want);
        snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
        assert_int_equal(mkfifo(fifo, 0600), 0);
        snprintf(want, sizeof(want), "image %s: not a regular file", fifo);
        expect_error(dir, fifo, -EINVAL, want);
        /* Nothing left behind by the failures. */
        assert_int_equal(unlink(fifo), 0);
        assert_int_equal(rmdir(dir), 0);
}

/* test_disk create DIR BASE: vmm_disk_create as a command, so that the image boot test
 * (tests/integration/test_image_boot.py) boots through the overlay vmm-driver will make.
 * Prints the method, the format and the path. */
static int disk_command(int argc, char **argv) {
        _cleanup_free_ char *error = NULL;
        vmm_disk_t disk;

        if (argc != 4) {
                fprintf(stderr, "usage: %s create DIR BASE\n", argv[0]);
                return 2;
        }
        if (vmm_disk_create(argv[2], argv[3], &disk, &error) < 0) {
                fprintf(stderr, "%s\n", error ? error : "vmm_disk_create failed");
                return 1;
        }
        printf("%s %s %s\n", vmm_disk_method_name(disk.method), disk.format, disk.path);
        return 0;
}

int main(int argc, char **argv) {
        if (argc > 1 && streq(argv[1], "create"))
                return disk_command(argc, argv);
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_disk_is_copy_on_write),
                cmocka_unit_test(test_symlink_base_resolved),
                cmocka_unit_test(test_qcow2_base),
                cmocka_unit_test(test_errors_name_the_image),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
