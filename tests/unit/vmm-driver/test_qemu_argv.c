/* test_qemu_argv.c: the qemu runtime's accelerator choice and microvm command line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "services/vmm-driver/vmm_qemu.h"

static const vmm_qemu_params_t base = {
        .binary = "/usr/bin/qemu-system-x86_64",
        .accel = "tcg",
        .kernel = "/kit/vmlinux",
        .initrd = "/kit/initrd.gz",
        .instance_id = "0123456789ab",
        .cpus = 2,
        .memory_mib = 512,
        .tcg_cache_mib = 16,
};

static size_t strv_len(char **v) {
        size_t n = 0;

        while (v[n])
                n++;
        return n;
}

/* The value following option opt, which must occur exactly once. */
static const char *option(char **v, const char *opt) {
        const char *found = NULL;

        for (size_t k = 0; v[k]; k++)
                if (streq(v[k], opt)) {
                        if (found)
                                fail_msg("%s given twice", opt);
                        if (!v[k + 1])
                                fail_msg("%s has no value", opt);
                        found = v[k + 1];
                }
        return found;
}

static bool has(char **v, const char *arg) {
        for (size_t k = 0; v[k]; k++)
                if (streq(v[k], arg))
                        return true;
        return false;
}

static char **build(const vmm_qemu_params_t *p) {
        char **v = NULL;

        assert_int_equal(vmm_qemu_argv(p, &v), 0);
        assert_non_null(v);
        return v;
}

static void test_accel_resolve(void **state) {
        assert_string_equal(vmm_qemu_accel_resolve("kvm", false), "kvm");
        assert_string_equal(vmm_qemu_accel_resolve("kvm", true), "kvm");
        assert_string_equal(vmm_qemu_accel_resolve("tcg", true), "tcg");
        assert_string_equal(vmm_qemu_accel_resolve("auto", true), "kvm");
        assert_string_equal(vmm_qemu_accel_resolve("auto", false), "tcg");
        assert_string_equal(vmm_qemu_accel_resolve(NULL, false), "tcg");
        assert_null(vmm_qemu_accel_resolve("hvf", true));
        assert_null(vmm_qemu_accel_resolve("", true));
}

static void test_argv_tcg(void **state) {
        _cleanup_(vmm_strv_freep) char **v = build(&base);

        assert_string_equal(v[0], "/usr/bin/qemu-system-x86_64");
        assert_string_equal(option(v, "-machine"), "microvm,memory-backend=mem");
        /* A bounded translation cache: QEMU's 1 GiB default leaves ~47 MiB resident per VM. */
        assert_string_equal(option(v, "-accel"), "tcg,tb-size=16");
        assert_null(option(v, "-cpu"));
        assert_string_equal(option(v, "-smp"), "2");
        assert_string_equal(option(v, "-m"), "512");
        assert_string_equal(option(v, "-object"), "memory-backend-memfd,id=mem,size=512M,share=on");
        assert_string_equal(option(v, "-global"), "virtio-mmio.force-legacy=false");
        assert_true(has(v, "-nodefaults"));
        assert_true(has(v, "-no-user-config"));
        assert_true(has(v, "-no-reboot"));
        assert_string_equal(option(v, "-display"), "none");
        assert_string_equal(option(v, "-kernel"), "/kit/vmlinux");
        assert_string_equal(option(v, "-initrd"), "/kit/initrd.gz");
        assert_string_equal(option(v, "-append"), "console=ttyS0 panic=-1 quiet console_msg_format=syslog pci=off "
                                                  "initcall_blacklist=pci_arch_init husk.instance=0123456789ab");
        /* Per-instance files are relative: QEMU runs in the instance directory. */
        assert_string_equal(option(v, "-serial"), "file:console.log");
        assert_string_equal(option(v, "-qmp"), "unix:qmp.sock,server=on,wait=off");
        assert_string_equal(option(v, "-chardev"), "socket,id=agent,path=agent.sock,server=on,wait=off");
        assert_true(has(v, "virtio-serial-device"));
        assert_true(has(v, "virtserialport,chardev=agent,name=husk.agent"));
        assert_string_equal(option(v, "-name"), "husk-0123456789ab");
        /* No image directory: no virtio-fs device. */
        assert_false(has(v, "vhost-user-fs-device,chardev=fs0,tag=rootfs"));
}

static void test_argv_kit_mode(void **state) {
        vmm_qemu_params_t p = base;
        _cleanup_(vmm_strv_freep) char **v = NULL;

        p.fs_socket = "vfs.sock";
        v = build(&p);
        /* vhost-user needs the shared memfd RAM, which every VM has. */
        assert_string_equal(option(v, "-object"), "memory-backend-memfd,id=mem,size=512M,share=on");
        assert_true(has(v, "socket,id=fs0,path=vfs.sock"));
        assert_true(has(v, "vhost-user-fs-device,chardev=fs0,tag=rootfs"));
}

/* One vhost-user-fs device per volume, with its tag, on the kit's microvm and on q35; a firmware
 * boot with volumes gets its RAM in the shared memfd they need. */
static void test_argv_volumes(void **state) {
        static const vmm_launch_volume_t volumes[] = { { .tag = "bind-0", .socket = "bind-0.sock" },
                                                       { .tag = "sec-1", .socket = "sec-1.sock" } };
        vmm_qemu_params_t p = base;
        _cleanup_(vmm_strv_freep) char **kit = NULL, **fw = NULL;

        p.fs_socket = "vfs.sock";
        p.volumes = volumes;
        p.n_volumes = ELEMENTSOF(volumes);
        kit = build(&p);
        assert_true(has(kit, "socket,id=vol0,path=bind-0.sock"));
        assert_true(has(kit, "vhost-user-fs-device,chardev=vol0,tag=bind-0"));
        assert_true(has(kit, "socket,id=vol1,path=sec-1.sock"));
        assert_true(has(kit, "vhost-user-fs-device,chardev=vol1,tag=sec-1"));

        p.fs_socket = NULL;
        p.firmware = "/usr/share/OVMF/OVMF_CODE_4M.fd";
        p.firmware_vars = VMM_QEMU_FIRMWARE_VARS;
        p.boot_disk = "disk.raw";
        fw = build(&p);
        assert_string_equal(option(fw, "-machine"), "q35,memory-backend=mem");
        assert_string_equal(option(fw, "-accel"), "tcg,tb-size=16");
        assert_string_equal(option(fw, "-object"), "memory-backend-memfd,id=mem,size=512M,share=on");
        assert_true(has(fw, "vhost-user-fs-pci,chardev=vol0,tag=bind-0"));
        assert_true(has(fw, "vhost-user-fs-pci,chardev=vol1,tag=sec-1"));
}

/* A disk image with a command: read-only virtio-blk, no virtio-fs. */
static void test_argv_disk_mode(void **state) {
        vmm_qemu_params_t p = base;
        _cleanup_(vmm_strv_freep) char **v = NULL;

        p.disk = "/images/app.raw";
        v = build(&p);
        assert_true(has(v, "file=/images/app.raw,if=none,id=disk0,format=raw,readonly=on"));
        assert_true(has(v, "virtio-blk-device,drive=disk0"));
        assert_false(has(v, "vhost-user-fs-device,chardev=fs0,tag=rootfs"));
}

/* Firmware boot: q35 with OVMF in pflash (the instance's own variables), the instance disk
 * booted first, the seed read-only, PCI devices, the agent on the same husk.agent port; no kit. */
static void test_argv_firmware(void **state) {
        vmm_qemu_params_t p = base;
        _cleanup_(vmm_strv_freep) char **v = NULL;
        vmm_net_t net = { .attached = true,
                          .tap = "hk0",
                          .mac = "52:54:00:00:00:01",
                          .host_ip = "10.42.0.1",
                          .guest_ip = "10.42.0.2",
                          .prefix = 30 };

        p.firmware = "/usr/share/OVMF/OVMF_CODE_4M.fd";
        p.firmware_vars = VMM_QEMU_FIRMWARE_VARS;
        p.boot_disk = "/inst/0123456789ab/disk.qcow2";
        p.boot_disk_format = "qcow2";
        p.seed = "/inst/0123456789ab/seed.img";
        p.net = &net;
        v = build(&p);
        assert_string_equal(option(v, "-machine"), "q35");
        assert_string_equal(option(v, "-accel"), "tcg,tb-size=16");
        assert_true(has(v, "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd"));
        assert_true(has(v, "if=pflash,format=raw,unit=1,file=" VMM_QEMU_FIRMWARE_VARS));
        assert_true(has(v, "if=none,id=disk0,format=qcow2,file=/inst/0123456789ab/disk.qcow2"));
        assert_true(has(v, "virtio-blk-pci,drive=disk0,bootindex=0"));
        assert_true(has(v, "if=none,id=seed,format=raw,readonly=on,file=/inst/0123456789ab/seed.img"));
        assert_true(has(v, "tap,id=n0,ifname=hk0,script=no,downscript=no"));
        assert_true(has(v, "virtio-net-pci,netdev=n0,mac=52:54:00:00:00:01,romfile="));
        assert_string_equal(option(v, "-serial"), "file:console.log");
        assert_string_equal(option(v, "-qmp"), "unix:qmp.sock,server=on,wait=off");
        assert_true(has(v, "virtio-serial-pci"));
        assert_true(has(v, "virtserialport,chardev=agent,name=husk.agent"));
        assert_true(has(v, "-no-reboot"));
        /* A panic ends the VM (guest-panic) rather than hanging it. */
        assert_true(has(v, "pvpanic-pci"));
        /* Nothing of the kit. */
        assert_false(has(v, "-kernel"));
        assert_false(has(v, "-append"));
        assert_false(has(v, "-object"));
        /* A firmware boot without its disk or variables is a programming error. */
        p.boot_disk = NULL;
        assert_int_equal(vmm_qemu_argv(&p, &v), -EINVAL);
}

static void test_firmware_vars(void **state) {
        _cleanup_free_ char *v = NULL;

        assert_int_equal(vmm_qemu_firmware_vars("/usr/share/OVMF/OVMF_CODE_4M.fd", &v), 0);
        assert_string_equal(v, "/usr/share/OVMF/OVMF_VARS_4M.fd");
        free(v);
        v = NULL;
        /* Only the file name's last CODE. */
        assert_int_equal(vmm_qemu_firmware_vars("/CODE/fw/OVMF_CODE.secboot.CODE.fd", &v), 0);
        assert_string_equal(v, "/CODE/fw/OVMF_CODE.secboot.VARS.fd");
        assert_int_equal(vmm_qemu_firmware_vars("/CODE/fw/bios.bin", &v), -EINVAL);
}

static void test_argv_kvm(void **state) {
        vmm_qemu_params_t p = base;
        _cleanup_(vmm_strv_freep) char **v = NULL;

        p.accel = "kvm";
        p.tsc_khz = 2600000; /* only for TCG: KVM guests learn it from the hypervisor */
        v = build(&p);
        assert_string_equal(option(v, "-machine"), "microvm,memory-backend=mem");
        /* The translation cache is TCG's: KVM runs guest code natively. */
        assert_string_equal(option(v, "-accel"), "kvm");
        assert_string_equal(option(v, "-cpu"), "host");
        assert_string_equal(option(v, "-append"), "console=ttyS0 panic=-1 quiet console_msg_format=syslog pci=off "
                                                  "initcall_blacklist=pci_arch_init husk.instance=0123456789ab");
}

static void test_argv_tsc(void **state) {
        vmm_qemu_params_t p = base;
        _cleanup_(vmm_strv_freep) char **v = NULL;

        p.tsc_khz = 2596101;
        v = build(&p);
        assert_string_equal(option(v, "-append"),
                            "console=ttyS0 panic=-1 quiet console_msg_format=syslog pci=off "
                            "initcall_blacklist=pci_arch_init tsc_early_khz=2596101 husk.instance=0123456789ab");
}

static void test_argv_memory_and_paths(void **state) {
        vmm_qemu_params_t p = base;
        _cleanup_(vmm_strv_freep) char **v = NULL;

        p.memory_mib = 128;
        p.cpus = 1;
        p.kernel = "/var/lib/husk kit,v2/vmlinux"; /* spaces and commas pass through as one argument */
        p.initrd = "/opt/k/initrd.gz";
        v = build(&p);
        assert_string_equal(option(v, "-m"), "128");
        assert_string_equal(option(v, "-object"), "memory-backend-memfd,id=mem,size=128M,share=on");
        assert_string_equal(option(v, "-smp"), "1");
        assert_string_equal(option(v, "-kernel"), "/var/lib/husk kit,v2/vmlinux");
        assert_string_equal(option(v, "-initrd"), "/opt/k/initrd.gz");
        assert_null(v[strv_len(v)]);
}

static void test_argv_invalid(void **state) {
        vmm_qemu_params_t p;
        char **v = NULL;

        p = base, p.cpus = 0;
        assert_int_equal(vmm_qemu_argv(&p, &v), -EINVAL);
        p = base, p.memory_mib = 0;
        assert_int_equal(vmm_qemu_argv(&p, &v), -EINVAL);
        p = base, p.kernel = NULL;
        assert_int_equal(vmm_qemu_argv(&p, &v), -EINVAL);
        p = base, p.initrd = NULL;
        assert_int_equal(vmm_qemu_argv(&p, &v), -EINVAL);
        p = base, p.accel = "auto"; /* must be resolved first */
        assert_int_equal(vmm_qemu_argv(&p, &v), -EINVAL);
        assert_null(v);
}

static void test_find_executable(void **state) {
        _cleanup_free_ char *path = NULL;

        assert_int_equal(vmm_find_executable("sh", "/nonexistent:/bin:/usr/bin", &path), 0);
        assert_true(streq(path, "/bin/sh") || streq(path, "/usr/bin/sh"));
        free(path);
        path = NULL;
        assert_int_equal(vmm_find_executable("/bin/sh", NULL, &path), 0);
        assert_string_equal(path, "/bin/sh");
        assert_int_equal(vmm_find_executable("no-such-binary-husk", "/bin:/usr/bin", &path), -ENOENT);
        assert_int_equal(vmm_find_executable("/nonexistent/qemu", NULL, &path), -ENOENT);
        assert_int_equal(vmm_find_executable("", NULL, &path), -EINVAL);
}

/* A template and its clone: the same machine, devices and kernel command line (nothing of an
 * instance on it), RAM in the template's file (shared by the template, private in a clone), the
 * image over 9p, the template's NIC on a hub port and the clone's on its own TAP. */
static void test_argv_template_and_clone(void **state) {
        vmm_net_t template_nic = { .attached = true,
                                   .tap = "-",
                                   .mac = "52:54:00:00:00:01",
                                   .host_ip = "0.0.0.0",
                                   .guest_ip = "0.0.0.0",
                                   .prefix = 30 };
        vmm_net_t clone_nic = { .attached = true,
                                .tap = "husk-abc",
                                .mac = "52:54:00:12:34:56",
                                .host_ip = "10.42.0.1",
                                .guest_ip = "10.42.0.2",
                                .prefix = 30 };
        vmm_qemu_params_t p = base;
        _cleanup_(vmm_strv_freep) char **t = NULL, **c = NULL;
        const char *cmdline = "console=ttyS0 panic=-1 quiet console_msg_format=syslog pci=off "
                              "initcall_blacklist=pci_arch_init husk.instance=husk";

        p.memory_file = "memory";
        p.ninep_export = "empty";
        p.net = &template_nic;
        t = build(&p);
        assert_string_equal(option(t, "-object"), "memory-backend-file,id=mem,size=512M,mem-path=memory,share=on");
        assert_string_equal(option(t, "-append"), cmdline);
        assert_string_equal(option(t, "-netdev"), "hubport,id=n0,hubid=0");
        assert_true(has(t, "virtio-net-device,netdev=n0,mac=52:54:00:00:00:01"));
        assert_string_equal(option(t, "-fsdev"), "local,id=fs0,path=empty,security_model=none,readonly=on");
        assert_true(has(t, "virtio-9p-device,fsdev=fs0,mount_tag=rootfs"));
        assert_null(option(t, "-incoming"));

        p.memory_file = "/run/husk/templates/k/memory";
        p.clone = true;
        p.ninep_export = "/srv/image";
        p.net = &clone_nic;
        c = build(&p);
        assert_string_equal(option(c, "-object"),
                            "memory-backend-file,id=mem,size=512M,mem-path=/run/husk/templates/k/memory,share=off");
        assert_string_equal(option(c, "-append"), cmdline);
        assert_string_equal(option(c, "-netdev"), "tap,id=n0,ifname=husk-abc,script=no,downscript=no");
        assert_true(has(c, "virtio-net-device,netdev=n0,mac=52:54:00:12:34:56"));
        assert_string_equal(option(c, "-fsdev"), "local,id=fs0,path=/srv/image,security_model=none,readonly=on");
        assert_string_equal(option(c, "-incoming"), "defer");
        /* The same devices in the same order: the saved state fits. */
        assert_int_equal(strv_len(t), strv_len(c) - 2);

        /* husk-oci's clone: the bundle's root read-write, owners kept, on the same device. */
        vmm_strv_free(c);
        p.ninep_export_writable = true;
        c = build(&p);
        assert_string_equal(option(c, "-fsdev"), "local,id=fs0,path=/srv/image,security_model=passthrough");
        assert_true(has(c, "virtio-9p-device,fsdev=fs0,mount_tag=rootfs"));
        assert_int_equal(strv_len(t), strv_len(c) - 2);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_accel_resolve),
                cmocka_unit_test(test_argv_tcg),
                cmocka_unit_test(test_argv_kit_mode),
                cmocka_unit_test(test_argv_disk_mode),
                cmocka_unit_test(test_argv_volumes),
                cmocka_unit_test(test_argv_firmware),
                cmocka_unit_test(test_firmware_vars),
                cmocka_unit_test(test_argv_kvm),
                cmocka_unit_test(test_argv_tsc),
                cmocka_unit_test(test_argv_memory_and_paths),
                cmocka_unit_test(test_argv_invalid),
                cmocka_unit_test(test_find_executable),
                cmocka_unit_test(test_argv_template_and_clone),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
