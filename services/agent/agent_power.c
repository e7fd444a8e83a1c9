/* agent_power.c: ending the VM: stop every process, sync, power off (or reset). */
#include "services/agent/agent.h"

#include <errno.h>
#include <signal.h>
#include <sys/reboot.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define REAP_STEP_MS 10

/* Wait until no process but us is left, or the deadline. As PID 1 we inherit every
 * orphan, so once we have no children there is no user process left at all. (kill(-1, 0)
 * cannot tell: it counts kernel threads.) */
static bool wait_for_orphans(uint64_t timeout_ms) {
        uint64_t deadline = now_monotonic_ms() + timeout_ms;

        for (;;) {
                if (waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD)
                        return true;
                agent_reap_children();
                if (now_monotonic_ms() >= deadline)
                        return false;
                nanosleep(&(struct timespec){ .tv_nsec = REAP_STEP_MS * 1000 * 1000 }, NULL);
        }
}

/* Whether reboot(RB_POWER_OFF) can end this VM. Without a power-off method the kernel
 * turns it into a halt and the VM sits there forever; on QEMU's microvm the method is
 * ACPI's (S5 through the GED sleep registers), so no ACPI tables means no power-off. */
static bool can_power_off(void) { return access("/sys/firmware/acpi/tables/FACP", F_OK) == 0; }

_Noreturn void agent_power_off(uint64_t grace_ms) {
        /* As PID 1, kill(-1) reaches every process but us. */
        if (kill(-1, SIGTERM) == 0 && !wait_for_orphans(grace_ms)) {
                log_agent_warning("processes left after %llu ms, killing them", (unsigned long long)grace_ms);
                kill(-1, SIGKILL);
                wait_for_orphans(1000);
        }
        sync();

        if (can_power_off()) {
                log_agent_info("powering off");
                reboot(RB_POWER_OFF);
                log_agent_error_errno(errno, "Failed to power off: %m");
        }
        /* QEMU runs with -no-reboot: a reset ends the VM just as well. */
        log_agent_info("resetting the VM");
        reboot(RB_AUTOBOOT);
        log_agent_error_errno(errno, "Failed to reset: %m");
        /* Nothing left to try: PID 1 exiting panics the kernel, and panic=-1 resets. */
        _exit(1);
}
