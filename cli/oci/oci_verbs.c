/* oci_verbs.c: the verbs that read a container's state or ask its holder one thing: spec, state, list, features, kill, delete, ps, pause, resume, update. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/oci/oci.h"
#include "cli/oci/oci_chan.h"
#include "cli/oci/oci_vm.h"
#include "lib/mp.h"

#define CTL_TIMEOUT_MS 30000 /* a holder answers at once but for delete (the VM's shutdown) */
#define HOLDER_GONE_MS 15000 /* delete waits this long for the holder to end before SIGKILL */
#define HOLDER_GONE_STEP_MS 10

/* Parse the verb's options (getopt_long, "+": stop at the first argument) and check that
 * exactly n_args arguments follow; -1 on a usage error (reported). */
static int verb_args(int argc, char **argv, int min_args, int max_args, const char *usage) {
        if (argc - optind < min_args || argc - optind > max_args)
                return oci_fail("%s: usage: husk-oci %s %s", argv[0], argv[0], usage);
        return 0;
}

/* The container's state, with runc's message for an unknown id. */
static int load(const oci_ctx_t *ctx, const char *id, char *dir, size_t size, oci_state_t *ret) {
        int r = oci_state_load(ctx, id, dir, size, ret);

        if (r == -ENOENT)
                return oci_error("container does not exist");
        if (r < 0)
                return oci_error("%s: cannot read its state: %s", id, strerror(-r));
        return 0;
}

/* One request of a type with no fields but those fill adds; the answer in *ret. */
static int ctl(const char *dir, const char *type, void (*fill)(msgpack_packer *pk, const void *arg), size_t n_fields,
               const void *arg, msgpack_unpacked *ret, char **ret_error) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        int r;

        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 1 + n_fields);
        mp_pack_kv_str(&pk, "type", type);
        if (fill)
                fill(&pk, arg);
        r = oci_ctl_call(dir, &sb, CTL_TIMEOUT_MS, ret, ret_error);
        msgpack_sbuffer_destroy(&sb);
        return r;
}

/* ---- spec -------------------------------------------------------------------------------------- */

int oci_verb_spec(oci_ctx_t *ctx, int argc, char **argv) {
        static const struct option options[] = { { "bundle", required_argument, NULL, 'b' },
                                                 { "rootless", no_argument, NULL, 'r' },
                                                 {} };
        const char *bundle = ".";
        char path[4200];
        _cleanup_free_ char *text = NULL;
        json_t *spec;
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, "+b:", options, NULL)) != -1)
                if (c == 'b')
                        bundle = optarg;
                else if (c != 'r')
                        return OCI_EXIT_FAILURE;
        if (verb_args(argc, argv, 0, 0, "[--bundle DIR]") < 0)
                return OCI_EXIT_FAILURE;
        snprintf(path, sizeof(path), "%s/config.json", bundle);
        if (access(path, F_OK) == 0)
                return oci_error("File %s exists. Remove it first", path);
        spec = oci_spec_default();
        text = spec ? json_dumps(spec, JSON_INDENT(8) | JSON_PRESERVE_ORDER) : NULL;
        json_decref(spec);
        if (!text)
                return oci_error("out of memory");
        r = write_file_atomic(path, text, strlen(text), 0666 & ~0022);
        if (r < 0)
                return oci_error("%s: %s", path, strerror(-r));
        return OCI_EXIT_OK;
}

/* ---- state, list, features ---------------------------------------------------------------------- */

int oci_verb_state(oci_ctx_t *ctx, int argc, char **argv) {
        _cleanup_free_ char *text = NULL;
        char dir[4200];
        oci_state_t s;
        json_t *o;

        optind = 0;
        if (getopt_long(argc, argv, "+", (const struct option[]){ {} }, NULL) != -1 ||
            verb_args(argc, argv, 1, 1, "ID") < 0)
                return OCI_EXIT_FAILURE;
        if (load(ctx, argv[optind], dir, sizeof(dir), &s) != 0)
                return OCI_EXIT_FAILURE;
        o = oci_state_json(&s);
        oci_state_done(&s);
        text = o ? json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
        json_decref(o);
        if (!text)
                return oci_error("out of memory");
        printf("%s\n", text);
        return OCI_EXIT_OK;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int oci_verb_list(oci_ctx_t *ctx, int argc, char **argv) {
        static const struct option options[] = { { "format", required_argument, NULL, 'f' },
                                                 { "quiet", no_argument, NULL, 'q' },
                                                 {} };
        const char *format = "table";
        bool quiet = false;
        char **names = NULL;
        size_t n = 0, cap = 0;
        json_t *all = NULL;
        struct dirent *de;
        DIR *d;
        int c;

        optind = 0;
        while ((c = getopt_long(argc, argv, "+f:q", options, NULL)) != -1)
                if (c == 'f')
                        format = optarg;
                else if (c == 'q')
                        quiet = true;
                else
                        return OCI_EXIT_FAILURE;
        if (verb_args(argc, argv, 0, 0, "[--format table|json] [--quiet]") < 0)
                return OCI_EXIT_FAILURE;
        if (!streq(format, "table") && !streq(format, "json"))
                return oci_error("invalid format option");
        d = opendir(ctx->root);
        while (d && (de = readdir(d))) {
                if (!oci_id_valid(de->d_name) || de->d_name[0] == '.')
                        continue;
                if (n == cap) {
                        char **nv = realloc(names, (cap = cap ? cap * 2 : 16) * sizeof(char *));
                        if (!nv)
                                break;
                        names = nv;
                }
                if (!(names[n] = strdup(de->d_name)))
                        break;
                n++;
        }
        if (d)
                closedir(d);
        if (n)
                qsort(names, n, sizeof(char *), cmp_str);
        all = json_array();
        for (size_t k = 0; k < n; k++) {
                char dir[4200];
                oci_state_t s;

                if (oci_state_load(ctx, names[k], dir, sizeof(dir), &s) == 0) {
                        json_array_append_new(all, oci_state_json(&s));
                        oci_state_done(&s);
                }
                free(names[k]);
        }
        free(names);
        if (streq(format, "json")) {
                _cleanup_free_ char *text = json_dumps(all, JSON_COMPACT | JSON_PRESERVE_ORDER);

                printf("%s\n", text ?: "[]");
        } else {
                size_t k;
                json_t *o;

                if (!quiet)
                        printf("%-12s%-8s%-10s%-40s%-32s%s\n", "ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER");
                json_array_foreach(all, k, o) {
                        if (quiet)
                                printf("%s\n", json_string_value(json_object_get(o, "id")));
                        else
                                printf("%-12s%-8" JSON_INTEGER_FORMAT "%-10s%-40s%-32s%s\n",
                                       json_string_value(json_object_get(o, "id")),
                                       json_integer_value(json_object_get(o, "pid")),
                                       json_string_value(json_object_get(o, "status")),
                                       json_string_value(json_object_get(o, "bundle")),
                                       json_string_value(json_object_get(o, "created")),
                                       json_string_value(json_object_get(o, "owner")));
                }
        }
        json_decref(all);
        return OCI_EXIT_OK;
}

int oci_verb_features(oci_ctx_t *ctx, int argc, char **argv) {
        _cleanup_free_ char *text = NULL;
        json_t *o;

        o = json_pack("{s:s, s:s, s:[], s:[s,s,s,s], s:{s:[s], s:[], s:{s:b, s:b}, s:{s:b}}, s:{s:s}}", "ociVersionMin",
                      "1.0.0", "ociVersionMax", OCI_VERSION, "hooks", "mountOptions", "bind", "rbind", "ro", "rw",
                      "linux", "namespaces", "network", "capabilities", "cgroup", "v1", 0, "v2", 0, "seccomp",
                      "enabled", 0, "annotations", "io.github.husk.runtime", "microvm");
        text = o ? json_dumps(o, JSON_INDENT(4) | JSON_PRESERVE_ORDER) : NULL;
        json_decref(o);
        if (!text)
                return oci_error("out of memory");
        printf("%s\n", text);
        return OCI_EXIT_OK;
}

/* ---- kill, ps, pause, resume --------------------------------------------------------------------- */

typedef struct kill_args {
        int signal;
        bool all;
} kill_args_t;

static void fill_kill(msgpack_packer *pk, const void *arg) {
        const kill_args_t *k = arg;

        mp_pack_kv_u64(pk, "signal", (uint64_t)k->signal);
        mp_pack_kv_bool(pk, "all", k->all);
}

int oci_verb_kill(oci_ctx_t *ctx, int argc, char **argv) {
        static const struct option options[] = { { "all", no_argument, NULL, 'a' }, {} };
        _cleanup_free_ char *why = NULL;
        kill_args_t k = { .signal = SIGTERM };
        msgpack_unpacked answer;
        char dir[4200];
        oci_state_t s;
        oci_status_t st;
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, "+a", options, NULL)) != -1)
                if (c == 'a')
                        k.all = true;
                else
                        return OCI_EXIT_FAILURE;
        if (verb_args(argc, argv, 1, 2, "[--all] ID [SIGNAL]") < 0)
                return OCI_EXIT_FAILURE;
        if (argc - optind == 2 && (k.signal = oci_signal_parse(argv[optind + 1])) < 0)
                return oci_error("invalid signal: %s", argv[optind + 1]);
        if (load(ctx, argv[optind], dir, sizeof(dir), &s) != 0)
                return OCI_EXIT_FAILURE;
        st = oci_state_status(&s);
        oci_state_done(&s);
        /* runc: --all on a stopped container is no error (the shim's cleanup kill). */
        if (st == OCI_STATUS_STOPPED)
                return k.all ? OCI_EXIT_OK : oci_error("container not running");
        r = ctl(dir, "kill", fill_kill, 2, &k, &answer, &why);
        if (r == -ECONNREFUSED || r == -ENOENT || r == -ECONNRESET)
                /* The holder ended meanwhile. */
                return k.all ? OCI_EXIT_OK : oci_error("container not running");
        if (r < 0)
                return oci_error("%s", why ?: strerror(-r));
        msgpack_unpacked_destroy(&answer);
        return OCI_EXIT_OK;
}

int oci_verb_ps(oci_ctx_t *ctx, int argc, char **argv) {
        static const struct option options[] = { { "format", required_argument, NULL, 'f' }, {} };
        _cleanup_free_ char *why = NULL, *text = NULL;
        const char *format = "table";
        const msgpack_object *a;
        msgpack_unpacked answer;
        pid_t pids[256];
        size_t n = 0;
        char dir[4200];
        oci_state_t s;
        oci_status_t st;
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, "+f:", options, NULL)) != -1)
                if (c == 'f')
                        format = optarg;
                else
                        return OCI_EXIT_FAILURE;
        if (verb_args(argc, argv, 1, 1, "[--format table|json] ID") < 0)
                return OCI_EXIT_FAILURE;
        if (!streq(format, "table") && !streq(format, "json"))
                return oci_error("invalid format option");
        if (load(ctx, argv[optind], dir, sizeof(dir), &s) != 0)
                return OCI_EXIT_FAILURE;
        st = oci_state_status(&s);
        oci_state_done(&s);
        if (st != OCI_STATUS_STOPPED) {
                r = ctl(dir, "ps", NULL, 0, NULL, &answer, &why);
                if (r < 0 && r != -ECONNREFUSED && r != -ENOENT && r != -ECONNRESET)
                        return oci_error("%s", why ?: strerror(-r));
                a = r < 0 ? NULL : mp_map_get(&answer.data, "pids");
                for (uint32_t k = 0; a && a->type == MSGPACK_OBJECT_ARRAY && k < a->via.array.size && n < 256; k++)
                        if (a->via.array.ptr[k].type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                                pids[n++] = (pid_t)a->via.array.ptr[k].via.u64;
                if (r >= 0)
                        msgpack_unpacked_destroy(&answer);
        }
        if (streq(format, "json")) {
                text = oci_ps_json(pids, n);
                if (!text)
                        return oci_error("out of memory");
                printf("%s\n", text);
                return OCI_EXIT_OK;
        }
        printf("PID\n");
        for (size_t k = 0; k < n; k++)
                printf("%d\n", (int)pids[k]);
        return OCI_EXIT_OK;
}

/* pause and resume: the holder stops or continues the VM's vCPUs (QMP stop/cont). */
static int pause_resume(oci_ctx_t *ctx, int argc, char **argv, const char *type) {
        _cleanup_free_ char *why = NULL;
        msgpack_unpacked answer;
        char dir[4200];
        oci_state_t s;
        oci_status_t st;
        int r;

        optind = 0;
        if (getopt_long(argc, argv, "+", (const struct option[]){ {} }, NULL) != -1 ||
            verb_args(argc, argv, 1, 1, "ID") < 0)
                return OCI_EXIT_FAILURE;
        if (load(ctx, argv[optind], dir, sizeof(dir), &s) != 0)
                return OCI_EXIT_FAILURE;
        st = oci_state_status(&s);
        oci_state_done(&s);
        if (st == OCI_STATUS_STOPPED)
                return oci_error("container not running");
        r = ctl(dir, type, NULL, 0, NULL, &answer, &why);
        if (r < 0)
                return oci_error("%s", why ?: strerror(-r));
        msgpack_unpacked_destroy(&answer);
        return OCI_EXIT_OK;
}

int oci_verb_pause(oci_ctx_t *ctx, int argc, char **argv) { return pause_resume(ctx, argc, argv, "pause"); }
int oci_verb_resume(oci_ctx_t *ctx, int argc, char **argv) { return pause_resume(ctx, argc, argv, "resume"); }

/* ---- update ------------------------------------------------------------------------------------- */

/* A VM's memory and vCPUs are fixed at boot: anything that would change them is refused by
 * name; the rest of LinuxResources (cgroup knobs) has nothing to act on and is accepted. */
int oci_verb_update(oci_ctx_t *ctx, int argc, char **argv) {
        static const struct option options[] = { { "resources", required_argument, NULL, 'r' }, {} };
        const char *resources = NULL;
        json_t *j, *mem, *cpu;
        char dir[4200];
        oci_state_t s;
        int c;

        optind = 0;
        while ((c = getopt_long(argc, argv, "+r:", options, NULL)) != -1)
                if (c == 'r')
                        resources = optarg;
                else
                        continue; /* runc's single-value flags (--memory ...): refused below when set */
        if (verb_args(argc, argv, 1, 1, "--resources FILE|- ID") < 0)
                return OCI_EXIT_FAILURE;
        if (load(ctx, argv[optind], dir, sizeof(dir), &s) != 0)
                return OCI_EXIT_FAILURE;
        oci_state_done(&s);
        if (!resources)
                return oci_error("update: only --resources is supported (a VM's size is fixed at create)");
        j = streq(resources, "-") ? json_loadf(stdin, 0, NULL) : json_load_file(resources, 0, NULL);
        if (!json_is_object(j)) {
                json_decref(j);
                return oci_error("update: --resources: not a JSON object");
        }
        mem = json_object_get(j, "memory");
        cpu = json_object_get(j, "cpu");
        if ((json_is_object(mem) && json_integer_value(json_object_get(mem, "limit")) > 0) ||
            (json_is_object(cpu) && json_integer_value(json_object_get(cpu, "quota")) > 0)) {
                json_decref(j);
                return oci_error("update: a VM's memory and vCPUs are fixed at create: memory.limit and cpu.quota "
                                 "cannot change (husk-oci)");
        }
        json_decref(j);
        return OCI_EXIT_OK;
}

/* ---- delete ------------------------------------------------------------------------------------- */

/* Until the holder (not our child: the caller's) is gone, a zombie counting as gone. */
static bool wait_gone(const oci_state_t *s, int timeout_ms) {
        uint64_t deadline = now_monotonic_ms() + (uint64_t)timeout_ms, start;

        while (s->pid > 0 && oci_pid_start_time(s->pid, &start) == 0 && start == s->pid_start) {
                if (now_monotonic_ms() >= deadline)
                        return false;
                (void)poll(NULL, 0, HOLDER_GONE_STEP_MS);
        }
        return true;
}

int oci_verb_delete(oci_ctx_t *ctx, int argc, char **argv) {
        static const struct option options[] = { { "force", no_argument, NULL, 'f' }, {} };
        _cleanup_free_ char *why = NULL;
        msgpack_unpacked answer;
        bool force = false;
        char dir[4200];
        oci_state_t s;
        oci_status_t st;
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, "+f", options, NULL)) != -1)
                if (c == 'f')
                        force = true;
                else
                        return OCI_EXIT_FAILURE;
        if (verb_args(argc, argv, 1, 1, "[--force] ID") < 0)
                return OCI_EXIT_FAILURE;
        r = oci_state_load(ctx, argv[optind], dir, sizeof(dir), &s);
        if (r == -ENOENT || r == -EBADMSG) {
                /* No state: nothing to delete (the cleanup's delete --force after the shim's), or a
                 * create that died before writing it: its directory goes. */
                if (r == -EBADMSG ||
                    (oci_container_dir(ctx, argv[optind], dir, sizeof(dir)) == 0 && access(dir, F_OK) == 0 && force)) {
                        (void)rm_rf(dir);
                        return OCI_EXIT_OK;
                }
                return force ? OCI_EXIT_OK : oci_error("container does not exist");
        }
        if (r < 0)
                return oci_error("%s: cannot read its state: %s", argv[optind], strerror(-r));
        st = oci_state_status(&s);
        if (st != OCI_STATUS_STOPPED && st != OCI_STATUS_CREATED && !force) {
                r = oci_error("cannot delete container %s that is not stopped: %s", s.id, oci_status_name(st));
                oci_state_done(&s);
                return r;
        }
        if (st != OCI_STATUS_STOPPED || s.pid > 0) {
                /* The holder powers the VM off and ends; a holder that does not answer is killed
                 * (its VMM and virtiofsd die with it: they have it as their parent-death signal). */
                r = ctl(dir, "delete", NULL, 0, NULL, &answer, &why);
                if (r >= 0)
                        msgpack_unpacked_destroy(&answer);
                if (!wait_gone(&s, r >= 0 ? HOLDER_GONE_MS : 0)) {
                        uint64_t start;

                        if (oci_pid_start_time(s.pid, &start) == 0 && start == s.pid_start)
                                (void)kill(s.pid, SIGKILL);
                        (void)wait_gone(&s, HOLDER_GONE_MS);
                }
        }
        oci_state_done(&s);
        /* A holder killed with SIGKILL could not take its VM along. */
        oci_vm_kill_orphan(dir);
        {
                char vmdir[4200];

                /* The short VM directory of a long container directory, if its holder could not. */
                if (oci_vm_dir(dir, vmdir, sizeof(vmdir)) == 0 && !streq(vmdir, dir))
                        (void)rm_rf(vmdir);
        }
        r = rm_rf(dir);
        if (r < 0 && r != -ENOENT)
                return oci_error("cannot remove %s: %s", dir, strerror(-r));
        return OCI_EXIT_OK;
}
