/* scheduler_plan.c: decide what a deployment needs, as a pure function of observed state. */
#include "services/scheduler/scheduler.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

#include <sys/param.h> /* MIN, MAX */

static bool instance_alive(const instance_t *i) {
        return streq(i->state, INSTANCE_STATE_STARTING) || streq(i->state, INSTANCE_STATE_RUNNING) ||
               streq(i->state, INSTANCE_STATE_READY);
}

static bool str_eq_null(const char *a, const char *b) { return a == b || (a && b && streq(a, b)); }

static bool strv_eq_null(char *const *a, char *const *b) {
        size_t i;

        if (!a || !b)
                return a == b;
        for (i = 0; a[i] && b[i]; i++)
                if (!streq(a[i], b[i]))
                        return false;
        return !a[i] && !b[i];
}

/* Does i run what d asks for now? Derived from the records rather than from generations, so
 * that scaling (a new generation with only replicas changed) never replaces a VM. */
bool plan_instance_matches(const deployment_t *d, const instance_t *i) {
        return str_eq_null(i->spec.runtime, d->runtime) && str_eq_null(i->spec.image, d->image) &&
               str_eq_null(i->spec.kernel, d->kernel) && str_eq_null(i->spec.boot, d->boot) &&
               i->spec.cpus == d->cpus && i->spec.memory_mib == d->memory_mib &&
               strv_eq_null(i->spec.command, d->command) && strv_eq_null(i->spec.environment, d->environment) &&
               ports_equal(i->spec.ports, i->spec.n_ports, d->ports, d->n_ports);
}

void plan_describe_exit(const instance_t *i, char *buf, size_t size) {
        snprintf(buf, size, "instance %s exited (%s, status %lld)%s%s", i->spec.instance_id,
                 i->exit_reason ?: "unknown", (long long)i->exit_status, i->exit_message ? ": " : "",
                 i->exit_message ?: "");
}

uint64_t plan_backoff_ms(uint32_t n) {
        if (n == 0)
                return 0;
        if (n > 7) /* 2^6 s already exceeds the cap; no shift overflows */
                return SCHEDULER_BACKOFF_MAX_MS;
        return MIN((uint64_t)SCHEDULER_BACKOFF_BASE_MS << (n - 1), (uint64_t)SCHEDULER_BACKOFF_MAX_MS);
}

bool plan_failures(const deployment_t *d, uint32_t n_failures, uint64_t failed_at, const char *what, plan_t *p) {
        uint32_t count = d->restart_count + n_failures;

        p->persist_restarts = true;
        p->failed_at = MAX(failed_at, d->failed_at);
        if (count > SCHEDULER_MAX_RESTART_COUNT) {
                /* Give up: the record keeps the count of restarts actually made. */
                p->restart_count = d->restart_count;
                p->status = DEPLOYMENT_STATUS_CRASH_LOOP;
                p->create = 0;
                p->wake_at = 0;
                snprintf(p->message, sizeof(p->message), "%s after %u restarts; re-apply to try again", what,
                         d->restart_count);
                p->event_reason = "CrashLoopBackOff";
                p->event_level = "error";
                snprintf(p->event_message, sizeof(p->event_message), "%s, %u consecutive failures: not restarting",
                         what, count);
                return false;
        }
        p->restart_count = count;
        p->wake_at = p->failed_at + plan_backoff_ms(count);
        p->event_reason = "BackOff";
        p->event_level = "warning";
        snprintf(p->event_message, sizeof(p->event_message), "%s; restart %u/%u in %llu ms", what, count,
                 SCHEDULER_MAX_RESTART_COUNT, (unsigned long long)plan_backoff_ms(count));
        return true;
}

/* Whether an exit gives a job its result: the guest powered itself off (a disk image's clean
 * end; in kit mode the agent's after the workload, whose status it then is) or we stopped it.
 * A guest that rebooted or panicked, a VMM killed, crashed or gone while vmm-driver was down:
 * the job failed, whatever the status. */
static const char *job_failure(const instance_t *i) {
        static const struct {
                const char *reason, *why;
        } failures[] = {
                { "guest-reset", "the guest rebooted instead of powering off" },
                { "guest-panic", "the guest kernel panicked" },
                { "killed", "the VM was killed" },
                { "crashed", "the VMM crashed" },
                { "vanished", "the VM was gone when vmm-driver came back" },
        };

        for (size_t k = 0; i->exit_reason && k < ELEMENTSOF(failures); k++)
                if (streq(i->exit_reason, failures[k].reason))
                        return failures[k].why;
        return NULL;
}

/* A worker instance that ended without us asking: the workload exited or the VM died. */
static bool is_failure(const deployment_t *d, const instance_t *i) {
        if (i->exit_reason && streq(i->exit_reason, "stopped"))
                return false;
        /* Counted already: failed_at is the exit time of the newest failure counted. */
        return d->failed_at == 0 || i->exited_at > d->failed_at;
}

void plan_clear(plan_t *p) {
        free(p->stop);
        free(p->remove);
        memset(p, 0, sizeof(*p));
}

/* Newest first: scaling down stops the most recently started instances. */
static int by_started_desc(const void *a, const void *b) {
        const instance_t *x = *(const instance_t *const *)a, *y = *(const instance_t *const *)b;

        return x->started_at < y->started_at ? 1 : x->started_at > y->started_at ? -1 : 0;
}

int scheduler_plan(const deployment_t *d, const instance_t *instances, size_t n_instances, plan_t *p) {
        return scheduler_plan_at(d, instances, n_instances, now_realtime_ms(), NULL, p);
}

void plan_host_count(plan_host_t *host, const instance_t *instances, size_t n_instances, uint64_t now_ms) {
        host->memory_used_mib = 0;
        host->booting = 0;
        for (size_t k = 0; k < n_instances; k++) {
                const instance_t *i = &instances[k];

                if (streq(i->state, INSTANCE_STATE_EXITED))
                        continue;
                host->memory_used_mib += i->spec.memory_mib;
                if ((streq(i->state, INSTANCE_STATE_STARTING) || streq(i->state, INSTANCE_STATE_RUNNING)) &&
                    i->started_at + SCHEDULER_BOOT_WINDOW_MS > now_ms)
                        host->booting++;
        }
}

/* Bound p->create by the boot slots and the memory left; says why when nothing fits. */
static void admit(const deployment_t *d, const plan_host_t *host, plan_t *p) {
        uint32_t wanted = p->create;

        if (host->create_concurrency) {
                uint32_t slots =
                        host->create_concurrency > host->booting ? host->create_concurrency - host->booting : 0;
                p->create = MIN(p->create, slots);
        }
        if (host->memory_capacity_mib && d->memory_mib) {
                uint64_t free_mib = host->memory_capacity_mib > host->memory_used_mib
                                            ? host->memory_capacity_mib - host->memory_used_mib
                                            : 0;
                uint64_t fit = free_mib / d->memory_mib;

                if (fit < p->create)
                        p->create = (uint32_t)fit;
                if (fit < wanted) {
                        p->status = DEPLOYMENT_STATUS_INSUFFICIENT_RESOURCES;
                        snprintf(p->message, sizeof(p->message),
                                 "%u/%u instances ready; %u more need %u MiB each, %llu of %llu MiB of host memory "
                                 "free",
                                 p->ready, d->replicas, wanted - (uint32_t)fit, d->memory_mib,
                                 (unsigned long long)free_mib, (unsigned long long)host->memory_capacity_mib);
                        if (!streq(d->status, DEPLOYMENT_STATUS_INSUFFICIENT_RESOURCES)) {
                                p->event_reason = "InsufficientResources";
                                p->event_level = "warning";
                                snprintf(p->event_message, sizeof(p->event_message), "%s", p->message);
                        }
                }
        }
}

int scheduler_plan_at(const deployment_t *d, const instance_t *instances, size_t n_instances, uint64_t now_ms,
                      const plan_host_t *host, plan_t *p) {
        _cleanup_free_ const instance_t **current = NULL;
        size_t n_current = 0, n_old_alive = 0, n_stopping = 0;
        uint32_t n_failures = 0;
        uint64_t newest_failure = 0, backoff_until;
        const instance_t *last_failed = NULL, *job_exited = NULL;
        bool deleted = streq(d->status, DEPLOYMENT_STATUS_DELETED);
        bool is_job = d->kind && streq(d->kind, "job");

        memset(p, 0, sizeof(*p));
        p->stop = calloc(n_instances + 1, sizeof(*p->stop));
        p->remove = calloc(n_instances + 1, sizeof(*p->remove));
        current = calloc(n_instances + 1, sizeof(*current));
        if (!p->stop || !p->remove || !current) {
                plan_clear(p);
                return -ENOMEM;
        }

        for (size_t k = 0; k < n_instances; k++) {
                const instance_t *i = &instances[k];

                if (!streq(i->spec.deployment_id, d->id))
                        continue;
                if (streq(i->state, INSTANCE_STATE_EXITED)) {
                        p->remove[p->n_remove++] = i;
                        if (plan_instance_matches(d, i)) {
                                job_exited = i;
                                if (!is_job && !deleted && is_failure(d, i)) {
                                        n_failures++;
                                        if (!last_failed || i->exited_at >= newest_failure) {
                                                newest_failure = i->exited_at;
                                                last_failed = i;
                                        }
                                }
                        }
                } else if (streq(i->state, INSTANCE_STATE_STOPPING))
                        n_stopping++;
                else if (deleted || !plan_instance_matches(d, i)) {
                        if (deleted)
                                p->stop[p->n_stop++] = i;
                        else
                                n_old_alive++;
                } else {
                        current[n_current++] = i;
                        if (streq(i->state, INSTANCE_STATE_READY))
                                p->ready++;
                }
        }

        if (deleted) {
                p->purge = p->n_stop == 0 && p->n_remove == 0 && n_stopping == 0;
                return 0;
        }

        /* A job runs once per generation: once its instance exited, report how and stop. */
        if (is_job && job_exited && n_current == 0) {
                const char *why = job_failure(job_exited);

                p->job_ended = true;
                if (why) {
                        char what[sizeof(p->message) - 128];

                        plan_describe_exit(job_exited, what, sizeof(what));
                        p->status = DEPLOYMENT_STATUS_FAILED;
                        snprintf(p->message, sizeof(p->message), "job failed, %s: %s", why, what);
                        return 0;
                }
                p->status = job_exited->exit_status == 0 ? DEPLOYMENT_STATUS_COMPLETED : DEPLOYMENT_STATUS_FAILED;
                snprintf(p->message, sizeof(p->message), "job exited with status %lld",
                         (long long)job_exited->exit_status);
                p->has_exit_code = true;
                p->exit_code = job_exited->exit_status;
                return 0;
        }
        /* Failed or completed with nothing running: wait for a new generation (re-apply). */
        if ((streq(d->status, DEPLOYMENT_STATUS_FAILED) || streq(d->status, DEPLOYMENT_STATUS_COMPLETED)) &&
            n_current == 0)
                return 0;

        /* A crash loop waits for a new spec (re-apply resets the status and the count). */
        if (streq(d->status, DEPLOYMENT_STATUS_CRASH_LOOP) && n_failures == 0) {
                /* The message that put it there says why (the last exit, in the VMM's words): keep it. */
                if (d->status_message && *d->status_message)
                        snprintf(p->message, sizeof(p->message), "%s", d->status_message);
                else
                        snprintf(p->message, sizeof(p->message),
                                 "%u/%u instances ready; crash loop: re-apply to restart", p->ready, d->replicas);
                p->status = DEPLOYMENT_STATUS_CRASH_LOOP;
                return 0;
        }

        if (n_current < d->replicas)
                p->create = d->replicas - (uint32_t)n_current;
        else if (n_current > d->replicas) {
                qsort(current, n_current, sizeof(*current), by_started_desc);
                for (size_t k = 0; k < n_current - d->replicas; k++)
                        p->stop[p->n_stop++] = current[k];
        }

        /* Replace an older generation only once the new one serves: never drop below ready. */
        if (n_old_alive > 0 && p->ready >= d->replicas)
                for (size_t k = 0; k < n_instances; k++) {
                        const instance_t *i = &instances[k];
                        if (streq(i->spec.deployment_id, d->id) && instance_alive(i) && !plan_instance_matches(d, i))
                                p->stop[p->n_stop++] = i;
                }

        if (p->ready >= d->replicas)
                p->status = DEPLOYMENT_STATUS_RUNNING;
        else if (n_current > 0 || p->create > 0)
                p->status = DEPLOYMENT_STATUS_CREATING;
        else
                p->status = DEPLOYMENT_STATUS_PENDING;
        snprintf(p->message, sizeof(p->message), "%u/%u instances ready", p->ready, d->replicas);

        p->restart_count = d->restart_count;
        p->failed_at = d->failed_at;
        if (n_failures > 0) {
                /* Room left in p->message for what the plan adds ("after N restarts; ..."). */
                char what[sizeof(p->message) - 128];

                plan_describe_exit(last_failed, what, sizeof(what));
                if (!plan_failures(d, n_failures, newest_failure, what, p))
                        return 0;
        }

        /* Back-off: nothing new starts before the delay since the newest failure is over. */
        backoff_until = p->failed_at + plan_backoff_ms(p->restart_count);
        if (p->create > 0 && p->restart_count > 0 && now_ms < backoff_until) {
                p->create = 0;
                p->wake_at = backoff_until;
                /* No countdown: a message that changes every pass would be stored every pass. */
                snprintf(p->message, sizeof(p->message),
                         "%u/%u instances ready; back-off: restart %u/%u %llu ms after the last failure", p->ready,
                         d->replicas, p->restart_count, SCHEDULER_MAX_RESTART_COUNT,
                         (unsigned long long)plan_backoff_ms(p->restart_count));
        }

        if (host && p->create > 0)
                admit(d, host, p);

        /* A rolling update whose new instances do not get ready: the old ones keep serving
         * (they are only stopped once the new ones are ready); say so past the deadline. */
        if (n_old_alive > 0 && p->ready < d->replicas && host && host->progress_deadline_ms) {
                uint64_t oldest = 0;

                for (size_t k = 0; k < n_current; k++)
                        if (!oldest || current[k]->started_at < oldest)
                                oldest = current[k]->started_at;
                if (oldest && now_ms >= oldest + host->progress_deadline_ms)
                        snprintf(p->message, sizeof(p->message),
                                 "rolling update stalled: %u/%u new instances ready after the %llu s deadline; "
                                 "%zu old instance%s keep%s serving",
                                 p->ready, d->replicas, (unsigned long long)(host->progress_deadline_ms / 1000),
                                 n_old_alive, n_old_alive == 1 ? "" : "s", n_old_alive == 1 ? "s" : "");
                else if (oldest && (!p->wake_at || oldest + host->progress_deadline_ms < p->wake_at))
                        p->wake_at = oldest + host->progress_deadline_ms;
        }

        /* Healthy long enough: the next failure starts the back-off from scratch. */
        if (p->restart_count > 0 && n_failures == 0 && p->ready >= d->replicas && n_current == d->replicas) {
                uint64_t healthy_at = 0, min_healthy = d->n_health_checks ? 0 : SCHEDULER_MIN_HEALTHY_MS;

                for (size_t c = 0; c < d->n_health_checks; c++)
                        min_healthy = MAX(min_healthy, d->health_checks[c].min_healthy_ms);
                for (size_t k = 0; k < n_current; k++)
                        healthy_at = MAX(healthy_at, current[k]->ready_at + min_healthy);
                if (now_ms >= healthy_at) {
                        p->restart_count = 0;
                        p->persist_restarts = true;
                } else
                        p->wake_at = healthy_at;
        }
        return 0;
}
