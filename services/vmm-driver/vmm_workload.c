/* vmm_workload.c: the kit-mode workload seen from the host: start it, learn its exit status, exec and signal through the agent. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "lib/log.h"
#include "lib/mp.h"
#include "services/vmm-driver/vmm.h"
#include "services/vmm-driver/vmm_template.h"

#define START_TIMEOUT_MS 30000
#define SIGNAL_TIMEOUT_MS 5000
/* The agent enforces the exec's own timeout; this is for an agent that never answers. */
#define EXEC_GRACE_MS 10000
#define EXEC_DEFAULT_TIMEOUT_MS 60000
#define EXEC_STDIN_MAX (1u << 20)
#define CWD_MAX 4096
#define WARNING_MAX 1024

static const char *id_of(const vmm_instance_t *i) { return i->rec.inst.spec.instance_id; }

/* "virtio-serial (<dir>/agent.sock)": the runtime's way to the agent, for messages. */
static const char *channel(const vmm_instance_t *i, char *buf, size_t size) {
        if (!i->runtime)
                return "its agent channel";
        snprintf(buf, size, "%s (%s/%s)", i->runtime->agent_transport, i->dir, i->runtime->agent_socket);
        return buf;
}

void vmm_workload_unreachable(char *buf, size_t size, const vmm_instance_t *i, int error) {
        char ch[384];

        snprintf(buf, size, "husk-agent on instance %s is not reachable over %s: %s%s", id_of(i),
                 channel(i, ch, sizeof(ch)), error == -ENOTCONN ? "not connected" : strerror(-error),
                 error == -ENOTCONN ? " (the guest is still booting, has stopped, or its image has no husk-agent)"
                                    : "");
}

/* instance.warning: {ts, instance_id, deployment_id, message}. Not held at start-up like the
 * state events: it is advice for operators, not state anyone reconciles on. */
void vmm_publish_warning(vmm_instance_t *i, const char *message) {
        msgpack_sbuffer body;
        msgpack_packer pk;
        int r;

        msgpack_sbuffer_init(&body);
        msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 4);
        mp_pack_kv_u64(&pk, "ts", now_realtime_ms());
        mp_pack_kv_str(&pk, "instance_id", id_of(i));
        mp_pack_kv_str(&pk, "deployment_id", i->rec.inst.spec.deployment_id);
        mp_pack_kv_str(&pk, "message", message);
        r = bus_pub_send(i->vmm->pub, BUS_EVENT_INSTANCE_WARNING, body.data, body.size);
        if (r < 0)
                log_warning_errno(r, "Failed to publish instance.warning, ignoring: %m");
        msgpack_sbuffer_destroy(&body);
}

/* ---- start ----------------------------------------------------------------------------------- */

/* The volumes as husk-agent mounts them: {tag, destination, readonly, file?} (SCHEMA.md, agent_mount). */
static void pack_mounts(msgpack_packer *pk, const instance_spec_t *s, bool clone) {
        mp_pack_str(pk, "mounts");
        msgpack_pack_array(pk, s->n_volumes);
        for (size_t k = 0; k < s->n_volumes; k++) {
                const volume_spec_t *v = &s->volumes[k];
                const char *file = vmm_volume_single_file(v);

                char tag[32];

                /* A clone's volume k is the template's 9p device k, whose tag the guest knows. */
                snprintf(tag, sizeof(tag), VMM_TEMPLATE_VOLUME_TAG, k);
                msgpack_pack_map(pk, file ? 4 : 3);
                mp_pack_kv_str(pk, "tag", clone ? tag : v->tag);
                mp_pack_kv_str(pk, "destination", v->destination);
                mp_pack_kv_bool(pk, "readonly", v->readonly);
                if (file)
                        mp_pack_kv_str(pk, "file", file);
        }
}

typedef struct start_args {
        vmm_instance_t *instance;
        char *const *env; /* the environment with the secrets' values merged in */
} start_args_t;

static void pack_start(msgpack_packer *pk, void *userdata) {
        const start_args_t *a = userdata;
        vmm_instance_t *i = a->instance;
        const instance_spec_t *s = &i->rec.inst.spec;

        mp_pack_kv_str(pk, "mode", i->rec.workload_mode);
        mp_pack_kv_str(pk, "kind", s->kind ?: "worker");
        mp_pack_kv_str(pk, "hostname", s->instance_id);
        /* Where the image is: a virtio-fs tag, or the virtio-blk disk. */
        mp_pack_kv_str(pk, "tag", streq(i->rec.workload_mode, "disk") ? "/dev/vda" : VMM_FS_TAG);
        if (s->command)
                mp_pack_kv_strv(pk, "command", s->command);
        else {
                mp_pack_str(pk, "command");
                msgpack_pack_nil(pk);
        }
        mp_pack_kv_env(pk, "env", a->env);
        if (s->n_volumes)
                pack_mounts(pk, s, i->rec.inst.template != NULL);
        if (i->rec.inst.template)
                mp_pack_kv_str(pk, "fs", "9p"); /* a clone: its memory cannot serve virtio-fs */
        if (i->rec.pooled)
                mp_pack_kv_str(pk, "subdir", VMM_POOL_IMAGE); /* bound there when the pool's clone was taken */
}

static void on_start(vmm_instance_t *i, const msgpack_object *body, int error, void *userdata) {
        _cleanup_free_ char *code = NULL, *message = NULL;
        const msgpack_object *ignored;
        uint64_t pid = 0;

        if (error == -EREMOTEIO) {
                (void)mp_get_str(body, "code", 64, &code);
                (void)mp_get_str(body, "message", 1024, &message);
                if (code && streq(code, "conflict")) {
                        /* Started before our restart: nothing to do. */
                        i->rec.workload_started = true;
                        return;
                }
                log_warning("Instance %s: the agent refused to start the workload: %s: %s", id_of(i), code ?: "?",
                            message ?: "");
                if (message) {
                        char w[WARNING_MAX];
                        snprintf(w, sizeof(w), "workload not started: %s", message);
                        vmm_publish_warning(i, w);
                }
                return;
        }
        if (error < 0) {
                log_debug_errno(error, "Instance %s: start not answered: %m", id_of(i));
                return;
        }
        (void)mp_get_u64(body, "pid", &pid);
        i->rec.workload_started = true;
        vmm_instance_save(i);
        log_info("Instance %s: workload started (%s, guest pid %" PRIu64 ")", id_of(i), i->rec.workload_mode, pid);

        /* OCI fields a VM cannot apply, as runV reports them. */
        ignored = mp_map_get(body, "ignored");
        if (ignored && ignored->type == MSGPACK_OBJECT_ARRAY && ignored->via.array.size > 0) {
                char w[WARNING_MAX];
                size_t len = (size_t)snprintf(w, sizeof(w), "OCI bundle fields ignored in a VM:");

                for (uint32_t k = 0; k < ignored->via.array.size && len < sizeof(w); k++) {
                        const msgpack_object *o = &ignored->via.array.ptr[k];
                        if (o->type == MSGPACK_OBJECT_STR)
                                len += (size_t)snprintf(w + len, sizeof(w) - len, " %.*s", (int)o->via.str.size,
                                                        o->via.str.ptr);
                }
                log_notice("Instance %s: %s", id_of(i), w);
                vmm_publish_warning(i, w);
        }
}

void vmm_workload_start(vmm_instance_t *i) {
        const instance_spec_t *s = &i->rec.inst.spec;
        _cleanup_(mp_strv_free_secretp) char **merged = NULL;
        start_args_t args = { .instance = i, .env = s->environment };
        int64_t id;

        if (!i->rec.workload_mode || i->rec.workload_started || i->rec.workload_exited)
                return;
        if (i->rec.secret_environment && !s->secret_environment) {
                /* Adopted after a restart before the start went out: the secrets' values were in
                 * the old vmm-driver's memory only. Never started without them: the instance
                 * stays without its workload (the warning says why) until it is replaced. */
                log_warning("Instance %s: its secret environment died with the previous vmm-driver; not starting "
                            "the workload without it",
                            id_of(i));
                vmm_publish_warning(i, "workload not started: its secret environment was lost in a vmm-driver restart");
                return;
        }
        /* The secrets' values join the environment in the frame alone: the agent keeps them in
         * memory for the workload and exec. */
        if (s->secret_environment) {
                merged = mp_strv_copy(s->environment);
                if (s->environment && !merged)
                        return (void)log_error("Instance %s: out of memory merging the secret environment", id_of(i));
                for (size_t k = 0; s->secret_environment[k]; k++)
                        if (mp_env_set(&merged, s->secret_environment[k]) < 0)
                                return (void)log_error("Instance %s: out of memory merging the secret environment",
                                                       id_of(i));
                args.env = merged;
        }
        /* pack_start runs before vmm_agent_request returns: args may live on the stack. */
        id = vmm_agent_request(i, "start",
                               6 + (s->n_volumes ? 1 : 0) + (i->rec.inst.template ? 1 : 0) + (i->rec.pooled ? 1 : 0),
                               pack_start, &args, START_TIMEOUT_MS, on_start, NULL);
        if (id < 0)
                log_debug_errno((int)id, "Instance %s: cannot send start: %m", id_of(i));
}

void vmm_workload_on_exited(vmm_instance_t *i, const msgpack_object *body) {
        int64_t status;

        if (mp_get_i64(body, "status", &status) < 0 || status < 0 || status > 255) {
                log_warning("Instance %s: agent sent an exited frame without a valid status, ignoring", id_of(i));
                return;
        }
        i->rec.workload_exited = true;
        i->rec.workload_status = status;
        log_info("Instance %s: workload exited with status %" PRIi64, id_of(i), status);
        vmm_instance_save(i);
}

/* ---- exec ------------------------------------------------------------------------------------ */

typedef struct exec_args {
        const msgpack_object *argv, *env, *cwd, *stdin_;
        uint64_t timeout_ms;
} exec_args_t;

static void pack_exec(msgpack_packer *pk, void *userdata) {
        const exec_args_t *a = userdata;

        mp_pack_str(pk, "argv");
        msgpack_pack_object(pk, *a->argv);
        mp_pack_str(pk, "env");
        if (a->env)
                msgpack_pack_object(pk, *a->env);
        else
                msgpack_pack_map(pk, 0);
        mp_pack_str(pk, "cwd");
        if (a->cwd)
                msgpack_pack_object(pk, *a->cwd);
        else
                msgpack_pack_nil(pk);
        mp_pack_kv_u64(pk, "timeout_ms", a->timeout_ms);
        mp_pack_str(pk, "stdin");
        if (a->stdin_)
                msgpack_pack_object(pk, *a->stdin_);
        else
                msgpack_pack_nil(pk);
}

static void pack_field(msgpack_packer *pk, const msgpack_object *body, const char *key) {
        const msgpack_object *o = mp_map_get(body, key);

        mp_pack_str(pk, key);
        if (o)
                msgpack_pack_object(pk, *o);
        else
                msgpack_pack_nil(pk);
}

static void on_exec(vmm_instance_t *i, const msgpack_object *body, int error, void *userdata) {
        bus_deferred_t *d = userdata;
        msgpack_sbuffer buf;
        msgpack_packer pk;
        int64_t status;

        if (error == -EREMOTEIO) {
                _cleanup_free_ char *code = NULL, *message = NULL;

                (void)mp_get_str(body, "code", 64, &code);
                (void)mp_get_str(body, "message", 1024, &message);
                bus_deferred_fail(&d, code && streq(code, "invalid") ? BUS_ERR_INVALID : BUS_ERR_UNAVAILABLE,
                                  "husk-agent on instance %s: %s", id_of(i), message ?: code ?: "error");
                return;
        }
        if (error < 0) {
                char msg[1024], ch[384];

                if (error == -ETIMEDOUT && i->rec.inst.firmware_boot && !i->agent.answered)
                        /* The image's own init runs: nothing says it carries the agent. */
                        snprintf(msg, sizeof(msg),
                                 "husk-agent on instance %s never answered over %s: the image "
                                 "may not carry it; install husk-agent in the image as a service "
                                 "(deploy/systemd/husk-agent.service says how)",
                                 id_of(i), channel(i, ch, sizeof(ch)));
                else if (error == -ETIMEDOUT)
                        snprintf(msg, sizeof(msg),
                                 "husk-agent on instance %s did not answer the exec over "
                                 "%s in time: the guest is hung or overloaded",
                                 id_of(i), channel(i, ch, sizeof(ch)));
                else if (error == -ECONNRESET)
                        snprintf(msg, sizeof(msg),
                                 "husk-agent on instance %s: the %s connection "
                                 "closed before the exec finished (the VM stopped?)",
                                 id_of(i), channel(i, ch, sizeof(ch)));
                else
                        vmm_workload_unreachable(msg, sizeof(msg), i, error);
                bus_deferred_fail(&d, BUS_ERR_UNAVAILABLE, "%s", msg);
                return;
        }
        if (mp_get_i64(body, "exit_status", &status) < 0) {
                bus_deferred_fail(&d, BUS_ERR_INTERNAL, "husk-agent on instance %s answered exec without exit_status",
                                  id_of(i));
                return;
        }
        msgpack_sbuffer_init(&buf);
        msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 6);
        mp_pack_kv_str(&pk, "instance_id", id_of(i));
        mp_pack_kv_i64(&pk, "exit_status", status);
        pack_field(&pk, body, "stdout");
        pack_field(&pk, body, "stderr");
        pack_field(&pk, body, "timed_out");
        pack_field(&pk, body, "truncated");
        bus_deferred_reply(&d, buf.data, buf.size);
        msgpack_sbuffer_destroy(&buf);
}

int vmm_workload_exec(bus_request_t *req, vmm_instance_t *i) {
        exec_args_t a = { .timeout_ms = EXEC_DEFAULT_TIMEOUT_MS };
        _cleanup_(mp_strv_freep) char **argv = NULL, **env = NULL;
        _cleanup_free_ char *cwd = NULL;
        bus_deferred_t *d;
        char msg[512];
        int64_t id;
        int r;

        /* Checked here with the same bounds the agent applies, so errors name the field. */
        r = mp_get_strv(req->args, "argv", &argv);
        if (r < 0 || !argv[0] || !*argv[0])
                return bus_request_fail(req, BUS_ERR_INVALID, "argv: must be a non-empty array of strings");
        r = mp_get_env(req->args, "env", &env);
        if (r < 0 && r != -ENOENT)
                return bus_request_fail(req, BUS_ERR_INVALID, "env: must be a map of variable names to strings");
        r = mp_get_str(req->args, "cwd", CWD_MAX, &cwd);
        if ((r < 0 && r != -ENOENT) || (cwd && cwd[0] != '/'))
                return bus_request_fail(req, BUS_ERR_INVALID, "cwd: must be an absolute path");
        r = mp_get_u64(req->args, "timeout_ms", &a.timeout_ms);
        if ((r < 0 && r != -ENOENT) || a.timeout_ms == 0 || a.timeout_ms > VMM_EXEC_TIMEOUT_MAX_MS)
                return bus_request_fail(req, BUS_ERR_INVALID, "timeout_ms: must be between 1 and %u",
                                        VMM_EXEC_TIMEOUT_MAX_MS);
        a.argv = mp_map_get(req->args, "argv");
        a.env = mp_map_get(req->args, "env");
        a.cwd = mp_map_get(req->args, "cwd");
        a.stdin_ = mp_map_get(req->args, "stdin");
        if (a.stdin_ && !((a.stdin_->type == MSGPACK_OBJECT_BIN && a.stdin_->via.bin.size <= EXEC_STDIN_MAX) ||
                          (a.stdin_->type == MSGPACK_OBJECT_STR && a.stdin_->via.str.size <= EXEC_STDIN_MAX)))
                return bus_request_fail(req, BUS_ERR_INVALID, "stdin: must be bytes, at most %u", EXEC_STDIN_MAX);
        if (!vmm_instance_alive(i))
                return bus_request_fail(req, BUS_ERR_CONFLICT, "instance %s has exited", id_of(i));

        d = bus_request_defer(req);
        if (!d)
                return bus_request_fail(req, BUS_ERR_INTERNAL, "out of memory");
        id = vmm_agent_request(i, "exec", 5, pack_exec, &a, a.timeout_ms + EXEC_GRACE_MS, on_exec, d);
        if (id < 0) {
                bus_deferred_t *none = d;
                /* Answer through the normal path: the deferred handle is dropped unanswered. */
                vmm_workload_unreachable(msg, sizeof(msg), i, (int)id);
                bus_deferred_fail(&none, BUS_ERR_UNAVAILABLE, "%s", msg);
                return BUS_DEFERRED;
        }
        return BUS_DEFERRED;
}

/* ---- signal ----------------------------------------------------------------------------------- */

static void pack_signal(msgpack_packer *pk, void *userdata) {
        mp_pack_kv_u64(pk, "signal", *(const uint64_t *)userdata);
}

static void on_signal(vmm_instance_t *i, const msgpack_object *body, int error, void *userdata) {
        bus_deferred_t *d = userdata;
        char msg[512];

        if (error == -EREMOTEIO) {
                _cleanup_free_ char *message = NULL;

                (void)mp_get_str(body, "message", 1024, &message);
                bus_deferred_fail(&d, BUS_ERR_CONFLICT, "husk-agent on instance %s: %s", id_of(i),
                                  message ?: "refused");
                return;
        }
        if (error < 0) {
                vmm_workload_unreachable(msg, sizeof(msg), i, error);
                bus_deferred_fail(&d, BUS_ERR_UNAVAILABLE, "%s", msg);
                return;
        }
        bus_deferred_reply(&d, "\x80", 1); /* {} */
}

int vmm_workload_signal(bus_request_t *req, vmm_instance_t *i) {
        bus_deferred_t *d;
        uint64_t sig;
        char msg[512];
        int64_t id;

        if (mp_get_u64(req->args, "signal", &sig) < 0 || sig == 0 || sig > 64)
                return bus_request_fail(req, BUS_ERR_INVALID, "signal: must be a signal number between 1 and 64");
        d = bus_request_defer(req);
        if (!d)
                return bus_request_fail(req, BUS_ERR_INTERNAL, "out of memory");
        id = vmm_agent_request(i, "signal", 1, pack_signal, &sig, SIGNAL_TIMEOUT_MS, on_signal, d);
        if (id < 0) {
                vmm_workload_unreachable(msg, sizeof(msg), i, (int)id);
                bus_deferred_fail(&d, BUS_ERR_UNAVAILABLE, "%s", msg);
        }
        return BUS_DEFERRED;
}

/* ---- status ------------------------------------------------------------------------------------ */

static void on_status(vmm_instance_t *i, const msgpack_object *body, int error, void *userdata) {
        bus_deferred_t *d = userdata;
        msgpack_sbuffer buf;
        msgpack_packer pk;
        char msg[512];

        if (error < 0) {
                vmm_workload_unreachable(msg, sizeof(msg), i, error == -EREMOTEIO ? -EPROTO : error);
                bus_deferred_fail(&d, BUS_ERR_UNAVAILABLE, "%s", msg);
                return;
        }
        msgpack_sbuffer_init(&buf);
        msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 5);
        mp_pack_kv_str(&pk, "instance_id", id_of(i));
        pack_field(&pk, body, "state");
        pack_field(&pk, body, "pid");
        pack_field(&pk, body, "started");
        pack_field(&pk, body, "exit_status");
        bus_deferred_reply(&d, buf.data, buf.size);
        msgpack_sbuffer_destroy(&buf);
}

int vmm_workload_status(bus_request_t *req, vmm_instance_t *i) {
        bus_deferred_t *d = bus_request_defer(req);
        char msg[512];
        int64_t id;

        if (!d)
                return bus_request_fail(req, BUS_ERR_INTERNAL, "out of memory");
        id = vmm_agent_request(i, "status", 0, NULL, NULL, SIGNAL_TIMEOUT_MS, on_status, d);
        if (id < 0) {
                vmm_workload_unreachable(msg, sizeof(msg), i, (int)id);
                bus_deferred_fail(&d, BUS_ERR_UNAVAILABLE, "%s", msg);
        }
        return BUS_DEFERRED;
}
