/* apiserver_routes_node.c: GET /node: this host (hostname, kernel, CPUs, memory, disk under the state dir), vmm-driver's runtimes, VMs and templates, and every daemon's version and uptime (daemon.info). */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "lib/host.h"
#include "lib/log.h"
#include "lib/mp.h"
#include "services/apiserver/apiserver_http.h"
#include "services/apiserver/apiserver_json.h"
#include "services/apiserver/apiserver_node.h"

/* Each daemon is asked at once, in its own thread: a daemon that is down costs this, not five
 * times this. */
#define NODE_TIMEOUT_MS 1000

static struct {
        char *state_dir;
        char *requests[_HUSK_DAEMON_MAX];
} node;

void apiserver_node_done(void) {
        free(node.state_dir);
        node.state_dir = NULL;
        for (size_t d = 0; d < _HUSK_DAEMON_MAX; d++) {
                free(node.requests[d]);
                node.requests[d] = NULL;
        }
}

int apiserver_node_init(const husk_config_t *config) {
        apiserver_node_done();
        node.state_dir = strdup(config->state_dir);
        if (!node.state_dir)
                return -ENOMEM;
        for (size_t d = 0; d < _HUSK_DAEMON_MAX; d++)
                if (!(node.requests[d] = strdup(config->bus[d].requests ?: "")))
                        return -ENOMEM;
        return 0;
}

/* One call, made from its own thread with its own client (a socket is one thread's). */
typedef struct node_call {
        const char *endpoint;
        const char *method;
        pthread_t thread;
        bool started;
        int result;         /* bus_call's */
        bus_reply_t *reply; /* set when result is 0 */
} node_call_t;

static void *node_call_run(void *arg) {
        static const bus_call_opts_t opts = { .timeout_ms = NODE_TIMEOUT_MS, .idempotent = true };
        node_call_t *c = arg;
        bus_client_t *client = NULL;

        c->result = bus_client_new(c->endpoint, &client);
        if (c->result >= 0)
                c->result = bus_call(client, c->method, NULL, &opts, &c->reply);
        bus_client_destroy(&client);
        return NULL;
}

/* Why a call has no usable answer, for the `error` of its part; NULL when it has one. */
static const char *call_problem(const node_call_t *c, msgpack_object_type want, char *buf, size_t size) {
        if (c->result == -ETIMEDOUT)
                snprintf(buf, size, "did not answer within %d ms", NODE_TIMEOUT_MS);
        else if (c->result < 0)
                snprintf(buf, size, "cannot be asked: %s", strerror(-c->result));
        else if (c->reply->error_code)
                snprintf(buf, size, "answered %s: %s", c->reply->error_code, c->reply->error_message ?: "");
        else if (!c->reply->result || c->reply->result->type != want)
                snprintf(buf, size, "answered something unexpected");
        else
                return NULL;
        return buf;
}

/* {name, reachable, version, pid, host, started_at, uptime_seconds} or {name, reachable: false, error}. */
static json_t *daemon_json(husk_daemon_t d, const node_call_t *c) {
        _cleanup_free_ char *version = NULL, *host = NULL;
        char why[256], when[64];
        const char *problem = call_problem(c, MSGPACK_OBJECT_MAP, why, sizeof(why));
        uint64_t pid = 0, started_ns = 0, now_ns = now_realtime_ns();

        if (!problem && (mp_get_str(c->reply->result, "version", 64, &version) < 0 ||
                         mp_get_u64(c->reply->result, "pid", &pid) < 0 ||
                         mp_get_u64(c->reply->result, "started_at_ns", &started_ns) < 0 ||
                         mp_get_str(c->reply->result, "host", 256, &host) < 0))
                problem = "answered daemon.info without its fields";
        if (problem)
                return json_pack("{s:s, s:b, s:s}", "name", husk_daemon_name(d), "reachable", false, "error", problem);
        return json_pack("{s:s, s:b, s:s, s:I, s:s, s:s, s:I}", "name", husk_daemon_name(d), "reachable", true,
                         "version", version, "pid", (json_int_t)pid, "host", host, "started_at",
                         format_timestamp_ms(started_ns / 1000000, when, sizeof(when)), "uptime_seconds",
                         (json_int_t)(now_ns > started_ns ? (now_ns - started_ns) / 1000000000 : 0));
}

/* From instance.list: VMs alive (not exited) and the memory they were admitted with. */
static int instances_sum(const msgpack_object *list, uint64_t *ret_running, uint64_t *ret_memory) {
        uint64_t running = 0, memory = 0;

        for (uint32_t k = 0; k < list->via.array.size; k++) {
                const msgpack_object *i = &list->via.array.ptr[k];
                _cleanup_free_ char *state = NULL;
                uint64_t mib = 0;

                if (mp_get_str(i, "state", 32, &state) < 0 || mp_get_u64(i, "memory_mib", &mib) < 0)
                        return -EBADMSG;
                if (streq(state, "exited"))
                        continue;
                running++;
                memory += mib * 1024 * 1024;
        }
        *ret_running = running;
        *ret_memory = memory;
        return 0;
}

static json_t *host_json(void) {
        char hostname[256] = "";
        struct utsname u = {};
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);

        (void)gethostname(hostname, sizeof(hostname) - 1);
        (void)uname(&u);
        return json_pack("{s:s, s:s, s:s, s:s, s:I}", "hostname", hostname, "kernel", u.release, "kernel_version",
                         u.version, "architecture", u.machine, "cpus", (json_int_t)(cpus > 0 ? cpus : 0));
}

int route_node(http_request_t *req) {
        enum { CALL_RUNTIMES = _HUSK_DAEMON_MAX, CALL_INSTANCES, CALL_TEMPLATES, N_CALLS };
        node_call_t calls[N_CALLS] = {};
        json_t *answer, *daemons, *memory = NULL, *disk, *runtimes = json_null(), *vms = json_null(),
                                  *templates = json_null();
        host_memory_t mem = {};
        host_disk_t dk = {};
        uint64_t running = 0, admitted = 0;
        char why[256];
        const char *problem;
        int r;

        if (req->who && req->who->n_namespaces > 0)
                return http_reply_problem(req, 403, "forbidden", "Forbidden", NULL,
                                          "GET /node tells about every namespace: a token bound to namespaces may "
                                          "not read it");
        for (size_t d = 0; d < _HUSK_DAEMON_MAX; d++)
                calls[d] = (node_call_t){ .endpoint = node.requests[d], .method = BUS_METHOD_DAEMON_INFO };
        calls[CALL_RUNTIMES] =
                (node_call_t){ .endpoint = node.requests[HUSK_DAEMON_VMM_DRIVER], .method = BUS_METHOD_RUNTIME_LIST };
        calls[CALL_INSTANCES] =
                (node_call_t){ .endpoint = node.requests[HUSK_DAEMON_VMM_DRIVER], .method = BUS_METHOD_INSTANCE_LIST };
        calls[CALL_TEMPLATES] =
                (node_call_t){ .endpoint = node.requests[HUSK_DAEMON_VMM_DRIVER], .method = BUS_METHOD_TEMPLATE_LIST };
        for (size_t k = 0; k < N_CALLS; k++) {
                calls[k].result = -ENOMEM;
                calls[k].started = pthread_create(&calls[k].thread, NULL, node_call_run, &calls[k]) == 0;
                if (!calls[k].started)
                        node_call_run(&calls[k]); /* no thread: ask from this one */
        }
        for (size_t k = 0; k < N_CALLS; k++)
                if (calls[k].started)
                        pthread_join(calls[k].thread, NULL);

        answer = host_json();
        daemons = json_array();
        if (!answer || !daemons) {
                r = -ENOMEM;
                goto fail;
        }
        for (size_t d = 0; d < _HUSK_DAEMON_MAX; d++)
                json_array_append_new(daemons, daemon_json(d, &calls[d]));
        json_object_set_new(answer, "daemons", daemons);
        daemons = NULL;

        problem = call_problem(&calls[CALL_RUNTIMES], MSGPACK_OBJECT_ARRAY, why, sizeof(why));
        if (problem)
                json_object_set_new(answer, "runtimes_error", json_sprintf("husk-vmm-driver %s", problem));
        else
                runtimes = msgpack_to_json(calls[CALL_RUNTIMES].reply->result) ?: json_null();
        json_object_set_new(answer, "runtimes", runtimes);

        /* VM templates (template.list): an empty array when they are off. */
        problem = call_problem(&calls[CALL_TEMPLATES], MSGPACK_OBJECT_ARRAY, why, sizeof(why));
        if (problem)
                json_object_set_new(answer, "templates_error", json_sprintf("husk-vmm-driver %s", problem));
        else
                templates = msgpack_to_json(calls[CALL_TEMPLATES].reply->result) ?: json_null();
        json_object_set_new(answer, "templates", templates);

        problem = call_problem(&calls[CALL_INSTANCES], MSGPACK_OBJECT_ARRAY, why, sizeof(why));
        if (!problem && instances_sum(calls[CALL_INSTANCES].reply->result, &running, &admitted) < 0)
                problem = "answered instance.list with a record it cannot read";
        if (problem)
                json_object_set_new(answer, "vms_error", json_sprintf("husk-vmm-driver %s", problem));
        else
                vms = json_integer((json_int_t)running);
        json_object_set_new(answer, "vms_running", vms);

        if (host_memory(&mem) >= 0)
                memory = json_pack("{s:I, s:I}", "total_bytes", (json_int_t)mem.total_bytes, "available_bytes",
                                   (json_int_t)mem.available_bytes);
        else
                memory = json_object();
        json_object_set_new(memory, "admitted_bytes", problem ? json_null() : json_integer((json_int_t)admitted));
        json_object_set_new(answer, "memory", memory);

        disk = json_pack("{s:s}", "path", node.state_dir);
        if (host_disk(node.state_dir, &dk) >= 0) {
                json_object_set_new(disk, "total_bytes", json_integer((json_int_t)dk.total_bytes));
                json_object_set_new(disk, "available_bytes", json_integer((json_int_t)dk.available_bytes));
        }
        json_object_set_new(answer, "disk", disk);

        for (size_t k = 0; k < N_CALLS; k++)
                bus_reply_freep(&calls[k].reply);
        return http_reply_json(req, 200, answer, NULL);
fail:
        json_decref(answer);
        json_decref(daemons);
        for (size_t k = 0; k < N_CALLS; k++)
                bus_reply_freep(&calls[k].reply);
        return http_reply_internal(req, -r, "answering GET /node");
}
