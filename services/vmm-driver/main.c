/* main.c: husk-vmm-driver, the per-host daemon that runs VMM processes and keeps one directory per instance. */
#include "lib/log.h"
#include "services/vmm-driver/vmm.h"

static const husk_daemon_desc_t desc = {
        .name = "vmm-driver",
        .summary = "Run microVMs on this host: spawn, watch, stop and re-adopt VMM processes",
        .reload = vmm_reload,
};

int main(int argc, char **argv) {
        husk_daemon_ctx_t ctx = {};
        vmm_t *d = NULL;
        int r;

        r = husk_daemon_init(&ctx, &desc, argc, argv);
        if (r != 0)
                return r > 0 ? 0 : 1;
        r = vmm_new(&ctx, &d);
        if (r >= 0) {
                ctx.userdata = d;
                husk_daemon_ready(&ctx);
                r = husk_daemon_run(&ctx);
                vmm_free(d);
        }
        husk_daemon_done(&ctx);
        return r < 0 ? 1 : 0;
}
