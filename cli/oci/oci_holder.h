/* oci_holder.h: the process whose pid goes into --pid-file: it holds the container's VM, relays stdio, forwards signals, serves the control socket, and exits with the container's status. */
#pragma once

#include <stdbool.h>
#include <termios.h>

#include "cli/oci/oci.h"

typedef struct oci_holder_opts {
        const oci_ctx_t *ctx;
        const char *id;
        const char *bundle;         /* absolute */
        const char *dir;            /* the container's directory under --root, made by the caller */
        oci_spec_t *spec;           /* parsed config.json */
        const char *console_socket; /* NULL: stdio through fds 0/1/2 */
        int ready_fd;               /* create: "OK" or the error goes here, then it is closed; -1: none */
        bool start;                 /* run: start the process once created */
        bool tty_raw;               /* run on a terminal: fd 0 is the caller's tty, put in raw mode */
} oci_holder_opts_t;

/* Runs until the container ends; returns its exit status (code or 128+signal) for exit(), or
 * OCI_EXIT_FAILURE when the create failed (reported on ready_fd, or logged). */
int oci_holder_run(const oci_holder_opts_t *o);
