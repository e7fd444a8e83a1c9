/* agent_identity.h: the identity a template's clone takes (proto/SCHEMA.md "Agent", identity): the one packer of its request, for every host side that sends it. */
#pragma once

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

typedef struct agent_identity {
        const char *hostname;
        const uint8_t *entropy; /* 32 to 512 bytes, fresh for each request */
        size_t entropy_size;
        uint64_t time_ns; /* the wall clock to set */
        const char *mac;  /* eth0's; NULL: no network (ip, prefix, gw unused) */
        const char *ip;   /* dotted IPv4 */
        uint32_t prefix;  /* 1..32 */
        const char *gw;   /* the default route's gateway; NULL or "": no route */
} agent_identity_t;

/* How many keys agent_identity_pack() packs: the caller's map has them after type and id. */
size_t agent_identity_keys(const agent_identity_t *id);
void agent_identity_pack(msgpack_packer *pk, const agent_identity_t *id);
