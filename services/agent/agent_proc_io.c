/* agent_proc_io.c: the loop's view of every process the host started: its stdin, its output (captured for an exec, streamed for a proc, back-pressured by the channel), its exit, and the workload's pipes and exit. */
#include "services/agent/agent.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "lib/mp.h"

/* Once the process is gone, how long its pipes may stay open and empty (held by a process it
 * left behind) before we tell its end with what we have. */
#define ORPHAN_PIPE_MS 200
/* Same for the workload's output before the exited frame. */
#define WORKLOAD_PIPE_MS 1000
#define CHUNK AGENT_PROC_DATA_MAX

static void close_fd(int *fd) {
        if (*fd >= 0)
                close(*fd);
        *fd = -1;
}

bool agent_child_exited(agent_state_t *s, pid_t pid, int wstatus) {
        agent_workload_t *w = &s->workload;

        if (w->pid > 0 && pid == w->pid && !w->exited) {
                w->exited = true;
                w->status = agent_exit_code(wstatus);
                w->exited_at_ms = now_monotonic_ms();
                log_agent_info("workload exited with status %d", w->status);
                return true;
        }
        for (size_t k = 0; k < AGENT_PROCS_MAX; k++) {
                agent_proc_t *p = s->procs[k];

                /* An exited proc keeps its pid for proc.list; the number may be reused since. */
                if (p && p->pid == pid && !p->reaped) {
                        p->reaped = true;
                        p->status = agent_exit_code(wstatus);
                        p->reaped_at_ms = now_monotonic_ms();
                        /* Nothing will read what the host still sends it. */
                        close_fd(&p->gate_fd);
                        return true;
                }
        }
        return false;
}

/* Output is read while the host keeps up: an exec's always (it is capped), a proc's while less
 * than AGENT_PROC_BACKLOG_MAX bytes of frames wait for the host. */
static bool may_read(const agent_state_t *s, const agent_proc_t *p) {
        return p->is_exec || s->out_backlog < AGENT_PROC_BACKLOG_MAX;
}

static bool stdin_pending(const agent_proc_t *p) { return p->in_off < p->in.len || p->in_eof; }

size_t agent_io_pollfds(agent_state_t *s, struct pollfd *p, size_t n) {
        size_t k = 0;

        if (k < n)
                p[k++] = (struct pollfd){ .fd = s->workload.out.fd, .events = POLLIN };
        if (k < n)
                p[k++] = (struct pollfd){ .fd = s->workload.err.fd, .events = POLLIN };
        for (size_t x = 0; x < AGENT_PROCS_MAX && k + 3 <= n; x++) {
                agent_proc_t *q = s->procs[x];
                bool read = q && may_read(s, q);

                p[k++] = (struct pollfd){ .fd = q && stdin_pending(q) ? q->in_fd : -1, .events = POLLOUT };
                p[k++] = (struct pollfd){ .fd = read ? q->out_fd : -1, .events = POLLIN };
                p[k++] = (struct pollfd){ .fd = read ? q->err_fd : -1, .events = POLLIN };
        }
        return k;
}

/* An exec's output: keep up to the cap; beyond it keep reading (or the child blocks) and say it
 * was cut. */
static void capture(int *fd, agent_buf_t *b, bool *truncated) {
        char buf[16384];

        for (;;) {
                ssize_t n = read(*fd, buf, sizeof(buf));
                size_t keep;

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return;
                if (n <= 0) {
                        close_fd(fd);
                        return;
                }
                keep = (size_t)n;
                if (b->len + keep > AGENT_EXEC_OUTPUT_MAX) {
                        keep = AGENT_EXEC_OUTPUT_MAX - b->len;
                        *truncated = true;
                }
                if (keep == 0)
                        continue;
                if (b->len + keep > b->cap) {
                        size_t cap = b->cap ? b->cap : 4096;
                        char *d;

                        while (cap < b->len + keep)
                                cap *= 2;
                        if (cap > AGENT_EXEC_OUTPUT_MAX)
                                cap = AGENT_EXEC_OUTPUT_MAX;
                        d = realloc(b->data, cap);
                        if (!d) {
                                *truncated = true;
                                continue;
                        }
                        b->data = d;
                        b->cap = cap;
                }
                memcpy(b->data + b->len, buf, keep);
                b->len += keep;
        }
}

/* A proc's output: one read of up to 64 KiB, one proc.output frame. One read per wakeup keeps
 * the backlog within a frame of its bound and shares the channel between chatty procs. */
static void stream(agent_state_t *s, agent_proc_t *p, int *fd, int which, agent_emit_fn emit, void *userdata) {
        static uint8_t buf[CHUNK];
        msgpack_sbuffer body;
        msgpack_packer pk;
        ssize_t n;

        do
                n = read(*fd, buf, sizeof(buf));
        while (n < 0 && errno == EINTR);
        if (n < 0 && errno == EAGAIN)
                return;
        if (n <= 0) {
                /* EOF, or EIO: a pty master once no process holds the slave. */
                close_fd(fd);
                return;
        }
        msgpack_sbuffer_init(&body);
        msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
        agent_proc_output_t out = { .fd = which, .data = buf, .size = (size_t)n };
        snprintf(out.proc, sizeof(out.proc), "%s", p->name);
        agent_proc_output_pack(&pk, &out);
        emit(&body, userdata);
        s->out_backlog += body.size + 4;
        msgpack_sbuffer_destroy(&body);
}

static void read_output(agent_state_t *s, agent_proc_t *p, int *fd, int which, agent_emit_fn emit, void *userdata) {
        if (p->is_exec)
                capture(fd, which == 1 ? &p->out : &p->err, &p->truncated);
        else if (may_read(s, p))
                stream(s, p, fd, which, emit, userdata);
}

static void feed_stdin(agent_proc_t *p) {
        while (p->in_fd >= 0 && p->in_off < p->in.len) {
                ssize_t n = write(p->in_fd, p->in.data + p->in_off, p->in.len - p->in_off);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return;
                if (n < 0) { /* EPIPE: the process closed its stdin */
                        close_fd(&p->in_fd);
                        break;
                }
                p->in_off += (size_t)n;
        }
        p->in.len = p->in_off = 0;
        if (!p->in_eof || p->in_fd < 0)
                return;
        if (p->terminal) {
                /* Closing our side of a pty would hang the process up: a terminal's end of input
                 * is the VEOF character. */
                char veof = agent_pty_veof(p->in_fd);

                if (write(p->in_fd, &veof, 1) < 0 && errno == EAGAIN)
                        return;
        }
        close_fd(&p->in_fd); /* EOF for the reader */
        p->in_eof = false;
}

void agent_io_ready(agent_state_t *s, const struct pollfd *p, size_t n, agent_emit_fn emit, void *userdata) {
        size_t k = 0;

        if (k < n && p[k].fd >= 0 && p[k].revents)
                (void)agent_relay_read(&s->workload.out);
        k++;
        if (k < n && p[k].fd >= 0 && p[k].revents)
                (void)agent_relay_read(&s->workload.err);
        k++;
        for (size_t x = 0; x < AGENT_PROCS_MAX && k + 3 <= n; x++, k += 3) {
                agent_proc_t *q = s->procs[x];

                if (!q)
                        continue;
                if (p[k].fd >= 0 && p[k].revents)
                        feed_stdin(q);
                if (p[k + 1].fd >= 0 && p[k + 1].revents && q->out_fd >= 0)
                        read_output(s, q, &q->out_fd, 1, emit, userdata);
                if (p[k + 2].fd >= 0 && p[k + 2].revents && q->err_fd >= 0)
                        read_output(s, q, &q->err_fd, 2, emit, userdata);
        }
}

static void pack_bin(msgpack_packer *pk, const char *key, const agent_buf_t *b) {
        mp_pack_str(pk, key);
        msgpack_pack_bin(pk, b->len);
        msgpack_pack_bin_body(pk, b->data ? b->data : "", b->len);
}

static void emit_exec(agent_proc_t *e, agent_emit_fn emit, void *userdata) {
        msgpack_sbuffer body;
        msgpack_packer pk;

        msgpack_sbuffer_init(&body);
        msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 7);
        mp_pack_kv_str(&pk, "type", "exec");
        mp_pack_kv_u64(&pk, "id", e->exec_id);
        mp_pack_kv_i64(&pk, "exit_status", e->status);
        pack_bin(&pk, "stdout", &e->out);
        pack_bin(&pk, "stderr", &e->err);
        mp_pack_kv_bool(&pk, "timed_out", e->timed_out);
        mp_pack_kv_bool(&pk, "truncated", e->truncated);
        emit(&body, userdata);
        msgpack_sbuffer_destroy(&body);
}

static void emit_exited(agent_state_t *s, agent_proc_t *p, agent_emit_fn emit, void *userdata) {
        agent_proc_exited_t e = { .status = p->status };
        msgpack_sbuffer body;
        msgpack_packer pk;

        snprintf(e.proc, sizeof(e.proc), "%s", p->name);
        msgpack_sbuffer_init(&body);
        msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
        agent_proc_exited_pack(&pk, &e);
        emit(&body, userdata);
        s->out_backlog += body.size + 4;
        msgpack_sbuffer_destroy(&body);
}

static int min_timeout(int a, int64_t b) {
        if (b < 0)
                b = 0;
        if (b > 60000)
                b = 60000;
        return a < 0 || b < a ? (int)b : a;
}

/* Output pipes left open by what the process started: closed once empty and the grace is
 * over. True when none is left open. */
static bool output_done(agent_proc_t *p, uint64_t now, int *timeout) {
        int *fds[] = { &p->out_fd, &p->err_fd };

        if (p->out_fd < 0 && p->err_fd < 0)
                return true;
        if (now < p->reaped_at_ms + ORPHAN_PIPE_MS) {
                *timeout = min_timeout(*timeout, (int64_t)(p->reaped_at_ms + ORPHAN_PIPE_MS - now));
                return false;
        }
        for (size_t k = 0; k < ELEMENTSOF(fds); k++) {
                int avail = 0;

                if (*fds[k] < 0)
                        continue;
                /* Bytes still in it are the process's: read them first (the poll says when). */
                if (ioctl(*fds[k], FIONREAD, &avail) == 0 && avail > 0)
                        continue;
                close_fd(fds[k]);
        }
        return p->out_fd < 0 && p->err_fd < 0;
}

int agent_io_finish(agent_state_t *s, agent_emit_fn emit, void *userdata) {
        agent_workload_t *w = &s->workload;
        uint64_t now = now_monotonic_ms();
        int timeout = -1;

        for (size_t x = 0; x < AGENT_PROCS_MAX; x++) {
                agent_proc_t *p = s->procs[x];

                if (!p || p->reported)
                        continue;
                if (!p->reaped) {
                        if (p->is_exec && now >= p->deadline_ms && !p->timed_out) {
                                /* Its whole session: what it started goes with it. */
                                p->timed_out = true;
                                kill(-p->pid, SIGKILL);
                                kill(p->pid, SIGKILL);
                        }
                        if (p->is_exec && !p->timed_out)
                                timeout = min_timeout(timeout, (int64_t)(p->deadline_ms - now));
                        continue;
                }
                if (!output_done(p, now, &timeout))
                        continue;
                close_fd(&p->in_fd);
                if (p->is_exec) {
                        emit_exec(p, emit, userdata);
                        agent_proc_free(p);
                        s->procs[x] = NULL;
                        continue;
                }
                emit_exited(s, p, emit, userdata);
                /* Kept for proc.list: its name, pid and status, not its buffers. */
                free(p->in.data);
                p->in = (agent_buf_t){};
                p->in_off = 0;
                p->reported = true;
                p->state = AGENT_PROC_EXITED;
                log_agent_debug("proc %s exited with status %d", p->name, p->status);
        }

        if (w->exited && !w->reported) {
                if ((w->out.fd >= 0 || w->err.fd >= 0) && now < w->exited_at_ms + WORKLOAD_PIPE_MS)
                        return min_timeout(timeout, (int64_t)(w->exited_at_ms + WORKLOAD_PIPE_MS - now));
                msgpack_sbuffer body;
                msgpack_packer pk;

                (void)agent_relay_read(&w->out);
                (void)agent_relay_read(&w->err);
                msgpack_sbuffer_init(&body);
                msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
                msgpack_pack_map(&pk, 2);
                mp_pack_kv_str(&pk, "type", "exited");
                mp_pack_kv_i64(&pk, "status", w->status);
                emit(&body, userdata);
                msgpack_sbuffer_destroy(&body);
                w->reported = true;
                s->power_off = true;
        }
        return timeout;
}
