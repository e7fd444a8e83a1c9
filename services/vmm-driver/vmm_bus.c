/* vmm_bus.c: vmm-driver's requests (instance.list/create/stop/remove) and its instance.* events. */
#include <errno.h>
#include <string.h>

#include "lib/log.h"
#include "lib/mp.h"
#include "proto/schema.h"
#include "services/vmm-driver/vmm.h"
#include "services/vmm-driver/vmm_template.h"

/* ---- events --------------------------------------------------------------------------------- */

typedef struct held_event {
        char type[BUS_TYPE_MAX + 1];
        msgpack_sbuffer body;
} held_event_t;

static void send_event(vmm_t *d, const char *type, const msgpack_sbuffer *body) {
        int r = bus_pub_send(d->pub, type, body->data, body->size);

        if (r < 0)
                log_warning_errno(r, "Failed to publish %s, ignoring: %m", type);
}

void vmm_publish(vmm_t *d, const char *type, const vmm_instance_t *i) {
        msgpack_sbuffer body;
        msgpack_packer pk;
        held_event_t *h;

        msgpack_sbuffer_init(&body);
        msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
        instance_event_pack(&pk, &i->rec.inst, now_realtime_ms());
        if (!d->held) {
                send_event(d, type, &body);
                msgpack_sbuffer_destroy(&body);
                return;
        }
        h = calloc(1, sizeof(*h));
        if (!h || !zlistx_add_end(d->held, h)) {
                free(h);
                send_event(d, type, &body);
                msgpack_sbuffer_destroy(&body);
                return;
        }
        snprintf(h->type, sizeof(h->type), "%s", type);
        h->body = body;
}

static void flush_held(vmm_t *d) {
        held_event_t *h;

        if (!d->held)
                return;
        while ((h = zlistx_detach(d->held, NULL))) {
                if (d->pub)
                        send_event(d, h->type, &h->body);
                msgpack_sbuffer_destroy(&h->body);
                free(h);
        }
        zlistx_destroy(&d->held);
}

static int on_hold_end(zloop_t *loop, int timer_id, void *arg) {
        vmm_t *d = arg;

        d->hold_timer = 0;
        flush_held(d);
        return 0;
}

/* After a (re)start our PUB socket is new: subscribers that were waiting for it connect within
 * ZeroMQ's reconnect interval (100 ms by default), and whatever we publish before that is lost
 * to them. The first events (instance.adopted, instance.exited for what died while we were
 * down) are the ones they most need, so everything published that early waits, in order. */
void vmm_publish_hold(vmm_t *d, uint64_t ms) {
        if (d->held || !d->loop)
                return;
        d->held = zlistx_new();
        if (!d->held)
                return;
        d->hold_timer = zloop_timer(d->loop, ms, 1, on_hold_end, d);
        if (d->hold_timer < 0) {
                d->hold_timer = 0;
                flush_held(d);
        }
}

void vmm_publish_release(vmm_t *d) {
        if (d->hold_timer && d->loop)
                zloop_timer_end(d->loop, d->hold_timer);
        d->hold_timer = 0;
        flush_held(d);
}

/* ---- requests ------------------------------------------------------------------------------- */

static int compare_started(const void *a, const void *b) {
        const vmm_instance_t *x = *(vmm_instance_t *const *)a, *y = *(vmm_instance_t *const *)b;

        if (x->rec.inst.started_at != y->rec.inst.started_at)
                return x->rec.inst.started_at < y->rec.inst.started_at ? -1 : 1;
        return strcmp(x->rec.inst.spec.instance_id, y->rec.inst.spec.instance_id);
}

static int method_list(bus_request_t *req, msgpack_packer *pk, void *userdata) {
        vmm_t *d = userdata;
        _cleanup_free_ char *deployment = NULL;
        _cleanup_free_ vmm_instance_t **v = NULL;
        size_t n = 0;
        int r;

        r = mp_get_str(req->args, "deployment_id", PROTO_ID_MAX, &deployment);
        if (r < 0 && r != -ENOENT)
                return bus_request_fail(req, BUS_ERR_INVALID, "deployment_id: must be a string of at most %d bytes",
                                        PROTO_ID_MAX);

        v = calloc(zhashx_size(d->instances) + 1, sizeof(*v));
        if (!v)
                return bus_request_fail(req, BUS_ERR_INTERNAL, "out of memory");
        for (vmm_instance_t *i = zhashx_first(d->instances); i; i = zhashx_next(d->instances))
                if (!deployment || streq(deployment, i->rec.inst.spec.deployment_id))
                        v[n++] = i;
        qsort(v, n, sizeof(*v), compare_started);

        msgpack_pack_array(pk, (uint32_t)n);
        for (size_t k = 0; k < n; k++)
                instance_pack(pk, &v[k]->rec.inst);
        return 0;
}

static const char *error_code(int r) {
        switch (r) {
        case -EINVAL:
                return BUS_ERR_INVALID;
        case -EEXIST:
        case -EBUSY:
                return BUS_ERR_CONFLICT;
        case -ENOENT:
                return BUS_ERR_NOT_FOUND;
        case -EADDRINUSE:
                return BUS_ERR_PORT_ALLOCATION_FAILED;
        case -EAGAIN:
                return BUS_ERR_UNAVAILABLE;
        default:
                return BUS_ERR_INTERNAL;
        }
}

static const char *create_error_code(int r) {
        /* A host problem (binary missing, disk full) is ours to log; a bad spec is the caller's. */
        return r == -EINVAL || r == -EEXIST || r == -EADDRINUSE || r == -EAGAIN ? error_code(r) : BUS_ERR_INTERNAL;
}

static void on_created(vmm_t *d, vmm_instance_t *i, int error, const char *why, void *userdata) {
        bus_deferred_t *reply = userdata;
        msgpack_sbuffer buf;
        msgpack_packer pk;
        const char *code;

        if (error < 0) {
                code = create_error_code(error);
                if (streq(code, BUS_ERR_INTERNAL))
                        log_error_errno(error, "Failed to create instance: %s", why ?: "?");
                bus_deferred_fail(&reply, code, "%s", why ?: strerror(-error));
                return;
        }
        msgpack_sbuffer_init(&buf);
        msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
        instance_pack(&pk, &i->rec.inst);
        bus_deferred_reply(&reply, buf.data, buf.size);
        msgpack_sbuffer_destroy(&buf);
}

/* Answered when the VMM runs: netd (and a seed, a restore) are waited for on the loop, not here. */
static int method_create(bus_request_t *req, msgpack_packer *pk, void *userdata) {
        vmm_t *d = userdata;
        _cleanup_free_ instance_spec_t *spec = NULL;
        _cleanup_free_ char *error = NULL;
        proto_error_t e = {};
        bus_deferred_t *reply;
        int r;

        /* The schema's table first, so that `invalid` names the field, as SCHEMA.md promises. */
        if (proto_check(&proto_msg_instance_spec, req->args, 0, &e) < 0)
                return bus_request_fail(req, BUS_ERR_INVALID, "%s", e.message);
        spec = calloc(1, sizeof(*spec));
        if (!spec)
                return bus_request_fail(req, BUS_ERR_INTERNAL, "out of memory");
        r = instance_spec_unpack(req->args, spec);
        if (r < 0)
                return bus_request_fail(req, BUS_ERR_INVALID, "invalid instance spec: %s", strerror(-r));
        reply = bus_request_defer(req);
        if (!reply) {
                instance_spec_clear(spec);
                return bus_request_fail(req, BUS_ERR_INTERNAL, "out of memory");
        }
        r = vmm_instance_create(d, &spec, on_created, reply, &error);
        if (spec)
                instance_spec_clear(spec);
        if (r < 0)
                on_created(d, NULL, r, error, reply);
        return BUS_DEFERRED;
}

static int get_instance(bus_request_t *req, vmm_t *d, vmm_instance_t **ret) {
        _cleanup_free_ char *id = NULL;
        int r;

        r = mp_get_str(req->args, "instance_id", PROTO_ID_MAX, &id);
        if (r == -ENOENT)
                return bus_request_fail(req, BUS_ERR_INVALID, "instance_id: missing");
        if (r < 0)
                return bus_request_fail(req, BUS_ERR_INVALID, "instance_id: must be a string");
        *ret = vmm_instance_get(d, id);
        if (!*ret)
                return bus_request_fail(req, BUS_ERR_NOT_FOUND, "instance %s not found", id);
        return 0;
}

static int method_stop(bus_request_t *req, msgpack_packer *pk, void *userdata) {
        vmm_instance_t *i;
        bool remove = false;
        int r;

        r = get_instance(req, userdata, &i);
        if (r < 0)
                return r;
        r = mp_get_bool(req->args, "remove", &remove);
        if (r < 0 && r != -ENOENT)
                return bus_request_fail(req, BUS_ERR_INVALID, "remove: must be a boolean");
        r = vmm_instance_stop(i, remove);
        if (r < 0)
                return bus_request_fail(req, error_code(r), "cannot stop instance %s: %s", i->rec.inst.spec.instance_id,
                                        strerror(-r));
        /* Still readable when it was removed at once (see vmm_instance_free). */
        instance_pack(pk, &i->rec.inst);
        return 0;
}

static int method_remove(bus_request_t *req, msgpack_packer *pk, void *userdata) {
        vmm_instance_t *i;
        int r;

        r = get_instance(req, userdata, &i);
        if (r < 0)
                return r;
        r = vmm_instance_remove(i);
        if (r == -EBUSY)
                return bus_request_fail(req, BUS_ERR_CONFLICT, "instance %s is %s; stop it first",
                                        i->rec.inst.spec.instance_id, i->rec.inst.state);
        if (r < 0)
                return bus_request_fail(req, BUS_ERR_INTERNAL, "cannot remove instance %s: %s",
                                        i->rec.inst.spec.instance_id, strerror(-r));
        msgpack_pack_map(pk, 0);
        return 0;
}

static int method_exec(bus_request_t *req, msgpack_packer *pk, void *userdata) {
        vmm_instance_t *i;
        int r = get_instance(req, userdata, &i);

        return r < 0 ? r : vmm_workload_exec(req, i);
}

static int method_signal(bus_request_t *req, msgpack_packer *pk, void *userdata) {
        vmm_instance_t *i;
        int r = get_instance(req, userdata, &i);

        return r < 0 ? r : vmm_workload_signal(req, i);
}

static int method_workload(bus_request_t *req, msgpack_packer *pk, void *userdata) {
        vmm_instance_t *i;
        int r = get_instance(req, userdata, &i);

        return r < 0 ? r : vmm_workload_status(req, i);
}

static int method_runtimes(bus_request_t *req, msgpack_packer *pk, void *userdata) {
        vmm_t *d = userdata;

        vmm_runtime_pack_list(d, vmm_config(d), pk);
        return 0;
}

const bus_method_t vmm_bus_methods[] = {
        { BUS_METHOD_INSTANCE_WORKLOAD, method_workload },
        { BUS_METHOD_INSTANCE_EXEC, method_exec },
        { BUS_METHOD_INSTANCE_SIGNAL, method_signal },
        { BUS_METHOD_INSTANCE_LIST, method_list },
        { BUS_METHOD_INSTANCE_CREATE, method_create },
        { BUS_METHOD_INSTANCE_STOP, method_stop },
        { BUS_METHOD_INSTANCE_REMOVE, method_remove },
        { BUS_METHOD_RUNTIME_LIST, method_runtimes },
        { BUS_METHOD_TEMPLATE_LIST, vmm_template_method_list },
        { BUS_METHOD_TEMPLATE_DROP, vmm_template_method_drop },
        {},
};
