/* apiserver.h: the apiserver daemon's state, shared by its REST, bus and store halves. */
#pragma once

#include <czmq.h>
#include <pthread.h>

#include "lib/bus.h"
#include "lib/config.h"
#include "services/apiserver/apiserver_store.h"

struct mg_context;

/* Idle vmm-driver clients kept for execs (see apiserver_routes_exec.c). */
#define APISERVER_EXEC_CLIENTS_IDLE 8

/* No pointer into the daemon's config lives here: SIGHUP frees the old config on the loop
 * thread while civetweb workers run, so what workers need is copied at start (and applies
 * until a restart). */
typedef struct apiserver {
        char *vmm_requests;          /* bus.vmm-driver.requests: the exec clients connect there */
        char *logd_events;           /* bus.logd.events: log followers subscribe there */
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
        bus_client_t *exec_idle[APISERVER_EXEC_CLIENTS_IDLE]; /* vmm-driver clients between execs */
        size_t n_exec_idle;
        pthread_mutex_t exec_lock;   /* guards exec_idle */
        struct mg_context *http;
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
