/* oci_agent.c: the frames husk-oci sends husk-agent (agent protocol v2, proto/SCHEMA.md "Agent": start with writable and no command, proc.*). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli/oci/oci_agent.h"
#include "lib/mp.h"
#include "proto/agent_proc.h"

typedef struct packer {
        msgpack_sbuffer *sb;
        msgpack_packer pk;
} packer_t;

static msgpack_packer *begin(packer_t *p, msgpack_sbuffer *sb, const char *type, size_t n_fields) {
        msgpack_sbuffer_clear(sb);
        p->sb = sb;
        msgpack_packer_init(&p->pk, sb, msgpack_sbuffer_write);
        msgpack_pack_map(&p->pk, 1 + n_fields);
        mp_pack_kv_str(&p->pk, "type", type);
        return &p->pk;
}

void oci_agent_pack_hello(msgpack_sbuffer *sb, uint64_t id) {
        packer_t p;
        msgpack_packer *pk = begin(&p, sb, "hello", 2);

        mp_pack_kv_u64(pk, "id", id);
        mp_pack_kv_u64(pk, "version", OCI_AGENT_VERSION);
}

void oci_agent_pack_start(msgpack_sbuffer *sb, uint64_t id, const char *hostname, const oci_vm_mount_t *mounts,
                          size_t n_mounts, bool ninep) {
        packer_t p;
        msgpack_packer *pk = begin(&p, sb, "start", 10);

        mp_pack_kv_u64(pk, "id", id);
        mp_pack_kv_str(pk, "mode", "rootfs");
        mp_pack_kv_str(pk, "tag", "rootfs");
        /* The bundle's rootfs is the container's own: no overlay, writes reach the host. */
        mp_pack_kv_bool(pk, "writable", true);
        /* No workload: processes come with proc.create. */
        mp_pack_kv_str(pk, "command", NULL);
        mp_pack_str(pk, "env");
        msgpack_pack_map(pk, 0);
        mp_pack_kv_str(pk, "kind", "worker");
        mp_pack_kv_str(pk, "hostname", hostname);
        mp_pack_kv_str(pk, "fs", ninep ? "9p" : "virtiofs");
        mp_pack_str(pk, "mounts");
        msgpack_pack_array(pk, n_mounts);
        for (size_t k = 0; k < n_mounts; k++) {
                msgpack_pack_map(pk, mounts[k].file ? 4 : 3);
                mp_pack_kv_str(pk, "tag", mounts[k].tag);
                mp_pack_kv_str(pk, "destination", mounts[k].destination);
                mp_pack_kv_bool(pk, "readonly", mounts[k].readonly);
                if (mounts[k].file)
                        mp_pack_kv_str(pk, "file", mounts[k].file);
        }
}

void oci_agent_pack_identity(msgpack_sbuffer *sb, uint64_t id, const agent_identity_t *identity) {
        packer_t p;
        msgpack_packer *pk = begin(&p, sb, "identity", 1 + agent_identity_keys(identity));

        mp_pack_kv_u64(pk, "id", id);
        agent_identity_pack(pk, identity);
}

/* The proc.* frames: proto/agent_proc.h's codec, the one husk-agent decodes with. */
static void pack_with(msgpack_sbuffer *sb, msgpack_packer *pk) {
        msgpack_sbuffer_clear(sb);
        msgpack_packer_init(pk, sb, msgpack_sbuffer_write);
}

int oci_agent_pack_proc_create(msgpack_sbuffer *sb, uint64_t id, const char *proc, const oci_process_t *process,
                               bool start) {
        agent_rlimit_t rlimits[AGENT_PROC_RLIMITS_MAX];
        agent_proc_create_t c = { .id = id,
                                  .args = process->args,
                                  .env = process->env,
                                  .cwd = process->cwd,
                                  .uid = process->uid,
                                  .gid = process->gid,
                                  .gids = process->additional_gids,
                                  .n_gids = process->n_additional_gids,
                                  .terminal = process->terminal,
                                  /* 0 before the caller sized the terminal: the usual default. */
                                  .rows = (uint16_t)(process->rows ?: 24),
                                  .cols = (uint16_t)(process->cols ?: 80),
                                  .rlimits = rlimits,
                                  .no_new_privileges = process->no_new_privileges,
                                  .start = start };
        msgpack_packer pk;

        if (!agent_proc_name_valid(proc) || process->n_rlimits > AGENT_PROC_RLIMITS_MAX ||
            process->n_additional_gids > AGENT_PROC_GIDS_MAX)
                return -EINVAL;
        snprintf(c.proc, sizeof(c.proc), "%s", proc);
        for (size_t k = 0; k < process->n_rlimits; k++) {
                int resource = agent_rlimit_from_string(process->rlimits[k].type);

                if (resource < 0)
                        return -EINVAL;
                rlimits[c.n_rlimits++] = (agent_rlimit_t){ .resource = resource,
                                                           .soft = process->rlimits[k].soft,
                                                           .hard = process->rlimits[k].hard };
        }
        pack_with(sb, &pk);
        agent_proc_create_pack(&pk, &c);
        return 0;
}

void oci_agent_pack_proc(msgpack_sbuffer *sb, const char *type, uint64_t id, const char *proc) {
        agent_proc_ref_t r = { .id = id };
        msgpack_packer pk;

        snprintf(r.proc, sizeof(r.proc), "%s", proc);
        pack_with(sb, &pk);
        agent_proc_ref_pack(&pk, type, &r);
}

void oci_agent_pack_proc_signal(msgpack_sbuffer *sb, uint64_t id, const char *proc, int sig, bool all) {
        agent_proc_signal_t s = { .id = id, .signal = (uint32_t)sig, .all = all };
        msgpack_packer pk;

        snprintf(s.proc, sizeof(s.proc), "%s", proc);
        pack_with(sb, &pk);
        agent_proc_signal_pack(&pk, &s);
}

void oci_agent_pack_proc_stdin(msgpack_sbuffer *sb, const char *proc, const void *data, size_t size) {
        agent_proc_stdin_t s = { .data = data, .size = data ? size : 0, .eof = !data };
        msgpack_packer pk;

        snprintf(s.proc, sizeof(s.proc), "%s", proc);
        pack_with(sb, &pk);
        agent_proc_stdin_pack(&pk, &s);
}

void oci_agent_pack_proc_resize(msgpack_sbuffer *sb, uint64_t id, const char *proc, unsigned rows, unsigned cols) {
        agent_proc_resize_t r = { .id = id,
                                  .rows = (uint16_t)(rows > AGENT_PROC_TTY_MAX ? AGENT_PROC_TTY_MAX : rows),
                                  .cols = (uint16_t)(cols > AGENT_PROC_TTY_MAX ? AGENT_PROC_TTY_MAX : cols) };
        msgpack_packer pk;

        snprintf(r.proc, sizeof(r.proc), "%s", proc);
        pack_with(sb, &pk);
        agent_proc_resize_pack(&pk, &r);
}

void oci_agent_pack_shutdown(msgpack_sbuffer *sb, uint64_t id, uint64_t grace_ms) {
        packer_t p;
        msgpack_packer *pk = begin(&p, sb, "shutdown", 2);

        mp_pack_kv_u64(pk, "id", id);
        mp_pack_kv_u64(pk, "grace_ms", grace_ms);
}

int oci_agent_bin(const msgpack_object *map, const char *key, const char **ret, size_t *ret_size) {
        const msgpack_object *o = mp_map_get(map, key);

        if (!o)
                return -ENOENT;
        if (o->type == MSGPACK_OBJECT_BIN) {
                *ret = o->via.bin.ptr;
                *ret_size = o->via.bin.size;
                return 0;
        }
        if (o->type == MSGPACK_OBJECT_STR) {
                *ret = o->via.str.ptr;
                *ret_size = o->via.str.size;
                return 0;
        }
        return -EBADMSG;
}
