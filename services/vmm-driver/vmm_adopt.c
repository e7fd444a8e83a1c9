/* vmm_adopt.c: at start, rebuild the instance table from the instance directories and re-adopt the VMMs still running. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>

#include "lib/log.h"
#include "services/vmm-driver/vmm.h"

/* Is the recorded pid still the VMM we started? pidfd first, then the start time, then the
 * pidfd again: if the process is still alive after we read its start time, that start time
 * was really its own and not that of a process which reused the pid in between. */
static int open_recorded(const instance_record_t *rec) {
        _cleanup_close_ int pidfd = -1;
        uint64_t start_time;
        int r;

        if (rec->inst.pid <= 0 || rec->pid_start_time == 0)
                return -ESRCH;
        pidfd = vmm_pidfd_open((pid_t)rec->inst.pid);
        if (pidfd < 0)
                return pidfd;
        r = vmm_proc_start_time((pid_t)rec->inst.pid, &start_time);
        if (r < 0)
                return r;
        if (start_time != rec->pid_start_time)
                return -ESRCH;
        if (vmm_pidfd_exited(pidfd))
                return -ESRCH;
        return TAKE_FD(pidfd);
}

static void adopt_one(vmm_t *d, const char *name, unsigned *n_adopted, unsigned *n_gone) {
        vmm_instance_t *i = NULL;
        char dir[PATH_MAX];
        int r;

        if (snprintf(dir, sizeof(dir), "%s/%s", d->instances_dir, name) >= (int)sizeof(dir))
                return;
        r = vmm_instance_new(d, dir, &i);
        if (r < 0) {
                log_error_errno(r, "Skipping %s: %m", dir);
                return;
        }
        r = vmm_record_load(dir, &i->rec);
        if (r < 0) {
                log_warning_errno(r, "Skipping %s: cannot read " INSTANCE_RECORD_FILE ": %m", dir);
                vmm_instance_free(i);
                return;
        }
        if (!streq(i->rec.inst.spec.instance_id, name)) {
                log_warning("Skipping %s: it records instance %s", dir, i->rec.inst.spec.instance_id);
                vmm_instance_free(i);
                return;
        }
        if (zhashx_insert(d->instances, name, i) < 0) {
                log_error("Skipping %s: out of memory", dir);
                vmm_instance_free(i);
                return;
        }
        /* A runtime disabled in the config since will do: its VMMs still need watching. */
        (void)vmm_runtime_lookup(vmm_config(d), i->rec.inst.spec.runtime, &i->runtime, NULL);
        if (!vmm_instance_alive(i))
                return; /* exited before; kept until removed */

        i->pidfd = open_recorded(&i->rec);
        if (i->pidfd < 0) {
                /* Died while we were down: if we had asked it to stop, that is what happened. */
                bool stopping = i->rec.stop_requested_at > 0;

                i->pidfd = -1;
                log_notice("Instance %s: VMM pid %" PRIi64 " is gone", name, i->rec.inst.pid);
                (*n_gone)++;
                vmm_instance_on_exit(i, stopping ? "stopped" : "vanished", -1);
                return;
        }
        i->is_child = false;
        if (!i->runtime) {
                /* Cannot happen unless a newer vmm-driver made it: leave it to one that knows. */
                log_error("Instance %s: runtime %s is not one this vmm-driver runs, skipping", name,
                          i->rec.inst.spec.runtime);
                zhashx_delete(d->instances, name);
                vmm_instance_free(i); /* closes the pidfd */
                return;
        }
        r = vmm_watch_start(i);
        if (r < 0) {
                /* Without a watch its exit would go unnoticed: leave it to the next start. */
                log_error_errno(r, "Instance %s: cannot watch pid %" PRIi64 ", skipping: %m", name, i->rec.inst.pid);
                zhashx_delete(d->instances, name);
                vmm_instance_free(i);
                return;
        }
        r = i->runtime->adopt(i);
        if (r < 0)
                log_warning_errno(r, "Instance %s: cannot reconnect to its VMM's control channel, ignoring: %m", name);
        vmm_agent_start(i);
        if (i->rec.stop_requested_at > 0) {
                uint64_t timeout = vmm_config(d)->vmm_driver.stop_timeout_ms;
                uint64_t elapsed = now_realtime_ms() - i->rec.stop_requested_at;

                vmm_watch_arm_kill(i, elapsed >= timeout ? 0 : timeout - elapsed);
        }
        (*n_adopted)++;
        log_info("Instance %s: adopted VMM pid %" PRIi64 " (%s)", name, i->rec.inst.pid, i->rec.inst.state);
        vmm_publish(d, BUS_EVENT_INSTANCE_ADOPTED, i);
}

int vmm_adopt_all(vmm_t *d) {
        DIR *dir;
        struct dirent *de;
        unsigned n_adopted = 0, n_gone = 0;

        dir = opendir(d->instances_dir);
        if (!dir)
                return log_error_errno(errno, "Failed to open %s: %m", d->instances_dir);
        /* Only now: nothing after this fails, so no timer is left for a loop that never ran. */
        vmm_publish_hold(d, VMM_STARTUP_EVENT_HOLD_MS);
        while ((de = readdir(dir))) {
                if (de->d_name[0] == '.')
                        continue;
                if (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN)
                        continue;
                if (!instance_id_valid(de->d_name)) {
                        log_debug("Ignoring %s/%s: not an instance directory", d->instances_dir, de->d_name);
                        continue;
                }
                adopt_one(d, de->d_name, &n_adopted, &n_gone);
        }
        closedir(dir);
        log_info("Found %zu instances in %s: %u adopted, %u gone while we were down", zhashx_size(d->instances),
                 d->instances_dir, n_adopted, n_gone);
        return 0;
}
