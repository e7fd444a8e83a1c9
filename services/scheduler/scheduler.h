/* scheduler.h: the reconciler's state, and the files that share it: bus, reconcile (passes), act, plan, health, events. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "lib/bus.h"
#include "lib/daemon.h"
#include "lib/stats.h"
#include "proto/deployment.h"
#include "proto/instance.h"

/* What one deployment needs, decided from its record and the instances vmm-driver reports.
 * Pointers refer into the instance array given to scheduler_plan(). */
typedef struct plan {
        uint32_t create;         /* new instances to start for the current spec */
        const instance_t **stop; /* live instances to stop (and remove once exited) */
        size_t n_stop;
        const instance_t **remove; /* exited instances whose directory goes */
        size_t n_remove;
        bool purge;         /* deleted and nothing left: drop the record */
        const char *status; /* status the deployment should have; NULL: leave as is */
        uint32_t ready;     /* ready instances running the current spec */
        char message[512];
        /* Restarts: failures are counted against the deployment (persisted by apiserver). */
        bool persist_restarts; /* restart_count/failed_at below differ from the record's */
        uint32_t restart_count;
        uint64_t failed_at; /* exit time of the newest failure counted (unix ms) */
        uint64_t wake_at;   /* unix ms at which this deployment needs a pass; 0: none */
        bool job_ended;     /* a job ended: its status is stored before its instance goes */
        bool has_exit_code; /* ... and it gave a status: exit_code, stored with the status */
        int64_t exit_code;
        const char *event_reason; /* one event for what was decided about failures; NULL: none */
        const char *event_level;
        char event_message[512];
} plan_t;

#define SCHEDULER_MAX_RESTART_COUNT 5  /* consecutive failures restarted before crash_loop_back_off */
#define SCHEDULER_BACKOFF_BASE_MS 1000 /* first restart delay; doubles per consecutive failure */
#define SCHEDULER_BACKOFF_MAX_MS 60000
#define SCHEDULER_MIN_HEALTHY_MS 10000 /* ready this long with no failure resets restart_count */

/* "instance ID exited (REASON, status N)", and ": " with the VMM's last output when it left some:
 * how events and status messages tell an exit, so the user sees what to fix. */
void plan_describe_exit(const instance_t *i, char *buf, size_t size);

/* Whether instance i runs what d asks for now (so that scaling never replaces it). */
bool plan_instance_matches(const deployment_t *d, const instance_t *i);

/* Delay before restart number n (1-based): 1 s x 2^(n-1), capped at 60 s; 0 for n == 0. */
uint64_t plan_backoff_ms(uint32_t n);

/* Count n_failures new failures (newest at failed_at) against d: fills the restart fields of p
 * (persist_restarts, restart_count, failed_at, wake_at, event_*), and status/message when the
 * deployment gives up (crash_loop_back_off). Returns true when restarts may go on. */
bool plan_failures(const deployment_t *d, uint32_t n_failures, uint64_t failed_at, const char *what, plan_t *p);

/* What the host has left, shared by every deployment of a pass: each plan's creates are
 * charged to it before the next deployment is planned. */
typedef struct plan_host {
        uint64_t memory_capacity_mib;  /* guest RAM the host may hand out; 0: no admission */
        uint64_t memory_used_mib;      /* RAM of the live instances, and of those created this pass */
        uint32_t create_concurrency;   /* instances booting at once; 0: unbounded */
        uint32_t booting;              /* instances started recently and not ready yet */
        uint64_t progress_deadline_ms; /* a rolling update not ready after this says so; 0: never */
} plan_host_t;

#define SCHEDULER_BOOT_WINDOW_MS 120000 /* a VM not ready after this no longer holds a boot slot */

/* Fill host's usage from the instance list of every deployment. */
void plan_host_count(plan_host_t *host, const instance_t *instances, size_t n_instances, uint64_t now_ms);

void plan_clear(plan_t *p);
/* Pure: decides, never acts. instances may include other deployments' instances; now_ms is
 * the wall clock (instance times are unix ms); host (NULL: no limits) bounds the creates. */
int scheduler_plan_at(const deployment_t *d, const instance_t *instances, size_t n_instances, uint64_t now_ms,
                      const plan_host_t *host, plan_t *ret);
/* scheduler_plan_at() with the current time. */
int scheduler_plan(const deployment_t *d, const instance_t *instances, size_t n_instances, plan_t *ret);

typedef struct probe probe_t;
typedef struct pass pass_t;
typedef struct inflight inflight_t;

typedef struct scheduler {
        husk_daemon_ctx_t *ctx;
        bus_client_t *apiserver; /* every client is attached to the loop: calls never block it */
        bus_client_t *vmm;
        bus_client_t *netd;      /* net.list: guest addresses for tcp and http checks */
        bus_server_t *server;    /* health.list, scheduler.status */
        probe_t *probes;         /* one per health check per live instance */
        bool net_list_in_flight; /* one net.list at a time */
        bus_sub_t *events;
        bus_pub_t *pub;
        pass_t *pass;               /* the reconcile pass in flight; NULL between passes */
        bool pass_scheduled;        /* a pass is queued: its timer runs, or it follows the one in flight */
        int pass_timer;             /* -1, or the timer that starts the queued pass */
        uint64_t passes;            /* passes that saw both lists and whose every call ended */
        stats_hist_t pass_duration; /* of those passes, start to end (daemon.stats) */
        deployment_t *known;        /* apiserver's last deployment list: planned from while it does not answer */
        size_t n_known;
        inflight_t *inflight; /* instances with a stop or remove in flight: never sent twice */
        bool closing;         /* scheduler_bus_close() runs: callbacks only free */
        int resync_timer;
        int wake_timer; /* -1, or the one-shot timer of the earliest back-off or healthy deadline */
} scheduler_t;

/* scheduler_bus.c: the bus: clients, subscriptions, the request server's method table, reload. */
int scheduler_bus_open(scheduler_t *s);
/* SIGHUP: the scheduler.* keys apply from the next pass (one is queued at once), a new
 * resync_interval re-arms its timer; bus endpoints need a restart (named when changed). */
int scheduler_reload(husk_daemon_ctx_t *ctx, const husk_config_t *fresh);
void scheduler_bus_close(scheduler_t *s);

/* The end of one scheduler_call(): r 0 with reply->result, -EREMOTEIO with reply's error_code
 * when the daemon refused (logged), another negative errno with reply NULL (no answer, logged). */
typedef void (*scheduler_reply_fn)(scheduler_t *s, int r, const bus_reply_t *reply, void *userdata);

/* The scheduler's one way to call a daemon: asynchronous, with scheduler.request_timeout as
 * the deadline. pass (NULL: none) is held until fn has run, so a pass ends after every call made
 * for it. fn (NULL: none) runs exactly once, from the loop; when the call cannot even start it
 * runs before this returns, which is then <0. */
int scheduler_call(scheduler_t *s, bus_client_t *c, pass_t *pass, const char *method, const msgpack_sbuffer *args,
                   bool idempotent, scheduler_reply_fn fn, void *userdata);

/* scheduler_reconcile.c: passes. At most one runs at a time: it gathers both lists, plans every
 * deployment and acts; it ends when every call made for it ended. */
/* Queue a full reconcile pass (coalesces bursts of events into one; a kick during a pass queues
 * one more after it). why NULL: a retry, after a pause. */
void scheduler_kick(scheduler_t *s, const char *why);
/* Arm the wake-up timer for unix ms wake_at (0: none), replacing the previous one. */
void scheduler_wake_at(scheduler_t *s, uint64_t wake_at);
/* Hold and release pass p (NULL: no-op): a pass ends when its last hold is released. */
void scheduler_pass_hold(pass_t *p);
void scheduler_pass_release(pass_t *p);
/* Whether pass p planned from a deployment list apiserver did not confirm this pass. */
bool scheduler_pass_stale(const pass_t *p);
/* The end of every pass and the free of the list cache (scheduler_bus_close()). */
void scheduler_reconcile_close(scheduler_t *s);

/* scheduler_act.c: act on one deployment's plan (plan owned by the job from then on; d and the
 * instances the plan points into must outlive pass), and on what no deployment owns. A stale
 * pass only creates: every other action needs apiserver's confirmed view. */
int scheduler_act(scheduler_t *s, pass_t *pass, const deployment_t *d, plan_t *plan);
/* Stop or remove the instances whose deployment no longer exists. */
void scheduler_reap_orphans(scheduler_t *s, pass_t *pass, const deployment_t *deployments, size_t n_deployments,
                            const instance_t *instances, size_t n_instances);
/* An instance failed its checks: count a failure against its deployment (back-off, crash loop)
 * and stop it; with stop_only the deployment is marked failed instead of the instance being
 * replaced. */
void scheduler_replace_unhealthy(scheduler_t *s, const char *deployment_id, const char *instance_id, const char *what,
                                 bool stop_only);
/* What a finished pass folds in: the earliest wake-up any job asked for, whether one failed. */
void scheduler_pass_wake(pass_t *p, uint64_t wake_at);
void scheduler_pass_fail(pass_t *p);
void scheduler_inflight_free(scheduler_t *s);

/* scheduler_health.c: start and stop the probes of every live instance to match the
 * deployments' health checks (called after each pass's lists). */
void scheduler_health_sync(scheduler_t *s, const deployment_t *deployments, size_t n_deployments,
                           const instance_t *instances, size_t n_instances);
/* Whether every readiness check of d has passed on instance_id (true when d has none). */
bool scheduler_health_ready(scheduler_t *s, const deployment_t *d, const char *instance_id);
/* Stop every probe (and cancel its call). */
void scheduler_health_close(scheduler_t *s);
/* health.list: {deployment_id} -> array of {instance_id, check, type, target, readiness,
 * on_failure, threshold, status, consecutive_failures, guest_ip, history: [...]}. */
int scheduler_method_health_list(bus_request_t *req, msgpack_packer *pk, void *userdata);

/* scheduler_events.c: record an event of deployment_id (component "scheduler") through
 * apiserver's event.record, and log it. Sent asynchronously (held by the pass in flight, so a
 * pass ends once its events are stored); failures are logged, never fatal. A stale pass only
 * logs: apiserver did not answer it. */
void scheduler_event(scheduler_t *s, const char *deployment_id, const char *level, const char *reason, const char *fmt,
                     ...) _printf_(5, 6);
