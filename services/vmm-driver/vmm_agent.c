/* vmm_agent.c: host side of the agent channel (the runtime's agent socket): connect, hello, frames, requests multiplexed by id. */
#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>

#include "lib/log.h"
#include "lib/mp.h"
#include "services/vmm-driver/vmm.h"
#include "services/vmm-driver/vmm_template.h"

#define AGENT_RETRY_FIRST_MS 20
#define AGENT_RETRY_MAX_MS 100               /* a guest may be ready 100 ms after spawn (KVM) */
#define AGENT_OUT_MAX (2u * AGENT_FRAME_MAX) /* unsent bytes we buffer before calling the guest stuck */
#define AGENT_CALLS_MAX 1024                 /* requests in flight per instance */
#define AGENT_SWEEP_MS 250
#define AGENT_PING_TIMEOUT_MS 5000

static const char *id_of(const vmm_instance_t *i) { return i->rec.inst.spec.instance_id; }

static void schedule_reconnect(vmm_instance_t *i);

/* ---- pending calls ------------------------------------------------------------------------- */

static vmm_agent_call_t *call_find(vmm_agent_t *a, uint64_t id) {
        for (size_t k = 0; k < a->n_calls; k++)
                if (a->calls[k].id == id)
                        return &a->calls[k];
        return NULL;
}

/* Remove a call from the table and run its callback (the table may change inside it). */
static void call_complete(vmm_instance_t *i, vmm_agent_call_t *c, const msgpack_object *body, int error) {
        vmm_agent_t *a = &i->agent;
        vmm_agent_call_t done = *c;

        *c = a->calls[--a->n_calls];
        if (done.fn)
                done.fn(i, body, error, done.userdata);
}

static void calls_fail_all(vmm_instance_t *i, int error) {
        while (i->agent.n_calls > 0)
                call_complete(i, &i->agent.calls[i->agent.n_calls - 1], NULL, error);
}

static int on_sweep(zloop_t *loop, int timer_id, void *arg) {
        vmm_instance_t *i = arg;
        vmm_agent_t *a = &i->agent;
        uint64_t now = now_monotonic_ms();

        if (timer_id != a->sweep_timer)
                return 0;
        for (size_t k = 0; k < a->n_calls;) {
                if (a->calls[k].deadline_ms && a->calls[k].deadline_ms <= now) {
                        log_debug("Instance %s: agent %s request %" PRIu64 " timed out", id_of(i), a->calls[k].type,
                                  a->calls[k].id);
                        call_complete(i, &a->calls[k], NULL, -ETIMEDOUT);
                        continue; /* the last call moved into slot k */
                }
                k++;
        }
        return 0;
}

/* ---- connection ----------------------------------------------------------------------------- */

static int on_socket(zloop_t *loop, zmq_pollitem_t *item, void *arg);

static int set_poller(vmm_instance_t *i, bool want_write) {
        vmm_agent_t *a = &i->agent;
        zmq_pollitem_t item = { .fd = a->fd, .events = ZMQ_POLLIN | (want_write ? ZMQ_POLLOUT : 0) };

        zloop_poller_end(i->vmm->loop, &(zmq_pollitem_t){ .fd = a->fd });
        if (zloop_poller(i->vmm->loop, &item, on_socket, i) < 0)
                return -ENOMEM;
        zloop_poller_set_tolerant(i->vmm->loop, &item);
        a->writing = want_write;
        return 0;
}

static void agent_close(vmm_instance_t *i) {
        vmm_agent_t *a = &i->agent;

        if (a->fd >= 0) {
                zloop_poller_end(i->vmm->loop, &(zmq_pollitem_t){ .fd = a->fd });
                close(a->fd);
                a->fd = -1;
        }
        a->connected = false;
        a->handshaking = false;
        a->writing = false;
        agent_frame_reader_clear(&a->reader);
        agent_frame_reader_init(&a->reader);
        msgpack_sbuffer_destroy(&a->out);
        msgpack_sbuffer_init(&a->out);
        a->out_off = 0;
        calls_fail_all(i, -ECONNRESET);
}

/* Connection lost while the VM may still run: a guest agent restart, or the VMM dropping us. */
static void agent_reset(vmm_instance_t *i) {
        agent_close(i);
        if (vmm_instance_alive(i))
                schedule_reconnect(i);
}

static int flush(vmm_instance_t *i) {
        vmm_agent_t *a = &i->agent;

        while (a->out_off < a->out.size) {
                ssize_t n =
                        send(a->fd, a->out.data + a->out_off, a->out.size - a->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                        return a->writing ? 0 : set_poller(i, true);
                if (n < 0)
                        return -errno;
                a->out_off += (size_t)n;
        }
        a->out.size = 0;
        a->out_off = 0;
        return a->writing ? set_poller(i, false) : 0;
}

static int send_frame(vmm_instance_t *i, const msgpack_sbuffer *body) {
        vmm_agent_t *a = &i->agent;
        int r;

        if (!a->connected)
                return -ENOTCONN;
        if (a->out.size + body->size + 4 > AGENT_OUT_MAX)
                return -ENOBUFS;
        r = agent_frame_encode(body->data, body->size, &a->out);
        if (r < 0)
                return r;
        r = flush(i);
        if (r < 0) {
                log_debug_errno(r, "Instance %s: agent write failed, reconnecting: %m", id_of(i));
                agent_reset(i);
                return -ECONNRESET;
        }
        return 0;
}

int64_t vmm_agent_request(vmm_instance_t *i, const char *type, size_t n_keys, vmm_agent_pack_fn pack, void *pack_data,
                          uint64_t timeout_ms, vmm_agent_reply_fn fn, void *userdata) {
        vmm_agent_t *a = &i->agent;
        msgpack_sbuffer body;
        msgpack_packer pk;
        vmm_agent_call_t *c;
        uint64_t id;
        int r;

        if (!a->connected)
                return -ENOTCONN;
        if (strlen(type) >= sizeof(c->type))
                return -EINVAL;
        if (a->n_calls >= AGENT_CALLS_MAX)
                return -EBUSY;
        if (a->n_calls == a->cap_calls) {
                size_t cap = a->cap_calls ? a->cap_calls * 2 : 8;
                vmm_agent_call_t *nc = realloc(a->calls, cap * sizeof(*nc));
                if (!nc)
                        return -ENOMEM;
                a->calls = nc;
                a->cap_calls = cap;
        }
        id = ++a->next_id;

        msgpack_sbuffer_init(&body);
        msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 2 + (pack ? n_keys : 0));
        mp_pack_kv_str(&pk, "type", type);
        mp_pack_kv_u64(&pk, "id", id);
        if (pack)
                pack(&pk, pack_data);
        r = send_frame(i, &body);
        msgpack_sbuffer_destroy(&body);
        if (r < 0)
                return r;

        c = &a->calls[a->n_calls++];
        *c = (vmm_agent_call_t){
                .id = id,
                .deadline_ms = timeout_ms ? now_monotonic_ms() + timeout_ms : 0,
                .fn = fn,
                .userdata = userdata,
        };
        snprintf(c->type, sizeof(c->type), "%s", type);
        if (timeout_ms && !a->sweep_timer) {
                a->sweep_timer = zloop_timer(i->vmm->loop, AGENT_SWEEP_MS, 0, on_sweep, i);
                if (a->sweep_timer < 0)
                        a->sweep_timer = 0;
        }
        return (int64_t)id;
}

/* ---- requests we make ------------------------------------------------------------------------ */

static void pack_hello(msgpack_packer *pk, void *userdata) { mp_pack_kv_u64(pk, "version", AGENT_PROTOCOL_VERSION); }

static void on_hello(vmm_instance_t *i, const msgpack_object *body, int error, void *userdata) {
        _cleanup_free_ char *agent = NULL;
        bool ready = false;

        if (error < 0) {
                log_debug_errno(error, "Instance %s: hello not answered: %m", id_of(i));
                return;
        }
        i->agent.answered = true;
        (void)mp_get_str(body, "agent", 256, &agent);
        log_debug("Instance %s: agent %s answered hello", id_of(i), agent ?: "?");
        if (mp_get_bool(body, "ready", &ready) >= 0 && ready) {
                /* A template's clone is the template until it took its own identity. */
                if (vmm_clone_identity_pending(i))
                        return vmm_clone_give_identity(i);
                vmm_instance_on_ready(i);
                /* After hello, on every connect: the agent refuses a second start, which is how a
                 * restarted vmm-driver learns the workload already runs. */
                vmm_workload_start(i);
        }
}

static void on_pong(vmm_instance_t *i, const msgpack_object *body, int error, void *userdata) {
        if (error < 0)
                log_debug_errno(error, "Instance %s: ping not answered: %m", id_of(i));
        else
                log_debug("Instance %s: pong", id_of(i));
}

int vmm_agent_ping(vmm_instance_t *i) {
        int64_t id = vmm_agent_request(i, "ping", 0, NULL, NULL, AGENT_PING_TIMEOUT_MS, on_pong, NULL);
        return id < 0 ? (int)id : 0;
}

static void pack_shutdown(msgpack_packer *pk, void *userdata) {
        mp_pack_kv_u64(pk, "grace_ms", *(const uint64_t *)userdata);
}

static void on_shutdown(vmm_instance_t *i, const msgpack_object *body, int error, void *userdata) {
        /* The exit itself is what counts; the answer only says the agent started shutting down. */
        if (error < 0)
                log_debug_errno(error, "Instance %s: shutdown not acknowledged: %m", id_of(i));
        else
                log_debug("Instance %s: agent acknowledged shutdown", id_of(i));
}

int vmm_agent_shutdown(vmm_instance_t *i, uint64_t grace_ms) {
        int64_t id = vmm_agent_request(i, "shutdown", 1, pack_shutdown, &grace_ms, 0, on_shutdown, NULL);
        return id < 0 ? (int)id : 0;
}

/* ---- frames from the guest ------------------------------------------------------------------ */

static void frame_ready(vmm_instance_t *i, const msgpack_object *body) {
        uint64_t boot_ms = 0;

        (void)mp_get_u64(body, "boot_ms", &boot_ms);
        log_debug("Instance %s: agent ready, guest booted in %" PRIu64 " ms", id_of(i), boot_ms);
        if (!vmm_clone_identity_pending(i))
                vmm_instance_on_ready(i);
}

bool vmm_agent_answers(const char *call_type, const char *frame_type) {
        /* Every answer carries its call's type, but for ping's. */
        return streq(frame_type, streq(call_type, "ping") ? "pong" : call_type);
}

/* hello, pong, shutdown, exec... answers: complete the call with that id, when the answer is
 * of its kind (a stale answer is never taken for another call's). */
static void frame_answer(vmm_instance_t *i, const msgpack_object *body) {
        _cleanup_free_ char *type = NULL;
        vmm_agent_call_t *c;
        uint64_t id;

        if (mp_get_u64(body, "id", &id) < 0 || !(c = call_find(&i->agent, id)) ||
            mp_get_str(body, "type", 32, &type) < 0 || !vmm_agent_answers(c->type, type)) {
                log_debug("Instance %s: agent answer for no pending request, ignoring", id_of(i));
                return;
        }
        call_complete(i, c, body, 0);
}

static void frame_error(vmm_instance_t *i, const msgpack_object *body) {
        _cleanup_free_ char *code = NULL, *message = NULL;
        vmm_agent_call_t *c;
        uint64_t id;

        (void)mp_get_str(body, "code", 64, &code);
        (void)mp_get_str(body, "message", 1024, &message);
        if (mp_get_u64(body, "id", &id) >= 0 && (c = call_find(&i->agent, id))) {
                log_debug("Instance %s: agent refused %s: %s: %s", id_of(i), c->type, code ?: "?", message ?: "");
                call_complete(i, c, body, -EREMOTEIO);
                return;
        }
        log_warning("Instance %s: agent error: %s: %s", id_of(i), code ?: "?", message ?: "");
}

static const struct {
        const char *type;
        void (*handler)(vmm_instance_t *i, const msgpack_object *body);
} frame_handlers[] = {
        { "ready", frame_ready },     { "hello", frame_answer },  { "pong", frame_answer },
        { "shutdown", frame_answer }, { "start", frame_answer },  { "exec", frame_answer },
        { "signal", frame_answer },   { "status", frame_answer }, { "exited", vmm_workload_on_exited },
        { "error", frame_error },     { "stats", frame_answer },  { "identity", frame_answer },
};

static void dispatch(vmm_instance_t *i, const msgpack_object *body) {
        const msgpack_object *type = mp_map_get(body, "type");

        for (size_t k = 0; k < ELEMENTSOF(frame_handlers); k++)
                if (mp_str_eq(type, frame_handlers[k].type)) {
                        frame_handlers[k].handler(i, body);
                        return;
                }
        log_debug("Instance %s: unknown agent frame type, ignoring", id_of(i));
}

static void agent_read(vmm_instance_t *i) {
        vmm_agent_t *a = &i->agent;
        char buf[16384];

        for (;;) {
                msgpack_unpacked u;
                ssize_t n;
                int r;

                n = recv(a->fd, buf, sizeof(buf), MSG_DONTWAIT);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                        return;
                if (n <= 0) {
                        log_debug("Instance %s: agent connection closed", id_of(i));
                        agent_reset(i);
                        return;
                }
                r = agent_frame_reader_feed(&a->reader, buf, (size_t)n);
                while (r >= 0) {
                        msgpack_unpacked_init(&u);
                        r = agent_frame_reader_next(&a->reader, &u);
                        if (r > 0) {
                                dispatch(i, &u.data);
                                msgpack_unpacked_destroy(&u);
                                /* A handler may have reset the connection. */
                                if (a->fd < 0)
                                        return;
                                continue;
                        }
                        msgpack_unpacked_destroy(&u);
                        break;
                }
                if (r < 0) {
                        /* The guest is untrusted: a bad frame costs it the connection, nothing more. */
                        log_warning_errno(r, "Instance %s: bad frame from the agent, reconnecting: %m", id_of(i));
                        agent_reset(i);
                        return;
                }
        }
}

void vmm_agent_drain(vmm_instance_t *i) {
        if (i->agent.fd >= 0 && i->agent.connected)
                agent_read(i);
}

static void frames_flow(vmm_instance_t *i);

/* The runtime's handshake answer (hybrid vsock: "OK <port>\n"). Peeked, then only the line is
 * taken: the agent's first frames may follow it in the same read. */
static void handshake_read(vmm_instance_t *i) {
        const char *ok = i->runtime->agent_handshake_ok;
        vmm_agent_t *a = &i->agent;
        char line[64];
        ssize_t n;
        char *nl;

        n = recv(a->fd, line, sizeof(line) - 1, MSG_PEEK | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
                return;
        if (n <= 0) {
                /* CH closes it when nothing listens on the port yet: the guest is still booting. */
                log_debug("Instance %s: agent handshake closed, the guest agent is not listening yet", id_of(i));
                agent_reset(i);
                return;
        }
        line[n] = '\0';
        nl = strchr(line, '\n');
        if (!nl) {
                if ((size_t)n < sizeof(line) - 1)
                        return; /* the rest of the line is on its way */
                log_warning("Instance %s: agent handshake answer too long, reconnecting", id_of(i));
                agent_reset(i);
                return;
        }
        if (strncmp(line, ok, strlen(ok)) != 0) {
                *nl = '\0';
                log_warning("Instance %s: agent handshake refused (%s), reconnecting", id_of(i), line);
                agent_reset(i);
                return;
        }
        (void)recv(a->fd, line, (size_t)(nl - line) + 1, MSG_DONTWAIT);
        a->handshaking = false;
        frames_flow(i);
        /* Frames that came with the answer. */
        if (a->fd >= 0)
                agent_read(i);
}

static int on_socket(zloop_t *loop, zmq_pollitem_t *item, void *arg) {
        vmm_instance_t *i = arg;
        int r;

        if (i->agent.handshaking) {
                if (item->revents & (ZMQ_POLLIN | ZMQ_POLLERR))
                        handshake_read(i);
                return 0;
        }
        if (item->revents & ZMQ_POLLOUT) {
                r = flush(i);
                if (r < 0) {
                        log_debug_errno(r, "Instance %s: agent write failed, reconnecting: %m", id_of(i));
                        agent_reset(i);
                        return 0;
                }
        }
        if (item->revents & (ZMQ_POLLIN | ZMQ_POLLERR))
                agent_read(i);
        return 0;
}

static int on_connect_timer(zloop_t *loop, int timer_id, void *arg) {
        vmm_instance_t *i = arg;
        vmm_agent_t *a = &i->agent;
        int fd;

        if (timer_id != a->timer)
                return 0;
        a->timer = 0;
        if (!vmm_instance_alive(i))
                return 0;

        fd = i->runtime->agent_connect(i);
        if (fd < 0) {
                schedule_reconnect(i);
                return 0;
        }
        a->fd = fd;
        if (set_poller(i, false) < 0) {
                log_error("Instance %s: cannot poll the agent socket", id_of(i));
                agent_reset(i);
                return 0;
        }
        if (i->runtime->agent_handshake) {
                const char *line = i->runtime->agent_handshake;
                ssize_t n = send(fd, line, strlen(line), MSG_NOSIGNAL | MSG_DONTWAIT);

                /* A few bytes on a fresh socket: a short write means a dead peer. */
                if (n != (ssize_t)strlen(line)) {
                        log_debug("Instance %s: cannot send the agent handshake, reconnecting", id_of(i));
                        agent_reset(i);
                        return 0;
                }
                a->handshaking = true;
                return 0; /* handshake_read goes on */
        }
        frames_flow(i);
        return 0;
}

/* Connected, handshake done: hello, then frames both ways. */
static void frames_flow(vmm_instance_t *i) {
        vmm_agent_t *a = &i->agent;
        int64_t id;

        a->connected = true;
        a->delay_ms = AGENT_RETRY_FIRST_MS;
        /* Answers the guest wrote for an earlier connection (a vmm-driver that was killed) wait
         * in the port for whoever connects next: ids start at a random point on each connection
         * so that none of them completes one of our calls. */
        if (getrandom(&a->next_id, sizeof(a->next_id), 0) != sizeof(a->next_id))
                a->next_id = now_realtime_ms() << 16;
        a->next_id >>= 12; /* stays far from wrapping */
        /* Sent on every (re)connect: the guest may have announced ready while nobody listened.
         * It waits in the socket until the agent opens its port. */
        id = vmm_agent_request(i, "hello", 1, pack_hello, NULL, 0, on_hello, NULL);
        if (id < 0)
                log_debug_errno((int)id, "Instance %s: cannot send hello: %m", id_of(i));
}

static void schedule_reconnect(vmm_instance_t *i) {
        vmm_agent_t *a = &i->agent;

        if (a->timer)
                return;
        a->timer = zloop_timer(i->vmm->loop, a->delay_ms, 1, on_connect_timer, i);
        if (a->timer < 0) {
                a->timer = 0;
                log_error("Instance %s: cannot arm the agent connect timer", id_of(i));
                return;
        }
        a->delay_ms = a->delay_ms * 2 > AGENT_RETRY_MAX_MS ? AGENT_RETRY_MAX_MS : a->delay_ms * 2;
}

void vmm_agent_start(vmm_instance_t *i) {
        vmm_agent_stop(i);
        i->agent.delay_ms = AGENT_RETRY_FIRST_MS;
        schedule_reconnect(i);
}

void vmm_agent_stop(vmm_instance_t *i) {
        vmm_agent_t *a = &i->agent;

        if (a->timer) {
                zloop_timer_end(i->vmm->loop, a->timer);
                a->timer = 0;
        }
        if (a->sweep_timer) {
                zloop_timer_end(i->vmm->loop, a->sweep_timer);
                a->sweep_timer = 0;
        }
        agent_close(i);
}
