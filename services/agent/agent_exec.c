/* agent_exec.c: exec requests (protocol 1): a process beside the workload, its output captured and capped, answered once when it is done; run as a proc (agent_proc_io.c) that is not streamed. */
#include "services/agent/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lib/mp.h"

#define CWD_MAX 4096

static void close_fd(int *fd) {
        if (*fd >= 0)
                close(*fd);
        *fd = -1;
}

void agent_exec_request(agent_state_t *s, const msgpack_object *req, uint64_t id, msgpack_packer *pk) {
        _cleanup_(mp_strv_freep) char **argv = NULL, **env = NULL, **full_env = NULL;
        _cleanup_free_ char *cwd = NULL;
        const msgpack_object *input;
        agent_proc_t *e = NULL;
        int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 };
        uint64_t timeout_ms = AGENT_EXEC_DEFAULT_TIMEOUT_MS;
        size_t running = 0;
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
        for (size_t k = 0; k < AGENT_PROCS_MAX; k++)
                running += s->procs[k] && s->procs[k]->is_exec;
        if (running >= AGENT_EXEC_MAX)
                return agent_pack_error(pk, &id, "busy", "too many execs running (at most 16)");

        /* The workload's environment, so exec sees what the workload sees, then the request's. */
        full_env = s->workload.env ? mp_strv_copy(s->workload.env) : NULL;
        if (!full_env && agent_base_env(NULL, &full_env) < 0)
                return agent_pack_error(pk, &id, "failed", "out of memory");
        for (size_t k = 0; env && env[k]; k++)
                if (mp_env_set(&full_env, env[k]) < 0)
                        return agent_pack_error(pk, &id, "failed", "out of memory");

        e = agent_proc_new(s);
        if (!e)
                return agent_pack_error(pk, &id, "busy", "too many processes");
        e->is_exec = true;
        e->exec_id = id;
        e->state = AGENT_PROC_RUNNING;
        e->deadline_ms = now_monotonic_ms() + timeout_ms;
        e->in_eof = true; /* all of stdin comes with the request */
        if ((input && pipe2(in, O_CLOEXEC | O_NONBLOCK) < 0) || pipe2(out, O_CLOEXEC | O_NONBLOCK) < 0 ||
            pipe2(err, O_CLOEXEC | O_NONBLOCK) < 0) {
                r = -errno;
                goto fail;
        }
        if (input) {
                size_t n = input->type == MSGPACK_OBJECT_BIN ? input->via.bin.size : input->via.str.size;

                e->in.data = malloc(n ? n : 1);
                if (!e->in.data) {
                        r = -ENOMEM;
                        goto fail;
                }
                memcpy(e->in.data, input->type == MSGPACK_OBJECT_BIN ? input->via.bin.ptr : input->via.str.ptr, n);
                e->in.len = e->in.cap = n;
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
        if (e->in_fd >= 0 && e->in.len == 0)
                close_fd(&e->in_fd);
        log_agent_debug("exec %llu: %s (pid %d)", (unsigned long long)id, argv[0], (int)e->pid);
        return; /* answered when it is done (agent_io_finish) */

fail:
        for (int k = 0; k < 2; k++) {
                close_fd(&in[k]);
                close_fd(&out[k]);
                close_fd(&err[k]);
        }
        agent_proc_drop(s, e);
        snprintf(msg, sizeof(msg), "cannot run %s: %s", argv[0], strerror(-r));
        agent_pack_error(pk, &id, r == -ENOENT || r == -EACCES ? "not_found" : "failed", msg);
}
