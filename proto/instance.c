/* instance.c: msgpack codec of the instance spec, the instance record and instance.* events. */
#include "proto/instance.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/mp.h"

#define PATH_MAX_ 4096
#define WORD_MAX 32
#define REASON_MAX 64
#define ADDRESS_MAX 15 /* dotted IPv4 */

bool instance_id_valid(const char *id) {
        if (!id || strlen(id) != INSTANCE_ID_LEN)
                return false;
        for (const char *p = id; *p; p++)
                if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
                        return false;
        return true;
}

void instance_spec_clear(instance_spec_t *s) {
        free(s->instance_id);
        free(s->deployment_id);
        free(s->runtime);
        free(s->image);
        free(s->kernel);
        free(s->initrd);
        free(s->boot);
        free(s->kind);
        mp_strv_free(s->command);
        mp_strv_free(s->environment);
        mp_strv_free_secret(s->secret_environment);
        free(s->ports);
        volumes_free(s->volumes, s->n_volumes);
        memset(s, 0, sizeof(*s));
}

/* with_secrets: instance.create's arguments (secret values, the volumes' files); never for what is
 * published or written down. */
static size_t instance_spec_nkeys(const instance_spec_t *s, bool with_secrets) {
        return 7 + (s->kernel ? 1 : 0) + (s->initrd ? 1 : 0) + (s->boot ? 1 : 0) + (s->kind ? 1 : 0) +
               (s->command ? 1 : 0) + (s->environment ? 1 : 0) + (s->n_ports ? 1 : 0) + (s->n_volumes ? 1 : 0) +
               (with_secrets && s->secret_environment ? 1 : 0);
}

static void instance_spec_pack_fields(msgpack_packer *pk, const instance_spec_t *s, bool with_secrets) {
        mp_pack_kv_str(pk, "instance_id", s->instance_id);
        mp_pack_kv_str(pk, "deployment_id", s->deployment_id);
        mp_pack_kv_u64(pk, "generation", s->generation);
        mp_pack_kv_str(pk, "runtime", s->runtime);
        mp_pack_kv_str(pk, "image", s->image);
        if (s->kernel)
                mp_pack_kv_str(pk, "kernel", s->kernel);
        if (s->initrd)
                mp_pack_kv_str(pk, "initrd", s->initrd);
        if (s->boot)
                mp_pack_kv_str(pk, "boot", s->boot);
        mp_pack_kv_u64(pk, "cpus", s->cpus);
        mp_pack_kv_u64(pk, "memory_mib", s->memory_mib);
        if (s->kind)
                mp_pack_kv_str(pk, "kind", s->kind);
        if (s->command)
                mp_pack_kv_strv(pk, "command", s->command);
        if (s->environment)
                mp_pack_kv_env(pk, "environment", s->environment);
        if (s->n_ports) {
                mp_pack_str(pk, "ports");
                ports_pack(pk, s->ports, s->n_ports);
        }
        if (with_secrets && s->secret_environment)
                mp_pack_kv_env(pk, "secret_environment", s->secret_environment);
        if (s->n_volumes) {
                mp_pack_str(pk, "volumes");
                volumes_pack(pk, s->volumes, s->n_volumes, with_secrets);
        }
}

void instance_spec_pack(msgpack_packer *pk, const instance_spec_t *s) {
        msgpack_pack_map(pk, instance_spec_nkeys(s, true));
        instance_spec_pack_fields(pk, s, true);
}

static int get_u32(const msgpack_object *o, const char *key, uint32_t *ret) {
        uint64_t v;
        int r = mp_get_u64(o, key, &v);

        if (r < 0)
                return r;
        if (v > UINT32_MAX)
                return -ERANGE;
        *ret = (uint32_t)v;
        return 0;
}

static int get_optional_str(const msgpack_object *o, const char *key, size_t max, char **ret) {
        int r = mp_get_str(o, key, max, ret);
        return r == -ENOENT ? 0 : r;
}

static int get_optional_u64(const msgpack_object *o, const char *key, uint64_t *ret) {
        int r = mp_get_u64(o, key, ret);
        return r == -ENOENT ? 0 : r;
}

int instance_spec_unpack(const msgpack_object *o, instance_spec_t *s) {
        int r;

        memset(s, 0, sizeof(*s));
        if (!o || o->type != MSGPACK_OBJECT_MAP)
                goto malformed;
        if (mp_get_str(o, "instance_id", PROTO_ID_MAX, &s->instance_id) < 0 ||
            mp_get_str(o, "deployment_id", PROTO_ID_MAX, &s->deployment_id) < 0 ||
            mp_get_u64(o, "generation", &s->generation) < 0 || mp_get_str(o, "runtime", WORD_MAX, &s->runtime) < 0 ||
            mp_get_str(o, "image", PATH_MAX_, &s->image) < 0 ||
            get_optional_str(o, "kernel", PATH_MAX_, &s->kernel) < 0 ||
            get_optional_str(o, "initrd", PATH_MAX_, &s->initrd) < 0 ||
            get_optional_str(o, "boot", WORD_MAX, &s->boot) < 0 || get_u32(o, "cpus", &s->cpus) < 0 ||
            get_u32(o, "memory_mib", &s->memory_mib) < 0 || ports_get(o, &s->ports, &s->n_ports) < 0 ||
            volumes_get(o, &s->volumes, &s->n_volumes) < 0)
                goto malformed;
        if (get_optional_str(o, "kind", WORD_MAX, &s->kind) < 0)
                goto malformed;
        r = mp_get_strv(o, "command", &s->command);
        if (r < 0 && r != -ENOENT)
                goto malformed;
        r = mp_get_env(o, "environment", &s->environment);
        if (r < 0 && r != -ENOENT)
                goto malformed;
        r = mp_get_env(o, "secret_environment", &s->secret_environment);
        if (r < 0 && r != -ENOENT)
                goto malformed;
        return 0;

malformed:
        instance_spec_clear(s);
        return -EBADMSG;
}

void instance_clear(instance_t *i) {
        instance_spec_clear(&i->spec);
        free(i->state);
        free(i->exit_reason);
        free(i->exit_message);
        free(i->address);
        free(i->template);
        memset(i, 0, sizeof(*i));
}

static void instance_pack_with(msgpack_packer *pk, const instance_t *i, bool with_ts, uint64_t ts) {
        msgpack_pack_map(pk, instance_spec_nkeys(&i->spec, false) + 7 + (with_ts ? 1 : 0) + (i->exit_message ? 1 : 0) +
                                     (i->address ? 1 : 0) + (i->spawned_at_ns ? 1 : 0) + (i->ready_at_ns ? 1 : 0) +
                                     (i->firmware_boot ? 1 : 0) + (i->template ? 1 : 0));
        if (with_ts)
                mp_pack_kv_u64(pk, "ts", ts);
        instance_spec_pack_fields(pk, &i->spec, false);
        mp_pack_kv_str(pk, "state", i->state);
        mp_pack_kv_i64(pk, "pid", i->pid);
        mp_pack_kv_u64(pk, "started_at", i->started_at);
        mp_pack_kv_u64(pk, "ready_at", i->ready_at);
        mp_pack_kv_u64(pk, "exited_at", i->exited_at);
        mp_pack_kv_str(pk, "exit_reason", i->exit_reason);
        mp_pack_kv_i64(pk, "exit_status", i->exit_status);
        if (i->exit_message)
                mp_pack_kv_str(pk, "exit_message", i->exit_message);
        if (i->address)
                mp_pack_kv_str(pk, "address", i->address);
        if (i->spawned_at_ns)
                mp_pack_kv_u64(pk, "spawned_at_ns", i->spawned_at_ns);
        if (i->ready_at_ns)
                mp_pack_kv_u64(pk, "ready_at_ns", i->ready_at_ns);
        if (i->firmware_boot)
                mp_pack_kv_bool(pk, "firmware_boot", true);
        if (i->template)
                mp_pack_kv_str(pk, "template", i->template);
}

void instance_pack(msgpack_packer *pk, const instance_t *i) { instance_pack_with(pk, i, false, 0); }

void instance_event_pack(msgpack_packer *pk, const instance_t *i, uint64_t ts) { instance_pack_with(pk, i, true, ts); }

int instance_unpack(const msgpack_object *o, instance_t *i) {
        int r;

        memset(i, 0, sizeof(*i));
        r = instance_spec_unpack(o, &i->spec);
        if (r < 0)
                return r;
        if (mp_get_str(o, "state", WORD_MAX, &i->state) < 0 || mp_get_i64(o, "pid", &i->pid) < 0 ||
            mp_get_u64(o, "started_at", &i->started_at) < 0 || mp_get_u64(o, "ready_at", &i->ready_at) < 0 ||
            mp_get_u64(o, "exited_at", &i->exited_at) < 0 ||
            get_optional_str(o, "exit_reason", REASON_MAX, &i->exit_reason) < 0 ||
            mp_get_i64(o, "exit_status", &i->exit_status) < 0 ||
            get_optional_str(o, "exit_message", INSTANCE_EXIT_MESSAGE_MAX, &i->exit_message) < 0 ||
            get_optional_str(o, "address", ADDRESS_MAX, &i->address) < 0 ||
            get_optional_u64(o, "spawned_at_ns", &i->spawned_at_ns) < 0 ||
            get_optional_u64(o, "ready_at_ns", &i->ready_at_ns) < 0 ||
            get_optional_str(o, "template", PROTO_ID_MAX, &i->template) < 0)
                goto malformed;
        r = mp_get_bool(o, "firmware_boot", &i->firmware_boot);
        if (r < 0 && r != -ENOENT)
                goto malformed;
        return 0;

malformed:
        instance_clear(i);
        return -EBADMSG;
}
