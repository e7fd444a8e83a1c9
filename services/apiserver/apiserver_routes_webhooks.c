/* apiserver_routes_webhooks.c: /webhooks: create, list, get, delete, and each one's delivery
 * history. No answer ever holds a webhook's secret: it goes in once and only signs deliveries.
 *
 * A webhook sends events of every namespace its filter names, or of all of them: a token bound
 * to namespaces sees, makes and deletes only webhooks whose filter names some of its own and
 * none other, so that it cannot forward what it may not read. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/log.h"
#include "services/apiserver/apiserver_http.h"
#include "services/apiserver/apiserver_json.h"
#include "services/apiserver/apiserver_store_webhooks.h"

#define DELIVERIES_DEFAULT_LIMIT 50

static bool visible(const auth_identity_t *who, const webhook_filter_t *f) {
        if (!who || who->n_namespaces == 0)
                return true;
        if (f->n_namespaces == 0)
                return false;
        for (size_t i = 0; i < f->n_namespaces; i++)
                if (!auth_namespace_allowed(who, f->namespaces[i]))
                        return false;
        return true;
}

static json_t *webhook_to_json(const store_webhook_t *w) {
        char created[32];

        return json_pack("{s:s, s:s?, s:s, s:o, s:s}", "id", w->id, "name", w->name[0] ? w->name : NULL, "url", w->url,
                         "filter", webhook_filter_to_json(&w->filter), "created_at",
                         format_timestamp_ms(w->created_at, created, sizeof(created)));
}

static json_t *delivery_to_json(const store_delivery_t *d) {
        char created[32], updated[32], next[32];
        json_t *j, *history = json_array();

        for (size_t i = 0; history && i < d->n_history; i++) {
                const store_attempt_t *a = &d->history[i];
                char at[32];

                json_array_append_new(history, json_pack("{s:I, s:s, s:I, s:i, s:s}", "attempt", (json_int_t)a->attempt,
                                                         "at", format_timestamp_ms(a->at, at, sizeof(at)),
                                                         "duration_ms", (json_int_t)a->duration_ms, "status", a->status,
                                                         "error", a->error ?: ""));
        }
        j = json_pack("{s:I, s:s, s:I, s:s, s:s, s:I, s:s?, s:i, s:s, s:s, s:s, s:o, s:o}", "id", (json_int_t)d->id,
                      "webhook_id", d->webhook_id, "event_id", (json_int_t)d->event_id, "reason", d->reason, "state",
                      store_delivery_state_name(d->state), "attempts", (json_int_t)d->attempts, "next_attempt_at",
                      d->state == STORE_DELIVERY_PENDING ? format_timestamp_ms(d->next_attempt_at, next, sizeof(next))
                                                         : NULL,
                      "last_status", d->last_status, "last_error", d->last_error ?: "", "created_at",
                      format_timestamp_ms(d->created_at, created, sizeof(created)), "updated_at",
                      format_timestamp_ms(d->updated_at, updated, sizeof(updated)), "event",
                      stored_json_load(d->body) ?: json_null(), "history", history ?: json_array());
        return j;
}

static int reply_invalid(http_request_t *req, json_t *violations) {
        size_t n = json_array_size(violations);

        return http_reply_problem(req, 422, "invalid-webhook", "Invalid webhook", violations,
                                  "the webhook has %zu problem%s to fix", n, n == 1 ? "" : "s");
}

static void violation(json_t *violations, const char *field, const char *reason) {
        json_array_append_new(violations, json_pack("{s:s, s:s}", "field", field, "reason", reason));
}

/* The body holds the secret: no message below quotes it. */
int route_webhooks_create(http_request_t *req) {
        json_auto_t *input = NULL, *violations = json_array();
        const json_t *name, *url, *secret;
        webhook_filter_t f = {};
        store_webhook_t w = {};
        char location[128];
        const char *key, *problem;
        json_t *v;
        int r;

        r = route_read_object(req, "{\"url\", \"secret\", \"name\"?, \"filter\"?}", &input);
        if (r > 0)
                return r;
        if (!json_is_object(input)) {
                violation(violations, "(body)", "a map: {url, secret, name?, filter?}");
                return reply_invalid(req, TAKE_PTR(violations));
        }
        json_object_foreach(input, key, v) {
                char field[64];

                if (streq(key, "url") || streq(key, "secret") || streq(key, "name") || streq(key, "filter"))
                        continue;
                snprintf(field, sizeof(field), "%.60s", key);
                violation(violations, field, "unknown field: a webhook has url, secret, name and filter");
        }
        name = json_object_get(input, "name");
        if (name && !json_is_null(name) && (!json_is_string(name) || !manifest_name_is_valid(json_string_value(name))))
                violation(violations, "name",
                          "1 to 63 of a-z, 0-9 and '-', starting and ending with a letter or digit");
        url = json_object_get(input, "url");
        problem = webhook_url_problem(json_string_value(url));
        if (problem || (url && !json_is_string(url)))
                violation(violations, "url", problem ?: "required: an http:// or https:// URL");
        secret = json_object_get(input, "secret");
        if (!json_is_string(secret) || json_string_length(secret) < WEBHOOK_SECRET_MIN ||
            json_string_length(secret) > WEBHOOK_SECRET_MAX ||
            strlen(json_string_value(secret)) != json_string_length(secret))
                violation(violations, "secret",
                          "required: 16 to 1024 bytes without NUL, which sign every delivery (HMAC-SHA256)");
        (void)webhook_filter_from_json(json_object_get(input, "filter"), "filter", violations, &f);
        if (json_array_size(violations) > 0) {
                webhook_filter_clear(&f);
                return reply_invalid(req, TAKE_PTR(violations));
        }
        if (!visible(req->who, &f)) {
                webhook_filter_clear(&f);
                return http_reply_problem(req, 403, "forbidden", "Forbidden", NULL,
                                          "this token is bound to namespaces: give filter.namespaces, naming only "
                                          "those");
        }
        snprintf(req->audit_target, sizeof(req->audit_target), "%s", json_string_value(name) ?: "");
        r = store_webhook_create(req->api->store, json_string_value(name) ?: "", json_string_value(url), &f,
                                 json_string_value(secret), json_string_length(secret), &w);
        webhook_filter_clear(&f);
        if (r == -EEXIST)
                return http_reply_problem(req, 409, "conflict", "Conflict", NULL,
                                          "a webhook named \"%s\" exists already", json_string_value(name));
        if (r < 0)
                return http_reply_internal(req, r, "storing the webhook");
        log_info("Webhook %s%s%s created by %s", w.id, w.name[0] ? " " : "", w.name, req->who->name);
        snprintf(req->audit_target, sizeof(req->audit_target), "%s", w.id);
        snprintf(location, sizeof(location), "Location: /webhooks/%s\r\n", w.id);
        r = http_reply_json(req, 201, webhook_to_json(&w), location);
        store_webhook_clear(&w);
        return r;
}

int route_webhooks_list(http_request_t *req) {
        store_webhook_t *a = NULL;
        json_t *list;
        size_t n = 0;
        int r;

        r = store_webhook_list(req->api->store, &a, &n);
        if (r < 0)
                return http_reply_internal(req, r, "listing webhooks");
        list = json_array();
        for (size_t i = 0; list && i < n; i++)
                if (visible(req->who, &a[i].filter))
                        json_array_append_new(list, webhook_to_json(&a[i]));
        store_webhook_array_free(a, n);
        return http_reply_json(req, 200, list, NULL);
}

/* The webhook req->arg names (id or name): 0 with it in *ret, else the status of the reply sent. */
static int need_webhook(http_request_t *req, store_webhook_t *ret) {
        int r;

        r = store_webhook_get(req->api->store, req->arg, ret);
        if (r == 0 && !visible(req->who, &ret->filter)) {
                store_webhook_clear(ret);
                r = -ENOENT;
        }
        if (r == -ENOENT)
                return http_reply_problem(req, 404, "not-found", "Not found", NULL, "no webhook \"%.64s\"", req->arg);
        if (r < 0)
                return http_reply_internal(req, r, "reading the webhook");
        snprintf(req->audit_target, sizeof(req->audit_target), "%s", ret->id);
        return 0;
}

int route_webhook_get(http_request_t *req) {
        store_webhook_t w = {};
        int r;

        r = need_webhook(req, &w);
        if (r > 0)
                return r;
        r = http_reply_json(req, 200, webhook_to_json(&w), NULL);
        store_webhook_clear(&w);
        return r;
}

int route_webhook_delete(http_request_t *req) {
        store_webhook_t w = {};
        int r;

        r = need_webhook(req, &w);
        if (r > 0)
                return r;
        r = store_webhook_delete(req->api->store, w.id);
        if (r < 0 && r != -ENOENT) {
                store_webhook_clear(&w);
                return http_reply_internal(req, r, "deleting the webhook");
        }
        log_info("Webhook %s deleted by %s, with its deliveries", w.id, req->who->name);
        store_webhook_clear(&w);
        return http_reply_no_content(req);
}

int route_webhook_deliveries(http_request_t *req) {
        store_delivery_t *a = NULL;
        store_webhook_t w = {};
        uint64_t limit = DELIVERIES_DEFAULT_LIMIT;
        char value[24];
        json_t *list;
        size_t n = 0;
        int r;

        r = http_query(req, "limit", 0, value, sizeof(value));
        if (r < 0 || (r > 0 && (parse_u64(value, &limit) < 0 || limit == 0 || limit > STORE_DELIVERIES_LIST_MAX)))
                return http_reply_problem(req, 400, "bad-query", "Bad request",
                                          json_pack("[{s:s, s:s}]", "field", "limit", "reason", "1 to 1000"),
                                          "limit: 1 to %d", STORE_DELIVERIES_LIST_MAX);
        r = need_webhook(req, &w);
        if (r > 0)
                return r;
        r = store_delivery_list(req->api->store, w.id, (size_t)limit, &a, &n);
        store_webhook_clear(&w);
        if (r < 0)
                return http_reply_internal(req, r, "listing the webhook's deliveries");
        list = json_array();
        for (size_t i = 0; list && i < n; i++)
                json_array_append_new(list, delivery_to_json(&a[i]));
        store_delivery_array_free(a, n);
        return http_reply_json(req, 200, list, NULL);
}
