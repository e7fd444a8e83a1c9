/* scheduler.h: the reconciler's state and its two halves (planning, acting on the bus). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "lib/bus.h"
#include "lib/daemon.h"
#include "proto/deployment.h"
#include "proto/instance.h"

/* What one deployment needs, decided from its record and the instances vmm-driver reports.
 * Pointers refer into the instance array given to scheduler_plan(). */
typedef struct plan {
        uint32_t create;          /* new instances to start for the current spec */
        const instance_t **stop;  /* live instances to stop (and remove once exited) */
        size_t n_stop;
        const instance_t **remove; /* exited instances whose directory goes */
        size_t n_remove;
        bool purge;               /* deleted and nothing left: drop the record */
        const char *status;       /* status the deployment should have; NULL: leave as is */
        uint32_t ready;           /* ready instances running the current spec */
        char message[512];
} plan_t;

void plan_clear(plan_t *p);
/* Pure: decides, never acts. instances may include other deployments' instances. */
int scheduler_plan(const deployment_t *d, const instance_t *instances, size_t n_instances, plan_t *ret);

typedef struct scheduler {
        husk_daemon_ctx_t *ctx;
        bus_client_t *apiserver;
        bus_client_t *vmm;
        bus_sub_t *events;
        bus_pub_t *pub;
        bool pass_scheduled; /* a reconcile pass is queued on the loop */
        int resync_timer;
} scheduler_t;

int scheduler_bus_open(scheduler_t *s);
void scheduler_bus_close(scheduler_t *s);
/* Queue a full reconcile pass on the loop (coalesces bursts of events into one pass). */
void scheduler_kick(scheduler_t *s, const char *why);
/* One full pass: list deployments and instances, plan each, act. */
int scheduler_reconcile_all(scheduler_t *s);

/* scheduler_events.c: record an event of deployment_id (component "scheduler") through
 * apiserver's event.record, and log it. Failures are logged and returned, never fatal. */
int scheduler_event(scheduler_t *s, const char *deployment_id, const char *level, const char *reason,
                    const char *fmt, ...) _printf_(5, 6);
