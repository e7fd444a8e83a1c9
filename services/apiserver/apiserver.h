/* apiserver.h: the apiserver daemon's state, shared by its REST, bus and store halves. */
#pragma once

#include <czmq.h>
#include <pthread.h>

#include "lib/bus.h"
#include "lib/config.h"
#include "services/apiserver/apiserver_store.h"

struct mg_context;

typedef struct apiserver {
        const husk_config_t *config; /* owned by the daemon context; no reload hook, so stable */
        apiserver_store_t *store;    /* thread-safe */
        bus_pub_t *pub;              /* thread-safe: civetweb workers publish through it */
        bus_server_t *server;        /* deployment.* requests, served on the daemon's zloop */
        bus_client_t *vmm;           /* instance.list to vmm-driver, from civetweb workers */
        pthread_mutex_t vmm_lock;    /* a ZeroMQ socket is used by one thread at a time */
        bus_client_t *logd;          /* logs.query, from civetweb workers */
        pthread_mutex_t logd_lock;
        volatile bool stopping;      /* REST is stopping: long requests (log followers) end */
        bus_client_t *scheduler;     /* health.list, from civetweb workers */
        pthread_mutex_t scheduler_lock;
        struct mg_context *http;
} apiserver_t;

/* Open the store, bind the bus sockets (attached to loop) and start serving REST. */
int apiserver_new(const husk_config_t *config, zloop_t *loop, apiserver_t **ret);
/* Stops REST first (joins the workers), then the bus, then closes the store. */
void apiserver_free(apiserver_t *api);
static inline void apiserver_freep(apiserver_t **api) {
        if (*api)
                apiserver_free(*api);
        *api = NULL;
}
