/* cli_tap_bus.h: the bus subscriber `husk tap` uses, loaded from a module when tap runs. */
#pragma once

#include "lib/bus.h"

/* The module's place: next to the CLI in the build tree (build/bin, build/lib/husk) and once
 * installed (PREFIX/bin, PREFIX/lib/husk). dlopen expands $ORIGIN to the CLI's directory. */
#define CLI_TAP_BUS_MODULE "$ORIGIN/../lib/husk/husk-bus.so"

typedef struct cli_tap_bus {
        void *dl;
        __typeof__(bus_sub_new) *sub_new;
        __typeof__(bus_sub_destroy) *sub_destroy;
        __typeof__(bus_sub_subscribe) *sub_subscribe;
        __typeof__(bus_sub_recv) *sub_recv;
        volatile int *interrupted; /* czmq's zsys_interrupted, set by its SIGINT handler */
        /* Requests, for husk doctor. */
        __typeof__(bus_client_new) *client_new;
        __typeof__(bus_client_destroy) *client_destroy;
        __typeof__(bus_call) *call;
        __typeof__(bus_reply_free) *reply_free;
} cli_tap_bus_t;

/* Fills *ret, or returns -ENOENT with dlerror()'s text in *ret_error (the caller frees it). */
int cli_tap_bus_load(cli_tap_bus_t *ret, char **ret_error);
void cli_tap_bus_unload(cli_tap_bus_t *bus);
