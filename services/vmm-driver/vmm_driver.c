/* vmm_driver.c: the daemon object: paths, runtimes set up, bus sockets, adoption at start. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/log.h"
#include "services/vmm-driver/vmm.h"
#include "services/vmm-driver/vmm_template.h"

static bool same(const char *a, const char *b) { return (!a && !b) || (a && b && streq(a, b)); }

int vmm_reload(husk_daemon_ctx_t *ctx, const husk_config_t *fresh) {
        vmm_t *d = ctx->userdata;
        const husk_endpoints_t *old_ep = &ctx->config->bus[HUSK_DAEMON_VMM_DRIVER];
        const husk_endpoints_t *new_ep = &fresh->bus[HUSK_DAEMON_VMM_DRIVER];
        int r;

        if (!d)
                return 0;
        /* Every instance lives there: moving it would orphan them all. */
        if (!same(fresh->vmm_driver.instances_dir, ctx->config->vmm_driver.instances_dir) ||
            (!fresh->vmm_driver.instances_dir && !same(fresh->state_dir, ctx->config->state_dir)))
                return log_error_errno(EINVAL,
                                       "vmm_driver.instances_dir cannot change while running; restart husk-vmm-driver");
        if (!same(old_ep->events, new_ep->events) || !same(old_ep->requests, new_ep->requests))
                log_notice("bus.vmm-driver endpoints changed: they apply at the next restart");
        r = vmm_templates_check_reload(d, fresh);
        if (r < 0)
                return r;
        vmm_metrics_reload(d, fresh->vmm_driver.metrics_interval_ms);
        /* Everything else (stop timeout, defaults, kit paths) is read from the config when used. */
        r = vmm_runtime_setup_all(d, fresh);
        if (r < 0)
                return r;
        vmm_templates_reload(d, fresh);
        return 0;
}

int vmm_new(husk_daemon_ctx_t *ctx, vmm_t **ret) {
        const husk_config_t *c = ctx->config;
        const husk_endpoints_t *ep = &c->bus[HUSK_DAEMON_VMM_DRIVER];
        _cleanup_(vmm_freep) vmm_t *d = NULL;
        int r;

        d = calloc(1, sizeof(*d));
        if (!d)
                return log_error_errno(ENOMEM, "Out of memory");
        d->ctx = ctx;
        d->loop = ctx->loop;
        d->instances = zhashx_new();
        d->graveyard = zlistx_new();
        d->creating = zhashx_new();
        if (!d->instances || !d->graveyard || !d->creating)
                return log_error_errno(ENOMEM, "Out of memory");

        if (c->vmm_driver.instances_dir)
                d->instances_dir = strdup(c->vmm_driver.instances_dir);
        else if (asprintf(&d->instances_dir, "%s/instances", c->state_dir) < 0)
                d->instances_dir = NULL;
        if (!d->instances_dir)
                return log_error_errno(ENOMEM, "Out of memory");
        r = mkdir_p(d->instances_dir, 0700);
        if (r < 0)
                return log_error_errno(r, "Failed to create %s: %m", d->instances_dir);

        /* Volatile, like the runtime dir it is in: a restart with another runtime_dir keeps
         * removing the files of the instances it adopts from where they were written. */
        if (asprintf(&d->files_dir, "%s/volume-files", c->runtime_dir) < 0) {
                d->files_dir = NULL;
                return log_error_errno(ENOMEM, "Out of memory");
        }

        r = vmm_runtime_setup_all(d, c);
        if (r < 0)
                return r;

        if (!ep->events || !ep->requests)
                return log_error_errno(EINVAL, "bus.vmm-driver: events and requests endpoints must be set");
        r = bus_pub_new(ep->events, &d->pub);
        if (r < 0)
                return log_error_errno(r, "Failed to bind %s: %m", ep->events);
        r = bus_server_new(ep->requests, vmm_bus_methods, d, &d->server);
        if (r < 0)
                return log_error_errno(r, "Failed to bind %s: %m", ep->requests);
        r = bus_server_attach(d->server, d->loop);
        if (r < 0)
                return log_error_errno(r, "Failed to attach the request socket: %m");

        r = vmm_net_open(d);
        if (r < 0)
                return r;
        r = vmm_templates_new(d, &d->templates);
        if (r < 0)
                return r;
        r = vmm_adopt_all(d);
        if (r < 0)
                return r;
        r = vmm_metrics_start(d, c->vmm_driver.metrics_interval_ms);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(d);
        return 0;
}

void vmm_free(vmm_t *d) {
        vmm_instance_t *i;

        if (!d)
                return;
        vmm_metrics_stop(d);
        /* Whatever is held still goes out: it is news to every subscriber. */
        vmm_publish_release(d);
        /* Creates in flight are answered while the server is still there: those waiting for a
         * seed or a restore now, those waiting for netd when its client goes. */
        vmm_instance_cancel_creates(d);
        vmm_templates_free(d->templates);
        bus_client_destroy(&d->netd);
        zhashx_destroy(&d->creating);
        bus_server_destroy(&d->server);
        /* The VMMs keep running: we only let go of them. */
        if (d->instances) {
                while ((i = zhashx_first(d->instances))) {
                        zhashx_delete(d->instances, i->rec.inst.spec.instance_id);
                        vmm_instance_free(i);
                }
                zhashx_destroy(&d->instances);
        }
        vmm_reap_now(d);
        if (d->reap_timer && d->loop)
                zloop_timer_end(d->loop, d->reap_timer);
        zlistx_destroy(&d->graveyard);
        bus_pub_destroy(&d->pub);
        vmm_runtime_free_all(d);
        free(d->instances_dir);
        free(d->files_dir);
        free(d);
}
