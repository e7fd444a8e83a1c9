/* child.h: what a child of a husk process gets before it execs: every signal back at its default
 * disposition and none blocked. Daemons block their stop signals for a signalfd and the agent
 * handles SIGCHLD; a blocked mask and ignored dispositions survive exec, and a VMM or workload
 * started with SIGTERM blocked could not be stopped. One rule for fork+exec and posix_spawn. */
#pragma once

#include <signal.h>
#include <spawn.h>

/* The signals a child gets back at SIG_DFL: all but SIGKILL and SIGSTOP (which cannot change). */
void child_default_signals(sigset_t *set);

/* In a forked child, between fork and exec: empty the mask and set every signal of
 * child_default_signals to SIG_DFL. Calls only async-signal-safe functions. */
void child_reset_signals(void);

/* The same for posix_spawn: sets the empty mask and the defaults in attr, with
 * POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF added to flags (e.g. POSIX_SPAWN_SETSID).
 * Returns 0 or a negative errno. */
int child_spawnattr_reset_signals(posix_spawnattr_t *attr, short flags);
