/* cli_doctor_host.c: `husk doctor`'s checks of this host, read from the config file: VMM binaries, KVM, the kit, firmware, virtiofsd, nftables, directories, disk. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli_doctor.h"
#include "lib/host.h"
#include "lib/run.h"

#define VIRTIOFSD "/usr/lib/qemu/virtiofsd" /* vmm_fs.c's */

/* name as vmm-driver resolves a VMM binary: a path as is, else the first in $PATH, then the
 * system's tool directories (a daemon under systemd has those). NULL when not found. */
static char *find_binary(const char *name) {
        char *path = NULL;

        if (strchr(name, '/'))
                return access(name, X_OK) == 0 ? strdup(name) : NULL;
        for (int pass = 0; pass < 2; pass++) {
                _cleanup_free_ char *dirs = strdup(pass == 0 ? getenv("PATH") ?: "" : RUN_TOOL_PATH);
                char *save = NULL;

                for (char *dir = dirs ? strtok_r(dirs, ":", &save) : NULL; dir; dir = strtok_r(NULL, ":", &save)) {
                        struct stat st;

                        if (asprintf(&path, "%s/%s", dir, name) < 0)
                                return NULL;
                        if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0)
                                return path;
                        free(path);
                        path = NULL;
                }
        }
        return NULL;
}

/* The first line of `binary --version`, or NULL. */
static char *version_of(const char *binary) {
        char *const argv[] = { (char *)binary, (char *)"--version", NULL };
        char *out = NULL;

        if (run_tool(argv, NULL, &out) < 0 || !out || !*out) {
                free(out);
                return NULL;
        }
        out[strcspn(out, "\n")] = '\0';
        return out;
}

/* ---- VMMs ------------------------------------------------------------------------------------- */

static void check_qemu(doctor_t *d, const husk_config_t *c) {
        const char *name = c->qemu.binary_path ?: "qemu-system-x86_64";
        _cleanup_free_ char *path = NULL, *version = NULL, *fix = NULL;

        if (!c->qemu.enabled) {
                doctor_add(d, "qemu", DOCTOR_OK, NULL, "runtime qemu is not enabled in %s", c->path);
                return;
        }
        path = find_binary(name);
        if (!path) {
                if (c->qemu.binary_path)
                        fix = doctor_fix("install QEMU at %s, or fix runtime.qemu.binary_path in %s", name, c->path);
                doctor_add(d, "qemu", DOCTOR_FAIL, fix ?: "apt-get install qemu-system-x86", "%s not found", name);
                return;
        }
        version = version_of(path);
        if (!version)
                doctor_add(d, "qemu", DOCTOR_FAIL, "apt-get install --reinstall qemu-system-x86",
                           "%s does not run (%s --version fails)", path, path);
        else
                doctor_add(d, "qemu", DOCTOR_OK, NULL, "%s: %s", path, version);
}

static void check_cloud_hypervisor(doctor_t *d, const husk_config_t *c) {
        const char *name = c->cloud_hypervisor.binary_path ?: "cloud-hypervisor";
        const char *fw = c->cloud_hypervisor.firmware_path;
        _cleanup_free_ char *path = NULL, *version = NULL, *fix = NULL;

        if (!c->cloud_hypervisor.enabled) {
                doctor_add(d, "cloud-hypervisor", DOCTOR_OK, NULL, "runtime cloud-hypervisor is not enabled in %s",
                           c->path);
                return;
        }
        path = find_binary(name);
        version = path ? version_of(path) : NULL;
        if (!version) {
                /* Ring's own instructions: CH is not in Debian. */
                fix = doctor_fix("curl -L https://github.com/cloud-hypervisor/cloud-hypervisor/releases/latest/"
                                 "download/cloud-hypervisor -o %s && chmod +x %s",
                                 strchr(name, '/') ? name : "/usr/local/bin/cloud-hypervisor",
                                 strchr(name, '/') ? name : "/usr/local/bin/cloud-hypervisor");
                doctor_add(d, "cloud-hypervisor", DOCTOR_FAIL, fix, "%s %s", path ?: name,
                           path ? "does not run (--version fails)" : "not found");
        } else
                doctor_add(d, "cloud-hypervisor", DOCTOR_OK, NULL, "%s: %s", path, version);

        free(fix);
        fix = NULL;
        if (!fw) {
                fix = doctor_fix("set runtime.cloud_hypervisor.firmware_path in %s", c->path);
                doctor_add(d, "cloud-hypervisor firmware", DOCTOR_WARN, fix,
                           "runtime.cloud_hypervisor.firmware_path is not set: disk images cannot boot on "
                           "cloud-hypervisor (the kit still does)");
        } else if (access(fw, R_OK) < 0) {
                fix = doctor_fix("curl -L https://github.com/cloud-hypervisor/rust-hypervisor-firmware/releases/latest/"
                                 "download/hypervisor-fw -o %s",
                                 fw);
                doctor_add(d, "cloud-hypervisor firmware", DOCTOR_WARN, fix, "%s: %s: disk images cannot boot", fw,
                           strerror(errno));
        } else
                doctor_add(d, "cloud-hypervisor firmware", DOCTOR_OK, NULL, "%s", fw);
}

/* ---- KVM -------------------------------------------------------------------------------------- */

static uint64_t now_us(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void on_alarm(int sig) { /* Nothing: its arrival makes a blocked KVM_RUN return EINTR. */
}

int doctor_kvm_probe(const char *dev, doctor_kvm_t *ret) {
        /* Real mode at 0x1000: mov dx, 0x3f8; out dx, al; jmp back to the out. Every out is an
         * exit to us: one KVM_RUN round trip, the cost every emulated device access pays. */
        static const uint8_t code[] = { 0xba, 0xf8, 0x03, 0xee, 0xeb, 0xfd };
        _cleanup_close_ int kvm = -1, vm = -1, cpu = -1;
        struct sigaction sa = { .sa_handler = on_alarm }, old_sa;
        struct itimerval budget = { .it_value = { .tv_usec = DOCTOR_KVM_BUDGET_MS * 1000 } }, off = {};
        struct kvm_userspace_memory_region region;
        struct kvm_sregs sregs;
        struct kvm_regs regs = { .rip = 0x1000, .rflags = 2 };
        struct kvm_run *run = MAP_FAILED;
        uint8_t *mem = MAP_FAILED;
        doctor_kvm_t k = {};
        uint64_t t0 = now_us(), t1, deadline;
        int size, r = 0;

        kvm = open(dev, O_RDWR | O_CLOEXEC);
        if (kvm < 0)
                return -errno;
        vm = ioctl(kvm, KVM_CREATE_VM, 0);
        if (vm < 0)
                return -errno;
        mem = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (mem == MAP_FAILED)
                return -errno;
        memcpy(mem, code, sizeof(code));
        region = (struct kvm_userspace_memory_region){ .guest_phys_addr = 0x1000,
                                                       .memory_size = 4096,
                                                       .userspace_addr = (uint64_t)(uintptr_t)mem };
        if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0 || (cpu = ioctl(vm, KVM_CREATE_VCPU, 0)) < 0 ||
            (size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0)) <= 0) {
                r = -errno;
                goto out;
        }
        run = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, cpu, 0);
        if (run == MAP_FAILED || ioctl(cpu, KVM_GET_SREGS, &sregs) < 0) {
                r = -errno;
                goto out;
        }
        sregs.cs.base = 0;
        sregs.cs.selector = 0;
        if (ioctl(cpu, KVM_SET_SREGS, &sregs) < 0 || ioctl(cpu, KVM_SET_REGS, &regs) < 0) {
                r = -errno;
                goto out;
        }

        sigaction(SIGALRM, &sa, &old_sa);
        setitimer(ITIMER_REAL, &budget, NULL);
        t1 = now_us();
        k.setup_us = t1 - t0;
        deadline = t1 + DOCTOR_KVM_BUDGET_MS * 1000;
        while (now_us() < deadline && k.exits < 100000) {
                if (ioctl(cpu, KVM_RUN, 0) < 0) {
                        if (errno == EINTR)
                                k.interrupted = true;
                        else
                                r = -errno;
                        break;
                }
                if (run->exit_reason != KVM_EXIT_IO) {
                        r = -EIO;
                        break;
                }
                k.exits++;
        }
        k.run_us = now_us() - t1;
        setitimer(ITIMER_REAL, &off, NULL);
        sigaction(SIGALRM, &old_sa, NULL);
        if (r == 0)
                *ret = k;
out:
        if (run != MAP_FAILED)
                munmap(run, (size_t)size);
        munmap(mem, 4096);
        return r;
}

/* A KVM_RUN round trip takes a few microseconds on hardware virtualization, tens under good
 * nested virtualization; where each takes 100 µs or more (or setting up one vCPU takes a
 * tenth of a second), a guest kernel that boots in 2 s under TCG takes over a minute. */
doctor_status_t doctor_kvm_verdict(const doctor_kvm_t *k, char *buf, size_t size) {
        uint64_t per_exit = k->exits ? k->run_us / k->exits : UINT64_MAX;

        if (k->interrupted && k->exits == 0) {
                snprintf(buf, size, "a VM exit did not come back within %d ms", DOCTOR_KVM_BUDGET_MS);
                return DOCTOR_WARN;
        }
        if (per_exit >= 100 || k->setup_us >= 100000) {
                snprintf(buf, size, "%llu us per VM exit, %llu ms to make a vCPU", (unsigned long long)per_exit,
                         (unsigned long long)(k->setup_us / 1000));
                return DOCTOR_WARN;
        }
        snprintf(buf, size, "%llu us per VM exit (%llu exits in %llu ms)", (unsigned long long)per_exit,
                 (unsigned long long)k->exits, (unsigned long long)(k->run_us / 1000));
        return DOCTOR_OK;
}

static void check_kvm(doctor_t *d, const husk_config_t *c) {
        const char *accel = c->qemu.accel ?: "auto";
        _cleanup_free_ char *tcg = NULL;
        doctor_kvm_t k;
        char why[160];
        int r;

        if (!c->qemu.enabled)
                return;
        tcg = doctor_fix("set runtime.qemu.accel: tcg in %s", c->path);
        r = doctor_kvm_probe("/dev/kvm", &k);
        if (streq(accel, "tcg")) {
                if (r < 0)
                        doctor_add(d, "kvm", DOCTOR_OK, NULL, "accel tcg: /dev/kvm is not used (%s)", strerror(-r));
                else
                        doctor_add(d, "kvm", DOCTOR_OK, NULL, "accel tcg: /dev/kvm is not used (it would take %s)",
                                   (doctor_kvm_verdict(&k, why, sizeof(why)), why));
                return;
        }
        if (r == -ENOENT) {
                doctor_add(d, "kvm", streq(accel, "kvm") ? DOCTOR_FAIL : DOCTOR_WARN, tcg,
                           "/dev/kvm does not exist: accel %s %s", accel,
                           streq(accel, "kvm") ? "cannot start VMs" : "falls back to TCG");
                return;
        }
        if (r < 0) {
                doctor_add(d, "kvm", streq(accel, "kvm") ? DOCTOR_FAIL : DOCTOR_WARN, tcg, "/dev/kvm is not usable: %s",
                           strerror(-r));
                return;
        }
        if (doctor_kvm_verdict(&k, why, sizeof(why)) != DOCTOR_OK)
                doctor_add(d, "kvm", DOCTOR_WARN, tcg,
                           "/dev/kvm works but is pathologically slow (%s; nested virtualization?): guests boot "
                           "faster under TCG",
                           why);
        else
                doctor_add(d, "kvm", DOCTOR_OK, NULL, "/dev/kvm is usable and fast: %s", why);
}

/* ---- files ------------------------------------------------------------------------------------ */

static void check_kit(doctor_t *d, const husk_config_t *c) {
        const char *files[][2] = { { "kit.kernel", c->kit.kernel }, { "kit.initrd", c->kit.initrd } };

        for (size_t k = 0; k < ELEMENTSOF(files); k++) {
                if (!files[k][1] || access(files[k][1], R_OK) < 0)
                        doctor_add(d, "kit", DOCTOR_FAIL, "make guest && make install",
                                   "%s %s: %s: kit-mode VMs cannot boot", files[k][0], files[k][1] ?: "(unset)",
                                   strerror(files[k][1] ? errno : ENOENT));
                else
                        doctor_add(d, "kit", DOCTOR_OK, NULL, "%s %s", files[k][0], files[k][1]);
        }
}

static void check_ovmf(doctor_t *d, const husk_config_t *c) {
        const char *code = c->qemu.firmware_path;
        char vars[PATH_MAX];
        const char *at;

        if (!c->qemu.enabled)
                return;
        if (!code || access(code, R_OK) < 0) {
                doctor_add(d, "ovmf", DOCTOR_WARN, "apt-get install ovmf",
                           "runtime.qemu.firmware_path %s: %s: disk images cannot boot on qemu (the kit still does)",
                           code ?: "(unset)", strerror(code ? errno : ENOENT));
                return;
        }
        /* Its variables template beside it: ".../OVMF_CODE_4M.fd" -> ".../OVMF_VARS_4M.fd". */
        snprintf(vars, sizeof(vars), "%s", code);
        at = strrchr(vars, '/');
        at = strstr(at ? at : vars, "CODE");
        if (at) {
                memcpy(vars + (at - vars), "VARS", 4);
                if (access(vars, R_OK) < 0) {
                        doctor_add(d, "ovmf", DOCTOR_WARN, "apt-get install --reinstall ovmf",
                                   "%s: %s: disk images cannot boot on qemu", vars, strerror(errno));
                        return;
                }
        }
        doctor_add(d, "ovmf", DOCTOR_OK, NULL, "%s", code);
}

static void check_virtiofsd(doctor_t *d, const husk_config_t *c) {
        if (access(VIRTIOFSD, X_OK) < 0)
                doctor_add(d, "virtiofsd", DOCTOR_FAIL, "apt-get install qemu-system-common",
                           VIRTIOFSD ": %s: directory images and volumes cannot be shared with guests",
                           strerror(errno));
        else
                doctor_add(d, "virtiofsd", DOCTOR_OK, NULL, VIRTIOFSD);
}

static void check_nftables(doctor_t *d, const husk_config_t *c) {
        const char *fw = c->netd.forwarder ?: "auto";
        char *const argv[] = { (char *)"nft", (char *)"list", (char *)"tables", NULL };
        _cleanup_free_ char *out = NULL, *nft = NULL;
        doctor_status_t bad = streq(fw, "nft") ? DOCTOR_FAIL : DOCTOR_WARN;
        int r;

        if (streq(fw, "proxy")) {
                doctor_add(d, "nftables", DOCTOR_OK, NULL, "not used: netd.forwarder is proxy");
                return;
        }
        if (run_find_tool("nft", &nft) < 0) {
                doctor_add(d, "nftables", bad, "apt-get install nftables", "nft not found: %s",
                           streq(fw, "nft") ? "netd cannot start (netd.forwarder: nft)"
                                            : "netd falls back to its userspace forwarder, "
                                              "without isolating guests");
                return;
        }
        r = run_tool(argv, NULL, &out);
        if (r < 0)
                doctor_add(d, "nftables", bad, "modprobe nf_tables", "nft list tables fails: %s",
                           out && *out ? out : strerror(-r));
        else
                doctor_add(d, "nftables", DOCTOR_OK, NULL, "%s works", nft);
}

/* A directory the daemons keep state or sockets in: others may not write to it. One that does
 * not exist yet is made by the daemons at start: said only for a top one (required). */
static void check_dir(doctor_t *d, const char *what, const char *dir, bool required) {
        _cleanup_free_ char *fix = NULL;
        struct stat st;

        if (!dir || (!required && access(dir, F_OK) < 0 && errno == ENOENT))
                return;
        if (stat(dir, &st) < 0) {
                fix = doctor_fix("install -d -m 0700 %s", dir);
                doctor_add(d, "directories", errno == ENOENT ? DOCTOR_WARN : DOCTOR_FAIL, fix, "%s %s: %s%s", what, dir,
                           strerror(errno), errno == ENOENT ? " (the daemons make it when they start)" : "");
                return;
        }
        if (!S_ISDIR(st.st_mode)) {
                fix = doctor_fix("mv %s %s.not-a-directory", dir, dir);
                doctor_add(d, "directories", DOCTOR_FAIL, fix, "%s %s is not a directory", what, dir);
                return;
        }
        if (st.st_mode & S_IWOTH) {
                fix = doctor_fix("chmod o-w %s", dir);
                doctor_add(d, "directories", DOCTOR_FAIL, fix, "%s %s is writable by anyone (mode %04o)", what, dir,
                           st.st_mode & 07777);
                return;
        }
        doctor_add(d, "directories", DOCTOR_OK, NULL, "%s %s (mode %04o, owner %u)", what, dir, st.st_mode & 07777,
                   (unsigned)st.st_uid);
}

/* A secret the daemons keep: for its owner only. Absent is fine (made at first start). */
static void check_secret_file(doctor_t *d, const char *what, const char *path) {
        _cleanup_free_ char *fix = NULL;
        struct stat st;

        if (!path || stat(path, &st) < 0)
                return;
        if (st.st_mode & 077) {
                fix = doctor_fix("chmod 0600 %s", path);
                doctor_add(d, "directories", DOCTOR_FAIL, fix, "%s %s is readable by others (mode %04o)", what, path,
                           st.st_mode & 07777);
        } else
                doctor_add(d, "directories", DOCTOR_OK, NULL, "%s %s (mode %04o)", what, path, st.st_mode & 07777);
}

doctor_status_t doctor_disk_verdict(uint64_t available, uint64_t total) {
        const uint64_t gib = 1024ULL * 1024 * 1024;

        if (available < gib || (total && available * 50 < total))
                return DOCTOR_FAIL;
        if (available < 5 * gib || (total && available * 10 < total))
                return DOCTOR_WARN;
        return DOCTOR_OK;
}

static void check_disk(doctor_t *d, const husk_config_t *c) {
        _cleanup_free_ char *fix = NULL;
        host_disk_t disk;
        doctor_status_t s;
        int r;

        r = host_disk(c->state_dir, &disk);
        if (r < 0) {
                doctor_add(d, "disk", DOCTOR_FAIL, NULL, "cannot tell the free space under %s: %s", c->state_dir,
                           strerror(-r));
                return;
        }
        s = doctor_disk_verdict(disk.available_bytes, disk.total_bytes);
        if (s != DOCTOR_OK)
                fix = doctor_fix("du -xsh %s/* | sort -h  # then remove what is not needed", c->state_dir);
        doctor_add(d, "disk", s, fix, "%.1f GiB free of %.1f GiB under %s", disk.available_bytes / 1073741824.0,
                   disk.total_bytes / 1073741824.0, c->state_dir);
}

void doctor_check_host(doctor_t *d, const husk_config_t *c) {
        _cleanup_free_ char *admin_password = NULL;

        check_qemu(d, c);
        check_kvm(d, c);
        check_ovmf(d, c);
        check_cloud_hypervisor(d, c);
        check_kit(d, c);
        check_virtiofsd(d, c);
        check_nftables(d, c);
        check_dir(d, "state_dir", c->state_dir, true);
        check_dir(d, "runtime_dir", c->runtime_dir, true);
        check_dir(d, "vmm_driver.instances_dir", c->vmm_driver.instances_dir, false);
        check_dir(d, "logd.dir", c->logd.dir, false);
        check_secret_file(d, "apiserver.secrets_key_file", c->apiserver.secrets_key_file);
        if (asprintf(&admin_password, "%s/admin-password", c->state_dir) >= 0)
                check_secret_file(d, "the first admin's password", admin_password);
        check_disk(d, c);
}
