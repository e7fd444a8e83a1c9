/* agent_identity.c: the identity request's body (agent_identity.h). */
#include "proto/agent_identity.h"

#include "lib/mp.h"

static bool has_gw(const agent_identity_t *id) { return id->gw && id->gw[0]; }

size_t agent_identity_keys(const agent_identity_t *id) { return 3 + (id->mac ? 3 + (has_gw(id) ? 1 : 0) : 0); }

void agent_identity_pack(msgpack_packer *pk, const agent_identity_t *id) {
        mp_pack_kv_str(pk, "hostname", id->hostname);
        mp_pack_str(pk, "entropy");
        msgpack_pack_bin(pk, id->entropy_size);
        msgpack_pack_bin_body(pk, id->entropy, id->entropy_size);
        mp_pack_kv_u64(pk, "time_ns", id->time_ns);
        if (!id->mac)
                return;
        mp_pack_kv_str(pk, "mac", id->mac);
        mp_pack_kv_str(pk, "ip", id->ip);
        mp_pack_kv_u64(pk, "prefix", id->prefix);
        if (has_gw(id))
                mp_pack_kv_str(pk, "gw", id->gw);
}
