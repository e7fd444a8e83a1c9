/* main.c: husk-logd, the per-host console log daemon: capture, rotation, levels, tail and follow. */
#include "lib/daemon.h"
#include "lib/log.h"
#include "services/logd/logd.h"

static const husk_daemon_desc_t logd_desc = {
        .name = "logd",
        .summary = "Captures every instance's serial console into rotated, leveled logs and serves tail, since and "
                   "follow.",
        .reload = logd_reload,
};

int main(int argc, char **argv) {
        _cleanup_(logd_freep) logd_t *d = NULL;
        husk_daemon_ctx_t ctx;
        int r;

        r = husk_daemon_init(&ctx, &logd_desc, argc, argv);
        if (r != 0)
                return r > 0 ? 0 : 1;
        r = logd_new(&ctx, &d);
        if (r >= 0) {
                ctx.userdata = d;
                husk_daemon_ready(&ctx);
                r = husk_daemon_run(&ctx);
        }
        logd_freep(&d);
        husk_daemon_done(&ctx);
        return r < 0 ? 1 : 0;
}
