/* bus_pool.h: synchronous bus calls from many threads (civetweb workers): a pool of clients to
 * one endpoint, each used by one call at a time.
 *
 * A ZeroMQ socket belongs to one thread at a time, and a fresh socket per call pays a
 * connection handshake (clients only send on live connections). The pool hands each call an
 * idle client, or a new one, and keeps up to max_idle of them between calls: never one per
 * thread, since apiserver has a thousand workers. Calls never wait for each other. */
#pragma once

#include "lib/bus.h"

typedef struct bus_pool bus_pool_t;

/* endpoint is copied. */
int bus_pool_new(const char *endpoint, size_t max_idle, bus_pool_t **ret);
void bus_pool_destroy(bus_pool_t **self_p);

/* bus_call() on a client of the pool; same results. Safe from any thread. */
int bus_pool_call(bus_pool_t *self, const char *method, const msgpack_sbuffer *args, const bus_call_opts_t *opts,
                  bus_reply_t **ret);
