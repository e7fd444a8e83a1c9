/* apiserver_relay.h: connections apiserver accepts itself (the local unix socket, TLS) relayed
 * byte for byte to civetweb's internal loopback listener, with what was learnt of each client
 * on the way in found again by the router from the relay's source port.
 *
 * Why a relay at all: Debian 12's civetweb 1.15 can neither listen on a unix socket nor tell a
 * handler the connection's descriptor (so no SO_PEERCRED), and its TLS support crashes with
 * OpenSSL 3 (see apiserver_tls.c). HTTP stays civetweb's: a relay parses nothing, so
 * keep-alive, bodies, SSE streams and every limit of apiserver_http.c apply as on plain TCP.
 *
 * Why an origin cannot be forged: each relay connects from a socket bound to an ephemeral port
 * on 127.0.0.1 and registers that port before it connects. The port is held by the bound
 * socket (no SO_REUSEADDR or SO_REUSEPORT), so no other socket can bind it, and Linux never
 * picks an explicitly bound port for another socket's implicit bind on connect(): the 4-tuple
 * (127.0.0.1:port -> 127.0.0.1:internal) is the relay's alone until it closes, and the entry is
 * removed before that. A process that connects to the internal port by itself finds no entry
 * and is an ordinary client from 127.0.0.1: it needs a token like any other. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "services/apiserver/apiserver_auth.h"

struct mg_request_info;

/* How long a relay waits for a client to take what it sends before it gives the client up. */
#define RELAY_SEND_TIMEOUT_MS 30000

/* What apiserver learnt of a client before any HTTP was read. */
typedef struct relay_origin {
        bool has_identity;        /* the kernel told who it is (the local socket): no credential needed */
        auth_identity_t identity; /* when has_identity */
        char addr[64];            /* the client's address, for the audit log and the login slow-down */
} relay_origin_t;

/* The client's side of one relayed connection: its socket, plain or under TLS. */
typedef struct relay_stream relay_stream_t;
typedef struct relay_stream_ops {
        /* At most n bytes: > 0, 0 at the end of the stream, -EAGAIN when none is ready, -errno. */
        ssize_t (*recv)(relay_stream_t *s, void *buf, size_t n);
        /* All n bytes, waiting up to RELAY_SEND_TIMEOUT_MS for the client to read. 0 or -errno. */
        int (*send_all)(relay_stream_t *s, const void *buf, size_t n);
        /* Whether bytes were received and are held by the stream (poll() on fd cannot see them). */
        bool (*pending)(relay_stream_t *s);
        /* No more bytes to the client (its reader sees the end of the stream). */
        void (*shutdown_write)(relay_stream_t *s);
        /* Closes fd too. */
        void (*free)(relay_stream_t *s);
} relay_stream_ops_t;

struct relay_stream {
        const relay_stream_ops_t *ops;
        int fd; /* what poll() waits on */
};

/* The plain socket fd as a stream (takes fd). */
int relay_stream_plain(int fd, relay_stream_t **ret);

/* An HTTP answer with a problem+json body on a connection about to be closed, for clients
 * that are not relayed: sent after the request was read (or a second passed), and the rest
 * drained, so that the client sees the answer rather than a reset. */
void relay_refuse(int fd, int status, const char *title, const char *detail);

/* How one listener admits its connections. */
typedef struct relay_listener_ops {
        const char *name; /* for messages: "local API socket", "TLS listener" */
        /* On the new connection's own thread: vet fd and wrap it. 0: *ret_stream (it owns fd)
         * and *ret_origin are set. -errno: the connection is closed (fd is closed by open
         * itself, which first answers the client when it can tell it why). */
        int (*open)(void *userdata, int fd, relay_stream_t **ret_stream, relay_origin_t *ret_origin);
} relay_listener_ops_t;

typedef struct relay_server relay_server_t;

/* Accept on listen_fd (taken, listening) on a thread of its own, one thread per connection,
 * each relayed to 127.0.0.1:internal_port. Beyond max_connections at once, a connection is
 * answered 503 and closed: each holds a thread here and a civetweb worker. */
int relay_server_start(int listen_fd, uint16_t internal_port, unsigned max_connections, const relay_listener_ops_t *ops,
                       void *userdata, relay_server_t **ret);
/* Stops accepting and waits for the relays to end (within a second of civetweb stopping). */
void relay_server_free(relay_server_t *s);
static inline void relay_server_freep(relay_server_t **s) {
        if (*s)
                relay_server_free(*s);
        *s = NULL;
}

/* The origin of a request civetweb received from one of s's relays: 0 with *ret set, -ENOENT
 * when it came in any other way (s may be NULL). */
int relay_server_origin(relay_server_t *s, const struct mg_request_info *info, relay_origin_t *ret);
