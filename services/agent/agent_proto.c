/* agent_proto.c: the agent's answers to each request type (proto/SCHEMA.md, "Agent"). */
#include "services/agent/agent.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/mp.h"

#define TYPE_MAX 64 /* longest type name echoed back in an error */

typedef struct request {
        const msgpack_object *body;
        uint64_t id;
} request_t;

/* A handler packs the whole answer map into pk. */
typedef void (*handler_t)(agent_state_t *s, const request_t *req, msgpack_packer *pk);

void agent_pack_error(msgpack_packer *pk, const uint64_t *id, const char *code, const char *message) {
        msgpack_pack_map(pk, id ? 4 : 3);
        mp_pack_kv_str(pk, "type", "error");
        if (id)
                mp_pack_kv_u64(pk, "id", *id);
        mp_pack_kv_str(pk, "code", code);
        mp_pack_kv_str(pk, "message", message);
}

static void on_hello(agent_state_t *s, const request_t *req, msgpack_packer *pk) {
        /* The host's version is informational: version 2 adds frames (processes) and changes
         * none of version 1's, so a version 1 host (vmm-driver) is served as it always was. */
        msgpack_pack_map(pk, 5);
        mp_pack_kv_str(pk, "type", "hello");
        mp_pack_kv_u64(pk, "id", req->id);
        mp_pack_kv_u64(pk, "version", AGENT_PROTOCOL_VERSION);
        mp_pack_kv_bool(pk, "ready", true);
        mp_pack_kv_str(pk, "agent", AGENT_NAME);
}

static void on_ping(agent_state_t *s, const request_t *req, msgpack_packer *pk) {
        msgpack_pack_map(pk, 2);
        mp_pack_kv_str(pk, "type", "pong");
        mp_pack_kv_u64(pk, "id", req->id);
}

static void on_shutdown(agent_state_t *s, const request_t *req, msgpack_packer *pk) {
        uint64_t grace_ms;
        int r = mp_get_u64(req->body, "grace_ms", &grace_ms);

        if (r < 0) {
                agent_pack_error(pk, &req->id, "invalid", r == -ENOENT ? "grace_ms: missing" : "grace_ms: not a uint");
                return;
        }
        /* A runaway grace would keep a VM the host wants gone; the host kills it anyway
         * after its own stop_timeout, so cap rather than refuse. */
        if (grace_ms > AGENT_SHUTDOWN_GRACE_MAX_MS)
                grace_ms = AGENT_SHUTDOWN_GRACE_MAX_MS;
        s->shutdown_requested = true;
        s->shutdown_grace_ms = grace_ms;
        msgpack_pack_map(pk, 2);
        mp_pack_kv_str(pk, "type", "shutdown");
        mp_pack_kv_u64(pk, "id", req->id);
}

static void on_start(agent_state_t *s, const request_t *req, msgpack_packer *pk) {
        agent_workload_start(s, req->body, req->id, pk);
}

/* Packs nothing when the command runs: the answer comes when it is done. */
static void on_exec(agent_state_t *s, const request_t *req, msgpack_packer *pk) {
        agent_exec_request(s, req->body, req->id, pk);
}

static void on_signal(agent_state_t *s, const request_t *req, msgpack_packer *pk) {
        agent_workload_signal(s, req->body, req->id, pk);
}

static void on_status(agent_state_t *s, const request_t *req, msgpack_packer *pk) {
        agent_workload_status(s, req->body, req->id, pk);
}

/* A template clone's identity (agent_identity.c). */
static void on_identity(agent_state_t *s, const request_t *req, msgpack_packer *pk) {
        agent_identity_request(s, req->body, req->id, pk);
}
static void on_stats(agent_state_t *s, const request_t *req, msgpack_packer *pk) { agent_stats_answer(req->id, pk); }

/* Protocol 2: processes (agent_proc.c). */
static void on_proc_create(agent_state_t *s, const request_t *req, msgpack_packer *pk) {
        agent_proc_create(s, req->body, req->id, pk);
}

static void on_proc_start(agent_state_t *s, const request_t *req, msgpack_packer *pk) {
        agent_proc_start(s, req->body, req->id, pk);
}

static void on_proc_resize(agent_state_t *s, const request_t *req, msgpack_packer *pk) {
        agent_proc_resize(s, req->body, req->id, pk);
}

static void on_proc_signal(agent_state_t *s, const request_t *req, msgpack_packer *pk) {
        agent_proc_signal(s, req->body, req->id, pk);
}

static void on_proc_list(agent_state_t *s, const request_t *req, msgpack_packer *pk) {
        agent_proc_list(s, req->body, req->id, pk);
}

static const struct {
        const char *type;
        handler_t handler;
} handlers[] = {
        { "hello", on_hello },
        { "ping", on_ping },
        { "shutdown", on_shutdown },
        { "start", on_start },
        { "exec", on_exec },
        { "signal", on_signal },
        { "status", on_status },
        { "stats", on_stats },
        { AGENT_FRAME_PROC_CREATE, on_proc_create },
        { AGENT_FRAME_PROC_START, on_proc_start },
        { AGENT_FRAME_PROC_RESIZE, on_proc_resize },
        { AGENT_FRAME_PROC_SIGNAL, on_proc_signal },
        { AGENT_FRAME_PROC_LIST, on_proc_list },
        { "identity", on_identity },
};

int agent_proto_handle(agent_state_t *s, const msgpack_object *body, msgpack_sbuffer *reply) {
        const msgpack_object *type = mp_map_get(body, "type");
        request_t req = { .body = body };
        handler_t handler = NULL;
        msgpack_packer pk;
        int r;

        msgpack_packer_init(&pk, reply, msgpack_sbuffer_write);
        if (!type || type->type != MSGPACK_OBJECT_STR) {
                /* The frame reader never hands out such a body; answer anyway. */
                agent_pack_error(&pk, NULL, "invalid", "type: missing or not a str");
                return 0;
        }
        /* The one frame without an id and without an answer: stdin is a stream. */
        if (mp_str_eq(type, AGENT_FRAME_PROC_STDIN)) {
                agent_proc_stdin(s, body);
                return 0;
        }
        r = mp_get_u64(body, "id", &req.id);

        for (size_t i = 0; i < ELEMENTSOF(handlers); i++)
                if (mp_str_eq(type, handlers[i].type))
                        handler = handlers[i].handler;
        if (!handler) {
                _cleanup_free_ char *name = NULL;
                char msg[128];

                if (mp_str_dup(type, TYPE_MAX, &name) < 0)
                        snprintf(msg, sizeof(msg), "unknown message type");
                else
                        snprintf(msg, sizeof(msg), "unknown message type \"%s\"", name);
                agent_pack_error(&pk, r >= 0 ? &req.id : NULL, "unknown_type", msg);
                return 0;
        }
        if (r < 0) {
                agent_pack_error(&pk, NULL, "invalid", r == -ENOENT ? "id: missing" : "id: not a uint");
                return 0;
        }
        handler(s, &req, &pk);
        return 0;
}

void agent_proto_ready(uint64_t boot_ms, msgpack_sbuffer *body) {
        msgpack_packer pk;

        msgpack_packer_init(&pk, body, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 3);
        mp_pack_kv_str(&pk, "type", "ready");
        mp_pack_kv_u64(&pk, "version", AGENT_PROTOCOL_VERSION);
        mp_pack_kv_u64(&pk, "boot_ms", boot_ms);
}

void agent_proto_error(const uint64_t *id, const char *code, const char *message, msgpack_sbuffer *body) {
        msgpack_packer pk;

        msgpack_packer_init(&pk, body, msgpack_sbuffer_write);
        agent_pack_error(&pk, id, code, message);
}
