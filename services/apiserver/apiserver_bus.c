/* apiserver_bus.c: deployment.* requests served on the daemon loop, deployment.* events, and instance.list to vmm-driver. */
#include "services/apiserver/apiserver_bus.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/log.h"
#include "lib/mp.h"
#include "proto/instance.h"
#include "services/apiserver/apiserver_json.h"

#define STATUS_MAX 32
#define INSTANCES_TIMEOUT_MS 1000

static void sbuffer_destroyp(msgpack_sbuffer *b) { msgpack_sbuffer_destroy(b); }

/* A string argument; optional ones are NULL when absent. Returns bus_request_fail() on error. */
static int arg_str(bus_request_t *req, const char *key, size_t max, bool required, char **ret) {
        int r = mp_get_str(req->args, key, max, ret);

        if (r == -ENOENT && !required) {
                *ret = NULL;
                return 0;
        }
        if (r == -ENOENT)
                return bus_request_fail(req, BUS_ERR_INVALID, "%s: required string is missing", key);
        if (r == -EMSGSIZE)
                return bus_request_fail(req, BUS_ERR_INVALID, "%s: longer than %zu bytes", key, max);
        if (r < 0)
                return bus_request_fail(req, BUS_ERR_INVALID, "%s: must be a string", key);
        return 0;
}

/* An optional uint argument that must fit 32 bits. */
static int arg_u32(bus_request_t *req, const char *key, bool *has, uint32_t *ret) {
        uint64_t v;
        int r = mp_get_u64(req->args, key, &v);

        *has = false;
        if (r == -ENOENT)
                return 0;
        if (r < 0 || v > UINT32_MAX)
                return bus_request_fail(req, BUS_ERR_INVALID, "%s: must be an unsigned integer below 2^32", key);
        *has = true;
        *ret = (uint32_t)v;
        return 0;
}

/* Store errors as bus errors; internal ones are logged here, once. */
static int fail_store(bus_request_t *req, int r, const char *id) {
        if (r == -ENOENT)
                return bus_request_fail(req, BUS_ERR_NOT_FOUND, "deployment %s not found", id);
        log_error_errno(r, "%s %s: store failed: %m", req->method, id ?: "");
        return bus_request_fail(req, BUS_ERR_INTERNAL, "store: %s", strerror(-r));
}

static int method_list(bus_request_t *req, msgpack_packer *pk, void *userdata) {
        apiserver_t *api = userdata;
        store_deployment_t *a = NULL;
        size_t n = 0;
        int r;

        r = store_deployment_list(api->store, NULL, &a, &n);
        for (size_t i = 0; r >= 0 && i < n; i++)
                r = store_deployment_derive(&a[i]);
        if (r < 0) {
                store_deployment_array_free(a, n);
                return fail_store(req, r, NULL);
        }
        msgpack_pack_array(pk, n);
        for (size_t i = 0; i < n; i++)
                deployment_pack(pk, &a[i].d);
        store_deployment_array_free(a, n);
        return 0;
}

static int method_get(bus_request_t *req, msgpack_packer *pk, void *userdata) {
        apiserver_t *api = userdata;
        _cleanup_free_ char *id = NULL;
        store_deployment_t d = {};
        int r;

        r = arg_str(req, "id", PROTO_ID_MAX, true, &id);
        if (r < 0)
                return r;
        r = store_deployment_get(api->store, id, &d);
        if (r >= 0)
                r = store_deployment_derive(&d);
        if (r < 0) {
                store_deployment_clear(&d);
                return fail_store(req, r, id);
        }
        deployment_pack(pk, &d.d);
        store_deployment_clear(&d);
        return 0;
}

static int method_set_status(bus_request_t *req, msgpack_packer *pk, void *userdata) {
        apiserver_t *api = userdata;
        _cleanup_free_ char *id = NULL, *status = NULL, *message = NULL;
        store_status_update_t u = {};
        store_deployment_t d = {};
        int r;

        if ((r = arg_str(req, "id", PROTO_ID_MAX, true, &id)) < 0 ||
            (r = arg_str(req, "status", STATUS_MAX, true, &status)) < 0 ||
            (r = arg_str(req, "message", STORE_MESSAGE_MAX, false, &message)) < 0 ||
            (r = arg_u32(req, "ready_replicas", &u.has_ready_replicas, &u.ready_replicas)) < 0 ||
            (r = arg_u32(req, "restart_count", &u.has_restart_count, &u.restart_count)) < 0)
                return r;
        r = mp_get_u64(req->args, "failed_at", &u.failed_at);
        if (r < 0 && r != -ENOENT)
                return bus_request_fail(req, BUS_ERR_INVALID, "failed_at: must be an unsigned integer (unix ms)");
        u.has_failed_at = r == 0;
        r = mp_get_u64(req->args, "generation", &u.generation);
        if (r < 0 && r != -ENOENT)
                return bus_request_fail(req, BUS_ERR_INVALID, "generation: must be an unsigned integer");
        r = mp_get_i64(req->args, "exit_code", &u.exit_code);
        if (r < 0 && r != -ENOENT)
                return bus_request_fail(req, BUS_ERR_INVALID, "exit_code: must be an integer");
        u.has_exit_code = r == 0;
        u.status = status;
        u.message = message;

        r = store_deployment_set_status(api->store, id, &u, &d);
        if (r == -EINVAL)
                return bus_request_fail(req, BUS_ERR_INVALID,
                                        "status: \"%s\" is not one of pending, creating, running, completed, failed, "
                                        "crash_loop_back_off, insufficient_resources",
                                        status);
        if (r == -EBUSY)
                return bus_request_fail(req, BUS_ERR_CONFLICT,
                                        "deployment %s: only DELETE marks a deployment deleted, and a deleted one "
                                        "keeps that status until purged",
                                        id);
        if (r < 0)
                return fail_store(req, r, id);

        if (r & (STORE_CHANGED_STATUS | STORE_CHANGED_MESSAGE))
                apiserver_publish(api, BUS_EVENT_DEPLOYMENT_STATUS, &d, d.status_message[0] ? d.status_message : NULL);
        store_deployment_clear(&d);

        msgpack_pack_map(pk, 1);
        mp_pack_kv_bool(pk, "changed", r != 0);
        return 0;
}

static int method_purge(bus_request_t *req, msgpack_packer *pk, void *userdata) {
        apiserver_t *api = userdata;
        _cleanup_free_ char *id = NULL;
        store_deployment_t d = {};
        int r;

        r = arg_str(req, "id", PROTO_ID_MAX, true, &id);
        if (r < 0)
                return r;
        r = store_deployment_purge(api->store, id, &d);
        if (r == -EBUSY)
                return bus_request_fail(req, BUS_ERR_CONFLICT, "deployment %s is not deleted; DELETE it first", id);
        if (r < 0)
                return fail_store(req, r, id);
        log_info("Deployment %s/%s (%s) purged", d.d.namespace_, d.d.name, d.d.id);
        apiserver_publish(api, BUS_EVENT_DEPLOYMENT_PURGED, &d, NULL);
        store_deployment_clear(&d);
        msgpack_pack_map(pk, 0);
        return 0;
}

/* The scheduler keeps how an instance ended before vmm-driver removes it: args are the
 * instance record as instance.list gave it. */
static int method_record_exit(bus_request_t *req, msgpack_packer *pk, void *userdata) {
        apiserver_t *api = userdata;
        _cleanup_(instance_clear) instance_t i = {};
        store_exit_t e;
        int r;

        if (instance_unpack(req->args, &i) < 0)
                return bus_request_fail(req, BUS_ERR_INVALID, "not an instance record (see proto/SCHEMA.md)");
        if (!streq(i.state, INSTANCE_STATE_EXITED) || !i.exit_reason)
                return bus_request_fail(req, BUS_ERR_INVALID, "state: only an exited instance (with an exit_reason)");
        e = (store_exit_t){
                .instance_id = i.spec.instance_id,
                .generation = i.spec.generation,
                .address = i.address,
                .started_at = i.started_at,
                .exited_at = i.exited_at,
                .exit_reason = i.exit_reason,
                .exit_status = i.exit_status,
        };
        r = store_exit_record(api->store, i.spec.deployment_id, &e);
        if (r < 0)
                return fail_store(req, r, i.spec.deployment_id);
        msgpack_pack_map(pk, 0);
        return 0;
}

const bus_method_t apiserver_bus_methods[] = {
        { BUS_METHOD_DEPLOYMENT_LIST, method_list },
        { BUS_METHOD_DEPLOYMENT_GET, method_get },
        { BUS_METHOD_DEPLOYMENT_SET_STATUS, method_set_status },
        { BUS_METHOD_DEPLOYMENT_PURGE, method_purge },
        { BUS_METHOD_DEPLOYMENT_RECORD_EXIT, method_record_exit },
        { BUS_METHOD_EVENT_RECORD, apiserver_method_event_record },
        {},
};

void apiserver_publish(apiserver_t *api, const char *type, const store_deployment_t *d, const char *message) {
        _cleanup_(sbuffer_destroyp) msgpack_sbuffer buf = {};
        msgpack_packer pk;
        deployment_event_t e = {
                .ts = now_realtime_ms(),
                .deployment_id = d->d.id,
                .namespace_ = d->d.namespace_,
                .name = d->d.name,
                .generation = d->d.generation,
                .status = d->d.status,
                .message = (char *)message,
        };
        int r;

        if (!api->pub)
                return;
        msgpack_sbuffer_init(&buf);
        msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
        deployment_event_pack(&pk, &e);
        r = bus_pub_send(api->pub, type, buf.data, buf.size);
        if (r < 0)
                log_warning_errno(r, "Failed to publish %s for %s: %m, ignoring", type, d->d.id);
}

static int call_instance_list(apiserver_t *api, const char *deployment_id, bus_reply_t **ret) {
        static const bus_call_opts_t opts = { .timeout_ms = INSTANCES_TIMEOUT_MS, .idempotent = true };
        _cleanup_(sbuffer_destroyp) msgpack_sbuffer args = {};
        msgpack_packer pk;

        msgpack_sbuffer_init(&args);
        msgpack_packer_init(&pk, &args, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, deployment_id ? 1 : 0);
        if (deployment_id)
                mp_pack_kv_str(&pk, "deployment_id", deployment_id);

        /* The worker waits here for at most the deadline; other workers do not wait for it. */
        return bus_pool_call(api->vmm, BUS_METHOD_INSTANCE_LIST, &args, &opts, ret);
}

int apiserver_instances(apiserver_t *api, const char *deployment_id, json_t **ret, char **ret_error) {
        _cleanup_(bus_reply_freep) bus_reply_t *reply = NULL;
        json_t *instances;
        int r;

        if (!api->vmm) {
                *ret_error = strdup("no vmm-driver endpoint is configured");
                return -ENOTCONN;
        }
        r = call_instance_list(api, deployment_id, &reply);
        if (r == -ETIMEDOUT) {
                r = asprintf(ret_error, "vmm-driver did not answer within %d ms", INSTANCES_TIMEOUT_MS);
                return r < 0 ? -ENOMEM : -ETIMEDOUT;
        }
        if (r < 0) {
                r = asprintf(ret_error, "cannot ask vmm-driver: %s", strerror(-r));
                return r < 0 ? -ENOMEM : -EIO;
        }
        if (reply->error_code) {
                r = asprintf(ret_error, "vmm-driver answered %s: %s", reply->error_code, reply->error_message ?: "");
                return r < 0 ? -ENOMEM : -EREMOTEIO;
        }
        if (!reply->result || reply->result->type != MSGPACK_OBJECT_ARRAY) {
                *ret_error = strdup("vmm-driver answered with something that is not a list of instances");
                return -EBADMSG;
        }
        instances = msgpack_to_json(reply->result);
        if (!instances || instances_add_ids(instances) < 0) {
                json_decref(instances);
                return -ENOMEM;
        }
        *ret = instances;
        return 0;
}
