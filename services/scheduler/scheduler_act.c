/* scheduler_act.c: acting on a plan, asynchronously. Each deployment's plan is a job that runs in
 * phases, each phase's calls at once and the next phase when they all ended:
 *
 *   persist  store failures and a job's exit code before their instances go (an exit seen but
 *            not stored would be forgotten; one stored twice is not: failed_at tells which
 *            were counted)
 *   remove   per exited instance: deployment.record_exit, then instance.remove
 *   resolve  when the plan creates and the deployment names secrets or configs: one
 *            deployment.resolve for this pass's creates (its secret environment goes into
 *            instance.create, never anywhere else); a secret that is missing fails the
 *            deployment (SecretResolutionError) and nothing starts without it
 *   act      the plan's event, stops, creates
 *   status   what the creates' refusals change (permanent failure, back-off), purge, status
 *
 * A stop or remove in flight for an instance is never sent again (the in-flight set): a failed
 * health check and a pass may want the same stop. */
#include "services/scheduler/scheduler.h"

#include <errno.h>
#include <string.h>

#include "lib/log.h"
#include "lib/mp.h"
#include "proto/event.h"
#include "proto/resolve.h"

struct inflight {
        struct inflight *next;
        char instance_id[16];
};

static bool inflight_add(scheduler_t *s, const char *id) {
        inflight_t *f;

        for (f = s->inflight; f; f = f->next)
                if (streq(f->instance_id, id))
                        return false;
        f = calloc(1, sizeof(*f));
        if (!f)
                return false; /* the next pass tries again */
        snprintf(f->instance_id, sizeof(f->instance_id), "%s", id);
        f->next = s->inflight;
        s->inflight = f;
        return true;
}

static void inflight_del(scheduler_t *s, const char *id) {
        for (inflight_t **pp = &s->inflight; *pp; pp = &(*pp)->next)
                if (streq((*pp)->instance_id, id)) {
                        inflight_t *f = *pp;

                        *pp = f->next;
                        free(f);
                        return;
                }
}

void scheduler_inflight_free(scheduler_t *s) {
        while (s->inflight) {
                inflight_t *f = s->inflight;

                s->inflight = f->next;
                free(f);
        }
}

typedef enum job_phase {
        JOB_NEW,
        JOB_PERSIST,
        JOB_REMOVE,
        JOB_RESOLVE,
        JOB_ACT,
        JOB_STATUS,
        JOB_DONE,
} job_phase_t;

typedef struct job {
        scheduler_t *s;
        pass_t *pass;
        const deployment_t *d;
        plan_t p;
        job_phase_t phase;
        unsigned holds;          /* calls in flight for the phase, and one while it starts them */
        bool stale;              /* planned without apiserver: creates only */
        const char *sent_status; /* what the restart counts were stored with, if they were */
        char sent_message[sizeof(((plan_t *)NULL)->message)];
        uint32_t n_invalid;        /* creates refused as invalid: the spec cannot run */
        uint32_t n_refused;        /* creates refused for now (a port taken, no room) */
        bool port_taken;           /* the first refusal was BUS_ERR_PORT_ALLOCATION_FAILED */
        char create_error[512];    /* the first refusal, in vmm-driver's words */
        bool secret_missing;       /* deployment.resolve refused: create_error says what is missing */
        resolve_result_t resolved; /* deployment.resolve's answer, for this pass's creates; wiped when freed */
} job_t;

static void job_release(job_t *j);

static void job_hold(job_t *j) {
        if (j)
                j->holds++;
}

/* ---- calls ------------------------------------------------------------------------------------ */

typedef struct op {
        pass_t *pass;
        job_t *job;                 /* held until the op ended; NULL: none */
        const instance_t *instance; /* remove: the exited instance, recorded first */
        char instance_id[16];
        char new_id[13]; /* create: the new instance's id */
} op_t;

static op_t *op_new(scheduler_t *s, pass_t *pass, job_t *job) {
        op_t *o = calloc(1, sizeof(*o));

        if (!o) {
                log_warning("Out of memory for a call, retrying in the next pass");
                if (pass)
                        scheduler_pass_fail(pass);
                return NULL;
        }
        o->pass = pass;
        o->job = job;
        job_hold(job);
        return o;
}

static void op_free(op_t *o) {
        if (o->job)
                job_release(o->job);
        free(o);
}

static void on_instance_op(scheduler_t *s, int r, const bus_reply_t *reply, void *userdata) {
        op_t *o = userdata;

        inflight_del(s, o->instance_id);
        if (r < 0 && o->pass)
                scheduler_pass_fail(o->pass);
        op_free(o);
}

/* instance.stop (with remove: gone once exited) or instance.remove, unless one is in flight. */
static void instance_op(scheduler_t *s, pass_t *pass, job_t *job, const char *method, const char *instance_id,
                        bool with_remove) {
        msgpack_sbuffer buf;
        msgpack_packer pk;
        op_t *o;

        if (!inflight_add(s, instance_id))
                return;
        o = op_new(s, pass, job);
        if (!o) {
                inflight_del(s, instance_id);
                return;
        }
        snprintf(o->instance_id, sizeof(o->instance_id), "%s", instance_id);
        msgpack_sbuffer_init(&buf);
        msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, with_remove ? 2 : 1);
        mp_pack_kv_str(&pk, "instance_id", instance_id);
        if (with_remove)
                mp_pack_kv_bool(&pk, "remove", true);
        (void)scheduler_call(s, s->vmm, pass, method, &buf, true, on_instance_op, o);
        msgpack_sbuffer_destroy(&buf);
}

static void status_changed_event(scheduler_t *s, const deployment_t *d, const plan_t *p) {
        if (streq(p->status, d->status))
                return;
        scheduler_event(s, d->id,
                        streq(p->status, DEPLOYMENT_STATUS_FAILED) || streq(p->status, DEPLOYMENT_STATUS_CRASH_LOOP)
                                ? EVENT_LEVEL_ERROR
                                : EVENT_LEVEL_INFO,
                        EVENT_STATUS_CHANGED, "%s -> %s: %s", d->status, p->status, p->message);
}

/* deployment.set_status: the plan's status, ready count and, when they changed, the restart
 * fields. */
static void set_status(scheduler_t *s, pass_t *pass, const deployment_t *d, const plan_t *p, scheduler_reply_fn fn,
                       void *userdata) {
        msgpack_sbuffer buf;
        msgpack_packer pk;

        msgpack_sbuffer_init(&buf);
        msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 4 + (p->persist_restarts ? 2 : 0) + (p->has_exit_code ? 1 : 0) +
                                      (p->persist_restarts || p->job_ended ? 1 : 0));
        mp_pack_kv_str(&pk, "id", d->id);
        mp_pack_kv_str(&pk, "status", p->status);
        mp_pack_kv_str(&pk, "message", p->message);
        mp_pack_kv_u64(&pk, "ready_replicas", p->ready);
        if (p->persist_restarts) {
                mp_pack_kv_u64(&pk, "restart_count", p->restart_count);
                mp_pack_kv_u64(&pk, "failed_at", p->failed_at);
        }
        if (p->has_exit_code)
                mp_pack_kv_i64(&pk, "exit_code", p->exit_code);
        /* Counted against this spec: dropped by apiserver if a re-apply came since. */
        if (p->persist_restarts || p->job_ended)
                mp_pack_kv_u64(&pk, "generation", d->generation);
        (void)scheduler_call(s, s->apiserver, pass, BUS_METHOD_DEPLOYMENT_SET_STATUS, &buf, true, fn, userdata);
        msgpack_sbuffer_destroy(&buf);
}

/* ---- phases ----------------------------------------------------------------------------------- */

static void on_persisted(scheduler_t *s, int r, const bus_reply_t *reply, void *userdata) {
        job_t *j = userdata;

        if (r < 0) {
                scheduler_pass_fail(j->pass);
                j->phase = JOB_STATUS; /* nothing else for this deployment until it is stored */
        } else {
                status_changed_event(s, j->d, &j->p);
                /* Stored: sending the counts again at the end could undo a re-apply since. */
                j->p.persist_restarts = j->p.job_ended = j->p.has_exit_code = false;
                j->sent_status = j->p.status;
                snprintf(j->sent_message, sizeof(j->sent_message), "%s", j->p.message);
        }
        job_release(j);
}

static void job_persist(job_t *j) {
        if (j->stale || !((j->p.persist_restarts || j->p.job_ended) && j->p.status))
                return;
        job_hold(j);
        set_status(j->s, j->pass, j->d, &j->p, on_persisted, j);
}

static void on_exit_recorded(scheduler_t *s, int r, const bus_reply_t *reply, void *userdata) {
        op_t *o = userdata;
        job_t *j = o->job;
        const instance_t *i = o->instance;
        const char *why = i->exit_reason ?: "unknown";
        bool crashed =
                streq(why, "crashed") || streq(why, "killed") || streq(why, "vanished") || streq(why, "guest-panic");
        char what[EVENT_MESSAGE_MAX + 1];

        if (r < 0 && !(r == -EREMOTEIO && streq(reply->error_code, BUS_ERR_NOT_FOUND))) {
                /* Not stored: the instance stays until it is. */
                scheduler_pass_fail(o->pass);
                op_free(o);
                return;
        }
        if (!streq(j->d->status, DEPLOYMENT_STATUS_DELETED) && !streq(why, "stopped")) {
                plan_describe_exit(i, what, sizeof(what));
                scheduler_event(s, j->d->id, EVENT_LEVEL_WARNING,
                                crashed ? EVENT_INSTANCE_CRASHED : EVENT_INSTANCE_EXITED, "%s", what);
        }
        instance_op(s, o->pass, j, BUS_METHOD_INSTANCE_REMOVE, i->spec.instance_id, false);
        op_free(o);
}

/* An exited instance is about to go: apiserver keeps how it ended (inspect shows the last few),
 * and an event says so unless we stopped it ourselves; then its directory goes. */
static void remove_exited(job_t *j, const instance_t *i) {
        msgpack_sbuffer buf;
        msgpack_packer pk;
        op_t *o = op_new(j->s, j->pass, j);

        if (!o)
                return;
        o->instance = i;
        if (streq(j->d->status, DEPLOYMENT_STATUS_DELETED) || !i->exit_reason) {
                on_exit_recorded(j->s, 0, NULL, o);
                return;
        }
        msgpack_sbuffer_init(&buf);
        msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
        instance_pack(&pk, i);
        /* Idempotent: apiserver keeps an instance once, however often it is sent. */
        (void)scheduler_call(j->s, j->s->apiserver, j->pass, BUS_METHOD_DEPLOYMENT_RECORD_EXIT, &buf, true,
                             on_exit_recorded, o);
        msgpack_sbuffer_destroy(&buf);
}

static void job_remove(job_t *j) {
        if (j->stale)
                return;
        for (size_t k = 0; k < j->p.n_remove; k++)
                remove_exited(j, j->p.remove[k]);
}

static void on_created(scheduler_t *s, int r, const bus_reply_t *reply, void *userdata) {
        op_t *o = userdata;
        job_t *j = o->job;

        if (r == 0)
                scheduler_event(s, j->d->id, EVENT_LEVEL_INFO, EVENT_INSTANCE_STARTED,
                                "started instance %s (generation %llu)", o->new_id,
                                (unsigned long long)j->d->generation);
        else if (r == -EREMOTEIO && streq(reply->error_code, BUS_ERR_INVALID)) {
                /* A permanent problem with the spec. */
                if (!j->n_invalid++)
                        snprintf(j->create_error, sizeof(j->create_error), "%s", reply->error_message ?: "");
        } else if (r == -EREMOTEIO) {
                /* Refused for a reason that may pass (a port taken, no room): a failed attempt. */
                if (!j->n_invalid && !j->n_refused++) {
                        snprintf(j->create_error, sizeof(j->create_error), "%s: %s", reply->error_code,
                                 reply->error_message ?: "");
                        /* A taken host port is told by its code, never by the message's words. */
                        j->port_taken = streq(reply->error_code, BUS_ERR_PORT_ALLOCATION_FAILED);
                }
        } else
                scheduler_pass_fail(j->pass); /* no answer: it may have started; the next pass looks */
        op_free(o);
}

/* Start one instance of d. Not idempotent from our side: a resend would start a second VM
 * under the same id, which vmm-driver refuses as a conflict; the next pass re-counts instead. */
static void create_instance(job_t *j) {
        const deployment_t *d = j->d;
        _cleanup_free_ volume_spec_t *volumes = NULL; /* shallow copies: d's, with the answer's files */
        instance_spec_t spec = {
                .secret_environment = j->resolved.secret_environment,
                .deployment_id = d->id,
                .generation = d->generation,
                .runtime = d->runtime,
                .image = d->image,
                .kernel = d->kernel,
                .boot = d->boot,
                .cpus = d->cpus,
                .memory_mib = d->memory_mib,
                .kind = d->kind,
                .command = d->command,
                .environment = d->environment,
                .ports = d->ports,
                .n_ports = d->n_ports,
                .volumes = d->volumes,
                .n_volumes = d->n_volumes,
        };
        msgpack_sbuffer buf;
        msgpack_packer pk;
        op_t *o;

        /* Config and secret volumes get their files from deployment.resolve's answer, made for
         * this pass's creates: volumes[k].files are the answer's for the spec's volumes[index]. */
        if (j->resolved.n_volumes > 0) {
                volumes = calloc(d->n_volumes, sizeof(*volumes));
                if (!volumes) {
                        scheduler_pass_fail(j->pass);
                        return;
                }
                memcpy(volumes, d->volumes, d->n_volumes * sizeof(*volumes));
                for (size_t k = 0; k < j->resolved.n_volumes; k++) {
                        const resolved_volume_t *rv = &j->resolved.volumes[k];

                        if (rv->index >= d->n_volumes)
                                continue; /* for another generation's volumes: the next pass asks again */
                        volumes[rv->index].files = rv->files;
                        volumes[rv->index].n_files = rv->n_files;
                }
                spec.volumes = volumes;
        }
        o = op_new(j->s, j->pass, j);
        if (!o)
                return;
        if (random_hex(o->new_id, 6) < 0) {
                scheduler_pass_fail(j->pass);
                op_free(o);
                return;
        }
        spec.instance_id = o->new_id;
        msgpack_sbuffer_init(&buf);
        msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
        instance_spec_pack(&pk, &spec);
        (void)scheduler_call(j->s, j->s->vmm, j->pass, BUS_METHOD_INSTANCE_CREATE, &buf, false, on_created, o);
        msgpack_sbuffer_destroy(&buf);
}

static void on_resolved(scheduler_t *s, int r, const bus_reply_t *reply, void *userdata) {
        job_t *j = userdata;

        if (r == -EREMOTEIO && streq(reply->error_code, BUS_ERR_SECRET_RESOLUTION)) {
                /* Never started without the value: the deployment fails until the secret exists
                 * and it is applied again. */
                j->secret_missing = true;
                j->n_invalid++;
                snprintf(j->create_error, sizeof(j->create_error), "%s", reply->error_message ?: "");
                j->p.create = 0;
        } else if (r < 0) {
                /* No answer: nothing starts this pass; the next one asks again. */
                scheduler_pass_fail(j->pass);
                j->p.create = 0;
        } else if (resolve_result_unpack(reply->result, &j->resolved) < 0) {
                log_warning("Deployment %s: deployment.resolve answered something malformed", j->d->id);
                scheduler_pass_fail(j->pass);
                j->p.create = 0;
        }
        job_release(j);
}

static void job_resolve(job_t *j) {
        msgpack_sbuffer buf;
        msgpack_packer pk;

        if (j->p.create == 0 || !j->d->resolve)
                return;
        if (j->stale) { /* planned without apiserver, which alone can answer */
                j->p.create = 0;
                return;
        }
        msgpack_sbuffer_init(&buf);
        msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 1);
        mp_pack_kv_str(&pk, "id", j->d->id);
        job_hold(j);
        (void)scheduler_call(j->s, j->s->apiserver, j->pass, BUS_METHOD_DEPLOYMENT_RESOLVE, &buf, true, on_resolved, j);
        msgpack_sbuffer_destroy(&buf);
}

static void job_act(job_t *j) {
        scheduler_t *s = j->s;
        const deployment_t *d = j->d;

        if (j->p.event_reason)
                scheduler_event(s, d->id, j->p.event_level, j->p.event_reason, "%s", j->p.event_message);
        for (size_t k = 0; k < j->p.n_stop && !j->stale; k++) {
                const instance_t *i = j->p.stop[k];

                scheduler_event(s, d->id, EVENT_LEVEL_INFO, EVENT_INSTANCE_STOPPED, "stopping instance %s (%s)",
                                i->spec.instance_id,
                                streq(d->status, DEPLOYMENT_STATUS_DELETED) ? "deployment deleted"
                                : plan_instance_matches(d, i)               ? "scaling down"
                                                                            : "replaced by the new spec");
                instance_op(s, j->pass, j, BUS_METHOD_INSTANCE_STOP, i->spec.instance_id, true);
        }
        for (uint32_t k = 0; k < j->p.create; k++)
                create_instance(j);
}

static void on_status(scheduler_t *s, int r, const bus_reply_t *reply, void *userdata) {
        job_t *j = userdata;

        if (r < 0)
                scheduler_pass_fail(j->pass);
        else
                status_changed_event(s, j->d, &j->p);
        job_release(j);
}

static void on_purged(scheduler_t *s, int r, const bus_reply_t *reply, void *userdata) {
        job_t *j = userdata;

        if (r < 0)
                scheduler_pass_fail(j->pass);
        else
                log_info("Deployment %s/%s: every instance gone, purged", j->d->namespace_, j->d->name);
        job_release(j);
}

static void job_status(job_t *j) {
        scheduler_t *s = j->s;
        const deployment_t *d = j->d;
        plan_t *p = &j->p;
        msgpack_sbuffer buf;
        msgpack_packer pk;

        if (j->n_invalid) {
                /* The spec cannot run as it is: say so once, no restarts burned. */
                p->status = DEPLOYMENT_STATUS_FAILED;
                snprintf(p->message, sizeof(p->message), "%s", j->create_error);
                if (j->secret_missing)
                        scheduler_event(s, d->id, EVENT_LEVEL_ERROR, EVENT_SECRET_RESOLUTION_ERROR,
                                        "cannot start an instance without what it names: %s", j->create_error);
                else
                        scheduler_event(s, d->id, EVENT_LEVEL_ERROR, EVENT_PERMANENT_FAILURE,
                                        "cannot create an instance, not retrying: %s", j->create_error);
        } else if (j->n_refused) {
                /* Refused for now (a port taken, no room): a failed attempt, backed off like a
                 * crash. */
                char what[600];
                const char *error = j->create_error;

                scheduler_event(s, d->id, EVENT_LEVEL_WARNING,
                                j->port_taken ? EVENT_PORT_ALLOCATION_FAILED : EVENT_CREATE_FAILED,
                                "cannot create an instance: %s", error);
                snprintf(what, sizeof(what), "create failed (%s)", error);
                plan_failures(d, 1, now_realtime_ms(), what, p);
                scheduler_event(s, d->id, p->event_level, p->event_reason, "%s", p->event_message);
        }
        if (j->stale)
                return;
        if (p->purge) {
                msgpack_sbuffer_init(&buf);
                msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
                msgpack_pack_map(&pk, 1);
                mp_pack_kv_str(&pk, "id", d->id);
                job_hold(j);
                (void)scheduler_call(s, s->apiserver, j->pass, BUS_METHOD_DEPLOYMENT_PURGE, &buf, true, on_purged, j);
                msgpack_sbuffer_destroy(&buf);
        }
        if (p->status && (!streq(p->status, j->sent_status ?: d->status) ||
                          (!j->sent_status && p->ready != d->ready_replicas) || p->persist_restarts ||
                          !streq(p->message, j->sent_status ? j->sent_message : d->status_message ?: ""))) {
                job_hold(j);
                set_status(s, j->pass, d, p, on_status, j);
        }
}

static void (*const job_phases[])(job_t *j) = {
        [JOB_PERSIST] = job_persist, [JOB_REMOVE] = job_remove, [JOB_RESOLVE] = job_resolve,
        [JOB_ACT] = job_act,         [JOB_STATUS] = job_status,
};

/* The phase's last call ended: start the next phase (skipping those with nothing to send). */
static void job_release(job_t *j) {
        if (--j->holds > 0)
                return;
        while (++j->phase < JOB_DONE) {
                j->holds = 1;
                job_phases[j->phase](j);
                if (--j->holds > 0)
                        return;
        }
        scheduler_pass_wake(j->pass, j->p.wake_at);
        scheduler_pass_release(j->pass);
        plan_clear(&j->p);
        resolve_result_clear(&j->resolved);
        free(j);
}

int scheduler_act(scheduler_t *s, pass_t *pass, const deployment_t *d, plan_t *plan) {
        job_t *j = calloc(1, sizeof(*j));

        if (!j) {
                plan_clear(plan);
                return -ENOMEM;
        }
        *j = (job_t){ .s = s,
                      .pass = pass,
                      .d = d,
                      .p = *plan,
                      .phase = JOB_NEW,
                      .holds = 1,
                      .stale = scheduler_pass_stale(pass) };
        memset(plan, 0, sizeof(*plan));
        scheduler_pass_hold(pass);
        job_release(j);
        return 0;
}

/* ---- what no plan owns ------------------------------------------------------------------------ */

/* Instances whose deployment no longer exists (purged while we were down, or a wiped store). */
void scheduler_reap_orphans(scheduler_t *s, pass_t *pass, const deployment_t *deployments, size_t n_deployments,
                            const instance_t *instances, size_t n_instances) {
        for (size_t k = 0; k < n_instances; k++) {
                const instance_t *i = &instances[k];
                bool known = false;

                for (size_t j = 0; j < n_deployments && !known; j++)
                        known = streq(deployments[j].id, i->spec.deployment_id);
                if (known || streq(i->state, INSTANCE_STATE_STOPPING))
                        continue;
                log_info("Instance %s belongs to no deployment, removing it", i->spec.instance_id);
                if (streq(i->state, INSTANCE_STATE_EXITED))
                        instance_op(s, pass, NULL, BUS_METHOD_INSTANCE_REMOVE, i->spec.instance_id, false);
                else
                        instance_op(s, pass, NULL, BUS_METHOD_INSTANCE_STOP, i->spec.instance_id, true);
        }
}

typedef struct unhealthy {
        deployment_t d;
        plan_t p;
        char instance_id[16];
        char what[400]; /* on_streak()'s words */
        bool stop_only;
} unhealthy_t;

static void unhealthy_free(unhealthy_t *u) {
        deployment_clear(&u->d);
        free(u);
}

static void on_unhealthy_status(scheduler_t *s, int r, const bus_reply_t *reply, void *userdata) {
        unhealthy_t *u = userdata;

        if (r >= 0) {
                status_changed_event(s, &u->d, &u->p);
                if (u->p.event_reason)
                        scheduler_event(s, u->d.id, u->p.event_level, u->p.event_reason, "%s", u->p.event_message);
                instance_op(s, NULL, NULL, BUS_METHOD_INSTANCE_STOP, u->instance_id, true);
        }
        unhealthy_free(u);
}

static void on_unhealthy_deployment(scheduler_t *s, int r, const bus_reply_t *reply, void *userdata) {
        unhealthy_t *u = userdata;
        plan_t *p = &u->p;

        if (r < 0 || deployment_unpack(reply->result, &u->d) < 0) {
                unhealthy_free(u); /* logged; the checks keep failing and the next streak tries again */
                return;
        }
        p->ready = u->d.ready_replicas;
        p->status = u->d.status;
        snprintf(p->message, sizeof(p->message), "%s", u->what);
        if (u->stop_only) {
                p->status = DEPLOYMENT_STATUS_FAILED;
                snprintf(p->message, sizeof(p->message), "%s; stopped (on_failure: stop), re-apply to start again",
                         u->what);
        } else
                /* A failed check is a failure like a crash: the same count and back-off. */
                plan_failures(&u->d, 1, now_realtime_ms(), u->what, p);
        set_status(s, NULL, &u->d, p, on_unhealthy_status, u);
}

void scheduler_replace_unhealthy(scheduler_t *s, const char *deployment_id, const char *instance_id, const char *what,
                                 bool stop_only) {
        unhealthy_t *u = calloc(1, sizeof(*u));
        msgpack_sbuffer buf;
        msgpack_packer pk;

        if (!u) {
                log_warning("Out of memory replacing instance %s, ignoring", instance_id);
                return;
        }
        snprintf(u->instance_id, sizeof(u->instance_id), "%s", instance_id);
        snprintf(u->what, sizeof(u->what), "%s", what);
        u->stop_only = stop_only;
        msgpack_sbuffer_init(&buf);
        msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 1);
        mp_pack_kv_str(&pk, "id", deployment_id);
        (void)scheduler_call(s, s->apiserver, NULL, BUS_METHOD_DEPLOYMENT_GET, &buf, true, on_unhealthy_deployment, u);
        msgpack_sbuffer_destroy(&buf);
}
