/* apiserver_local.h: the API on a unix socket for local users, identified by their peer
 * credentials (SO_PEERCRED): root is admin, members of apiserver.socket_group are operators. */
#pragma once

#include "services/apiserver/apiserver.h"
#include "services/apiserver/apiserver_auth.h"

struct mg_request_info;

/* Serve <runtime_dir>/api.sock (mode 0660, group `group` when not empty) by relaying each
 * admitted connection to civetweb's internal listener on 127.0.0.1:internal_port. Sets
 * api->local. */
int apiserver_local_start(apiserver_t *api, const char *runtime_dir, const char *group, uint16_t internal_port);
/* Stops accepting, waits for the relays to end, removes the socket. */
void apiserver_local_free(apiserver_local_t *l);
static inline void apiserver_local_freep(apiserver_local_t **l) {
        if (*l)
                apiserver_local_free(*l);
        *l = NULL;
}

/* The identity of a request that came in through the local socket: 0 with *ret set, -ENOENT
 * when it came in any other way. */
int apiserver_local_identity(apiserver_t *api, const struct mg_request_info *info, auth_identity_t *ret);
