/* apiserver_tls.h: HTTPS on apiserver.listen when apiserver.tls.cert and .key are set,
 * terminated by apiserver itself with OpenSSL and relayed to civetweb's internal listener. */
#pragma once

#include <stdint.h>

#include "services/apiserver/apiserver.h"
#include "services/apiserver/apiserver_relay.h"

/* TLS clients served at once (each holds a relay thread and a civetweb worker). */
#define TLS_CONNECTIONS_MAX 900 /* of civetweb's 1024 workers; the local socket may hold 64 */
/* A client that has not finished its handshake by then is dropped. */
#define TLS_HANDSHAKE_TIMEOUT_MS 10000

typedef struct apiserver_tls apiserver_tls_t;

/* Load cert (a PEM chain) and key (PEM), listen on `listen` (host:port, as apiserver.listen)
 * and relay each client to 127.0.0.1:internal_port. Errors name the file and OpenSSL's reason. */
int apiserver_tls_start(const char *listen, const char *cert, const char *key, uint16_t internal_port,
                        apiserver_tls_t **ret);
/* Stops accepting, waits for the relays to end. */
void apiserver_tls_free(apiserver_tls_t *t);
static inline void apiserver_tls_freep(apiserver_tls_t **t) {
        if (*t)
                apiserver_tls_free(*t);
        *t = NULL;
}

/* The origin (the client's address) of a request that came in over TLS: 0, or -ENOENT. */
int apiserver_tls_origin(apiserver_t *api, const struct mg_request_info *info, relay_origin_t *ret);
