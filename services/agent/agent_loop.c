/* agent_loop.c: the agent's one event loop: frames from the host, SIGIO, SIGCHLD. */
#include "services/agent/agent.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

/* While no host is connected the port is not polled (it would report POLLHUP without
 * end); SIGIO wakes us when one connects. This tick is the safety net should a SIGIO be
 * missed: one read() a second that returns 0 while nobody is there. */
#define DISCONNECTED_RECHECK_MS 1000

/* The state whose workload and procs own some of our children; NULL outside the loop. */
static agent_state_t *reap_state;

int agent_reap_children(void) {
        int n = 0, status;
        pid_t pid;

        /* As PID 1 we inherit every orphan in the VM: anything not reaped stays a zombie. */
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
                if (reap_state)
                        (void)agent_child_exited(reap_state, pid, status);
                n++;
        }
        return n;
}

static void emit_frame(msgpack_sbuffer *body, void *userdata) {
        agent_channel_t *c = userdata;
        int r = agent_channel_queue(c, body);

        if (r < 0)
                log_agent_warning_errno(r, "Failed to queue a frame for the host, dropping it: %m");
}

static int queue_body(agent_channel_t *c, msgpack_sbuffer *body) {
        int r = agent_channel_queue(c, body);

        if (r < 0)
                log_agent_warning_errno(r, "Failed to queue a frame for the host, dropping it: %m");
        return r;
}

/* The stream cannot be trusted past a malformed frame: drop what the port holds by
 * reopening it, then say so. In this order, whatever the host sends once it has read the
 * error lands in the fresh stream; the other order would drop the host's next request
 * when it beats our close(). */
static int resync(agent_channel_t *c, int error) {
        msgpack_sbuffer body;
        int r;

        log_agent_warning_errno(error, "Malformed frame from the host (%m), reopening the channel");
        r = agent_channel_reopen(c);
        if (r < 0)
                return log_agent_error_errno(r, "Failed to reopen %s: %m", c->path);

        msgpack_sbuffer_init(&body);
        agent_proto_error(NULL, "malformed",
                          error == -EMSGSIZE ? "frame longer than 3 MiB"
                                             : "frame body is not one msgpack map with a str \"type\"",
                          &body);
        queue_body(c, &body);
        msgpack_sbuffer_destroy(&body);
        (void)agent_channel_flush(c);
        return 0;
}

/* Answer every complete frame. Returns 1 when a shutdown was requested. */
static int serve_frames(agent_channel_t *c, agent_state_t *s) {
        for (;;) {
                msgpack_unpacked u;
                msgpack_sbuffer reply;
                int r = agent_frame_reader_next(&c->reader, &u);

                if (r == 0)
                        return 0;
                if (r < 0)
                        return resync(c, r);

                msgpack_sbuffer_init(&reply);
                agent_proto_handle(s, &u.data, &reply);
                msgpack_unpacked_destroy(&u);
                if (reply.size > 0)
                        queue_body(c, &reply);
                msgpack_sbuffer_destroy(&reply);
                if (s->shutdown_requested)
                        return 1;
        }
}

/* Read everything the port has, or until a proc has stdin enough. Returns 1 on shutdown, 0
 * otherwise, <0 when fatal. */
static int on_port_input(agent_channel_t *c, agent_state_t *s) {
        for (;;) {
                int r;

                if (!agent_procs_take_stdin(s))
                        return 0;
                r = agent_channel_read(c);

                if (r == -EAGAIN)
                        return 0;
                if (r == -EPIPE) {
                        if (c->host_connected)
                                log_agent_debug("host not connected on %s", c->path);
                        agent_channel_host_gone(c);
                        return 0;
                }
                if (r == -ENOBUFS) /* more than any frame: the peer does not speak frames */
                        return resync(c, -EMSGSIZE);
                if (r < 0)
                        return log_agent_error_errno(r, "Failed to read %s: %m", c->path);
                r = serve_frames(c, s);
                if (r != 0)
                        return r;
        }
}

static int on_signals(int sfd, agent_channel_t *c) {
        struct signalfd_siginfo si;

        while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
                if (si.ssi_signo == SIGCHLD)
                        agent_reap_children();
                else if (si.ssi_signo == SIGIO)
                        c->host_connected = true; /* connected or gone: the next read tells */
        }
        return 0;
}

int agent_loop_run(agent_channel_t *c, agent_state_t *s) {
        _cleanup_close_ int sfd = -1;
        sigset_t mask;

        /* main() blocked these before the port got O_ASYNC, so none was lost. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        sigaddset(&mask, SIGIO);
        sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
        if (sfd < 0)
                return log_agent_error_errno(errno, "Failed to create signalfd: %m");
        reap_state = s;

        for (;;) {
                /* A proc with a full stdin backlog: the host waits until the process reads. */
                bool take_input = agent_procs_take_stdin(s);
                struct pollfd p[3 + AGENT_IO_POLLFDS_MAX] = {
                        { .fd = sfd, .events = POLLIN },
                        { .fd = c->host_connected && (take_input || agent_channel_pending(c)) ? c->fd : -1,
                          .events = (take_input ? POLLIN : 0) | (agent_channel_pending(c) ? POLLOUT : 0) },
                        /* vsock: a host connecting (again: a restarted vmm-driver) */
                        { .fd = c->listen_fd, .events = POLLIN },
                };
                size_t n_io;
                int r, timeout;

                /* Answers of finished execs, the workload's exit: queued before we sleep. */
                timeout = agent_io_finish(s, emit_frame, c);
                if (agent_channel_pending(c) && c->host_connected)
                        (void)agent_channel_flush(c);
                if (s->power_off)
                        return 0;
                if (!c->host_connected && c->listen_fd < 0 && (timeout < 0 || timeout > DISCONNECTED_RECHECK_MS))
                        timeout = DISCONNECTED_RECHECK_MS;
                s->out_backlog = c->out.size - c->out_off;
                n_io = agent_io_pollfds(s, p + 3, ELEMENTSOF(p) - 3);

                r = poll(p, 3 + n_io, timeout);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return log_agent_error_errno(errno, "poll() failed: %m");
                }
                if (r == 0) {
                        if (c->listen_fd < 0)
                                c->host_connected = true;
                        continue;
                }
                if (p[0].revents & POLLIN)
                        on_signals(sfd, c);
                if (p[2].revents & POLLIN) {
                        r = agent_vsock_accept(c);
                        if (r < 0 && r != -EAGAIN)
                                log_agent_warning_errno(r, "Failed to accept a vsock connection, ignoring: %m");
                }
                s->out_backlog = c->out.size - c->out_off;
                agent_io_ready(s, p + 3, n_io, emit_frame, c);
                if (take_input && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
                        r = on_port_input(c, s);
                        if (r < 0)
                                return r;
                        if (r > 0)
                                return 0;
                }
                if (agent_channel_pending(c) && c->host_connected) {
                        r = agent_channel_flush(c);
                        if (r < 0 && r != -EAGAIN)
                                log_agent_debug_errno(r, "Failed to write to %s: %m", c->path);
                }
        }
}
