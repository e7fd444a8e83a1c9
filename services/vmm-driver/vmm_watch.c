/* vmm_watch.c: exit detection through a pidfd per VMM (children and adopted alike), the exit status, the stop deadline. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>

#include "lib/log.h"
#include "services/vmm-driver/vmm.h"

/* An adopted VMM is not our child: its status comes from PIDFD_GET_INFO once its new parent
 * (init or the service manager) reaped it. systemd reaps at once; a lazier init may take
 * seconds, so we poll only this long before publishing the exit with an unknown status. */
#define EXIT_INFO_POLL_MS 1
#define EXIT_INFO_WAIT_MS 10

int64_t vmm_exit_status(const vmm_exit_facts_t *f) {
        if (!f->status_known)
                return -1;
        if (WIFEXITED(f->wstatus))
                return WEXITSTATUS(f->wstatus);
        if (WIFSIGNALED(f->wstatus))
                return 128 + WTERMSIG(f->wstatus);
        return -1;
}

static bool starts_with(const char *s, const char *prefix) { return s && strncmp(s, prefix, strlen(prefix)) == 0; }

/* Every runtime's drain leaves the VMM's last word in QEMU's shutdown vocabulary
 * (`guest-shutdown`, `guest-reset`, `guest-panic`, `host-signal`, `host-qmp-quit`...; the CH
 * event monitor's are mapped to it), so one function reads them all. */
const char *vmm_exit_reason(const vmm_exit_facts_t *f) {
        if (f->stop_requested)
                return "stopped";
        /* The guest ended itself, and how tells a job's result: a reboot (which -no-reboot turns
         * into an exit) or a panic (pvpanic, or a kernel that resets on panic) is no clean end. */
        if (f->shutdown_reason && streq(f->shutdown_reason, "guest-reset"))
                return "guest-reset";
        if (f->shutdown_reason && streq(f->shutdown_reason, "guest-panic"))
                return "guest-panic";
        if (starts_with(f->shutdown_reason, "guest-"))
                return "guest-shutdown";
        if (f->status_known && WIFSIGNALED(f->wstatus))
                return "killed";
        /* SIGTERM/SIGINT/SIGHUP make QEMU announce host-signal and exit 0. */
        if (f->shutdown_reason && streq(f->shutdown_reason, "host-signal"))
                return "killed";
        /* The VMM failed (CH exits 1 on a body it accepted but could not run). */
        if (f->status_known && WIFEXITED(f->wstatus) && WEXITSTATUS(f->wstatus) != 0)
                return "crashed";
        /* Some other host request (a QMP quit, a vmm.shutdown, not from us). */
        if (starts_with(f->shutdown_reason, "host-"))
                return "stopped";
        /* Both VMMs exit 0 only when asked to shut down; we know the host-side requests. */
        if (f->status_known)
                return "guest-shutdown";
        /* Gone without a shutdown event and with no status: a signal or a crash. */
        return "crashed";
}

static void finish(vmm_instance_t *i, bool status_known, int wstatus) {
        vmm_exit_facts_t f = {
                .stop_requested = i->rec.stop_requested_at > 0,
                .shutdown_reason = i->rec.shutdown_reason,
                .status_known = status_known,
                .wstatus = wstatus,
        };

        /* Only a runtime can watch: an instance without one is never watched. */
        vmm_instance_on_exit(i, vmm_exit_reason(&f), vmm_exit_status(&f));
}

static int on_exit_info_timer(zloop_t *loop, int timer_id, void *arg) {
        vmm_instance_t *i = arg;
        int wstatus, r;

        /* zloop may still run a timer cancelled earlier in the same iteration. */
        if (timer_id != i->exit_timer)
                return 0;
        r = vmm_pidfd_exit_status(i->pidfd, &wstatus);
        if (r == -ENODATA && now_monotonic_ms() < i->exit_info_deadline)
                return 0;
        zloop_timer_end(loop, timer_id);
        i->exit_timer = 0;
        finish(i, r >= 0, r >= 0 ? wstatus : 0);
        return 0;
}

static int on_pidfd(zloop_t *loop, zmq_pollitem_t *item, void *arg) {
        vmm_instance_t *i = arg;
        siginfo_t si = {};
        int wstatus, r;

        zloop_poller_end(loop, &(zmq_pollitem_t){ .fd = i->pidfd });
        /* The VMM announced its shutdown before exiting: read that so the reason is known. */
        i->runtime->drain(i);
        /* Likewise the agent's report of the workload's exit, written just before power-off. */
        vmm_agent_drain(i);

        if (i->is_child) {
                if (waitid((idtype_t)P_PIDFD, (id_t)i->pidfd, &si, WEXITED | WNOHANG) < 0 || si.si_pid == 0) {
                        log_warning_errno(errno, "Instance %s: cannot collect VMM status, ignoring: %m",
                                          i->rec.inst.spec.instance_id);
                        finish(i, false, 0);
                        return 0;
                }
                if (si.si_code == CLD_EXITED)
                        wstatus = W_EXITCODE(si.si_status, 0);
                else
                        wstatus = si.si_status | (si.si_code == CLD_DUMPED ? WCOREFLAG : 0);
                finish(i, true, wstatus);
                return 0;
        }

        r = vmm_pidfd_exit_status(i->pidfd, &wstatus);
        if (r == -ENODATA) {
                i->exit_info_deadline = now_monotonic_ms() + EXIT_INFO_WAIT_MS;
                i->exit_timer = zloop_timer(loop, EXIT_INFO_POLL_MS, 0, on_exit_info_timer, i);
                if (i->exit_timer >= 0)
                        return 0;
                i->exit_timer = 0;
        }
        finish(i, r >= 0, r >= 0 ? wstatus : 0);
        return 0;
}

int vmm_watch_start(vmm_instance_t *i) {
        zmq_pollitem_t item = { .fd = i->pidfd, .events = ZMQ_POLLIN };

        if (i->pidfd < 0)
                return -EBADF;
        if (zloop_poller(i->vmm->loop, &item, on_pidfd, i) < 0)
                return -ENOMEM;
        /* A pidfd never errors in a way the handler does not handle: do not let zloop drop it. */
        zloop_poller_set_tolerant(i->vmm->loop, &item);
        return 0;
}

void vmm_watch_stop(vmm_instance_t *i) {
        if (i->pidfd >= 0) {
                zloop_poller_end(i->vmm->loop, &(zmq_pollitem_t){ .fd = i->pidfd });
                close(i->pidfd);
                i->pidfd = -1;
        }
        if (i->kill_timer) {
                zloop_timer_end(i->vmm->loop, i->kill_timer);
                i->kill_timer = 0;
        }
        if (i->exit_timer) {
                zloop_timer_end(i->vmm->loop, i->exit_timer);
                i->exit_timer = 0;
        }
}

static int on_kill_timer(zloop_t *loop, int timer_id, void *arg) {
        vmm_instance_t *i = arg;
        int r;

        if (timer_id != i->kill_timer)
                return 0;
        i->kill_timer = 0;
        if (i->pidfd < 0)
                return 0;
        log_notice("Instance %s did not stop within its stop timeout, sending SIGKILL to pid %" PRIi64,
                   i->rec.inst.spec.instance_id, i->rec.inst.pid);
        r = vmm_pidfd_kill(i->pidfd, SIGKILL);
        if (r < 0 && r != -ESRCH)
                log_warning_errno(r, "Failed to kill pid %" PRIi64 ", ignoring: %m", i->rec.inst.pid);
        return 0;
}

void vmm_watch_arm_kill(vmm_instance_t *i, uint64_t delay_ms) {
        if (i->kill_timer)
                zloop_timer_end(i->vmm->loop, i->kill_timer);
        i->kill_timer = zloop_timer(i->vmm->loop, delay_ms, 1, on_kill_timer, i);
        if (i->kill_timer < 0) {
                i->kill_timer = 0;
                log_error("Instance %s: cannot arm the stop timer", i->rec.inst.spec.instance_id);
        }
}
