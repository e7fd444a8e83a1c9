/* bus.h: husk's message bus over ZeroMQ: PUB/SUB events and DEALER/ROUTER requests.
 *
 * Wire format (documented in proto/SCHEMA.md):
 *   event:   [type][msgpack body map]
 *   request: [""][method][msgpack {id, deadline, args}]            (DEALER -> ROUTER)
 *   reply:   [""]["reply"][msgpack {id, result} | {id, error: {code, message}}]
 * Requests carry an id and an absolute deadline (unix ms): a server drops a request whose
 * deadline passed while it was queued, a client drops replies whose id it no longer waits
 * for. Never REQ/REP: a dead peer would wedge it. ZeroMQ reconnects transparently when a
 * peer restarts; a client retries idempotent calls within the deadline. */
#pragma once

#include <czmq.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#include "lib/util.h"

#define BUS_TYPE_MAX 64 /* longest event type or method name */

/* Structured error codes carried by error replies (BUS_ERR_INVALID, BUS_ERR_NOT_FOUND, ...) are
 * generated from proto/schema.yaml, with every method and event name. */
#include "proto/names.h"

/* ---- events ---------------------------------------------------------------------------- */

typedef struct bus_pub bus_pub_t;

int bus_pub_new(const char *endpoint, bus_pub_t **ret);
void bus_pub_destroy(bus_pub_t **self_p);
/* Send one event. Safe to call from several threads (serialized internally). */
int bus_pub_send(bus_pub_t *self, const char *type, const void *body, size_t size);

typedef void (*bus_event_fn)(const char *type, const msgpack_object *body, void *userdata);
typedef struct bus_sub bus_sub_t;

/* A SUB socket connected to each endpoint and subscribed to each prefix ("" = all). */
int bus_sub_new(const char *const *endpoints, size_t n_endpoints, bus_sub_t **ret);
void bus_sub_destroy(bus_sub_t **self_p);
int bus_sub_subscribe(bus_sub_t *self, const char *prefix);
/* Deliver events to fn from loop. Malformed events are dropped with a debug log. */
int bus_sub_attach(bus_sub_t *self, zloop_t *loop, bus_event_fn fn, void *userdata);
/* Blocking receive for tools (husk tap, tests): waits up to timeout_ms (-1 = forever).
 * On success *ret_type and *ret_body (raw msgpack) are owned by the caller. */
int bus_sub_recv(bus_sub_t *self, int timeout_ms, char **ret_type, void **ret_body, size_t *ret_size);
zsock_t *bus_sub_sock(bus_sub_t *self);

/* ---- requests: server ---------------------------------------------------------------------- */

typedef struct bus_request {
        const char *method;
        uint64_t id;
        uint64_t deadline_ms;       /* unix ms */
        const msgpack_object *args; /* a map; empty map when the caller sent none */
        /* Set by a handler through bus_request_fail(). */
        const char *error_code;
        char error_message[512];
        /* Private to bus.c: what bus_request_defer() needs to answer later, and what the
         * server's request accounting needs when it is answered. */
        struct bus_server *server_;
        zmsg_t *envelope_;
        size_t stats_index_;
        double started_;
} bus_request_t;

/* A handler packs exactly one result object into pk and returns 0, or calls
 * bus_request_fail() and returns its value. */
typedef int (*bus_method_fn)(bus_request_t *req, msgpack_packer *pk, void *userdata);

typedef struct bus_method {
        const char *name;
        bus_method_fn handler;
} bus_method_t;

int bus_request_fail(bus_request_t *req, const char *code, const char *fmt, ...) _printf_(3, 4);

/* Deferred replies, for answers that need another round trip (vmm-driver's instance.exec
 * waits for the guest): the handler calls bus_request_defer(), keeps the handle and returns
 * BUS_DEFERRED without packing anything; the answer goes out later through exactly one of
 * bus_deferred_reply() or bus_deferred_fail(), which free the handle. The server must outlive
 * every handle. */
#define BUS_DEFERRED 1
typedef struct bus_deferred bus_deferred_t;
bus_deferred_t *bus_request_defer(bus_request_t *req); /* NULL on ENOMEM */
/* result: one packed msgpack object. */
void bus_deferred_reply(bus_deferred_t **d, const void *result, size_t size);
void bus_deferred_fail(bus_deferred_t **d, const char *code, const char *fmt, ...) _printf_(3, 4);

typedef struct bus_server bus_server_t;

/* Every server answers `daemon.info` itself (no method table lists it): {daemon, version, pid,
 * started_at_ns, host}. bus_identity_set() names the daemon and stamps its start (lib/daemon.c
 * calls it first thing); without it, the program's name and the first server's creation. */
void bus_identity_set(const char *daemon);

/* Every server also counts its requests, by method: answered, answered with an error, and the
 * time from receipt to answer (deferred answers included) in a histogram (lib/stats.h), and
 * answers `daemon.stats` with them: daemon.info's fields plus {methods: [{method, requests,
 * errors, buckets, count, sum}], bounds, metrics} (proto/SCHEMA.md). `metrics` is what the
 * daemon's own fn packs (exactly one array of lib/stats.h entries; none without fn), called on
 * the server's loop. */
typedef void (*bus_stats_fn)(msgpack_packer *pk, void *userdata);
void bus_server_set_stats(bus_server_t *self, bus_stats_fn fn, void *userdata);

/* methods is terminated by an entry with name == NULL and must outlive the server. */
int bus_server_new(const char *endpoint, const bus_method_t *methods, void *userdata, bus_server_t **ret);
void bus_server_destroy(bus_server_t **self_p);
int bus_server_attach(bus_server_t *self, zloop_t *loop);
/* One request without the socket: the server's reader calls it for each [method][body] it
 * receives (envelope: the routing frames a deferred reply goes back to). Packs the whole reply
 * body into buf; returns BUS_DEFERRED when the handler answers later (buf is then empty). Every
 * byte a peer sends reaches this: tests/fuzz/fuzz_bus_dispatch.c drives it with any. */
int bus_server_dispatch(bus_server_t *s, zmsg_t *envelope, const char *method, const void *data, size_t size,
                        msgpack_sbuffer *buf);

/* ---- requests: client -------------------------------------------------------------------- */

typedef struct bus_client bus_client_t;

typedef struct bus_reply {
        msgpack_unpacked unpacked; /* owns the memory result points into */
        const msgpack_object *result;
        char *error_code; /* set when the server answered with an error */
        char *error_message;
} bus_reply_t;

void bus_reply_free(bus_reply_t *r);
static inline void bus_reply_freep(bus_reply_t **r) {
        if (*r)
                bus_reply_free(*r);
        *r = NULL;
}

typedef struct bus_call_opts {
        uint64_t timeout_ms; /* overall deadline; default 5000 */
        bool idempotent;     /* resend within the deadline when a try gets no answer */
} bus_call_opts_t;

int bus_client_new(const char *endpoint, bus_client_t **ret);
void bus_client_destroy(bus_client_t **self_p);

/* Call method with args (a packed msgpack map, or NULL for none) and wait for the answer.
 * Returns 0 with *ret set (check (*ret)->error_code for a remote error), or -ETIMEDOUT when no
 * reply came before the deadline, -EBUSY on a client attached to a loop, or another negative
 * errno. Blocks the calling thread: for threads that must wait (civetweb workers, tools), never
 * for an event loop. Same sending, retry and deadline rules as bus_call_async(). */
int bus_call(bus_client_t *self, const char *method, const msgpack_sbuffer *args, const bus_call_opts_t *opts,
             bus_reply_t **ret);

/* ---- requests: asynchronous client ------------------------------------------------------------ */

/* The end of one asynchronous call, run from the loop exactly once: error 0 with reply set (check
 * reply->error_code for a remote error; reply is freed when this returns), or error -ETIMEDOUT
 * (no answer before the deadline), -ECANCELED (the client was destroyed first) or another
 * negative errno, with reply NULL. It may make and cancel calls; it must not destroy the client. */
typedef void (*bus_reply_fn)(int error, const bus_reply_t *reply, void *userdata);

/* Serve the client's replies and deadlines from loop: from now on it only makes asynchronous
 * calls. Detached by bus_client_destroy(). */
int bus_client_attach(bus_client_t *self, zloop_t *loop);

/* Start a call and return at once; fn runs later, from the loop, never before this returns.
 * Returns 0 (with *ret_id, when given, the call's id for bus_call_cancel()), or a negative errno
 * when the call could not start (fn will not run): -ENOTCONN when the client is not attached. */
int bus_call_async(bus_client_t *self, const char *method, const msgpack_sbuffer *args, const bus_call_opts_t *opts,
                   bus_reply_fn fn, void *userdata, uint64_t *ret_id);

/* Forget a call: its callback never runs, a late reply is dropped. False when it already ended. */
bool bus_call_cancel(bus_client_t *self, uint64_t id);

/* How many asynchronous calls wait for an answer (tests, status). */
size_t bus_client_pending(const bus_client_t *self);
