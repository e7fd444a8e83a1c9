/* deployment.c: msgpack codec of the deployment record and deployment.* event bodies. */
#include "proto/deployment.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/mp.h"

#define NAME_MAX_ 63
#define PATH_MAX_ 4096
#define STATUS_MAX 32
#define MESSAGE_MAX 1024

bool deployment_id_valid(const char *id) {
        size_t n = id ? strlen(id) : 0;

        if (n == 0 || n > PROTO_ID_MAX || id[0] == '-')
                return false;
        for (const char *p = id; *p; p++)
                if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '-' ||
                      *p == '_'))
                        return false;
        return true;
}

void deployment_clear(deployment_t *d) {
        free(d->id);
        free(d->namespace_);
        free(d->name);
        free(d->status);
        free(d->runtime);
        free(d->kind);
        free(d->image);
        free(d->kernel);
        free(d->boot);
        mp_strv_free(d->command);
        mp_strv_free(d->environment);
        free(d->ports);
        volumes_free(d->volumes, d->n_volumes);
        health_checks_free(d->health_checks, d->n_health_checks);
        free(d->status_message);
        memset(d, 0, sizeof(*d));
}

void deployment_pack(msgpack_packer *pk, const deployment_t *d) {
        msgpack_pack_map(pk, 12 + (d->kernel ? 1 : 0) + (d->boot ? 1 : 0) + (d->command ? 1 : 0) +
                                     (d->environment ? 1 : 0) + (d->restart_count ? 1 : 0) + (d->n_ports ? 1 : 0) +
                                     (d->failed_at ? 1 : 0) + (d->n_health_checks ? 1 : 0) +
                                     (d->status_message ? 1 : 0) + (d->resolve ? 1 : 0) + (d->n_volumes ? 1 : 0));
        mp_pack_kv_str(pk, "id", d->id);
        mp_pack_kv_str(pk, "namespace", d->namespace_);
        mp_pack_kv_str(pk, "name", d->name);
        mp_pack_kv_u64(pk, "generation", d->generation);
        mp_pack_kv_str(pk, "status", d->status);
        mp_pack_kv_str(pk, "runtime", d->runtime);
        mp_pack_kv_str(pk, "kind", d->kind);
        mp_pack_kv_str(pk, "image", d->image);
        if (d->kernel)
                mp_pack_kv_str(pk, "kernel", d->kernel);
        if (d->boot)
                mp_pack_kv_str(pk, "boot", d->boot);
        mp_pack_kv_u64(pk, "replicas", d->replicas);
        mp_pack_kv_u64(pk, "cpus", d->cpus);
        mp_pack_kv_u64(pk, "memory_mib", d->memory_mib);
        mp_pack_kv_u64(pk, "ready_replicas", d->ready_replicas);
        if (d->command)
                mp_pack_kv_strv(pk, "command", d->command);
        if (d->environment)
                mp_pack_kv_env(pk, "environment", d->environment);
        if (d->restart_count)
                mp_pack_kv_u64(pk, "restart_count", d->restart_count);
        if (d->failed_at)
                mp_pack_kv_u64(pk, "failed_at", d->failed_at);
        if (d->status_message)
                mp_pack_kv_str(pk, "status_message", d->status_message);
        if (d->n_health_checks) {
                mp_pack_str(pk, "health_checks");
                health_checks_pack(pk, d->health_checks, d->n_health_checks);
        }
        if (d->n_ports) {
                mp_pack_str(pk, "ports");
                ports_pack(pk, d->ports, d->n_ports);
        }
        if (d->resolve)
                mp_pack_kv_bool(pk, "resolve", true);
        if (d->n_volumes) {
                mp_pack_str(pk, "volumes");
                volumes_pack(pk, d->volumes, d->n_volumes, false);
        }
}

/* A u64 field that must fit a u32. */
static int get_u32(const msgpack_object *o, const char *key, bool required, uint32_t *ret) {
        uint64_t v;
        int r = mp_get_u64(o, key, &v);

        if (r == -ENOENT && !required)
                return 0;
        if (r < 0)
                return r;
        if (v > UINT32_MAX)
                return -ERANGE;
        *ret = (uint32_t)v;
        return 0;
}

int deployment_unpack(const msgpack_object *o, deployment_t *d) {
        int r;

        memset(d, 0, sizeof(*d));
        if (!o || o->type != MSGPACK_OBJECT_MAP)
                goto malformed;
        if (mp_get_str(o, "id", PROTO_ID_MAX, &d->id) < 0 ||
            mp_get_str(o, "namespace", NAME_MAX_, &d->namespace_) < 0 ||
            mp_get_str(o, "name", NAME_MAX_, &d->name) < 0 || mp_get_u64(o, "generation", &d->generation) < 0 ||
            mp_get_str(o, "status", STATUS_MAX, &d->status) < 0 ||
            mp_get_str(o, "runtime", STATUS_MAX, &d->runtime) < 0 || mp_get_str(o, "kind", STATUS_MAX, &d->kind) < 0 ||
            mp_get_str(o, "image", PATH_MAX_, &d->image) < 0)
                goto malformed;
        r = mp_get_str(o, "kernel", PATH_MAX_, &d->kernel);
        if (r < 0 && r != -ENOENT)
                goto malformed;
        r = mp_get_str(o, "boot", STATUS_MAX, &d->boot);
        if (r < 0 && r != -ENOENT)
                goto malformed;
        if (get_u32(o, "replicas", true, &d->replicas) < 0 || get_u32(o, "cpus", true, &d->cpus) < 0 ||
            get_u32(o, "memory_mib", true, &d->memory_mib) < 0 ||
            get_u32(o, "ready_replicas", false, &d->ready_replicas) < 0 ||
            get_u32(o, "restart_count", false, &d->restart_count) < 0 ||
            (mp_get_u64(o, "failed_at", &d->failed_at) < 0 && mp_map_get(o, "failed_at")) ||
            health_checks_get(o, &d->health_checks, &d->n_health_checks) < 0 ||
            ports_get(o, &d->ports, &d->n_ports) < 0 || volumes_get(o, &d->volumes, &d->n_volumes) < 0)
                goto malformed;
        r = mp_get_str(o, "status_message", MESSAGE_MAX, &d->status_message);
        if (r < 0 && r != -ENOENT)
                goto malformed;
        r = mp_get_strv(o, "command", &d->command);
        if (r < 0 && r != -ENOENT)
                goto malformed;
        r = mp_get_env(o, "environment", &d->environment);
        if (r < 0 && r != -ENOENT)
                goto malformed;
        r = mp_get_bool(o, "resolve", &d->resolve);
        if (r < 0 && r != -ENOENT)
                goto malformed;
        return 0;

malformed:
        deployment_clear(d);
        return -EBADMSG;
}

void deployment_event_clear(deployment_event_t *e) {
        free(e->deployment_id);
        free(e->namespace_);
        free(e->name);
        free(e->status);
        free(e->message);
        memset(e, 0, sizeof(*e));
}

void deployment_event_pack(msgpack_packer *pk, const deployment_event_t *e) {
        msgpack_pack_map(pk, e->message ? 7 : 6);
        mp_pack_kv_u64(pk, "ts", e->ts);
        mp_pack_kv_str(pk, "deployment_id", e->deployment_id);
        mp_pack_kv_str(pk, "namespace", e->namespace_);
        mp_pack_kv_str(pk, "name", e->name);
        mp_pack_kv_u64(pk, "generation", e->generation);
        mp_pack_kv_str(pk, "status", e->status);
        if (e->message)
                mp_pack_kv_str(pk, "message", e->message);
}

int deployment_event_unpack(const msgpack_object *o, deployment_event_t *e) {
        int r;

        memset(e, 0, sizeof(*e));
        if (!o || o->type != MSGPACK_OBJECT_MAP)
                goto malformed;
        if (mp_get_u64(o, "ts", &e->ts) < 0 || mp_get_str(o, "deployment_id", PROTO_ID_MAX, &e->deployment_id) < 0 ||
            mp_get_str(o, "namespace", NAME_MAX_, &e->namespace_) < 0 ||
            mp_get_str(o, "name", NAME_MAX_, &e->name) < 0 || mp_get_u64(o, "generation", &e->generation) < 0 ||
            mp_get_str(o, "status", STATUS_MAX, &e->status) < 0)
                goto malformed;
        r = mp_get_str(o, "message", MESSAGE_MAX, &e->message);
        if (r < 0 && r != -ENOENT)
                goto malformed;
        return 0;

malformed:
        deployment_event_clear(e);
        return -EBADMSG;
}
