/* main.c: husk-netd, per host: TAPs and /30s of instances, published ports, isolation. */
#include "lib/daemon.h"
#include "lib/log.h"
#include "services/netd/netd.h"

static const husk_daemon_desc_t netd_desc = {
        .name = "netd",
        .summary = "Gives each instance a TAP and a /30, publishes its ports (nftables DNAT or a userspace forwarder).",
        .reload = netd_reload,
};

int main(int argc, char **argv) {
        husk_daemon_ctx_t ctx;
        netd_t n = { .ctx = &ctx };
        int r;

        r = husk_daemon_init(&ctx, &netd_desc, argc, argv);
        if (r != 0)
                return r > 0 ? 0 : 1;
        r = netd_open(&n);
        if (r >= 0) {
                ctx.userdata = &n;
                husk_daemon_ready(&ctx);
                r = husk_daemon_run(&ctx);
        }
        netd_close(&n);
        husk_daemon_done(&ctx);
        return r < 0 ? 1 : 0;
}
