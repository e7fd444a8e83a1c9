/* run.h: run a short-lived tool (mkfs.fat, mcopy, qemu-img) to completion, its output kept for
 * the error message. For preparation steps of a few milliseconds, not for a VMM: the caller
 * blocks until the tool exits. */
#pragma once

#include <stddef.h>

/* The directories a tool is looked up in when argv[0] has no slash. Fixed, not the caller's
 * PATH: a daemon started by systemd may have no sbin in its PATH, and a tool must not be
 * taken from a directory the environment happens to name. */
#define RUN_TOOL_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* Bytes of a tool's output (stdout and stderr together) kept for ret_output. */
#define RUN_OUTPUT_MAX 4096

/* Find name (no slash) in RUN_TOOL_PATH. Returns a malloc'd absolute path in ret, -ENOENT when
 * no executable of that name is there. */
int run_find_tool(const char *name, char **ret);

/* Run argv (argv[0] looked up with run_find_tool unless it has a slash) with stdin from
 * /dev/null, every signal at its default, the environment env (NULL: "PATH=RUN_TOOL_PATH" and
 * "LC_ALL=C" only), and wait for it. Returns 0 when it exited 0; -ENOENT when the tool is not
 * installed; -EIO when it failed (exit status not 0 or killed). ret_output (may be NULL) gets
 * at most RUN_OUTPUT_MAX bytes of what it printed, NUL-terminated, trailing newlines removed,
 * on success and failure alike (NULL when the tool could not be started). */
int run_tool(char *const argv[], char *const env[], char **ret_output);
