/* cli_tap_bus.c: `husk tap` is the CLI's only bus user, and czmq with libzmq brings ~18 shared
 * objects (libstdc++, libsodium, libsystemd, libgcrypt...) whose loading and relocation would
 * otherwise make up most of every `husk` command's start-up (tests/bench/bench_startup.py).
 * So lib/bus lives in husk-bus.so for the CLI, opened by tap alone. */
#include "cli/cli_tap_bus.h"

#include <dlfcn.h>
#include <errno.h>
#include <string.h>

int cli_tap_bus_load(cli_tap_bus_t *ret, char **ret_error) {
        cli_tap_bus_t b = {};

        b.dl = dlopen(CLI_TAP_BUS_MODULE, RTLD_NOW | RTLD_LOCAL);
        if (!b.dl)
                goto fail;
        b.sub_new = (__typeof__(b.sub_new))dlsym(b.dl, "bus_sub_new");
        b.sub_destroy = (__typeof__(b.sub_destroy))dlsym(b.dl, "bus_sub_destroy");
        b.sub_subscribe = (__typeof__(b.sub_subscribe))dlsym(b.dl, "bus_sub_subscribe");
        b.sub_recv = (__typeof__(b.sub_recv))dlsym(b.dl, "bus_sub_recv");
        b.interrupted = (volatile int *)dlsym(b.dl, "zsys_interrupted");
        b.client_new = (__typeof__(b.client_new))dlsym(b.dl, "bus_client_new");
        b.client_destroy = (__typeof__(b.client_destroy))dlsym(b.dl, "bus_client_destroy");
        b.call = (__typeof__(b.call))dlsym(b.dl, "bus_call");
        b.reply_free = (__typeof__(b.reply_free))dlsym(b.dl, "bus_reply_free");
        if (!b.sub_new || !b.sub_destroy || !b.sub_subscribe || !b.sub_recv || !b.interrupted || !b.client_new ||
            !b.client_destroy || !b.call || !b.reply_free)
                goto fail;
        *ret = b;
        return 0;
fail:;
        const char *e = dlerror();

        *ret_error = strdup(e ? e : "a symbol is missing");
        if (b.dl)
                dlclose(b.dl);
        return -ENOENT;
}

void cli_tap_bus_unload(cli_tap_bus_t *bus) {
        if (bus->dl)
                dlclose(bus->dl);
        *bus = (cli_tap_bus_t){};
}
