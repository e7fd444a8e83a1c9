/* apiserver_routes_logs.c: GET /deployments/{id}/logs: logd's logs.query as JSON, or Server-Sent Events that follow. */
#include <civetweb.h>
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lib/log.h"
#include "lib/mp.h"
#include "proto/instance.h"
#include "services/apiserver/apiserver_http.h"

#define LOGS_TAIL_MAX 100000 /* logd's limit too */
#define LOGS_QUERY_TIMEOUT_MS 3000
/* A follower holds its civetweb worker for as long as it follows (civetweb 1.15 cannot park a
 * connection): followers get a bounded share of the workers (HTTP_WORKERS, 1024), answered
 * with 503 beyond it, so that followers alone never starve the rest of the API. */
#define LOGS_FOLLOW_MAX 64
#define LOGS_HEARTBEAT_MS 5000    /* a comment line: finds followers that went away */
#define LOGS_TICK_MS 1000         /* a follower looks whether the apiserver is stopping */
#define LOGS_CATCHUP_FIRST_MS 250 /* once our subscription surely reached logd */
#define LOGS_CATCHUP_MS 5000      /* safety net: events a slow subscriber lost at its HWM */
#define LOGS_RETRY_MS 1000        /* logd did not answer (restarting): ask again this soon */
#define LOGS_CURSORS_MAX 1024

static atomic_int followers;

static const char *const levels[] = { "error", "warning", "info", "debug", "unknown" };

typedef struct cursor {
        char instance[13];
        uint64_t after;
} cursor_t;

typedef struct logs_req {
        http_request_t *http;
        const char *deployment_id;
        uint64_t tail;
        bool has_tail; /* tail=0: no history, only what comes */
        uint64_t since_ms;
        const char *level;    /* NULL: all */
        const char *instance; /* NULL: all */
        int level_rank;       /* entries above it (less severe) are dropped from events */
        cursor_t cursors[LOGS_CURSORS_MAX];
        size_t n_cursors;
        bool has_cursors;
        bool sse;
        char out_err[256];
} logs_req_t;

/* ---- query parameters ---------------------------------------------------------------------- */

/* Returns 0, or the HTTP status already sent. */
static int parse_params(http_request_t *req, logs_req_t *q, char *level, char *instance, bool *follow) {
        char buf[64];
        int r;

        r = http_query(req, "tail", 0, buf, sizeof(buf));
        if (r > 0 && !streq(buf, "all")) {
                q->has_tail = true;
                if (parse_u64(buf, &q->tail) < 0 || q->tail > LOGS_TAIL_MAX)
                        r = -EINVAL;
        }
        if (r < 0)
                return http_reply_problem(req, 400, "bad-query", "Bad request", NULL,
                                          "tail: a number of lines up to %d, or all", LOGS_TAIL_MAX);
        r = http_query(req, "since", 0, buf, sizeof(buf));
        if (r > 0 && parse_since_ms(buf, now_realtime_ms(), &q->since_ms) < 0)
                r = -EINVAL;
        if (r < 0)
                return http_reply_problem(req, 400, "bad-query", "Bad request", NULL,
                                          "since: a duration back from now (10m, 1h, 30s) or an RFC 3339 time "
                                          "(2026-11-22T05:30:00Z)");
        r = http_query(req, "level", 0, level, 16);
        if (r > 0) {
                q->level_rank = -1;
                for (size_t k = 0; k < ELEMENTSOF(levels); k++)
                        if (streq(level, levels[k]))
                                q->level_rank = (int)k;
                if (q->level_rank < 0)
                        r = -EINVAL;
                q->level = level;
        } else
                q->level_rank = (int)ELEMENTSOF(levels) - 1;
        if (r < 0)
                return http_reply_problem(
                        req, 400, "bad-query", "Bad request", NULL,
                        "level: error, warning, info, debug or unknown (that level and the more severe)");
        r = http_query(req, "instance", 0, instance, 13);
        if (r == 0)
                r = http_query(req, "container", 0, instance, 13);
        if (r < 0 || (r > 0 && !instance_id_valid(instance)))
                return http_reply_problem(req, 400, "bad-query", "Bad request", NULL,
                                          "instance (or container): an instance id (12 hex digits)");
        if (r > 0)
                q->instance = instance;
        r = http_query(req, "follow", 0, buf, sizeof(buf));
        if (r > 0 && (streq(buf, "true") || streq(buf, "1")))
                *follow = true;
        else if (r < 0 || (r > 0 && !streq(buf, "false") && !streq(buf, "0")))
                return http_reply_problem(req, 400, "bad-query", "Bad request", NULL, "follow: true or false");
        return 0;
}

/* ---- logd ------------------------------------------------------------------------------------- */

static cursor_t *cursor_of(logs_req_t *q, const char *instance, bool add) {
        for (size_t k = 0; k < q->n_cursors; k++)
                if (streq(q->cursors[k].instance, instance))
                        return &q->cursors[k];
        if (!add || q->n_cursors == LOGS_CURSORS_MAX)
                return NULL;
        snprintf(q->cursors[q->n_cursors].instance, sizeof(q->cursors[0].instance), "%s", instance);
        q->cursors[q->n_cursors].after = 0;
        return &q->cursors[q->n_cursors++];
}

/* One logs.query page. only: restrict to one instance (a follower filling a gap). */
static int call_query(logs_req_t *q, const char *only, bool with_tail, bus_reply_t **ret) {
        static const bus_call_opts_t opts = { .timeout_ms = LOGS_QUERY_TIMEOUT_MS, .idempotent = true };
        apiserver_t *api = q->http->api;
        _cleanup_(msgpack_sbuffer_destroy) msgpack_sbuffer args = {};
        const char *instance = only ? only : q->instance;
        msgpack_packer pk;
        uint32_t n = 1;
        int r;

        msgpack_sbuffer_init(&args);
        msgpack_packer_init(&pk, &args, msgpack_sbuffer_write);
        n += instance != NULL;
        n += with_tail && q->has_tail;
        n += q->since_ms > 0;
        n += q->level != NULL;
        n += q->has_cursors;
        msgpack_pack_map(&pk, n);
        mp_pack_kv_str(&pk, "deployment_id", q->deployment_id);
        if (instance)
                mp_pack_kv_str(&pk, "instance", instance);
        if (with_tail && q->has_tail)
                mp_pack_kv_u64(&pk, "tail", q->tail);
        if (q->since_ms > 0)
                mp_pack_kv_u64(&pk, "since_ms", q->since_ms);
        if (q->level)
                mp_pack_kv_str(&pk, "level", q->level);
        if (q->has_cursors) {
                const cursor_t *c = only ? cursor_of(q, only, false) : NULL;

                mp_pack_str(&pk, "after");
                if (only) {
                        msgpack_pack_map(&pk, 1);
                        mp_pack_kv_u64(&pk, only, c ? c->after : 0);
                } else {
                        msgpack_pack_map(&pk, q->n_cursors);
                        for (size_t k = 0; k < q->n_cursors; k++)
                                mp_pack_kv_u64(&pk, q->cursors[k].instance, q->cursors[k].after);
                }
        }
        if (!api->logd)
                return -ENOTCONN;
        r = bus_pool_call(api->logd, BUS_METHOD_LOGS_QUERY, &args, &opts, ret);
        if (r < 0)
                return r;
        if ((*ret)->error_code) {
                snprintf(q->out_err, sizeof(q->out_err), "husk-logd answered %s: %s", (*ret)->error_code,
                         (*ret)->error_message ?: "");
                return -EREMOTEIO;
        }
        if (!(*ret)->result || (*ret)->result->type != MSGPACK_OBJECT_MAP)
                return -EBADMSG;
        return 0;
}

/* ---- output --------------------------------------------------------------------------------- */

/* One entry as the API shows it: {instance, stream, level, timestamp, message}; its SSE id
 * ("<instance>:<seq>") into ret_id. */
static json_t *entry_to_json(const msgpack_object *e, char *ret_id, size_t id_size) {
        _cleanup_free_ char *instance = NULL, *stream = NULL, *level = NULL;
        const msgpack_object *m = mp_map_get(e, "message");
        uint64_t ts = 0, seq = 0;
        char stamp[32];

        if (mp_get_str(e, "instance", 12, &instance) < 0 || mp_get_str(e, "stream", 16, &stream) < 0 ||
            mp_get_str(e, "level", 16, &level) < 0 || mp_get_u64(e, "ts", &ts) < 0 || mp_get_u64(e, "seq", &seq) < 0 ||
            !m || m->type != MSGPACK_OBJECT_STR)
                return NULL;
        if (ret_id)
                snprintf(ret_id, id_size, "%s:%" PRIu64, instance, seq);
        /* NULL when the message is not UTF-8, which logd never sends. */
        return json_pack("{s:s, s:s, s:s, s:s, s:s%}", "instance", instance, "stream", stream, "level", level,
                         "timestamp", format_timestamp_ms(ts, stamp, sizeof(stamp)), "message", m->via.str.ptr,
                         (size_t)m->via.str.size);
}

static char *entry_json(const msgpack_object *e, char *ret_id, size_t id_size) {
        json_t *o = entry_to_json(e, ret_id, id_size);
        char *text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;

        json_decref(o);
        return text;
}

static bool level_kept(const logs_req_t *q, const msgpack_object *e) {
        const msgpack_object *l = mp_map_get(e, "level");

        for (int k = 0; k <= q->level_rank && k < (int)ELEMENTSOF(levels); k++)
                if (mp_str_eq(l, levels[k]))
                        return true;
        return false;
}

/* Append entries to out as SSE events or as JSON array elements; *first tracks the commas. */
static void format_entries(logs_req_t *q, const msgpack_object *entries, FILE *out, bool *first) {
        for (uint32_t k = 0; k < entries->via.array.size; k++) {
                char id[48];
                _cleanup_free_ char *text = entry_json(&entries->via.array.ptr[k], id, sizeof(id));

                if (!text)
                        continue;
                if (q->sse)
                        fprintf(out, "id: %s\ndata: %s\n\n", id, text);
                else
                        fprintf(out, "%s%s", *first ? "" : ",", text);
                *first = false;
        }
}

static int send_all(http_request_t *req, const char *data, size_t size) {
        return size == 0 || mg_write(req->conn, data, size) == (int)size ? 0 : -EPIPE;
}

/* Write what a memstream gathered; -EPIPE when the client is gone. */
static int flush_out(http_request_t *req, FILE **out, char **buf, size_t *size) {
        int r;

        fclose(*out);
        r = send_all(req, *buf, *size);
        free(*buf);
        *buf = NULL;
        *size = 0;
        *out = open_memstream(buf, size);
        return *out ? r : -ENOMEM;
}

static void take_cursor(logs_req_t *q, const msgpack_object *result) {
        const msgpack_object *c = mp_map_get(result, "cursor");

        if (!c || c->type != MSGPACK_OBJECT_MAP)
                return;
        for (uint32_t k = 0; k < c->via.map.size; k++) {
                const msgpack_object_kv *kv = &c->via.map.ptr[k];
                char id[13];
                cursor_t *cur;

                if (kv->key.type != MSGPACK_OBJECT_STR || kv->key.via.str.size != 12 ||
                    kv->val.type != MSGPACK_OBJECT_POSITIVE_INTEGER)
                        continue;
                memcpy(id, kv->key.via.str.ptr, 12);
                id[12] = '\0';
                cur = cursor_of(q, id, true);
                if (cur && kv->val.via.u64 > cur->after)
                        cur->after = kv->val.via.u64;
        }
        q->has_cursors = true;
}

/* Every page from the current cursors (or the tail), written as it comes. only: one instance. */
static int drain_pages(logs_req_t *q, const char *only, bool with_tail, FILE **out, char **buf, size_t *size,
                       bool *first) {
        for (;;) {
                _cleanup_(bus_reply_freep) bus_reply_t *reply = NULL;
                const msgpack_object *entries;
                bool more = false;
                int r;

                r = call_query(q, only, with_tail && !q->has_cursors, &reply);
                if (r < 0)
                        return r;
                entries = mp_map_get(reply->result, "entries");
                if (entries && entries->type == MSGPACK_OBJECT_ARRAY)
                        format_entries(q, entries, *out, first);
                take_cursor(q, reply->result);
                (void)mp_get_bool(reply->result, "more", &more);
                r = flush_out(q->http, out, buf, size);
                if (r < 0 || !more)
                        return r;
        }
}

static const char *query_error(logs_req_t *q, int r) {
        if (r == -ESHUTDOWN)
                return "husk-apiserver is stopping";
        if (r == -ETIMEDOUT)
                return "husk-logd did not answer in time (is it running?)";
        if (r == -EREMOTEIO)
                return q->out_err;
        if (r == -ENOTCONN)
                return "no husk-logd endpoint is configured";
        return strerror(-r);
}

/* ---- follow ------------------------------------------------------------------------------------ */

/* A log.<deployment> event: entries after our cursor are new; a start beyond it means we missed
 * some (a slow subscriber, logd restarted): those are read from logd first. Returns -EPIPE when
 * the client went away, -EAGAIN when logd could not fill the gap (retry later), 1 when the
 * deployment was purged. */
static int on_log_event(logs_req_t *q, const void *body, size_t size, FILE **out, char **buf, size_t *bsize) {
        msgpack_unpacked u;
        const msgpack_object *entries;
        _cleanup_free_ char *instance = NULL;
        uint64_t start = 0;
        bool purged = false, first = false;
        cursor_t *cur;
        int r = 0;

        msgpack_unpacked_init(&u);
        if (mp_check(body, size) < 0 || msgpack_unpack_next(&u, body, size, NULL) != MSGPACK_UNPACK_SUCCESS ||
            u.data.type != MSGPACK_OBJECT_MAP)
                goto out;
        if (mp_get_bool(&u.data, "purged", &purged) == 0 && purged) {
                r = 1;
                goto out;
        }
        entries = mp_map_get(&u.data, "entries");
        if (mp_get_str(&u.data, "instance", 12, &instance) < 0 || mp_get_u64(&u.data, "start", &start) < 0 ||
            !entries || entries->type != MSGPACK_OBJECT_ARRAY || !instance_id_valid(instance))
                goto out;
        if (q->instance && !streq(q->instance, instance))
                goto out;
        cur = cursor_of(q, instance, true);
        if (!cur)
                goto out;
        if (start > cur->after) {
                r = drain_pages(q, instance, false, out, buf, bsize, &first);
                if (r < 0) {
                        /* logd is restarting: this batch waits for the next catch-up, which
                         * reads it from the store with whatever else we missed. */
                        if (r != -EPIPE)
                                r = -EAGAIN;
                        goto out;
                }
        }
        for (uint32_t k = 0; k < entries->via.array.size; k++) {
                const msgpack_object *e = &entries->via.array.ptr[k];
                uint64_t seq = 0, ts = 0;
                char id[48];

                if (mp_get_u64(e, "seq", &seq) < 0 || seq <= cur->after)
                        continue;
                cur->after = seq;
                if (!level_kept(q, e) || (mp_get_u64(e, "ts", &ts) == 0 && ts < q->since_ms))
                        continue;
                {
                        _cleanup_free_ char *text = entry_json(e, id, sizeof(id));
                        if (text)
                                fprintf(*out, "id: %s\ndata: %s\n\n", id, text);
                }
        }
        r = flush_out(q->http, out, buf, bsize);
out:
        msgpack_unpacked_destroy(&u);
        return r;
}

static int follow(logs_req_t *q, FILE **out, char **buf, size_t *size, bus_sub_t *sub) {
        uint64_t now = now_monotonic_ms(), next_catchup = now + LOGS_CATCHUP_FIRST_MS, last_write = now;
        bool first = true;

        for (;;) {
                _cleanup_free_ char *type = NULL;
                _cleanup_free_ void *body = NULL;
                uint64_t wake;
                size_t n = 0;
                int r;

                if (__atomic_load_n(&q->http->api->stopping, __ATOMIC_SEQ_CST))
                        return -ESHUTDOWN;
                now = now_monotonic_ms();
                wake = next_catchup < last_write + LOGS_HEARTBEAT_MS ? next_catchup : last_write + LOGS_HEARTBEAT_MS;
                if (wake > now + LOGS_TICK_MS)
                        wake = now + LOGS_TICK_MS;
                r = bus_sub_recv(sub, wake > now ? (int)(wake - now) : 0, &type, &body, &n);
                now = now_monotonic_ms();
                if (r == 0) {
                        r = on_log_event(q, body, n, out, buf, size);
                        if (r == 1) {
                                fputs("event: end\ndata: {\"reason\":\"purged\"}\n\n", *out);
                                (void)flush_out(q->http, out, buf, size);
                                return 0;
                        }
                        if (r == -EAGAIN) {
                                if (next_catchup > now + LOGS_RETRY_MS)
                                        next_catchup = now + LOGS_RETRY_MS;
                                continue;
                        }
                        if (r < 0)
                                return r;
                        last_write = now;
                        continue;
                }
                if (r != -ETIMEDOUT)
                        return r;
                if (now >= next_catchup) {
                        r = drain_pages(q, NULL, false, out, buf, size, &first);
                        if (r == -EPIPE)
                                return r;
                        next_catchup = now_monotonic_ms() + (r < 0 ? LOGS_RETRY_MS : LOGS_CATCHUP_MS);
                }
                if (now >= last_write + LOGS_HEARTBEAT_MS) {
                        fputs(": keepalive\n\n", *out);
                        r = flush_out(q->http, out, buf, size);
                        if (r < 0)
                                return r;
                        last_write = now;
                }
        }
}

/* ---- the route ------------------------------------------------------------------------------- */

static bool wants_sse(http_request_t *req) {
        const char *accept = mg_get_header(req->conn, "Accept");

        return accept && strstr(accept, "text/event-stream");
}

int route_deployment_logs(http_request_t *req) {
        _cleanup_free_ logs_req_t *q = calloc(1, sizeof(logs_req_t));
        _cleanup_free_ char *buf = NULL;
        char level[16] = "", instance[16] = "", events[128];
        const char *endpoints[1];
        bus_sub_t *sub = NULL;
        bool following = false, first = true;
        size_t size = 0;
        FILE *out = NULL;
        int r, status;

        if (!q)
                return http_reply_internal(req, ENOMEM, "reading the logs");
        q->http = req;
        q->deployment_id = req->arg;
        r = parse_params(req, q, level, instance, &following);
        if (r > 0)
                return r;
        q->sse = following || wants_sse(req);

        r = route_deployment_need(req, NULL);
        if (r > 0)
                return r;

        if (following) {
                if (atomic_fetch_add(&followers, 1) >= LOGS_FOLLOW_MAX) {
                        atomic_fetch_sub(&followers, 1);
                        return http_reply_problem(req, 503, "too-many-followers", "Service unavailable", NULL,
                                                  "%d clients already follow logs; try again later", LOGS_FOLLOW_MAX);
                }
                /* Subscribed before the first page: whatever logd stores after it reaches us. */
                endpoints[0] = req->api->logd_events;
                snprintf(events, sizeof(events), "log.%s", req->arg);
                r = bus_sub_new(endpoints, 1, &sub);
                if (r >= 0)
                        r = bus_sub_subscribe(sub, events);
                if (r < 0) {
                        atomic_fetch_sub(&followers, 1);
                        bus_sub_destroy(&sub);
                        return http_reply_internal(req, r, "subscribing to husk-logd");
                }
        }

        /* The first page decides between an error status and a stream. */
        {
                _cleanup_(bus_reply_freep) bus_reply_t *reply = NULL;
                const msgpack_object *entries;
                bool more = false;

                r = call_query(q, NULL, true, &reply);
                if (r < 0) {
                        status = http_reply_problem(req, 503, "logd-unavailable", "Service unavailable", NULL,
                                                    "cannot read the logs: %s", query_error(q, r));
                        goto done;
                }
                entries = mp_map_get(reply->result, "entries");
                if (!entries || entries->type != MSGPACK_OBJECT_ARRAY) {
                        status = http_reply_internal(req, EBADMSG, "reading husk-logd's answer");
                        goto done;
                }
                take_cursor(q, reply->result);
                (void)mp_get_bool(reply->result, "more", &more);
                out = open_memstream(&buf, &size);
                if (!out) {
                        status = http_reply_internal(req, ENOMEM, "encoding the logs");
                        goto done;
                }
                if (!q->sse && !more) {
                        /* The common case, tail N: one reply with its length. */
                        json_t *list = json_array();
                        for (uint32_t k = 0; list && k < entries->via.array.size; k++) {
                                json_t *e = entry_to_json(&entries->via.array.ptr[k], NULL, 0);
                                if (e && json_array_append_new(list, e) < 0) {
                                        json_decref(list);
                                        list = NULL;
                                }
                        }
                        status = list ? http_reply_json(req, 200, list, NULL)
                                      : http_reply_internal(req, ENOMEM, "encoding the logs");
                        goto done;
                }
                /* A stream: the body ends when the connection does. */
                mg_disable_connection_keep_alive(req->conn);
                fprintf(out,
                        "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nCache-Control: no-store\r\nConnection: close\r\n"
                        "X-Accel-Buffering: no\r\n\r\n%s",
                        q->sse ? "text/event-stream" : "application/json", q->sse ? "" : "[");
                format_entries(q, entries, out, &first);
                status = 200;
                r = flush_out(req, &out, &buf, &size);
                if (r < 0)
                        goto done;
                if (more)
                        r = drain_pages(q, NULL, false, &out, &buf, &size, &first);
        }
        if (r >= 0 && following)
                r = follow(q, &out, &buf, &size, sub);
        if (r == -EPIPE)
                goto done; /* the client left */
        if (r < 0) {
                /* JSON: the array stays open, so that a client cannot take a cut list for all. */
                if (q->sse) {
                        json_t *e = json_pack("{s:s}", "detail", query_error(q, r));
                        _cleanup_free_ char *text = e ? json_dumps(e, JSON_COMPACT) : NULL;
                        fprintf(out, "event: error\ndata: %s\n\n", text ?: "{}");
                        json_decref(e);
                }
                log_warning("GET /deployments/%s/logs: stream cut short: %s", req->arg, query_error(q, r));
        } else if (q->sse)
                fputs("event: end\ndata: {}\n\n", out);
        else
                fputs("]", out);
        (void)flush_out(req, &out, &buf, &size);
done:
        if (out)
                fclose(out);
        if (sub) {
                bus_sub_destroy(&sub);
                atomic_fetch_sub(&followers, 1);
        }
        return status;
}
