/* oci_agent.h: the frames husk-oci sends husk-agent (agent protocol v2, proto/SCHEMA.md "Agent"). */
#pragma once

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#include "cli/oci/oci_spec.h"
#include "cli/oci/oci_vm.h"
#include "proto/agent_identity.h"

#define OCI_AGENT_VERSION 2
#define OCI_AGENT_STDIN_MAX 65536u /* bytes of one proc.stdin: AGENT_PROC_DATA_MAX */

/* Each packs one frame body into sb (cleared first). */
void oci_agent_pack_hello(msgpack_sbuffer *sb, uint64_t id);
/* start {mode rootfs, tag rootfs, writable, command nil, hostname, mounts, fs}: the root prepared,
 * nothing run. ninep: a clone's root and mounts are 9p shares (fs "9p"); else virtio-fs. */
void oci_agent_pack_start(msgpack_sbuffer *sb, uint64_t id, const char *hostname, const oci_vm_mount_t *mounts,
                          size_t n_mounts, bool ninep);
/* identity: a clone becomes this container's VM (proto/agent_identity.h). */
void oci_agent_pack_identity(msgpack_sbuffer *sb, uint64_t id, const agent_identity_t *identity);
/* -EINVAL: a proc name or an rlimit the protocol cannot carry. */
int oci_agent_pack_proc_create(msgpack_sbuffer *sb, uint64_t id, const char *proc, const oci_process_t *process,
                               bool start);
/* {type, id, proc}: proc.start, proc.list... */
void oci_agent_pack_proc(msgpack_sbuffer *sb, const char *type, uint64_t id, const char *proc);
void oci_agent_pack_proc_signal(msgpack_sbuffer *sb, uint64_t id, const char *proc, int sig, bool all);
/* data NULL: {eof: true}. */
void oci_agent_pack_proc_stdin(msgpack_sbuffer *sb, const char *proc, const void *data, size_t size);
void oci_agent_pack_proc_resize(msgpack_sbuffer *sb, uint64_t id, const char *proc, unsigned rows, unsigned cols);
void oci_agent_pack_shutdown(msgpack_sbuffer *sb, uint64_t id, uint64_t grace_ms);
/* A bin (or str) field of a decoded frame, pointing into it. */
int oci_agent_bin(const msgpack_object *map, const char *key, const char **ret, size_t *ret_size);
