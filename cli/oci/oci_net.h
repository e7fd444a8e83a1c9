/* oci_net.h: a container's network namespace as the VM's NIC: a TAP beside the namespace's veth, traffic redirected both ways (tc mirred, as Kata does), the guest taking the veth's address and MAC. */
#pragma once

#include "services/vmm-driver/vmm.h"

typedef struct oci_net {
        bool attached;
        char veth[16]; /* the namespace's interface the guest stands in for */
        vmm_net_t vm;  /* tap, mac, guest_ip/prefix, host_ip (the default gateway, "" without one) */
} oci_net_t;

/* Enter the network namespace at path (this process stays in it: QEMU is spawned from here),
 * find its interface with an IPv4 address, make the TAP and the redirects. *ret_error says why not. */
int oci_net_attach(const char *path, oci_net_t *ret, char **ret_error);
/* Remove the TAP and the redirects (the namespace may outlive the container: a CNI's or Docker's). */
void oci_net_detach(oci_net_t *n);
