/* fuzz_bus_dispatch.c: libFuzzer target for the bus server's request path: any method name and any body reach a handler table whose handlers run every request decoder of proto/ on their args; the server must answer each request with exactly one well-formed reply ({id, result} or {id, error: {code, message}}), never crash, and what a decoder accepts must encode and decode again. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/bus.h"
#include "lib/log.h"
#include "lib/mp.h"
#include "proto/deployment.h"
#include "proto/event.h"
#include "proto/health.h"
#include "proto/instance.h"
#include "proto/port.h"

/* Re-encode what a decoder accepted and decode it again: an accepted value always round-trips. */
#define ROUND_TRIP(type, pack, unpack, clear, value)                                                  \
        do {                                                                                          \
                msgpack_sbuffer sb_;                                                                  \
                msgpack_packer pk_;                                                                   \
                msgpack_unpacked u_;                                                                  \
                type again_;                                                                          \
                msgpack_sbuffer_init(&sb_);                                                           \
                msgpack_packer_init(&pk_, &sb_, msgpack_sbuffer_write);                               \
                pack(&pk_, (value));                                                                  \
                msgpack_unpacked_init(&u_);                                                           \
                assert(msgpack_unpack_next(&u_, sb_.data, sb_.size, NULL) == MSGPACK_UNPACK_SUCCESS); \
                assert(unpack(&u_.data, &again_) == 0);                                               \
                clear(&again_);                                                                       \
                msgpack_unpacked_destroy(&u_);                                                        \
                msgpack_sbuffer_destroy(&sb_);                                                        \
        } while (0)

static int on_instance_create(bus_request_t *req, msgpack_packer *pk, void *userdata) {
        instance_spec_t s;

        if (instance_spec_unpack(req->args, &s) < 0)
                return bus_request_fail(req, BUS_ERR_INVALID, "bad instance spec");
        ROUND_TRIP(instance_spec_t, instance_spec_pack, instance_spec_unpack, instance_spec_clear, &s);
        instance_spec_pack(pk, &s);
        instance_spec_clear(&s);
        return 0;
}

static int on_instance(bus_request_t *req, msgpack_packer *pk, void *userdata) {
        instance_t i;

        if (instance_unpack(req->args, &i) < 0)
                return bus_request_fail(req, BUS_ERR_INVALID, "bad instance");
        ROUND_TRIP(instance_t, instance_pack, instance_unpack, instance_clear, &i);
        instance_pack(pk, &i);
        instance_clear(&i);
        return 0;
}

static int on_deployment(bus_request_t *req, msgpack_packer *pk, void *userdata) {
        deployment_t d;

        if (deployment_unpack(req->args, &d) < 0)
                return bus_request_fail(req, BUS_ERR_INVALID, "bad deployment");
        ROUND_TRIP(deployment_t, deployment_pack, deployment_unpack, deployment_clear, &d);
        deployment_pack(pk, &d);
        deployment_clear(&d);
        return 0;
}

static int on_event(bus_request_t *req, msgpack_packer *pk, void *userdata) {
        event_t e;

        if (event_unpack(req->args, &e) < 0)
                return bus_request_fail(req, BUS_ERR_INVALID, "bad event");
        ROUND_TRIP(event_t, event_pack, event_unpack, event_clear, &e);
        event_pack(pk, &e);
        event_clear(&e);
        return 0;
}

static int on_ports_and_checks(bus_request_t *req, msgpack_packer *pk, void *userdata) {
        health_check_t *checks = NULL;
        port_spec_t *ports = NULL;
        size_t n_ports = 0, n_checks = 0;

        if (ports_get(req->args, &ports, &n_ports) < 0 || health_checks_get(req->args, &checks, &n_checks) < 0) {
                free(ports);
                return bus_request_fail(req, BUS_ERR_INVALID, "bad ports or health_checks");
        }
        msgpack_pack_map(pk, 2);
        mp_pack_str(pk, "ports");
        ports_pack(pk, ports, n_ports);
        mp_pack_str(pk, "health_checks");
        health_checks_pack(pk, checks, n_checks);
        free(ports);
        health_checks_free(checks, n_checks);
        return 0;
}

/* Answered later, at once: the deferred path packs and frees like the direct one. */
static int on_deferred(bus_request_t *req, msgpack_packer *pk, void *userdata) {
        bus_deferred_t *d = bus_request_defer(req);

        if (!d)
                return bus_request_fail(req, BUS_ERR_INTERNAL, "out of memory");
        if (req->args->via.map.size % 2)
                bus_deferred_fail(&d, BUS_ERR_INVALID, "odd");
        else
                bus_deferred_reply(&d, "\xc0", 1);
        assert(!d);
        return BUS_DEFERRED;
}

static const bus_method_t methods[] = {
        { "instance.create", on_instance_create },
        { "instance.get", on_instance },
        { "deployment.apply", on_deployment },
        { "event.record", on_event },
        { "net.attach", on_ports_and_checks },
        { "instance.exec", on_deferred },
        {},
};
static const char *const names[] = { "instance.create", "instance.get",  "deployment.apply", "event.record",
                                     "net.attach",      "instance.exec", "no.such.method" };

static void check_reply(const msgpack_sbuffer *buf) {
        msgpack_unpacked u;
        const msgpack_object *err;
        uint64_t id;

        msgpack_unpacked_init(&u);
        assert(msgpack_unpack_next(&u, buf->data, buf->size, NULL) == MSGPACK_UNPACK_SUCCESS);
        assert(u.data.type == MSGPACK_OBJECT_MAP && u.data.via.map.size == 2);
        assert(mp_get_u64(&u.data, "id", &id) == 0);
        err = mp_map_get(&u.data, "error");
        if (err) {
                assert(err->type == MSGPACK_OBJECT_MAP);
                assert(mp_map_get(err, "code") && mp_map_get(err, "message"));
        } else
                assert(mp_map_get(&u.data, "result"));
        msgpack_unpacked_destroy(&u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static bus_server_t *server;
        msgpack_sbuffer buf;
        zmsg_t *envelope;
        int r;

        if (!server) {
                log_set_max_level(LOG_CRIT);
                assert(bus_server_new("inproc://fuzz-bus-dispatch", methods, NULL, &server) == 0);
        }
        if (size < 1)
                return 0;
        envelope = zmsg_new();
        msgpack_sbuffer_init(&buf);
        r = bus_server_dispatch(server, envelope, names[data[0] % (sizeof(names) / sizeof(names[0]))], data + 1,
                                size - 1, &buf);
        if (r == BUS_DEFERRED)
                assert(buf.size == 0);
        else {
                assert(r == 0);
                check_reply(&buf);
        }
        msgpack_sbuffer_destroy(&buf);
        zmsg_destroy(&envelope);
        return 0;
}
