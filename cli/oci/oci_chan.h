/* oci_chan.h: a stream of agent frames (u32 length + msgpack map, proto/agent_frame.h) on a non-blocking fd, with its output queue: the agent channel and the holder's control connections. */
#pragma once

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>

#include "proto/agent_frame.h"

#define OCI_CHAN_OUT_MAX (8u << 20) /* unsent bytes before a peer counts as stuck */

typedef struct oci_chan {
        int fd;
        agent_frame_reader_t reader;
        msgpack_sbuffer out; /* frames not sent yet, from out_off */
        size_t out_off;
        bool eof; /* the peer closed (or failed) */
} oci_chan_t;

void oci_chan_init(oci_chan_t *c, int fd);
/* Closes the fd and frees the buffers. */
void oci_chan_done(oci_chan_t *c);
/* Queue one packed map as a frame and try to send; -ENOBUFS when the peer lags too far. */
int oci_chan_send(oci_chan_t *c, const msgpack_sbuffer *body);
/* Send what is queued without blocking; 0 (maybe some left: oci_chan_pending), -errno. */
int oci_chan_flush(oci_chan_t *c);
static inline bool oci_chan_pending(const oci_chan_t *c) { return c->out_off < c->out.size; }
/* Read what the fd has (once readable): 0, or -errno; sets eof. Take frames with oci_chan_next. */
int oci_chan_read(oci_chan_t *c);
/* 1 and *ret (msgpack_unpacked_destroy it) when a frame is complete, 0 when none, -EBADMSG. */
int oci_chan_next(oci_chan_t *c, msgpack_unpacked *ret);

/* The control socket (--root/ID/control.sock) speaks the same frames, private to husk-oci (a
 * command talks to the holder of the same build): requests {type: "start" | "kill" {signal, all} |
 * "ps" | "pause" | "resume" | "delete"} answered by {type} (ps: {type, pids}) or {type: "error",
 * message}; and {type: "exec", process: OCI Process JSON text}, answered {type: "exec"}, after which
 * the connection is that process's stream: the exec holder sends {type: "stdin", data | (none:
 * eof)}, {type: "resize", rows, cols}, {type: "signal", signal}; the holder sends {type:
 * "output", fd, data} and at last {type: "exited", status}. */

/* Blocking helpers for the CLI: connect to a holder's control socket, one request, its answer
 * within timeout_ms. The answer's "type" "error" becomes -EIO with its message in *ret_error. */
int oci_ctl_connect(const char *dir, int *ret_fd);
int oci_ctl_call(const char *dir, const msgpack_sbuffer *request, int timeout_ms, msgpack_unpacked *ret,
                 char **ret_error);
/* Wait (poll) for the next frame on a blocking-style chan; -ETIMEDOUT, -ECONNRESET on EOF. */
int oci_chan_wait_frame(oci_chan_t *c, int timeout_ms, msgpack_unpacked *ret);
