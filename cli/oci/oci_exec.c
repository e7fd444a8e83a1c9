/* oci_exec.c: exec: a holder per exec process (its pid in --pid-file), streaming through the container's holder: stdin, output, window size, signals, exit status. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/oci/oci.h"
#include "cli/oci/oci_agent.h"
#include "cli/oci/oci_chan.h"
#include "cli/oci/oci_pty.h"
#include "lib/mp.h"

#define EXEC_ANSWER_TIMEOUT_MS 60000

typedef struct exec_opts {
        const char *dir;
        const char *process; /* the OCI Process object, JSON text */
        bool terminal;
        unsigned rows, cols;
        const char *console_socket;
        int ready_fd; /* -1: none (not detached) */
        bool tty_raw;
} exec_opts_t;

static void report(int *fd, const char *error) {
        if (*fd < 0) {
                if (error)
                        oci_error("%s", error);
                return;
        }
        (void)!write(*fd, error ?: "OK", strlen(error ?: "OK"));
        close(*fd);
        *fd = -1;
}

static void send_frame(oci_chan_t *c, const char *type, void (*fill)(msgpack_packer *pk, const void *arg),
                       size_t n_fields, const void *arg) {
        msgpack_sbuffer sb;
        msgpack_packer pk;

        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 1 + n_fields);
        mp_pack_kv_str(&pk, "type", type);
        if (fill)
                fill(&pk, arg);
        (void)oci_chan_send(c, &sb);
        msgpack_sbuffer_destroy(&sb);
}

typedef struct bytes {
        const void *data;
        size_t size;
} bytes_t;

static void fill_data(msgpack_packer *pk, const void *arg) {
        const bytes_t *b = arg;

        mp_pack_str(pk, "data");
        msgpack_pack_bin(pk, b->size);
        msgpack_pack_bin_body(pk, b->data, b->size);
}

static void fill_process(msgpack_packer *pk, const void *arg) { mp_pack_kv_str(pk, "process", arg); }

static void fill_signal(msgpack_packer *pk, const void *arg) { mp_pack_kv_u64(pk, "signal", *(const int *)arg); }

static void fill_size(msgpack_packer *pk, const void *arg) {
        const unsigned *rc = arg;

        mp_pack_kv_u64(pk, "rows", rc[0]);
        mp_pack_kv_u64(pk, "cols", rc[1]);
}

static int write_all(int fd, const char *p, size_t size) {
        while (size > 0) {
                ssize_t n = write(fd, p, size);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                p += n;
                size -= (size_t)n;
        }
        return 0;
}

/* The exec holder: until its process exits; returns the status for exit(). */
static int exec_holder(exec_opts_t *o) {
        _cleanup_free_ char *why = NULL;
        int in_fd = STDIN_FILENO, out_fd = STDOUT_FILENO, err_fd = STDERR_FILENO, fd, sfd, status = 255;
        bool in_open = false, answered = false, done = false, raw = false;
        uint64_t deadline = now_monotonic_ms() + EXEC_ANSWER_TIMEOUT_MS;
        struct termios saved;
        oci_chan_t c;
        int r;

        /* Without a signalfd (-1) nothing is forwarded; the exec still runs. */
        (void)oci_signals_to_forward(&sfd);

        if (o->console_socket) {
                int master, slave;

                r = oci_pty_open(o->rows, o->cols, &master, &slave, &why);
                if (r >= 0)
                        r = oci_pty_send(o->console_socket, master, &why);
                if (r < 0) {
                        report(&o->ready_fd, why);
                        return OCI_EXIT_FAILURE;
                }
                close(master);
                (void)oci_stdio_null();
                (void)oci_pty_control(slave);
                in_fd = out_fd = err_fd = slave;
        } else if (o->tty_raw && oci_tty_raw(STDIN_FILENO, &saved) == 0)
                raw = true;

        r = oci_ctl_connect(o->dir, &fd);
        if (r < 0) {
                report(&o->ready_fd, "container not running");
                return OCI_EXIT_FAILURE;
        }
        oci_chan_init(&c, fd);
        send_frame(&c, "exec", fill_process, 1, o->process);

        while (!done) {
                struct pollfd p[3] = {
                        { .fd = c.fd, .events = POLLIN | (oci_chan_pending(&c) ? POLLOUT : 0) },
                        { .fd = sfd, .events = POLLIN },
                        { .fd = in_open ? in_fd : -1, .events = POLLIN },
                };
                uint64_t now = now_monotonic_ms();
                msgpack_unpacked u;

                if (!answered && now >= deadline) {
                        report(&o->ready_fd, "exec: the container did not answer in time");
                        status = OCI_EXIT_FAILURE;
                        break;
                }
                if (poll(p, 3, answered ? -1 : (int)(deadline - now)) < 0 && errno != EINTR)
                        break;
                if (p[0].revents & POLLOUT)
                        (void)oci_chan_flush(&c);
                if (p[0].revents & (POLLIN | POLLHUP | POLLERR))
                        (void)oci_chan_read(&c);
                while ((r = oci_chan_next(&c, &u)) > 0) {
                        const msgpack_object *type = mp_map_get(&u.data, "type");

                        if (!answered && mp_str_eq(type, "exec")) {
                                answered = true;
                                in_open = true;
                                report(&o->ready_fd, NULL);
                        } else if (mp_str_eq(type, "error")) {
                                _cleanup_free_ char *m = NULL;

                                (void)mp_get_str(&u.data, "message", 4096, &m);
                                report(&o->ready_fd, m ?: "exec failed");
                                status = OCI_EXIT_FAILURE;
                                done = true;
                        } else if (mp_str_eq(type, "output")) {
                                const char *data;
                                size_t size;
                                uint64_t which = 1;

                                (void)mp_get_u64(&u.data, "fd", &which);
                                if (oci_agent_bin(&u.data, "data", &data, &size) == 0)
                                        (void)write_all(which == 2 ? err_fd : out_fd, data, size);
                        } else if (mp_str_eq(type, "exited")) {
                                int64_t s = 255;

                                (void)mp_get_i64(&u.data, "status", &s);
                                status = s >= 0 && s <= 255 ? (int)s : 255;
                                done = true;
                        }
                        msgpack_unpacked_destroy(&u);
                }
                if (!done && (r < 0 || c.eof)) {
                        /* The container's holder went away (the container ended, the VM with it). */
                        report(&o->ready_fd, "container not running");
                        status = answered ? 128 + SIGKILL : OCI_EXIT_FAILURE;
                        break;
                }
                if (p[1].revents) {
                        struct signalfd_siginfo si;

                        while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                                int sig = (int)si.ssi_signo;

                                if (sig == SIGCHLD)
                                        continue;
                                if (sig == SIGWINCH) {
                                        unsigned rc[2];

                                        if (o->terminal && oci_tty_size(in_fd, &rc[0], &rc[1]) == 0)
                                                send_frame(&c, "resize", fill_size, 2, rc);
                                        continue;
                                }
                                if (answered)
                                        send_frame(&c, "signal", fill_signal, 1, &sig);
                        }
                }
                if (p[2].fd >= 0 && p[2].revents) {
                        char buf[OCI_AGENT_STDIN_MAX];
                        ssize_t n = read(in_fd, buf, sizeof(buf));

                        if (n > 0) {
                                bytes_t b = { buf, (size_t)n };
                                send_frame(&c, "stdin", fill_data, 1, &b);
                        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                                send_frame(&c, "stdin", NULL, 0, NULL);
                                in_open = false;
                        }
                }
        }
        /* What is queued (the last stdin) goes before we leave. */
        while (oci_chan_pending(&c) && oci_chan_flush(&c) == 0 && oci_chan_pending(&c)) {
                struct pollfd pf = { .fd = c.fd, .events = POLLOUT };
                if (poll(&pf, 1, 1000) <= 0)
                        break;
        }
        oci_chan_done(&c);
        if (raw)
                oci_tty_restore(STDIN_FILENO, &saved);
        return status;
}

/* The process of `exec ARGS...`: runc's defaults (PATH, root, cwd /), then the flags. */
static char *process_from_args(char **args, char **env, size_t n_env, bool tty, const char *cwd, const char *user) {
        json_t *p, *a = json_array(), *e = json_array();
        uint64_t uid = 0, gid = 0;
        char *text;

        json_array_append_new(e, json_string("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
        for (size_t k = 0; k < n_env; k++)
                json_array_append_new(e, json_string(env[k]));
        for (size_t k = 0; args[k]; k++)
                json_array_append_new(a, json_string(args[k]));
        if (user) {
                _cleanup_free_ char *u = strdup(user);
                char *colon = u ? strchr(u, ':') : NULL;

                if (colon)
                        *colon = '\0';
                if (!u || parse_u64(u, &uid) < 0 || uid > UINT32_MAX ||
                    (colon && (parse_u64(colon + 1, &gid) < 0 || gid > UINT32_MAX))) {
                        json_decref(a);
                        json_decref(e);
                        return NULL;
                }
        }
        p = json_pack("{s:b, s:{s:I, s:I}, s:o, s:o, s:s}", "terminal", tty, "user", "uid", (json_int_t)uid, "gid",
                      (json_int_t)gid, "args", a, "env", e, "cwd", cwd ?: "/");
        text = p ? json_dumps(p, JSON_COMPACT) : NULL;
        json_decref(p);
        return text;
}

int oci_verb_exec(oci_ctx_t *ctx, int argc, char **argv) {
        static const struct option options[] = { { "process", required_argument, NULL, 'p' },
                                                 { "detach", no_argument, NULL, 'd' },
                                                 { "pid-file", required_argument, NULL, 'P' },
                                                 { "console-socket", required_argument, NULL, 'c' },
                                                 { "tty", no_argument, NULL, 't' },
                                                 { "env", required_argument, NULL, 'e' },
                                                 { "cwd", required_argument, NULL, 'w' },
                                                 { "user", required_argument, NULL, 'u' },
                                                 { "cap", required_argument, NULL, 'C' },
                                                 { "no-new-privs", no_argument, NULL, 'N' },
                                                 { "preserve-fds", required_argument, NULL, 'F' },
                                                 { "additional-gids", required_argument, NULL, 'g' },
                                                 { "process-label", required_argument, NULL, 'l' },
                                                 { "apparmor", required_argument, NULL, 'a' },
                                                 { "cgroup", required_argument, NULL, 'G' },
                                                 { "ignore-paused", no_argument, NULL, 'i' },
                                                 {} };
        const char *process_file = NULL, *pid_file = NULL, *cwd = NULL, *user = NULL;
        _cleanup_free_ char *text = NULL, *why = NULL;
        char *env[64];
        size_t n_env = 0;
        bool detach = false, tty = false;
        exec_opts_t o = { .ready_fd = -1 };
        char dir[PATH_MAX];
        oci_process_t process;
        oci_state_t s;
        oci_status_t st;
        int c, r, fds[2];
        pid_t pid;

        optind = 0;
        while ((c = getopt_long(argc, argv, "+p:dtc:e:u:g:", options, NULL)) != -1)
                switch (c) {
                case 'p':
                        process_file = optarg;
                        break;
                case 'd':
                        detach = true;
                        break;
                case 'P':
                        pid_file = optarg;
                        break;
                case 'c':
                        o.console_socket = optarg;
                        break;
                case 't':
                        tty = true;
                        break;
                case 'e':
                        if (n_env == ELEMENTSOF(env))
                                return oci_error("exec: at most %zu --env", ELEMENTSOF(env));
                        env[n_env++] = optarg;
                        break;
                case 'w':
                        cwd = optarg;
                        break;
                case 'u':
                        user = optarg;
                        break;
                case 'C':
                case 'N':
                case 'F':
                case 'g':
                case 'l':
                case 'a':
                case 'G':
                case 'i':
                        break; /* capabilities, labels and cgroups do not apply inside a VM */
                default:
                        return OCI_EXIT_FAILURE;
                }
        if (argc - optind < 1 || (!process_file && argc - optind < 2))
                return oci_error("exec: usage: husk-oci exec [--process FILE | ...] ID [COMMAND ARGS...]");
        r = oci_state_load(ctx, argv[optind], dir, sizeof(dir), &s);
        if (r < 0)
                return r == -ENOENT ? oci_error("container does not exist") : oci_error("%s", strerror(-r));
        st = oci_state_status(&s);
        oci_state_done(&s);
        if (st == OCI_STATUS_STOPPED)
                return oci_error("cannot exec in a stopped container");
        if (process_file) {
                r = read_file(process_file, OCI_CONFIG_MAX, &text, NULL);
                if (r < 0)
                        return oci_error("--process %s: %s", process_file, strerror(-r));
        } else if (!(text = process_from_args(argv + optind + 1, env, n_env, tty, cwd, user)))
                return oci_error("exec: --user: must be UID[:GID]");
        if (oci_process_parse_text(text, strlen(text), &process, &why) < 0)
                return oci_error("%s", why ?: "exec: cannot parse the process");
        o = (exec_opts_t){ .dir = dir,
                           .process = text,
                           .terminal = process.terminal,
                           .rows = process.rows,
                           .cols = process.cols,
                           .console_socket = o.console_socket,
                           .ready_fd = -1 };
        oci_process_done(&process);
        if (detach && o.terminal && !o.console_socket)
                return oci_error("cannot allocate tty if runc will detach without setting console socket");
        if (!o.terminal && o.console_socket)
                return oci_error("cannot use console socket if runc will not detach or allocate tty");
        if (!detach) {
                o.tty_raw = o.terminal && !o.console_socket && isatty(STDIN_FILENO);
                if (oci_write_pid_file(pid_file, getpid()) < 0)
                        return OCI_EXIT_FAILURE;
                return exec_holder(&o);
        }
        if (pipe2(fds, O_CLOEXEC) < 0)
                return oci_error("pipe: %m");
        pid = fork();
        if (pid < 0)
                return oci_error("fork: %m");
        if (pid == 0) {
                close(fds[0]);
                o.ready_fd = fds[1];
                (void)!chdir("/");
                _exit(exec_holder(&o));
        }
        close(fds[1]);
        if (oci_wait_ready(fds[0], pid, "the exec holder ended before its process started") < 0)
                return OCI_EXIT_FAILURE;
        return oci_write_pid_file(pid_file, pid) < 0 ? OCI_EXIT_FAILURE : OCI_EXIT_OK;
}
