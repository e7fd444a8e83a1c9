/* main.c: husk-apiserver, the REST gateway and the only process that opens the database. */
#include "lib/daemon.h"
#include "lib/log.h"
#include "services/apiserver/apiserver.h"

static int reload(husk_daemon_ctx_t *ctx, const husk_config_t *fresh) { return apiserver_reload(ctx->config, fresh); }

static const husk_daemon_desc_t apiserver_desc = {
        .name = "apiserver",
        .summary = "Serves the REST API, owns the deployment store and answers deployment.* requests on the bus.",
        .reload = reload,
};

int main(int argc, char **argv) {
        _cleanup_(apiserver_freep) apiserver_t *api = NULL;
        husk_daemon_ctx_t ctx;
        int r;

        r = husk_daemon_init(&ctx, &apiserver_desc, argc, argv);
        if (r != 0)
                return r > 0 ? 0 : 1;
        r = apiserver_new(ctx.config, ctx.loop, &api);
        if (r >= 0) {
                ctx.userdata = api;
                husk_daemon_ready(&ctx);
                r = husk_daemon_run(&ctx);
        }
        /* Before the loop goes away. */
        apiserver_freep(&api);
        husk_daemon_done(&ctx);
        return r < 0 ? 1 : 0;
}
