/* apiserver.h: the apiserver daemon's state, shared by its REST, bus and store halves. */
#pragma once

#include <czmq.h>

#include "lib/bus.h"
#include "lib/bus_pool.h"
#include "lib/config.h"
#include "services/apiserver/apiserver_store.h"

struct mg_context;
typedef struct apiserver_local apiserver_local_t;
typedef struct apiserver_tls apiserver_tls_t;
typedef struct apiserver_metrics apiserver_metrics_t;

/* In the state dir: the first admin's password, written when the store has no user. */
#define APISERVER_ADMIN_PASSWORD_FILE "admin-password"

/* Clients kept between calls, per daemon apiserver calls (see lib/bus_pool.h). */
#define APISERVER_CLIENTS_IDLE 8

/* No pointer into the daemon's config lives here: SIGHUP frees the old config on the loop
 * thread while civetweb workers run, so what workers need is copied at start (and applies
 * until a restart). */
typedef struct apiserver {
        char *logd_events;        /* bus.logd.events: log followers subscribe there */
        apiserver_store_t *store; /* thread-safe */
        bus_pub_t *pub;           /* thread-safe: civetweb workers publish through it */
        bus_server_t *server;     /* deployment.* requests, served on the daemon's zloop */
        bus_pool_t *vmm;          /* instance.list and instance.exec, from civetweb workers */
        bus_pool_t *logd;         /* logs.query, from civetweb workers */
        bus_pool_t *scheduler;    /* health.list, from civetweb workers */
        volatile bool stopping;   /* REST is stopping: long requests (log followers) end */
        struct mg_context *http;
        uint16_t http_internal_port; /* civetweb's loopback listener that the relays below use */
        apiserver_local_t *local;    /* <runtime_dir>/api.sock (apiserver_local.c) */
        apiserver_tls_t *tls;        /* HTTPS on apiserver.listen (apiserver_tls.c); NULL: civetweb serves HTTP there */
        apiserver_metrics_t *metrics; /* instance samples and daemon.stats (apiserver_metrics.c) */
        bool metrics_auth;            /* apiserver.metrics_auth: GET /metrics needs deployments:read */
} apiserver_t;

/* Open the store, bind the bus sockets (attached to loop) and start serving REST. Keeps no
 * pointer into config: the caller may free it (a reload) while the apiserver runs. */
int apiserver_new(const husk_config_t *config, zloop_t *loop, apiserver_t **ret);
/* SIGHUP: nothing but the log level (lib/daemon) changes in a running apiserver; keys that
 * need a restart are named when they changed. Never refuses. */
int apiserver_reload(const husk_config_t *old, const husk_config_t *fresh);
/* Stops REST first (joins the workers), then the bus, then closes the store. */
void apiserver_free(apiserver_t *api);
static inline void apiserver_freep(apiserver_t **api) {
        if (*api)
                apiserver_free(*api);
        *api = NULL;
}
