/* agent_proc.c: protocol 2's processes (proc.create, start, stdin, resize, signal, list): the table the host names them in. */
#include "services/agent/agent.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lib/mp.h"

#define PIDS_MAX AGENT_PROC_PIDS_MAX

static void close_fd(int *fd) {
        if (*fd >= 0)
                close(*fd);
        *fd = -1;
}

void agent_proc_free(agent_proc_t *p) {
        if (!p)
                return;
        close_fd(&p->gate_fd);
        close_fd(&p->in_fd);
        close_fd(&p->out_fd);
        close_fd(&p->err_fd);
        free(p->in.data);
        free(p->out.data);
        free(p->err.data);
        free(p);
}

agent_proc_t *agent_proc_new(agent_state_t *s) {
        size_t slot = AGENT_PROCS_MAX, oldest = AGENT_PROCS_MAX;
        agent_proc_t *p;

        for (size_t k = 0; k < AGENT_PROCS_MAX && slot == AGENT_PROCS_MAX; k++) {
                agent_proc_t *q = s->procs[k];

                if (!q)
                        slot = k;
                else if (!q->is_exec && q->reported && (oldest == AGENT_PROCS_MAX || q->seq < s->procs[oldest]->seq))
                        oldest = k;
        }
        if (slot == AGENT_PROCS_MAX) {
                /* Full: forget the exited proc the host has known about longest. */
                if (oldest == AGENT_PROCS_MAX)
                        return NULL;
                agent_proc_free(s->procs[oldest]);
                s->procs[oldest] = NULL;
                slot = oldest;
        }
        p = calloc(1, sizeof(*p));
        if (!p)
                return NULL;
        p->seq = ++s->proc_seq;
        p->gate_fd = p->in_fd = p->out_fd = p->err_fd = -1;
        s->procs[slot] = p;
        return p;
}

void agent_proc_drop(agent_state_t *s, agent_proc_t *p) {
        for (size_t k = 0; k < AGENT_PROCS_MAX; k++)
                if (s->procs[k] == p)
                        s->procs[k] = NULL;
        agent_proc_free(p);
}

static agent_proc_t *proc_find(agent_state_t *s, const char *name) {
        for (size_t k = 0; k < AGENT_PROCS_MAX; k++)
                if (s->procs[k] && !s->procs[k]->is_exec && streq(s->procs[k]->name, name))
                        return s->procs[k];
        return NULL;
}

static void pack_invalid(msgpack_packer *pk, uint64_t id, const char *field) {
        char msg[96];

        snprintf(msg, sizeof(msg), "%s: missing or not valid", field ? field : "body");
        agent_pack_error(pk, &id, AGENT_ERR_INVALID, msg);
}

static void pack_no_proc(msgpack_packer *pk, uint64_t id, const char *name) {
        char msg[128];

        snprintf(msg, sizeof(msg), "no proc named %s", name);
        agent_pack_error(pk, &id, AGENT_ERR_NOT_FOUND, msg);
}

/* {type, id, proc}: what proc.start, proc.resize and proc.signal answer. */
static void pack_answer(msgpack_packer *pk, const char *type, uint64_t id, const char *name) {
        agent_proc_ref_t ref = { .id = id };

        snprintf(ref.proc, sizeof(ref.proc), "%s", name);
        agent_proc_ref_pack(pk, type, &ref);
}

/* ---- proc.create, proc.start ---------------------------------------------------------------- */

void agent_proc_create(agent_state_t *s, const msgpack_object *req, uint64_t id, msgpack_packer *pk) {
        _cleanup_(agent_proc_create_clear) agent_proc_create_t c = {};
        int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 }, gate[2] = { -1, -1 }, master = -1, slave = -1;
        const char *field = NULL;
        bool cannot_run = false;
        agent_proc_ref_t ref;
        agent_spawn_t sp;
        agent_proc_t *p;
        char msg[512];
        int r;

        if (agent_proc_create_unpack(req, &c, &field) < 0)
                return pack_invalid(pk, id, field);
        if (proc_find(s, c.proc)) {
                snprintf(msg, sizeof(msg), "a proc named %s exists already", c.proc);
                return agent_pack_error(pk, &id, AGENT_ERR_CONFLICT, msg);
        }
        p = agent_proc_new(s);
        if (!p)
                return agent_pack_error(pk, &id, AGENT_ERR_BUSY, "too many procs (at most 256 not yet exited)");
        snprintf(p->name, sizeof(p->name), "%s", c.proc);
        p->terminal = c.terminal;
        p->state = c.start ? AGENT_PROC_RUNNING : AGENT_PROC_CREATED;

        if (c.terminal)
                r = agent_pty_open(c.rows, c.cols, &master, &slave);
        else
                r = pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC | O_NONBLOCK) < 0 ||
                                    pipe2(err, O_CLOEXEC | O_NONBLOCK) < 0
                            ? -errno
                            : 0;
        if (r >= 0 && !c.start && pipe2(gate, O_CLOEXEC) < 0)
                r = -errno;
        if (r < 0) {
                snprintf(msg, sizeof(msg), "cannot create the process's %s: %s", c.terminal ? "pty" : "pipes",
                         strerror(-r));
                goto fail;
        }
        if (!c.terminal) {
                /* The child's ends block as usual; ours never do. */
                fcntl(out[1], F_SETFL, 0);
                fcntl(err[1], F_SETFL, 0);
                fcntl(in[1], F_SETFL, O_NONBLOCK);
        }
        sp = (agent_spawn_t){ .argv = c.args,
                              .env = c.env,
                              .cwd = c.cwd,
                              .in_fd = in[0],
                              .out_fd = out[1],
                              .err_fd = err[1],
                              .tty_fd = slave,
                              .set_user = true,
                              .uid = c.uid,
                              .gid = c.gid,
                              .gids = c.gids,
                              .n_gids = c.n_gids,
                              .rlimits = c.rlimits,
                              .n_rlimits = c.n_rlimits,
                              .no_new_privileges = c.no_new_privileges,
                              .gate_fd = gate[0] };
        r = agent_spawn_run(&sp, &p->pid, &cannot_run, msg, sizeof(msg));
        if (r < 0)
                goto fail;
        close_fd(&in[0]);
        close_fd(&out[1]);
        close_fd(&err[1]);
        close_fd(&gate[0]);
        close_fd(&slave);
        if (c.terminal) {
                p->out_fd = master;
                p->in_fd = fcntl(master, F_DUPFD_CLOEXEC, 3);
                if (p->in_fd < 0)
                        log_agent_warning_errno(errno, "proc %s: no stdin for its pty, ignoring: %m", p->name);
        } else {
                p->in_fd = in[1];
                p->out_fd = out[0];
                p->err_fd = err[0];
        }
        p->gate_fd = gate[1];
        log_agent_debug("proc %s: %s (pid %d, %s)", p->name, c.args[0], (int)p->pid, c.start ? "running" : "created");
        ref = (agent_proc_ref_t){ .id = id, .has_pid = true, .pid = (uint32_t)p->pid };
        snprintf(ref.proc, sizeof(ref.proc), "%s", p->name);
        agent_proc_ref_pack(pk, AGENT_FRAME_PROC_CREATE, &ref);
        return;

fail:
        for (int k = 0; k < 2; k++) {
                close_fd(&in[k]);
                close_fd(&out[k]);
                close_fd(&err[k]);
                close_fd(&gate[k]);
        }
        close_fd(&master);
        close_fd(&slave);
        agent_proc_drop(s, p);
        agent_pack_error(pk, &id, cannot_run ? AGENT_ERR_NOT_FOUND : AGENT_ERR_FAILED, msg);
}

void agent_proc_start(agent_state_t *s, const msgpack_object *req, uint64_t id, msgpack_packer *pk) {
        agent_proc_ref_t ref;
        const char *field = NULL;
        agent_proc_t *p;
        ssize_t n;

        if (agent_proc_ref_unpack(req, AGENT_FRAME_PROC_START, &ref, &field) < 0)
                return pack_invalid(pk, id, field);
        p = proc_find(s, ref.proc);
        if (!p)
                return pack_no_proc(pk, id, ref.proc);
        if (p->reaped)
                return agent_pack_error(pk, &id, AGENT_ERR_CONFLICT, "the proc exited");
        if (p->gate_fd < 0 || p->state != AGENT_PROC_CREATED)
                return agent_pack_error(pk, &id, AGENT_ERR_CONFLICT, "the proc was started already");
        do
                n = write(p->gate_fd, "", 1);
        while (n < 0 && errno == EINTR);
        close_fd(&p->gate_fd);
        p->state = AGENT_PROC_RUNNING;
        pack_answer(pk, AGENT_FRAME_PROC_START, id, p->name);
}

/* ---- proc.stdin ------------------------------------------------------------------------------- */

static int buf_append(agent_buf_t *b, const void *data, size_t size) {
        if (b->len + size > b->cap) {
                size_t cap = b->cap ? b->cap : 4096;
                char *d;

                while (cap < b->len + size)
                        cap *= 2;
                d = realloc(b->data, cap);
                if (!d)
                        return -ENOMEM;
                b->data = d;
                b->cap = cap;
        }
        memcpy(b->data + b->len, data, size);
        b->len += size;
        return 0;
}

void agent_proc_stdin(agent_state_t *s, const msgpack_object *req) {
        agent_proc_stdin_t in;
        const char *field = NULL;
        agent_proc_t *p;

        if (agent_proc_stdin_unpack(req, &in, &field) < 0) {
                log_agent_warning("proc.stdin: %s: missing or not valid, dropping it", field);
                return;
        }
        p = proc_find(s, in.proc);
        /* The process may have exited and closed its end: what it did not read is gone. */
        if (!p || p->in_fd < 0 || p->in_eof)
                return;
        if (in.eof) {
                p->in_eof = true;
                return;
        }
        /* Compact before growing: the written prefix is dead weight, and a process that always
         * lags a little behind would otherwise grow the buffer with every byte it ever got. */
        if (p->in_off > 0) {
                memmove(p->in.data, p->in.data + p->in_off, p->in.len - p->in_off);
                p->in.len -= p->in_off;
                p->in_off = 0;
        }
        if (buf_append(&p->in, in.data, in.size) < 0)
                log_agent_warning("proc %s: out of memory for stdin, dropping %zu bytes", p->name, in.size);
}

bool agent_procs_take_stdin(const agent_state_t *s) {
        for (size_t k = 0; k < AGENT_PROCS_MAX; k++) {
                const agent_proc_t *p = s->procs[k];

                if (p && p->in.len - p->in_off > AGENT_PROC_STDIN_MAX)
                        return false;
        }
        return true;
}

/* ---- proc.resize, proc.signal ----------------------------------------------------------------- */

void agent_proc_resize(agent_state_t *s, const msgpack_object *req, uint64_t id, msgpack_packer *pk) {
        agent_proc_resize_t rs;
        const char *field = NULL;
        agent_proc_t *p;
        char msg[128];
        int r;

        if (agent_proc_resize_unpack(req, &rs, &field) < 0)
                return pack_invalid(pk, id, field);
        p = proc_find(s, rs.proc);
        if (!p)
                return pack_no_proc(pk, id, rs.proc);
        if (!p->terminal)
                return agent_pack_error(pk, &id, AGENT_ERR_INVALID, "proc: not a terminal process");
        if (p->out_fd < 0)
                return agent_pack_error(pk, &id, AGENT_ERR_CONFLICT, "the proc exited");
        r = agent_pty_resize(p->out_fd, rs.rows, rs.cols);
        if (r < 0) {
                snprintf(msg, sizeof(msg), "TIOCSWINSZ: %s", strerror(-r));
                return agent_pack_error(pk, &id, AGENT_ERR_FAILED, msg);
        }
        pack_answer(pk, AGENT_FRAME_PROC_RESIZE, id, p->name);
}

void agent_proc_signal(agent_state_t *s, const msgpack_object *req, uint64_t id, msgpack_packer *pk) {
        agent_proc_signal_t sg;
        const char *field = NULL;
        agent_proc_t *p;
        char msg[128];

        if (agent_proc_signal_unpack(req, &sg, &field) < 0)
                return pack_invalid(pk, id, field);
        p = proc_find(s, sg.proc);
        if (!p)
                return pack_no_proc(pk, id, sg.proc);
        if (sg.all) {
                _cleanup_free_ uint32_t *pids = NULL;
                size_t n = 0;
                int r = agent_descendants(&pids, &n);

                if (r < 0) {
                        snprintf(msg, sizeof(msg), "cannot list processes: %s", strerror(-r));
                        return agent_pack_error(pk, &id, AGENT_ERR_FAILED, msg);
                }
                /* One by one, never kill(-1): outside a VM (tests) that would be the host's. */
                for (size_t k = 0; k < n; k++)
                        (void)kill((pid_t)pids[k], (int)sg.signal);
        } else {
                if (p->reaped)
                        return agent_pack_error(pk, &id, AGENT_ERR_CONFLICT, "the proc exited");
                if (kill(p->pid, (int)sg.signal) < 0) {
                        snprintf(msg, sizeof(msg), "kill: %s", strerror(errno));
                        return agent_pack_error(pk, &id, AGENT_ERR_FAILED, msg);
                }
        }
        pack_answer(pk, AGENT_FRAME_PROC_SIGNAL, id, p->name);
}

/* ---- proc.list ---------------------------------------------------------------------------------- */

/* The parent of pid from /proc/<pid>/stat: the field after the command's closing paren. */
static pid_t parent_of(const char *pid) {
        char path[64], buf[512];
        _cleanup_close_ int fd = -1;
        const char *paren;
        ssize_t n;
        int ppid;

        snprintf(path, sizeof(path), "/proc/%s/stat", pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -1;
        n = read(fd, buf, sizeof(buf) - 1);
        if (n <= 0)
                return -1;
        buf[n] = '\0';
        paren = strrchr(buf, ')');
        if (!paren || sscanf(paren + 1, " %*c %d", &ppid) != 1)
                return -1;
        return ppid;
}

static inline void closedirp(DIR **d) {
        if (*d)
                closedir(*d);
}

int agent_descendants(uint32_t **ret, size_t *ret_n) {
        _cleanup_(closedirp) DIR *d = opendir("/proc");
        _cleanup_free_ pid_t *pid = NULL, *ppid = NULL;
        _cleanup_free_ bool *mine = NULL;
        uint32_t *out;
        size_t n = 0, n_out = 0;
        pid_t self = getpid();
        struct dirent *de;
        bool changed = true;

        if (!d)
                return -errno;
        pid = calloc(PIDS_MAX, sizeof(pid_t));
        ppid = calloc(PIDS_MAX, sizeof(pid_t));
        mine = calloc(PIDS_MAX, sizeof(bool));
        if (!pid || !ppid || !mine)
                return -ENOMEM;
        while ((de = readdir(d)) && n < PIDS_MAX) {
                if (!isdigit((unsigned char)de->d_name[0]))
                        continue;
                ppid[n] = parent_of(de->d_name);
                if (ppid[n] < 0)
                        continue; /* gone since readdir */
                pid[n++] = (pid_t)strtol(de->d_name, NULL, 10);
        }
        /* Children of ours, then theirs, until nothing is added: the tree below us. */
        while (changed) {
                changed = false;
                for (size_t k = 0; k < n; k++) {
                        if (mine[k])
                                continue;
                        if (ppid[k] == self)
                                mine[k] = changed = true;
                        for (size_t j = 0; !mine[k] && j < n; j++)
                                if (mine[j] && pid[j] == ppid[k])
                                        mine[k] = changed = true;
                }
        }
        out = calloc(n ? n : 1, sizeof(uint32_t));
        if (!out)
                return -ENOMEM;
        for (size_t k = 0; k < n; k++)
                if (mine[k])
                        out[n_out++] = (uint32_t)pid[k];
        *ret = out;
        *ret_n = n_out;
        return 0;
}

void agent_proc_list(agent_state_t *s, const msgpack_object *req, uint64_t id, msgpack_packer *pk) {
        agent_proc_info_t procs[AGENT_PROCS_MAX];
        agent_proc_list_t l = { .id = id, .procs = procs };
        _cleanup_free_ uint32_t *pids = NULL;
        char msg[128];
        int r;

        for (size_t k = 0; k < AGENT_PROCS_MAX; k++) {
                const agent_proc_t *p = s->procs[k];
                agent_proc_info_t *i = &procs[l.n_procs];

                if (!p || p->is_exec)
                        continue;
                *i = (agent_proc_info_t){ .pid = (uint32_t)p->pid, .state = p->state };
                snprintf(i->proc, sizeof(i->proc), "%s", p->name);
                /* Exited once its exit is told: before, proc.exited is still to come. */
                if (p->state == AGENT_PROC_EXITED) {
                        i->has_status = true;
                        i->status = p->status;
                }
                l.n_procs++;
        }
        r = agent_descendants(&pids, &l.n_pids);
        if (r < 0) {
                snprintf(msg, sizeof(msg), "cannot list processes: %s", strerror(-r));
                return agent_pack_error(pk, &id, AGENT_ERR_FAILED, msg);
        }
        l.pids = pids;
        agent_proc_list_pack(pk, &l);
}
