/* apiserver_routes_exec.c: POST /deployments/{id}/exec: run a command in one instance through vmm-driver and husk-agent. */
#include <civetweb.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "lib/log.h"
#include "lib/mp.h"
#include "lib/nesting.h"
#include "services/apiserver/apiserver_bus.h"
#include "services/apiserver/apiserver_http.h"
#include "services/apiserver/apiserver_json.h"

#define EXEC_DEFAULT_TIMEOUT_MS 60000u
#define EXEC_TIMEOUT_MAX_MS (24u * 3600u * 1000u)
/* vmm-driver and the agent answer a timed-out command themselves; this covers a lost reply. */
#define EXEC_CALL_GRACE_MS 15000u

static int bad_request(http_request_t *req, const char *field, const char *reason) {
        json_t *v = json_pack("[{s:s, s:s}]", "field", field, "reason", reason);

        return http_reply_problem(req, 400, "invalid-exec", "Invalid exec request", v, "%s: %s", field, reason);
}

/* Output as JSON text: invalid UTF-8 bytes become U+FFFD, as a terminal would show them. */
static json_t *text_json(const msgpack_object *o) {
        const unsigned char *p;
        size_t n, k = 0;
        char *buf, *q;
        json_t *j;

        if (!o || (o->type != MSGPACK_OBJECT_BIN && o->type != MSGPACK_OBJECT_STR))
                return json_string("");
        p = (const unsigned char *)(o->type == MSGPACK_OBJECT_BIN ? o->via.bin.ptr : o->via.str.ptr);
        n = o->type == MSGPACK_OBJECT_BIN ? o->via.bin.size : o->via.str.size;
        buf = malloc(n * 3 + 1);
        if (!buf)
                return NULL;
        q = buf;
        while (k < n) {
                size_t len = p[k] < 0x80             ? 1
                             : (p[k] & 0xe0) == 0xc0 ? 2
                             : (p[k] & 0xf0) == 0xe0 ? 3
                             : (p[k] & 0xf8) == 0xf0 ? 4
                                                     : 0;
                bool ok = len > 0 && k + len <= n && p[k] != 0;

                for (size_t x = 1; ok && x < len; x++)
                        ok = (p[k + x] & 0xc0) == 0x80;
                if (ok && len > 1) {
                        j = json_stringn((const char *)p + k, len);
                        ok = j != NULL;
                        json_decref(j);
                }
                if (!ok) {
                        memcpy(q, "\xef\xbf\xbd", 3);
                        q += 3;
                        k++;
                        continue;
                }
                memcpy(q, p + k, len);
                q += len;
                k += len;
        }
        j = json_stringn(buf, (size_t)(q - buf));
        free(buf);
        return j;
}

/* The instance to run in: the one asked for (it must be this deployment's), or the oldest ready one. */
static int pick_instance(http_request_t *req, const char *deployment_id, const char *wanted, char *ret, size_t size) {
        _cleanup_free_ char *error = NULL;
        json_auto_t *instances = NULL;
        json_t *i;
        size_t k;
        int r;

        r = apiserver_instances(req->api, deployment_id, &instances, &error);
        if (r < 0)
                return http_reply_problem(req, 503, "unavailable", "Service unavailable", NULL, "%s",
                                          error ?: strerror(-r));
        json_array_foreach(instances, k, i) {
                const char *id = json_string_value(json_object_get(i, "instance_id"));
                const char *state = json_string_value(json_object_get(i, "state"));

                if (!id || !state)
                        continue;
                if (wanted && !streq(wanted, id))
                        continue;
                if (!streq(state, "ready") && !(wanted && streq(state, "running")))
                        return http_reply_problem(req, 409, "instance-not-ready", "Instance not ready", NULL,
                                                  "instance %s is %s: exec needs a running VM whose husk-agent is up",
                                                  id, state);
                snprintf(ret, size, "%s", id);
                return 0;
        }
        if (wanted)
                return http_reply_problem(req, 404, "not-found", "Not found", NULL, "deployment %s has no instance %s",
                                          deployment_id, wanted);
        return http_reply_problem(req, 409, "no-ready-instance", "No ready instance", NULL,
                                  "deployment %s has no ready instance to exec in", deployment_id);
}

static const char *const exec_fields[] = { "command", "instance", "env", "timeout", "cwd", "stdin" };

/* Every field of the body checked, before anything is looked up: a malformed request is told so
 * whatever state the deployment is in. 0, or the HTTP status already sent. */
static int check_args(http_request_t *req, const json_t *in, uint64_t *ret_timeout) {
        const json_t *command = json_object_get(in, "command"), *env = json_object_get(in, "env");
        const json_t *timeout = json_object_get(in, "timeout"), *cwd = json_object_get(in, "cwd");
        const json_t *input = json_object_get(in, "stdin"), *instance = json_object_get(in, "instance"), *v;
        uint64_t timeout_ms = EXEC_DEFAULT_TIMEOUT_MS;
        const char *key;
        size_t k;

        json_object_foreach((json_t *)in, key, v) {
                bool known = false;

                for (size_t i = 0; i < ELEMENTSOF(exec_fields) && !known; i++)
                        known = streq(key, exec_fields[i]);
                if (!known) {
                        size_t n = strnlen(key, 64);
                        char field[72];

                        /* Cut on a UTF-8 boundary: the name goes back as a JSON string. */
                        while (n > 0 && key[n] && ((unsigned char)key[n] & 0xC0) == 0x80)
                                n--;
                        snprintf(field, sizeof(field), "%.*s", (int)n, key);
                        return bad_request(req, field,
                                           "unknown field: an exec request has command, instance, env, timeout, "
                                           "cwd and stdin (no tty: output is collected, not streamed)");
                }
        }
        if (instance && !json_is_null(instance) &&
            (!json_is_string(instance) || json_string_length(instance) == 0 ||
             json_string_length(instance) > PROTO_ID_MAX))
                return bad_request(req, "instance",
                                   "must be an instance id (a string, as listed by GET /deployments/{id})");
        if (!json_is_array(command) || json_array_size(command) == 0 || json_array_size(command) > MP_STRV_MAX)
                return bad_request(req, "command", "must be a non-empty list of strings");
        json_array_foreach(
                command, k,
                v) if (!json_is_string(v) ||
                       (k == 0 && !*json_string_value(v))) return bad_request(req, "command",
                                                                              "must be a non-empty list of strings");
        if (env && !json_is_null(env)) {
                if (!json_is_object(env) || json_object_size(env) > MP_STRV_MAX)
                        return bad_request(req, "env", "must be a map of variable names to strings");
                json_object_foreach(
                        (json_t *)env, key,
                        v) if (!json_is_string(v) || !*key ||
                               strchr(key, '=')) return bad_request(req, "env",
                                                                    "must be a map of variable names to strings");
        }
        if (timeout && json_is_string(timeout)) {
                if (parse_duration_ms(json_string_value(timeout), &timeout_ms) < 0)
                        return bad_request(req, "timeout", "must be a duration such as \"30s\" or a number of seconds");
        } else if (timeout && json_is_number(timeout)) {
                double s = json_number_value(timeout);
                if (s <= 0 || s > EXEC_TIMEOUT_MAX_MS / 1000)
                        return bad_request(req, "timeout", "must be between 1 ms and 24 h");
                timeout_ms = (uint64_t)(s * 1000);
        } else if (timeout && !json_is_null(timeout))
                return bad_request(req, "timeout", "must be a duration such as \"30s\" or a number of seconds");
        if (timeout_ms == 0 || timeout_ms > EXEC_TIMEOUT_MAX_MS)
                return bad_request(req, "timeout", "must be between 1 ms and 24 h");
        if (cwd && !json_is_null(cwd) && (!json_is_string(cwd) || json_string_value(cwd)[0] != '/'))
                return bad_request(req, "cwd", "must be an absolute path");
        if (input && !json_is_null(input) && !json_is_string(input))
                return bad_request(req, "stdin", "must be a string");
        *ret_timeout = timeout_ms;
        return 0;
}

/* The checked body into instance.exec arguments. */
static void pack_args(const json_t *in, const char *instance_id, uint64_t timeout_ms, msgpack_packer *pk) {
        const json_t *command = json_object_get(in, "command"), *env = json_object_get(in, "env");
        const json_t *cwd = json_object_get(in, "cwd"), *input = json_object_get(in, "stdin"), *v;
        const char *key;
        size_t k;

        msgpack_pack_map(pk, 4 + (json_is_object(env) ? 1 : 0) + (json_is_string(cwd) ? 1 : 0) +
                                     (json_is_string(input) ? 1 : 0));
        mp_pack_kv_str(pk, "instance_id", instance_id);
        mp_pack_str(pk, "argv");
        msgpack_pack_array(pk, json_array_size(command));
        json_array_foreach(command, k, v) mp_pack_str(pk, json_string_value(v));
        if (json_is_object(env)) {
                mp_pack_str(pk, "env");
                msgpack_pack_map(pk, json_object_size(env));
                json_object_foreach((json_t *)env, key, v) mp_pack_kv_str(pk, key, json_string_value(v));
        }
        if (json_is_string(cwd))
                mp_pack_kv_str(pk, "cwd", json_string_value(cwd));
        if (json_is_string(input)) {
                mp_pack_str(pk, "stdin");
                msgpack_pack_bin(pk, json_string_length(input));
                msgpack_pack_bin_body(pk, json_string_value(input), json_string_length(input));
        }
        mp_pack_kv_u64(pk, "timeout_ms", timeout_ms);
        mp_pack_kv_str(pk, "from", "apiserver");
}

int route_deployment_exec(http_request_t *req) {
        _cleanup_free_ char *body = NULL, *wanted = NULL;
        _cleanup_(store_deployment_clear) store_deployment_t d = {};
        _cleanup_(bus_reply_freep) bus_reply_t *reply = NULL;
        json_auto_t *in = NULL, *out = NULL;
        char instance_id[PROTO_ID_MAX + 1], path[128];
        msgpack_sbuffer args;
        msgpack_packer pk;
        uint64_t timeout_ms = 0;
        json_error_t jerr;
        int64_t status;
        size_t size;
        int r;

        r = http_read_body(req, &body, &size);
        if (r < 0)
                return http_reply_body_error(req, r);
        r = body_json_load(body, size, JSON_REJECT_DUPLICATES, &in, &jerr, path, sizeof(path));
        if (r == -ELOOP) {
                char reason[64];

                snprintf(reason, sizeof(reason), HUSK_NESTING_REASON, HUSK_NESTING_MAX);
                return bad_request(req, path, reason);
        }
        if (!json_is_object(in))
                return http_reply_problem(
                        req, 400, "malformed-json", "Malformed JSON", NULL,
                        "send {\"command\": [...], \"instance\"?, \"env\"?, \"timeout\"?, \"cwd\"?, \"stdin\"?}");
        r = check_args(req, in, &timeout_ms);
        if (r != 0)
                return r;
        r = route_deployment_need(req, &d);
        if (r > 0)
                return r;
        if (json_is_string(json_object_get(in, "instance")))
                wanted = strndup(json_string_value(json_object_get(in, "instance")), PROTO_ID_MAX);
        r = pick_instance(req, d.d.id, wanted, instance_id, sizeof(instance_id));
        if (r != 0)
                return r;

        msgpack_sbuffer_init(&args);
        msgpack_packer_init(&pk, &args, msgpack_sbuffer_write);
        pack_args(in, instance_id, timeout_ms, &pk);
        /* An exec may take minutes: it has a client of its own from the pool, so it holds up
         * no other call. */
        r = bus_pool_call(req->api->vmm, BUS_METHOD_INSTANCE_EXEC, &args,
                          &(bus_call_opts_t){ .timeout_ms = timeout_ms + EXEC_CALL_GRACE_MS }, &reply);
        msgpack_sbuffer_destroy(&args);
        if (r == -ETIMEDOUT)
                return http_reply_problem(req, 504, "timeout", "Gateway timeout", NULL,
                                          "vmm-driver did not answer the exec in instance %s in time", instance_id);
        if (r < 0)
                return http_reply_problem(req, 503, "unavailable", "Service unavailable", NULL,
                                          "cannot ask vmm-driver: %s", strerror(-r));
        if (reply->error_code) {
                int code = streq(reply->error_code, BUS_ERR_INVALID)     ? 400
                           : streq(reply->error_code, BUS_ERR_NOT_FOUND) ? 404
                           : streq(reply->error_code, BUS_ERR_CONFLICT)  ? 409
                                                                         : 503;
                return http_reply_problem(req, code, code == 503 ? "agent-unavailable" : "exec-refused",
                                          code == 503 ? "Guest agent unavailable" : "Exec refused", NULL, "%s",
                                          reply->error_message ?: reply->error_code);
        }
        if (mp_get_i64(reply->result, "exit_status", &status) < 0)
                return http_reply_internal(req, EBADMSG, "reading vmm-driver's exec answer");
        out = json_object();
        if (!out || json_object_set_new(out, "instance_id", json_string(instance_id)) < 0 ||
            json_object_set_new(out, "exit_status", json_integer(status)) < 0 ||
            json_object_set_new(out, "stdout", text_json(mp_map_get(reply->result, "stdout"))) < 0 ||
            json_object_set_new(out, "stderr", text_json(mp_map_get(reply->result, "stderr"))) < 0 ||
            json_object_set_new(out, "timed_out",
                                json_boolean(mp_map_get(reply->result, "timed_out") &&
                                             mp_map_get(reply->result, "timed_out")->type == MSGPACK_OBJECT_BOOLEAN &&
                                             mp_map_get(reply->result, "timed_out")->via.boolean)) < 0 ||
            json_object_set_new(out, "truncated",
                                json_boolean(mp_map_get(reply->result, "truncated") &&
                                             mp_map_get(reply->result, "truncated")->type == MSGPACK_OBJECT_BOOLEAN &&
                                             mp_map_get(reply->result, "truncated")->via.boolean)) < 0)
                return http_reply_internal(req, ENOMEM, "encoding the exec answer");
        return http_reply_json(req, 200, TAKE_PTR(out), NULL);
}
