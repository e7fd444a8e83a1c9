/* oci_create.c: create (fork the VM holder, wait until the container's process is prepared, write --pid-file), start and run. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/oci/oci.h"
#include "cli/oci/oci_chan.h"
#include "cli/oci/oci_holder.h"
#include "lib/mp.h"

typedef struct create_args {
        const char *bundle;
        const char *pid_file;
        const char *console_socket;
        bool detach;
} create_args_t;

enum { OPT_NO_PIVOT = 0x100, OPT_NO_KEYRING, OPT_PRESERVE_FDS, OPT_NO_SUBREAPER, OPT_KEEP };

/* create's and run's options; -1 on a usage error (reported). */
static int parse_create(int argc, char **argv, bool run, create_args_t *a) {
        static const struct option options[] = { { "bundle", required_argument, NULL, 'b' },
                                                 { "pid-file", required_argument, NULL, 'p' },
                                                 { "console-socket", required_argument, NULL, 'c' },
                                                 { "detach", no_argument, NULL, 'd' },
                                                 { "no-pivot", no_argument, NULL, OPT_NO_PIVOT },
                                                 { "no-new-keyring", no_argument, NULL, OPT_NO_KEYRING },
                                                 { "preserve-fds", required_argument, NULL, OPT_PRESERVE_FDS },
                                                 { "no-subreaper", no_argument, NULL, OPT_NO_SUBREAPER },
                                                 { "keep", no_argument, NULL, OPT_KEEP },
                                                 {} };
        int c;

        *a = (create_args_t){ .bundle = "." };
        optind = 0;
        while ((c = getopt_long(argc, argv, "+b:p:c:d", options, NULL)) != -1)
                switch (c) {
                case 'b':
                        a->bundle = optarg;
                        break;
                case 'p':
                        a->pid_file = optarg;
                        break;
                case 'c':
                        a->console_socket = optarg;
                        break;
                case 'd':
                        if (!run)
                                return oci_fail("create: unknown option -d");
                        a->detach = true;
                        break;
                case OPT_NO_PIVOT:
                case OPT_NO_KEYRING:
                case OPT_PRESERVE_FDS:
                case OPT_NO_SUBREAPER:
                case OPT_KEEP:
                        break; /* a VM has no pivot_root, keyring or inherited fds to keep */
                default:
                        return -1;
                }
        if (argc - optind != 1)
                return oci_fail(
                        "%s: usage: husk-oci %s [--bundle DIR] [--pid-file FILE] [--console-socket SOCKET]%s ID",
                        argv[0], argv[0], run ? " [--detach]" : "");
        return 0;
}

/* The bundle's config.json, parsed; errors say which field. */
static int load_spec(const char *bundle, oci_spec_t *ret) {
        _cleanup_free_ char *text = NULL, *why = NULL;
        char path[PATH_MAX];
        size_t size;
        int r;

        snprintf(path, sizeof(path), "%s/config.json", bundle);
        r = read_file(path, OCI_CONFIG_MAX, &text, &size);
        if (r < 0)
                return oci_fail("%s: %s", path, strerror(-r));
        if (oci_spec_parse(text, size, ret, &why) < 0)
                return oci_fail("config.json: %s", why ?: "cannot parse");
        return 0;
}

int oci_write_pid_file(const char *path, pid_t pid) {
        char text[32];
        int r;

        if (!path)
                return 0;
        snprintf(text, sizeof(text), "%d", (int)pid);
        r = write_file_atomic(path, text, strlen(text), 0644);
        return r < 0 ? oci_fail("--pid-file %s: %s", path, strerror(-r)) : 0;
}

/* Read the holder's verdict until it closes its end: "OK", or why the create failed. */
int oci_wait_ready(int fd, pid_t holder, const char *what) {
        char buf[4096];
        size_t len = 0;
        ssize_t n;

        while (len < sizeof(buf) - 1 &&
               ((n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0 || (n < 0 && errno == EINTR)))
                if (n > 0)
                        len += (size_t)n;
        buf[len] = '\0';
        close(fd);
        if (streq(buf, "OK"))
                return 0;
        /* It failed and ends (or ended): reap it, it is our child. */
        (void)waitpid(holder, NULL, 0);
        return oci_fail("%s", len ? buf : what);
}

/* Make the container's directory: --root/ID, absolute. */
static int make_dir(const oci_ctx_t *ctx, const char *id, char *dir, size_t size) {
        char path[PATH_MAX];
        int r;

        if (!oci_id_valid(id))
                return oci_fail("invalid container id: %s", id);
        r = mkdir_p(ctx->root, 0711);
        if (r < 0)
                return oci_fail("--root %s: %s", ctx->root, strerror(-r));
        if (!realpath(ctx->root, path))
                return oci_fail("--root %s: %m", ctx->root);
        if (snprintf(dir, size, "%s/%s", path, id) >= (int)size)
                return oci_fail("container id too long: %s", id);
        if (mkdir(dir, 0711) < 0)
                return errno == EEXIST ? oci_fail("container with id exists: %s", id) : oci_fail("%s: %m", dir);
        return 0;
}

/* create, and run --detach up to its start: fork the holder, wait for its verdict, write the pid file. */
static int create(oci_ctx_t *ctx, const create_args_t *a, const char *id, char *dir, size_t dir_size) {
        _cleanup_free_ char *bundle = NULL;
        oci_spec_t spec;
        int fds[2];
        pid_t pid;

        bundle = realpath(a->bundle, NULL);
        if (!bundle)
                return oci_fail("--bundle %s: %m", a->bundle);
        if (load_spec(bundle, &spec) < 0)
                return -1;
        if (spec.process.terminal && !a->console_socket) {
                oci_spec_done(&spec);
                return oci_fail("cannot allocate tty if runc will detach without setting console socket");
        }
        if (!spec.process.terminal && a->console_socket) {
                oci_spec_done(&spec);
                return oci_fail("cannot use console socket if runc will not detach or allocate tty");
        }
        if (make_dir(ctx, id, dir, dir_size) < 0) {
                oci_spec_done(&spec);
                return -1;
        }
        if (pipe2(fds, O_CLOEXEC) < 0) {
                oci_spec_done(&spec);
                (void)rm_rf(dir);
                return oci_fail("pipe: %m");
        }
        pid = fork();
        if (pid < 0) {
                oci_spec_done(&spec);
                (void)rm_rf(dir);
                return oci_fail("fork: %m");
        }
        if (pid == 0) {
                oci_holder_opts_t o = { .ctx = ctx,
                                        .id = id,
                                        .bundle = bundle,
                                        .dir = dir,
                                        .spec = &spec,
                                        .console_socket = a->console_socket,
                                        .ready_fd = fds[1] };

                close(fds[0]);
                /* Out of the bundle: containerd unmounts the rootfs there once we are gone. */
                (void)!chdir("/");
                _exit(oci_holder_run(&o));
        }
        close(fds[1]);
        oci_spec_done(&spec);
        if (oci_wait_ready(fds[0], pid, "the VM holder ended before the container was created") < 0)
                return -1;
        return oci_write_pid_file(a->pid_file, pid) < 0 ? -1 : 0;
}

int oci_verb_create(oci_ctx_t *ctx, int argc, char **argv) {
        create_args_t a;
        char dir[PATH_MAX];

        if (parse_create(argc, argv, false, &a) < 0)
                return OCI_EXIT_FAILURE;
        return create(ctx, &a, argv[optind], dir, sizeof(dir)) < 0 ? OCI_EXIT_FAILURE : OCI_EXIT_OK;
}

static int start(const char *dir, const char *id) {
        _cleanup_free_ char *why = NULL;
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_unpacked answer;
        int r;

        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 1);
        mp_pack_kv_str(&pk, "type", "start");
        r = oci_ctl_call(dir, &sb, 30000, &answer, &why);
        msgpack_sbuffer_destroy(&sb);
        if (r < 0)
                return oci_fail("%s", why
                                              ?: r == -ECONNREFUSED || r == -ENOENT
                                                 ? "cannot start a container that has stopped"
                                                 : strerror(-r));
        msgpack_unpacked_destroy(&answer);
        return 0;
}

int oci_verb_start(oci_ctx_t *ctx, int argc, char **argv) {
        char dir[PATH_MAX];
        oci_state_t s;
        oci_status_t st;
        int r;

        optind = 0;
        if (getopt_long(argc, argv, "+", (const struct option[]){ {} }, NULL) != -1 || argc - optind != 1)
                return oci_error("start: usage: husk-oci start ID");
        r = oci_state_load(ctx, argv[optind], dir, sizeof(dir), &s);
        if (r < 0)
                return r == -ENOENT ? oci_error("container does not exist") : oci_error("%s", strerror(-r));
        st = oci_state_status(&s);
        oci_state_done(&s);
        if (st == OCI_STATUS_STOPPED)
                return oci_error("cannot start a container that has stopped");
        if (st != OCI_STATUS_CREATED)
                return oci_error("cannot start an already running container");
        return start(dir, argv[optind]) < 0 ? OCI_EXIT_FAILURE : OCI_EXIT_OK;
}

/* run: create and start; without --detach this process is the holder and exits with the
 * container, which is then deleted (runc's run). */
int oci_verb_run(oci_ctx_t *ctx, int argc, char **argv) {
        _cleanup_free_ char *bundle = NULL;
        create_args_t a;
        char dir[PATH_MAX];
        oci_spec_t spec;
        const char *id;
        int status;

        if (parse_create(argc, argv, true, &a) < 0)
                return OCI_EXIT_FAILURE;
        id = argv[optind];
        if (a.detach) {
                if (create(ctx, &a, id, dir, sizeof(dir)) < 0)
                        return OCI_EXIT_FAILURE;
                return start(dir, id) < 0 ? OCI_EXIT_FAILURE : OCI_EXIT_OK;
        }
        bundle = realpath(a.bundle, NULL);
        if (!bundle)
                return oci_error("--bundle %s: %m", a.bundle);
        if (load_spec(bundle, &spec) < 0)
                return OCI_EXIT_FAILURE;
        if (!spec.process.terminal && a.console_socket) {
                oci_spec_done(&spec);
                return oci_error("cannot use console socket if runc will not detach or allocate tty");
        }
        if (make_dir(ctx, id, dir, sizeof(dir)) < 0) {
                oci_spec_done(&spec);
                return OCI_EXIT_FAILURE;
        }
        if (oci_write_pid_file(a.pid_file, getpid()) < 0) {
                oci_spec_done(&spec);
                (void)rm_rf(dir);
                return OCI_EXIT_FAILURE;
        }
        {
                oci_holder_opts_t o = { .ctx = ctx,
                                        .id = id,
                                        .bundle = bundle,
                                        .dir = dir,
                                        .spec = &spec,
                                        .console_socket = a.console_socket,
                                        .ready_fd = -1,
                                        .start = true,
                                        .tty_raw = spec.process.terminal && !a.console_socket && isatty(STDIN_FILENO) };

                status = oci_holder_run(&o);
        }
        oci_spec_done(&spec);
        (void)rm_rf(dir);
        return status;
}
