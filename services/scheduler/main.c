/* main.c: husk-scheduler, the event-driven reconciler of deployments and instances. */
#include "lib/daemon.h"
#include "lib/log.h"
#include "services/scheduler/scheduler.h"

static const husk_daemon_desc_t scheduler_desc = {
        .name = "scheduler",
        .summary = "Reconciles deployments with the instances vmm-driver runs, reacting to bus events.",
        .reload = scheduler_reload,
};

int main(int argc, char **argv) {
        husk_daemon_ctx_t ctx;
        scheduler_t s = { .ctx = &ctx, .wake_timer = -1, .pass_timer = -1, .resync_timer = -1 };
        int r;

        r = husk_daemon_init(&ctx, &scheduler_desc, argc, argv);
        if (r != 0)
                return r > 0 ? 0 : 1;
        r = scheduler_bus_open(&s);
        if (r >= 0) {
                ctx.userdata = &s;
                husk_daemon_ready(&ctx);
                /* Full resync on start: the scheduler keeps no state of its own. */
                scheduler_kick(&s, "start");
                r = husk_daemon_run(&ctx);
        }
        scheduler_bus_close(&s);
        husk_daemon_done(&ctx);
        return r < 0 ? 1 : 0;
}
