/* attachment.h: netd's attachment of an instance, as net.attach answers it, net.list lists it and
 * net.attached / net.detached carry it (see proto/SCHEMA.md, "netd"; proto/schema.yaml,
 * "attachment"). netd packs it, vmm-driver reads it: one codec for both. */
#pragma once

#include <msgpack.h>
#include <stddef.h>

#include "proto/instance.h"
#include "proto/port.h"
#include "proto/schema.h"

#define ATTACHMENT_TAP_MAX 15 /* IFNAMSIZ - 1 */
#define ATTACHMENT_MAC_MAX 17 /* xx:xx:xx:xx:xx:xx */

typedef struct attachment {
        char instance_id[INSTANCE_ID_LEN + 1];
        char tap[ATTACHMENT_TAP_MAX + 1];
        char mac[ATTACHMENT_MAC_MAX + 1];
        char host_ip[PROTO_ADDRESS_MAX + 1]; /* the host end of the /30: the guest's gateway */
        char guest_ip[PROTO_ADDRESS_MAX + 1];
        unsigned prefix;    /* 30 */
        port_spec_t *ports; /* owned after attachment_unpack; borrowed to pack */
        size_t n_ports;
} attachment_t;

void attachment_clear(attachment_t *a); /* frees ports; leaves *a zeroed */
/* A map of the attachment's 7 keys plus extra more the caller packs after it (an event's ts). */
void attachment_pack(msgpack_packer *pk, const attachment_t *a, size_t extra);
/* Decode; unknown keys are ignored. -EBADMSG with e naming the field when something is missing,
 * of the wrong type or out of bounds (instance_id not an instance id, an address not dotted IPv4,
 * prefix above 32); *a is then cleared. */
int attachment_unpack(const msgpack_object *o, attachment_t *a, proto_error_t *e);
