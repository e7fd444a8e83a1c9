/* agent_exec.c: exec requests (a process beside the workload, output captured and capped), the loop's view of every pipe, and child exits. */
#include "services/agent/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/mp.h"

#define CWD_MAX 4096
/* Once the process is gone, how long its pipes may stay open (held by a background child)
 * before we answer with what we have. */
#define ORPHAN_PIPE_MS 200
/* Same for the workload's output before the exited frame. */
#define WORKLOAD_PIPE_MS 1000

static void close_fd(int *fd) {
        if (*fd >= 0)
                close(*fd);
        *fd = -1;
}

void agent_exec_free(agent_exec_t *e) {
        if (!e)
                return;
        close_fd(&e->in_fd);
        close_fd(&e->out_fd);
        close_fd(&e->err_fd);
        free(e->stdin_data);
        free(e->out.data);
        free(e->err.data);
        free(e);
}

void agent_exec_request(agent_state_t *s, const msgpack_object *req, uint64_t id, msgpack_packer *pk) {
        _cleanup_(mp_strv_freep) char **argv = NULL, **env = NULL, **full_env = NULL;
        _cleanup_free_ char *cwd = NULL;
        const msgpack_object *input;
        agent_exec_t *e = NULL;
        int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 };
        uint64_t timeout_ms = AGENT_EXEC_DEFAULT_TIMEOUT_MS;
        size_t slot;
        char msg[512];
        int r;

        r = mp_get_strv(req, "argv", &argv);
        if (r < 0 || !argv[0] || !*argv[0])
                return agent_pack_error(pk, &id, "invalid", "argv: must be a non-empty array of str");
        r = mp_get_env(req, "env", &env);
        if (r < 0 && r != -ENOENT)
                return agent_pack_error(pk, &id, "invalid", "env: must be a map of names to str");
        r = mp_get_str(req, "cwd", CWD_MAX, &cwd);
        if ((r < 0 && r != -ENOENT) || (cwd && cwd[0] != '/'))
                return agent_pack_error(pk, &id, "invalid", "cwd: must be an absolute path");
        r = mp_get_u64(req, "timeout_ms", &timeout_ms);
        if ((r < 0 && r != -ENOENT) || timeout_ms == 0 || timeout_ms > AGENT_EXEC_TIMEOUT_MAX_MS)
                return agent_pack_error(pk, &id, "invalid", "timeout_ms: must be between 1 and 86400000");
        input = mp_map_get(req, "stdin");
        if (input && input->type != MSGPACK_OBJECT_BIN && input->type != MSGPACK_OBJECT_STR)
                return agent_pack_error(pk, &id, "invalid", "stdin: must be bin or str");
        if (input &&
            (input->type == MSGPACK_OBJECT_BIN ? input->via.bin.size : input->via.str.size) > AGENT_EXEC_STDIN_MAX)
                return agent_pack_error(pk, &id, "invalid", "stdin: at most 1 MiB");
        for (slot = 0; slot < AGENT_EXEC_MAX && s->execs[slot]; slot++)
                ;
        if (slot == AGENT_EXEC_MAX)
                return agent_pack_error(pk, &id, "busy", "too many execs running (at most 16)");

        /* The workload's environment, so exec sees what the workload sees, then the request's. */
        full_env = s->workload.env ? mp_strv_copy(s->workload.env) : NULL;
        if (!full_env && agent_base_env(NULL, &full_env) < 0)
                return agent_pack_error(pk, &id, "failed", "out of memory");
        for (size_t k = 0; env && env[k]; k++)
                if (mp_env_set(&full_env, env[k]) < 0)
                        return agent_pack_error(pk, &id, "failed", "out of memory");

        e = calloc(1, sizeof(*e));
        if (!e)
                return agent_pack_error(pk, &id, "failed", "out of memory");
        *e = (agent_exec_t){
                .id = id, .in_fd = -1, .out_fd = -1, .err_fd = -1, .deadline_ms = now_monotonic_ms() + timeout_ms
        };
        if ((input && pipe2(in, O_CLOEXEC | O_NONBLOCK) < 0) || pipe2(out, O_CLOEXEC | O_NONBLOCK) < 0 ||
            pipe2(err, O_CLOEXEC | O_NONBLOCK) < 0) {
                r = -errno;
                goto fail;
        }
        if (input) {
                size_t n = input->type == MSGPACK_OBJECT_BIN ? input->via.bin.size : input->via.str.size;

                e->stdin_data = malloc(n ? n : 1);
                if (!e->stdin_data) {
                        r = -ENOMEM;
                        goto fail;
                }
                memcpy(e->stdin_data, input->type == MSGPACK_OBJECT_BIN ? input->via.bin.ptr : input->via.str.ptr, n);
                e->stdin_len = n;
                /* The child's end blocks as usual; ours never does. */
                fcntl(in[0], F_SETFL, 0);
        }
        fcntl(out[1], F_SETFL, 0);
        fcntl(err[1], F_SETFL, 0);
        r = agent_spawn(argv, full_env, cwd ?: s->workload.cwd, in[0], out[1], err[1], &e->pid);
        close_fd(&in[0]);
        close_fd(&out[1]);
        close_fd(&err[1]);
        if (r < 0)
                goto fail;
        e->in_fd = in[1];
        e->out_fd = out[0];
        e->err_fd = err[0];
        if (e->in_fd >= 0 && e->stdin_len == 0)
                close_fd(&e->in_fd);
        s->execs[slot] = e;
        log_agent_debug("exec %llu: %s (pid %d)", (unsigned long long)id, argv[0], (int)e->pid);
        return; /* answered when it is done (agent_io_finish) */

fail:
        for (int k = 0; k < 2; k++) {
                close_fd(&in[k]);
                close_fd(&out[k]);
                close_fd(&err[k]);
        }
        agent_exec_free(e);
        snprintf(msg, sizeof(msg), "cannot run %s: %s", argv[0], strerror(-r));
        agent_pack_error(pk, &id, r == -ENOENT || r == -EACCES ? "not_found" : "failed", msg);
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
        for (size_t k = 0; k < AGENT_EXEC_MAX; k++) {
                agent_exec_t *e = s->execs[k];

                if (e && e->pid == pid) {
                        e->pid = 0;
                        e->status = agent_exit_code(wstatus);
                        e->reaped_at_ms = now_monotonic_ms();
                        return true;
                }
        }
        return false;
}

/* ---- the loop's hooks --------------------------------------------------------------------- */

size_t agent_io_pollfds(agent_state_t *s, struct pollfd *p, size_t n) {
        size_t k = 0;

        if (k < n)
                p[k++] = (struct pollfd){ .fd = s->workload.out.fd, .events = POLLIN };
        if (k < n)
                p[k++] = (struct pollfd){ .fd = s->workload.err.fd, .events = POLLIN };
        for (size_t x = 0; x < AGENT_EXEC_MAX && k + 3 <= n; x++) {
                agent_exec_t *e = s->execs[x];

                p[k++] = (struct pollfd){ .fd = e ? e->in_fd : -1, .events = POLLOUT };
                p[k++] = (struct pollfd){ .fd = e ? e->out_fd : -1, .events = POLLIN };
                p[k++] = (struct pollfd){ .fd = e ? e->err_fd : -1, .events = POLLIN };
        }
        return k;
}

/* Keep up to the cap; beyond it keep reading (or the child blocks) and say it was cut. */
static void collect(int *fd, agent_buf_t *b, bool *truncated) {
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

static void feed_stdin(agent_exec_t *e) {
        while (e->in_fd >= 0 && e->stdin_off < e->stdin_len) {
                ssize_t n = write(e->in_fd, e->stdin_data + e->stdin_off, e->stdin_len - e->stdin_off);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return;
                if (n < 0) { /* EPIPE: the command did not read it all */
                        close_fd(&e->in_fd);
                        return;
                }
                e->stdin_off += (size_t)n;
        }
        close_fd(&e->in_fd); /* EOF for the reader */
}

void agent_io_ready(agent_state_t *s, const struct pollfd *p, size_t n) {
        size_t k = 0;

        if (k < n && p[k].fd >= 0 && p[k].revents)
                (void)agent_relay_read(&s->workload.out);
        k++;
        if (k < n && p[k].fd >= 0 && p[k].revents)
                (void)agent_relay_read(&s->workload.err);
        k++;
        for (size_t x = 0; x < AGENT_EXEC_MAX && k + 3 <= n; x++, k += 3) {
                agent_exec_t *e = s->execs[x];

                if (!e)
                        continue;
                if (p[k].fd >= 0 && p[k].revents)
                        feed_stdin(e);
                if (p[k + 1].fd >= 0 && p[k + 1].revents)
                        collect(&e->out_fd, &e->out, &e->truncated);
                if (p[k + 2].fd >= 0 && p[k + 2].revents)
                        collect(&e->err_fd, &e->err, &e->truncated);
        }
}

static void pack_bin(msgpack_packer *pk, const char *key, const agent_buf_t *b) {
        mp_pack_str(pk, key);
        msgpack_pack_bin(pk, b->len);
        msgpack_pack_bin_body(pk, b->data ? b->data : "", b->len);
}

static void emit_exec(agent_exec_t *e, agent_emit_fn emit, void *userdata) {
        msgpack_sbuffer body;
        msgpack_packer pk;

        msgpack_sbuffer_init(&body);
        msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 7);
        mp_pack_kv_str(&pk, "type", "exec");
        mp_pack_kv_u64(&pk, "id", e->id);
        mp_pack_kv_i64(&pk, "exit_status", e->status);
        pack_bin(&pk, "stdout", &e->out);
        pack_bin(&pk, "stderr", &e->err);
        mp_pack_kv_bool(&pk, "timed_out", e->timed_out);
        mp_pack_kv_bool(&pk, "truncated", e->truncated);
        emit(&body, userdata);
        msgpack_sbuffer_destroy(&body);
}

static int min_timeout(int a, int64_t b) {
        if (b < 0)
                b = 0;
        if (b > 60000)
                b = 60000;
        return a < 0 || b < a ? (int)b : a;
}

int agent_io_finish(agent_state_t *s, agent_emit_fn emit, void *userdata) {
        agent_workload_t *w = &s->workload;
        uint64_t now = now_monotonic_ms();
        int timeout = -1;

        for (size_t x = 0; x < AGENT_EXEC_MAX; x++) {
                agent_exec_t *e = s->execs[x];

                if (!e)
                        continue;
                if (e->pid > 0) {
                        if (now >= e->deadline_ms && !e->timed_out) {
                                /* Its whole session: what it started goes with it. */
                                e->timed_out = true;
                                kill(-e->pid, SIGKILL);
                                kill(e->pid, SIGKILL);
                        }
                        if (!e->timed_out)
                                timeout = min_timeout(timeout, (int64_t)(e->deadline_ms - now));
                        continue;
                }
                if ((e->out_fd >= 0 || e->err_fd >= 0) && now < e->reaped_at_ms + ORPHAN_PIPE_MS) {
                        timeout = min_timeout(timeout, (int64_t)(e->reaped_at_ms + ORPHAN_PIPE_MS - now));
                        continue;
                }
                emit_exec(e, emit, userdata);
                agent_exec_free(e);
                s->execs[x] = NULL;
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
