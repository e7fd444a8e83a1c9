/* vmm_qemu.c: the qemu runtime's command line: accelerator choice, TSC frequency, the microvm argv (the kit) and the q35 one (firmware boot). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "services/vmm-driver/vmm_qemu.h"

/* The guest kernel's command line, before the per-instance parameters. microvm has no PCI host
 * (every device is virtio-mmio), and the kernel's pci_arch_init prints "PCI: Fatal: No config
 * space access function found" at KERN_ERR when it finds no config space access: an error line in
 * every healthy boot's logs. pci=off alone does not silence it (the message follows whenever no
 * access method was found, probed or not), so that initcall is skipped too; there is nothing it
 * could find here. */
#define KERNEL_CMDLINE "console=ttyS0 panic=-1 quiet console_msg_format=syslog pci=off initcall_blacklist=pci_arch_init"

const char *vmm_qemu_accel_resolve(const char *configured, bool kvm_usable) {
        if (!configured || streq(configured, "auto"))
                return kvm_usable ? "kvm" : "tcg";
        if (streq(configured, "kvm"))
                return "kvm";
        if (streq(configured, "tcg"))
                return "tcg";
        return NULL;
}

bool vmm_kvm_usable(void) {
        int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

        if (fd < 0)
                return false;
        close(fd);
        return true;
}

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>

static bool cpuinfo_has_flag(const char *cpuinfo, const char *flag) {
        size_t n = strlen(flag);

        for (const char *p = strstr(cpuinfo, flag); p; p = strstr(p + 1, flag))
                if (p[-1] == ' ' && (p[n] == ' ' || p[n] == '\n' || p[n] == '\0'))
                        return true;
        return false;
}

int vmm_host_tsc_khz(uint64_t *ret) {
        _cleanup_free_ char *cpuinfo = NULL;
        struct timespec t0, t1;
        uint64_t c0, c1, ns;
        int r;

        r = read_file("/proc/cpuinfo", 16u << 20, &cpuinfo, NULL);
        if (r < 0)
                return r;
        /* Only an invariant TSC has one frequency worth telling. */
        if (!cpuinfo_has_flag(cpuinfo, "constant_tsc") || !cpuinfo_has_flag(cpuinfo, "nonstop_tsc"))
                return -EOPNOTSUPP;
        clock_gettime(CLOCK_MONOTONIC_RAW, &t0);
        c0 = __rdtsc();
        do
                clock_gettime(CLOCK_MONOTONIC_RAW, &t1);
        while ((uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000000u + (uint64_t)t1.tv_nsec - (uint64_t)t0.tv_nsec <
               20000000u);
        c1 = __rdtsc();
        ns = (uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000000u + (uint64_t)t1.tv_nsec - (uint64_t)t0.tv_nsec;
        if (c1 <= c0 || ns == 0)
                return -EIO;
        *ret = (c1 - c0) * 1000000u / ns;
        return 0;
}
#else
int vmm_host_tsc_khz(uint64_t *ret) { return -EOPNOTSUPP; }
#endif

typedef struct strv_builder {
        char **v;
        size_t n, cap;
        int error;
} strv_builder_t;

static void add(strv_builder_t *b, const char *fmt, ...) _printf_(2, 3);
static void add(strv_builder_t *b, const char *fmt, ...) {
        va_list ap;
        char *s;

        if (b->error)
                return;
        if (b->n + 2 > b->cap) {
                size_t cap = b->cap ? b->cap * 2 : 64;
                char **nv = realloc(b->v, cap * sizeof(char *));
                if (!nv) {
                        b->error = -ENOMEM;
                        return;
                }
                b->v = nv;
                b->cap = cap;
        }
        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0) {
                va_end(ap);
                b->error = -ENOMEM;
                return;
        }
        va_end(ap);
        b->v[b->n++] = s;
        b->v[b->n] = NULL;
}

int vmm_qemu_firmware_vars(const char *firmware, char **ret) {
        const char *base = strrchr(firmware, '/'), *code = NULL;
        char *v;

        base = base ? base + 1 : firmware;
        for (const char *q = strstr(base, "CODE"); q; q = strstr(q + 1, "CODE"))
                code = q;
        if (!code)
                return -EINVAL;
        v = strdup(firmware);
        if (!v)
                return -ENOMEM;
        memcpy(v + (code - firmware), "VARS", 4);
        *ret = v;
        return 0;
}

/* One vhost-user-fs device per volume, on its virtiofsd's socket (vmm_volumes.c). */
static void add_volumes(strv_builder_t *b, const vmm_qemu_params_t *p, const char *device) {
        for (size_t k = 0; k < p->n_volumes; k++) {
                add(b, "-chardev");
                add(b, "socket,id=vol%zu,path=%s", k, p->volumes[k].socket);
                add(b, "-device");
                add(b, "%s,chardev=vol%zu,tag=%s", device, k, p->volumes[k].tag);
        }
}

/* The accelerator (-accel, which excludes -machine accel=): KVM with the host's CPU model, or TCG
 * with a bounded translation cache. */
static void add_accel(strv_builder_t *b, const vmm_qemu_params_t *p) {
        add(b, "-accel");
        if (streq(p->accel, "tcg") && p->tcg_cache_mib > 0)
                add(b, "tcg,tb-size=%" PRIu32, p->tcg_cache_mib);
        else
                add(b, "%s", p->accel);
        if (streq(p->accel, "kvm")) {
                add(b, "-cpu");
                add(b, "host");
        }
}

/* The kit: microvm, direct kernel boot, virtio-mmio devices. */
static void add_kit(strv_builder_t *b, const vmm_qemu_params_t *p, const char *net) {
        /* virtio-fs (vhost-user) needs guest RAM in a shareable memfd, so every VM gets one. A
         * template's RAM is a file instead (saved with it); its clones map that file privately. */
        const char *instance_id = p->instance_id;

        add(b, "-machine");
        add(b, "microvm,memory-backend=mem");
        add_accel(b, p);
        add(b, "-smp");
        add(b, "%u", p->cpus);
        add(b, "-m");
        add(b, "%u", p->memory_mib);
        add(b, "-object");
        if (p->memory_file)
                add(b, "memory-backend-file,id=mem,size=%uM,mem-path=%s,share=%s", p->memory_mib, p->memory_file,
                    p->clone ? "off" : "on");
        else
                add(b, "memory-backend-memfd,id=mem,size=%uM,share=on", p->memory_mib);
        /* vhost-user devices refuse legacy virtio-mmio. */
        add(b, "-global");
        add(b, "virtio-mmio.force-legacy=false");
        add(b, "-nodefaults");
        add(b, "-no-user-config");
        add(b, "-display");
        add(b, "none");
        /* A guest reboot ends the VMM: restarts are the scheduler's decision. */
        add(b, "-no-reboot");
        add(b, "-serial");
        add(b, "file:console.log");
        add(b, "-kernel");
        add(b, "%s", p->kernel);
        add(b, "-initrd");
        add(b, "%s", p->initrd);
        add(b, "-append");
        if (p->memory_file)
                /* A template's guest is every clone's: nothing of one instance. */
                net = "", instance_id = "husk";
        if (streq(p->accel, "tcg") && p->tsc_khz > 0)
                /* Under TCG the guest reads the host's TSC. Its kernel times it against the PIT,
                 * which fails when the host is busy (the emulated CPU is too slow to time the PIT);
                 * it then marks the TSC unstable and waits forever for a jiffy in calibrate_delay.
                 * Giving it the frequency skips that calibration. */
                add(b, KERNEL_CMDLINE " tsc_early_khz=%" PRIu64 " husk.instance=%s%s", p->tsc_khz, instance_id, net);
        else
                add(b, KERNEL_CMDLINE " husk.instance=%s%s", instance_id, net);
        if (p->memory_file && !p->clone && p->net) {
                /* The template's NIC has no TAP: its clones' each get their own. */
                add(b, "-netdev");
                add(b, "hubport,id=n0,hubid=0");
                add(b, "-device");
                add(b, "virtio-net-device,netdev=n0,mac=%s", p->net->mac);
        } else if (p->net) {
                /* netd made the TAP (and owns it): QEMU only opens it, no scripts. */
                add(b, "-netdev");
                add(b, "tap,id=n0,ifname=%s,script=no,downscript=no", p->net->tap);
                add(b, "-device");
                add(b, "virtio-net-device,netdev=n0,mac=%s", p->net->mac);
        }
        add(b, "-qmp");
        add(b, "unix:qmp.sock,server=on,wait=off");
        add(b, "-chardev");
        add(b, "socket,id=agent,path=agent.sock,server=on,wait=off");
        add(b, "-device");
        add(b, "virtio-serial-device");
        add(b, "-device");
        add(b, "virtserialport,chardev=agent,name=%s", AGENT_PORT_NAME);
        if (p->fs_socket) {
                /* Kit mode: the image directory, served by virtiofsd (vmm_fs.c). */
                add(b, "-chardev");
                add(b, "socket,id=fs0,path=%s", p->fs_socket);
                add(b, "-device");
                add(b, "vhost-user-fs-device,chardev=fs0,tag=%s", VMM_FS_TAG);
        }
        if (p->ninep_export) {
                add(b, "-fsdev");
                add(b, "local,id=fs0,path=%s,security_model=%s", p->ninep_export,
                    p->ninep_export_writable ? "passthrough" : "none,readonly=on");
                add(b, "-device");
                add(b, "virtio-9p-device,fsdev=fs0,mount_tag=%s", VMM_FS_TAG);
        }
        for (size_t k = 0; k < p->n_ninep_volumes; k++) {
                /* No volumes given: the template's, its empty export, read-only. passthrough: files
                 * the guest makes keep the owner it gives them, as with virtiofsd. */
                const vmm_launch_volume_t *v = p->ninep_volumes ? &p->ninep_volumes[k] : NULL;

                add(b, "-fsdev");
                add(b, "local,id=vol%zu,path=%s,security_model=passthrough%s", k, v ? v->path : VMM_TEMPLATE_EXPORT,
                    !v || v->readonly ? ",readonly=on" : "");
                add(b, "-device");
                add(b, "virtio-9p-device,fsdev=vol%zu,mount_tag=" VMM_TEMPLATE_VOLUME_TAG, k, k);
        }
        if (p->clone) {
                add(b, "-incoming");
                add(b, "defer");
        }
        add_volumes(b, p, "vhost-user-fs-device");
        if (p->disk) {
                /* Read-only: the agent gives the workload a tmpfs overlay, as in kit mode. */
                add(b, "-drive");
                add(b, "file=%s,if=none,id=disk0,format=%s,readonly=on", p->disk, p->disk_format ?: "raw");
                add(b, "-device");
                add(b, "virtio-blk-device,drive=disk0");
        }
}

/* A disk image booted by its own firmware, as Ring's cloud-hypervisor runtime does: q35 (OVMF
 * has no microvm build in Debian), OVMF in pflash with the instance's own variables, the
 * instance's disk first in the boot order, the cloud-init seed, PCI devices. The agent, if the
 * image carries one, gets the same husk.agent port as in the kit. */
static void add_firmware(strv_builder_t *b, const vmm_qemu_params_t *p) {
        add(b, "-machine");
        /* Volumes (vhost-user-fs) need guest RAM in a shareable memfd, as the kit's. */
        add(b, "q35%s", p->n_volumes ? ",memory-backend=mem" : "");
        add_accel(b, p);
        add(b, "-smp");
        add(b, "%u", p->cpus);
        add(b, "-m");
        add(b, "%u", p->memory_mib);
        if (p->n_volumes) {
                add(b, "-object");
                add(b, "memory-backend-memfd,id=mem,size=%uM,share=on", p->memory_mib);
        }
        add(b, "-nodefaults");
        add(b, "-no-user-config");
        add(b, "-display");
        add(b, "none");
        /* A guest reboot ends the VMM: restarts are the scheduler's decision. */
        add(b, "-no-reboot");
        add(b, "-serial");
        add(b, "file:console.log");
        add(b, "-drive");
        add(b, "if=pflash,format=raw,unit=0,readonly=on,file=%s", p->firmware);
        add(b, "-drive");
        add(b, "if=pflash,format=raw,unit=1,file=%s", p->firmware_vars);
        add(b, "-drive");
        add(b, "if=none,id=disk0,format=%s,file=%s", p->boot_disk_format ?: "raw", p->boot_disk);
        add(b, "-device");
        add(b, "virtio-blk-pci,drive=disk0,bootindex=0");
        if (p->seed) {
                add(b, "-drive");
                add(b, "if=none,id=seed,format=raw,readonly=on,file=%s", p->seed);
                add(b, "-device");
                add(b, "virtio-blk-pci,drive=seed");
        }
        if (p->net) {
                /* netd made the TAP (and owns it): QEMU only opens it, no scripts. romfile=: no
                 * iPXE option ROM, the firmware boots the disk. */
                add(b, "-netdev");
                add(b, "tap,id=n0,ifname=%s,script=no,downscript=no", p->net->tap);
                add(b, "-device");
                add(b, "virtio-net-pci,netdev=n0,mac=%s,romfile=", p->net->mac);
        }
        add(b, "-qmp");
        add(b, "unix:qmp.sock,server=on,wait=off");
        add(b, "-chardev");
        add(b, "socket,id=agent,path=agent.sock,server=on,wait=off");
        add(b, "-device");
        add(b, "virtio-serial-pci");
        add(b, "-device");
        add(b, "virtserialport,chardev=agent,name=%s", AGENT_PORT_NAME);
        /* A guest kernel that panics tells QEMU (Linux's pvpanic-pci driver), which exits with
         * SHUTDOWN reason guest-panic: a crash ends the VM, and a job fails, even where the
         * image's kernel would sit in its panic forever (Debian's default panic=0). */
        add(b, "-device");
        add(b, "pvpanic-pci");
        add_volumes(b, p, "vhost-user-fs-pci");
}

int vmm_qemu_argv(const vmm_qemu_params_t *p, char ***ret) {
        strv_builder_t b = {};
        char net[96] = "";

        if (p->net && (!p->net->tap[0] || !p->net->mac[0] || !p->net->guest_ip[0]))
                return -EINVAL;
        /* The agent configures eth0 from these (SCHEMA.md, Agent: boot parameters); no gateway
         * (husk-oci on a network namespace without a default route): no husk.gw. */
        if (p->net && snprintf(net, sizeof(net), " husk.ip=%s/%u%s%s", p->net->guest_ip, p->net->prefix,
                               p->net->host_ip[0] ? " husk.gw=" : "", p->net->host_ip) >= (int)sizeof(net))
                return -EINVAL;

        if (!p->binary || !p->accel || !p->instance_id || p->cpus == 0 || p->memory_mib == 0)
                return -EINVAL;
        if (p->firmware ? !p->firmware_vars || !p->boot_disk : !p->kernel || !p->initrd)
                return -EINVAL;
        if (!streq(p->accel, "kvm") && !streq(p->accel, "tcg"))
                return -EINVAL;

        add(&b, "%s", p->binary);
        add(&b, "-name");
        add(&b, "husk-%s", p->instance_id);
        if (p->firmware)
                add_firmware(&b, p);
        else
                add_kit(&b, p, net);

        if (b.error) {
                vmm_strv_free(b.v);
                return b.error;
        }
        *ret = b.v;
        return 0;
}
