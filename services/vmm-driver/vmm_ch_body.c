/* vmm_ch_body.c: what husk tells cloud-hypervisor: its command line, the kit's kernel command line and vm.create's VmConfig (cloud-hypervisor-openapi.yaml). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "services/vmm-driver/vmm_ch.h"

/* The kit's console is CH's serial port (ttyS0 on x86); the guest panics into a reset, which
 * vmm-driver turns into an exit as QEMU's -no-reboot does. Unlike QEMU's microvm, CH's devices
 * are virtio-pci, so PCI stays on. CH has no virtio-serial: husk.transport=vsock makes the kit's
 * agent listen on AF_VSOCK (SCHEMA.md, Agent: boot parameters). */
#define KERNEL_CMDLINE "console=ttyS0 panic=-1 quiet console_msg_format=syslog husk.transport=vsock"

int vmm_ch_cmdline(const vmm_ch_params_t *p, char **ret) {
        int n;

        if (!p->instance_id)
                return -EINVAL;
        if (p->net && (!p->net->guest_ip[0] || !p->net->host_ip[0]))
                return -EINVAL;
        /* The agent configures eth0 from husk.ip/husk.gw (SCHEMA.md, Agent: boot parameters). */
        if (p->net)
                n = asprintf(ret, KERNEL_CMDLINE " husk.instance=%s husk.ip=%s/%u husk.gw=%s", p->instance_id,
                             p->net->guest_ip, p->net->prefix, p->net->host_ip);
        else
                n = asprintf(ret, KERNEL_CMDLINE " husk.instance=%s", p->instance_id);
        return n < 0 ? -ENOMEM : 0;
}

/* Each json_object_set_new() below takes its value even when it fails; one check at the end
 * (json_pack's "s?" would hide which key was wrong). */
/* The image's share (tag rootfs) and one per volume, each on its virtiofsd's socket. */
static json_t *fs_devices(const vmm_ch_params_t *p) {
        json_t *a = json_array();

        if (a && p->fs_socket &&
            json_array_append_new(a, json_pack("{s:s, s:s, s:I, s:I, s:s}", "tag", VMM_FS_TAG, "socket", p->fs_socket,
                                               "num_queues", (json_int_t)1, "queue_size", (json_int_t)1024, "id",
                                               "fs0")) < 0)
                json_decref(TAKE_PTR(a));
        for (size_t k = 0; a && k < p->n_volumes; k++) {
                char id[24];

                snprintf(id, sizeof(id), "vol%zu", k);
                if (json_array_append_new(a, json_pack("{s:s, s:s, s:I, s:I, s:s}", "tag", p->volumes[k].tag, "socket",
                                                       p->volumes[k].socket, "num_queues", (json_int_t)1, "queue_size",
                                                       (json_int_t)1024, "id", id)) < 0)
                        json_decref(TAKE_PTR(a));
        }
        return a;
}

static int set(json_t *o, const char *key, json_t *v) { return v && json_object_set_new(o, key, v) == 0 ? 0 : -ENOMEM; }

static const char *image_type(const char *format) { return format && streq(format, "qcow2") ? "Qcow2" : "Raw"; }

static json_t *disk(const char *path, const char *format, bool readonly, const char *id) {
        json_t *d = json_object();
        int r = 0;

        if (!d)
                return NULL;
        r |= set(d, "path", json_string(path));
        r |= set(d, "readonly", json_boolean(readonly));
        r |= set(d, "image_type", json_string(image_type(format)));
        r |= set(d, "id", json_string(id));
        if (r) {
                json_decref(d);
                return NULL;
        }
        return d;
}

static json_t *payload(const vmm_ch_params_t *p) {
        _cleanup_free_ char *cmdline = NULL;
        json_t *o = json_object();
        int r = 0;

        if (!o)
                return NULL;
        if (p->firmware)
                r |= set(o, "firmware", json_string(p->firmware));
        else {
                r |= vmm_ch_cmdline(p, &cmdline) < 0;
                r |= set(o, "kernel", json_string(p->kernel));
                r |= set(o, "initramfs", json_string(p->initrd));
                r |= set(o, "cmdline", json_string(cmdline));
        }
        if (r) {
                json_decref(o);
                return NULL;
        }
        return o;
}

static json_t *disks(const vmm_ch_params_t *p) {
        json_t *a = json_array();
        int r = 0;

        if (!a)
                return NULL;
        /* The boot disk first: the firmware boots the first disk it finds. */
        if (p->boot_disk)
                r |= json_array_append_new(a, disk(p->boot_disk, p->boot_disk_format, false, "disk0"));
        else if (p->disk)
                r |= json_array_append_new(a, disk(p->disk, p->disk_format, true, "disk0"));
        if (p->seed)
                r |= json_array_append_new(a, disk(p->seed, "raw", true, "seed"));
        if (r) {
                json_decref(a);
                return NULL;
        }
        return a;
}

int vmm_ch_vm_config(const vmm_ch_params_t *p, json_t **ret) {
        json_t *c;
        int r = 0;

        if (!p->instance_id || p->cpus == 0 || p->memory_mib == 0)
                return -EINVAL;
        if (p->firmware ? !p->boot_disk : !p->kernel || !p->initrd)
                return -EINVAL;
        if (p->net && (!p->net->tap[0] || !p->net->mac[0]))
                return -EINVAL;
        if (!p->console || !p->vsock_socket)
                return -EINVAL;
        c = json_object();
        if (!c)
                return -ENOMEM;

        r |= set(c, "cpus",
                 json_pack("{s:I, s:I}", "boot_vcpus", (json_int_t)p->cpus, "max_vcpus", (json_int_t)p->cpus));
        /* vhost-user (virtiofsd) maps guest RAM: it must be shared. */
        r |= set(c, "memory",
                 json_pack("{s:I, s:b}", "size", (json_int_t)p->memory_mib << 20, "shared",
                           p->fs_socket != NULL || p->n_volumes > 0));
        r |= set(c, "payload", payload(p));
        if (p->boot_disk || p->disk || p->seed)
                r |= set(c, "disks", disks(p));
        if (p->net)
                /* netd made the TAP and owns it: CH only opens it (no CAP_NET_ADMIN), no ip/mask, so
                 * it configures nothing on the host side. */
                r |= set(c, "net",
                         json_pack("[{s:s, s:s, s:s}]", "tap", p->net->tap, "mac", p->net->mac, "id", "net0"));
        if (p->fs_socket || p->n_volumes > 0)
                r |= set(c, "fs", fs_devices(p));
        r |= set(c, "serial", json_pack("{s:s, s:s}", "mode", "File", "file", p->console));
        r |= set(c, "console", json_pack("{s:s}", "mode", "Off"));
        /* Hybrid vsock: the host reaches the agent through a unix socket of the instance directory. */
        r |= set(c, "vsock",
                 json_pack("{s:I, s:s, s:s}", "cid", (json_int_t)VMM_CH_GUEST_CID, "socket", p->vsock_socket, "id",
                           "vsock0"));
        /* A guest panic is reported as an event before the guest resets. */
        r |= set(c, "pvpanic", json_true());
        if (r) {
                json_decref(c);
                return -ENOMEM;
        }
        *ret = c;
        return 0;
}

int vmm_ch_argv(const char *binary, const char *seccomp, char ***ret) {
        const char *args[] = {
                binary,
                "--api-socket",
                "path=" VMM_CH_API_SOCKET,
                "--event-monitor",
                "path=" VMM_CH_EVENTS,
                "--seccomp",
                seccomp ?: "true",
                NULL,
        };
        char **v;

        if (!binary)
                return -EINVAL;
        v = calloc(ELEMENTSOF(args), sizeof(char *));
        if (!v)
                return -ENOMEM;
        for (size_t k = 0; args[k]; k++)
                if (!(v[k] = strdup(args[k]))) {
                        vmm_strv_free(v);
                        return -ENOMEM;
                }
        *ret = v;
        return 0;
}
