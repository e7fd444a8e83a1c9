/* logd_bus.c: logd on the bus: logs.query, log.<deployment> events for followers, purges from apiserver. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/log.h"
#include "lib/mp.h"
#include "lib/stats.h"
#include "services/logd/logd.h"

#define PURGE_CHECK_TIMEOUT_MS 5000 /* an answer later than this is ignored */

/* ---- logs.query -------------------------------------------------------------------------------- */

static int parse_after(bus_request_t *req, const msgpack_object *m, logd_cursor_t **ret, size_t *ret_n) {
        logd_cursor_t *c;

        if (m->type != MSGPACK_OBJECT_MAP)
                return bus_request_fail(req, BUS_ERR_INVALID, "after: must be a map of instance id to seq");
        if (m->via.map.size > LOGD_QUERY_CURSORS_MAX)
                return bus_request_fail(req, BUS_ERR_INVALID, "after: at most %d instances", LOGD_QUERY_CURSORS_MAX);
        c = calloc(m->via.map.size + 1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        for (uint32_t k = 0; k < m->via.map.size; k++) {
                const msgpack_object_kv *kv = &m->via.map.ptr[k];

                if (kv->key.type != MSGPACK_OBJECT_STR || kv->key.via.str.size != 12 ||
                    kv->val.type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
                        free(c);
                        return bus_request_fail(req, BUS_ERR_INVALID,
                                                "after: keys are instance ids, values seqs (uint)");
                }
                memcpy(c[k].instance, kv->key.via.str.ptr, 12);
                c[k].instance[12] = '\0';
                if (!instance_id_valid(c[k].instance)) {
                        free(c);
                        return bus_request_fail(req, BUS_ERR_INVALID,
                                                "after: keys are instance ids, values seqs (uint)");
                }
                c[k].after = kv->val.via.u64;
        }
        *ret = c;
        *ret_n = m->via.map.size;
        return 0;
}

static int by_instance(const void *a, const void *b) {
        return strcmp(((const logd_query_source_t *)a)->instance, ((const logd_query_source_t *)b)->instance);
}

static int method_query(bus_request_t *req, msgpack_packer *pk, void *userdata) {
        logd_t *d = userdata;
        _cleanup_free_ char *deployment = NULL, *instance = NULL, *level = NULL;
        _cleanup_free_ logd_cursor_t *after = NULL;
        _cleanup_free_ logd_query_source_t *sources = NULL;
        logd_query_t q = { .level = LOGD_LEVEL_UNKNOWN };
        const msgpack_object *o;
        uint64_t limit = LOGD_QUERY_LIMIT_MAX;
        size_t n = 0;
        int r;

        r = mp_get_str(req->args, "deployment_id", PROTO_ID_MAX, &deployment);
        if (r < 0 || !deployment_id_valid(deployment))
                return bus_request_fail(req, BUS_ERR_INVALID, "deployment_id: required, a deployment id");
        r = mp_get_str(req->args, "instance", 12, &instance);
        if (r == -ENOENT)
                instance = NULL;
        else if (r < 0 || !instance_id_valid(instance))
                return bus_request_fail(req, BUS_ERR_INVALID, "instance: must be an instance id (12 hex digits)");
        r = mp_get_u64(req->args, "tail", &q.tail);
        q.has_tail = r == 0;
        if ((r < 0 && r != -ENOENT) || q.tail > LOGD_QUERY_TAIL_MAX)
                return bus_request_fail(req, BUS_ERR_INVALID, "tail: must be a uint up to %d", LOGD_QUERY_TAIL_MAX);
        r = mp_get_u64(req->args, "since_ms", &q.since_ms);
        if (r < 0 && r != -ENOENT)
                return bus_request_fail(req, BUS_ERR_INVALID, "since_ms: must be a uint (unix ms)");
        r = mp_get_str(req->args, "level", 16, &level);
        if (r >= 0) {
                r = logd_level_from_name(level);
                if (r < 0)
                        return bus_request_fail(req, BUS_ERR_INVALID,
                                                "level: one of error, warning, info, debug, unknown");
                q.level = (logd_level_t)r;
        } else if (r != -ENOENT)
                return bus_request_fail(req, BUS_ERR_INVALID, "level: one of error, warning, info, debug, unknown");
        r = mp_get_u64(req->args, "limit", &limit);
        if ((r < 0 && r != -ENOENT) || limit == 0 || limit > LOGD_QUERY_LIMIT_MAX)
                return bus_request_fail(req, BUS_ERR_INVALID, "limit: must be between 1 and %d", LOGD_QUERY_LIMIT_MAX);
        o = mp_map_get(req->args, "after");
        if (o && o->type != MSGPACK_OBJECT_NIL) {
                r = parse_after(req, o, &after, &q.n_after);
                if (r < 0)
                        return r;
                q.has_after = true;
        }
        q.deployment_id = deployment;
        q.instance = instance;
        q.after = after;
        q.limit = (size_t)limit;

        sources = calloc(zhashx_size(d->instances) + 1, sizeof(*sources));
        if (!sources)
                return -ENOMEM;
        for (logd_instance_t *i = zhashx_first(d->instances); i; i = zhashx_next(d->instances)) {
                if (!i->store_open || !streq(i->deployment_id, deployment) || (instance && !streq(i->id, instance)))
                        continue;
                if (n == LOGD_QUERY_INSTANCES_MAX)
                        return bus_request_fail(req, BUS_ERR_INVALID, "more than %d instances: name one with instance",
                                                LOGD_QUERY_INSTANCES_MAX);
                sources[n++] =
                        (logd_query_source_t){ .instance = i->id, .dir = i->store.dir, .backups = i->store.backups };
        }
        qsort(sources, n, sizeof(*sources), by_instance);
        r = logd_query_run(&q, sources, n, pk);
        if (r < 0)
                return bus_request_fail(req, BUS_ERR_INTERNAL, "reading the logs: %s", strerror(-r));
        return 0;
}

const bus_method_t logd_bus_methods[] = {
        { BUS_METHOD_LOGS_QUERY, method_query },
        {},
};

/* ---- events ------------------------------------------------------------------------------------ */

static void publish(logd_t *d, const char *deployment_id, const msgpack_sbuffer *body) {
        char type[BUS_TYPE_MAX + 1];
        int r;

        if (!d->pub)
                return;
        snprintf(type, sizeof(type), "log.%s", deployment_id);
        r = bus_pub_send(d->pub, type, body->data, body->size);
        if (r < 0)
                log_warning_errno(r, "Failed to publish %s, ignoring: %m", type);
}

void logd_publish_batch(logd_instance_t *i) {
        msgpack_sbuffer body;
        msgpack_packer pk;

        if (i->ev_n == 0)
                return;
        msgpack_sbuffer_init(&body);
        msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 4);
        mp_pack_kv_str(&pk, "deployment_id", i->deployment_id);
        mp_pack_kv_str(&pk, "instance", i->id);
        mp_pack_kv_u64(&pk, "start", i->ev_start);
        mp_pack_str(&pk, "entries");
        msgpack_pack_array(&pk, i->ev_n);
        msgpack_sbuffer_write(&body, i->ev.data, i->ev.size);
        publish(i->logd, i->deployment_id, &body);
        msgpack_sbuffer_destroy(&body);
        msgpack_sbuffer_clear(&i->ev);
        i->ev_n = 0;
}

void logd_publish_purged(logd_t *d, const char *deployment_id) {
        msgpack_sbuffer body;
        msgpack_packer pk;

        msgpack_sbuffer_init(&body);
        msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 2);
        mp_pack_kv_str(&pk, "deployment_id", deployment_id);
        mp_pack_kv_bool(&pk, "purged", true);
        publish(d, deployment_id, &body);
        msgpack_sbuffer_destroy(&body);
}

static void on_event(const char *type, const msgpack_object *body, void *userdata) {
        logd_t *d = userdata;
        _cleanup_free_ char *id = NULL;

        if (!streq(type, BUS_EVENT_DEPLOYMENT_PURGED))
                return;
        if (mp_get_str(body, "deployment_id", PROTO_ID_MAX, &id) < 0) {
                log_debug("deployment.purged without a deployment_id, ignoring");
                return;
        }
        logd_purge(d, id);
}

static void snapshot_free(logd_t *d) {
        for (char **p = d->list_snapshot; p && *p; p++)
                free(*p);
        free(d->list_snapshot);
        d->list_snapshot = NULL;
}

/* The deployments we hold logs of, now: only those can be found purged by the answer, since
 * apiserver's list is taken after this. (One created meanwhile is not in the list yet.) */
static int snapshot_take(logd_t *d) {
        size_t n = 0;

        snapshot_free(d);
        d->list_snapshot = calloc(zhashx_size(d->instances) + 1, sizeof(char *));
        if (!d->list_snapshot)
                return -ENOMEM;
        for (logd_instance_t *i = zhashx_first(d->instances); i; i = zhashx_next(d->instances)) {
                bool seen = false;

                for (size_t k = 0; k < n && !seen; k++)
                        seen = streq(d->list_snapshot[k], i->deployment_id);
                if (i->deployment_id && !seen && !(d->list_snapshot[n++] = strdup(i->deployment_id)))
                        return -ENOMEM;
        }
        return 0;
}

static void purge_unlisted(logd_t *d, const msgpack_object *list) {
        for (char **p = d->list_snapshot; p && *p; p++) {
                bool known = false;

                for (uint32_t k = 0; k < list->via.array.size && !known; k++)
                        known = mp_str_eq(mp_map_get(&list->via.array.ptr[k], "id"), *p);
                if (!known) {
                        log_info("Deployment %s is gone from apiserver: purging its logs", *p);
                        logd_purge(d, *p);
                }
        }
}

static void on_list_reply(int error, const bus_reply_t *reply, void *userdata) {
        logd_t *d = userdata;

        d->listing = false;
        if (error == 0 && !reply->error_code && reply->result && reply->result->type == MSGPACK_OBJECT_ARRAY)
                purge_unlisted(d, reply->result);
        else
                log_debug("deployment.list failed; checking for purged deployments later");
        snapshot_free(d);
}

void logd_check_purged(logd_t *d) {
        static const bus_call_opts_t opts = { .timeout_ms = PURGE_CHECK_TIMEOUT_MS, .idempotent = true };
        int r;

        if (!d->apiserver || d->listing)
                return; /* one at a time */
        if (zhashx_size(d->instances) == 0 || snapshot_take(d) < 0)
                return;
        r = bus_call_async(d->apiserver, BUS_METHOD_DEPLOYMENT_LIST, NULL, &opts, on_list_reply, d, NULL);
        if (r < 0) {
                log_debug_errno(r, "Cannot ask apiserver for its deployments, checking later: %m");
                snapshot_free(d);
                return;
        }
        d->listing = true;
}

/* daemon.stats's metrics: what the store took in. */
static void pack_stats(msgpack_packer *pk, void *userdata) {
        logd_t *d = userdata;

        msgpack_pack_array(pk, 2);
        stats_pack_counter(pk, "logd_lines_stored_total",
                           "Console lines logd stored, every instance, since it started.", (double)d->lines_stored);
        stats_pack_counter(pk, "logd_bytes_stored_total",
                           "Bytes of those lines' messages, every instance, since logd started.",
                           (double)d->bytes_stored);
}

int logd_bus_open(logd_t *d) {
        const husk_config_t *c = logd_config(d);
        const char *apiserver_events = c->bus[HUSK_DAEMON_APISERVER].events;
        int r;

        r = bus_pub_new(c->bus[HUSK_DAEMON_LOGD].events, &d->pub);
        if (r < 0)
                return log_error_errno(r, "Failed to bind %s: %m", c->bus[HUSK_DAEMON_LOGD].events);
        r = bus_server_new(c->bus[HUSK_DAEMON_LOGD].requests, logd_bus_methods, d, &d->server);
        if (r < 0)
                return log_error_errno(r, "Failed to bind %s: %m", c->bus[HUSK_DAEMON_LOGD].requests);
        bus_server_set_stats(d->server, pack_stats, d);
        r = bus_server_attach(d->server, d->loop);
        if (r < 0)
                return log_error_errno(r, "Failed to serve requests: %m");
        r = bus_client_new(c->bus[HUSK_DAEMON_APISERVER].requests, &d->apiserver);
        if (r >= 0)
                r = bus_client_attach(d->apiserver, d->loop);
        if (r < 0)
                return log_error_errno(r, "Failed to connect to %s: %m", c->bus[HUSK_DAEMON_APISERVER].requests);
        r = bus_sub_new(&apiserver_events, 1, &d->events);
        if (r < 0)
                return log_error_errno(r, "Failed to subscribe to %s: %m", apiserver_events);
        bus_sub_subscribe(d->events, BUS_EVENT_DEPLOYMENT_PURGED);
        r = bus_sub_attach(d->events, d->loop, on_event, d);
        if (r < 0)
                return log_error_errno(r, "Failed to watch events: %m");
        return 0;
}

void logd_bus_close(logd_t *d) {
        bus_sub_destroy(&d->events);
        bus_client_destroy(&d->apiserver);
        snapshot_free(d);
        bus_server_destroy(&d->server);
        bus_pub_destroy(&d->pub);
}
