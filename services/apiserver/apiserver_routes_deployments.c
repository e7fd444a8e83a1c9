/* apiserver_routes_deployments.c: POST, GET and DELETE on /deployments, Ring's REST paths. */
#include <civetweb.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "lib/log.h"
#include "lib/nesting.h"
#include "services/apiserver/apiserver_bus.h"
#include "services/apiserver/apiserver_http.h"
#include "services/apiserver/apiserver_json.h"
#include "services/apiserver/apiserver_manifest.h"
#include "services/apiserver/apiserver_ports.h"

#define LABEL_FILTER_MAX 512 /* "prefix/name=value": 253 + 1 + 63 + 1 + 63, rounded up */

static void store_deployment_clearp(store_deployment_t *d) {
        store_deployment_clear(d);
}
#define _cleanup_deployment_ _cleanup_(store_deployment_clearp)

static int reply_not_found(http_request_t *req) {
        return http_reply_problem(req, 404, "not-found", "Not found", NULL, "no deployment with id \"%.64s\"",
                                  req->arg);
}

/* ---- POST /deployments ------------------------------------------------------------------- */

static const struct {
        int status;
        const char *event; /* NULL: nothing happened worth an event */
        const char *result;
} apply_outcomes[] = {
        [STORE_APPLY_CREATED] = { 201, "deployment.created", "created" },
        [STORE_APPLY_UPDATED] = { 200, "deployment.updated", "updated" },
        [STORE_APPLY_UNCHANGED] = { 200, NULL, "unchanged" },
};

int route_deployments_apply(http_request_t *req) {
        _cleanup_free_ char *body = NULL;
        _cleanup_(manifest_clear) manifest_t m = {};
        _cleanup_deployment_ store_deployment_t d = {};
        json_auto_t *input = NULL, *violations = NULL;
        json_error_t error;
        char headers[160], conflict[256], path[256], dry_run[8] = "";
        size_t size;
        int r;

        /* Kubernetes' dryRun=All: every check an apply makes, nothing stored (`husk apply` checks
         * every document of a file this way before it applies any). */
        r = http_query(req, "dryRun", 0, dry_run, sizeof(dry_run));
        if (r < 0 || (r > 0 && !streq(dry_run, "All")))
                return http_reply_problem(req, 400, "bad-query", "Bad request", NULL,
                                          "dryRun: All (validate and check conflicts, store nothing), or leave it out");

        r = http_read_body(req, &body, &size);
        if (r == -EFBIG)
                return http_reply_problem(req, 413, "payload-too-large", "Payload too large", NULL,
                                          "the request body exceeds %u bytes; send one deployment manifest",
                                          HTTP_BODY_MAX);
        if (r < 0)
                return http_reply_body_error(req, r);
        if (size == 0)
                return http_reply_problem(req, 400, "malformed-json", "Malformed JSON", NULL,
                                          "the request body is empty: send one deployment as a JSON object");

        r = body_json_load(body, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &input, &error, path, sizeof(path));
        if (r == -ELOOP)
                return http_reply_problem(req, 422, "invalid-manifest", "Invalid deployment manifest",
                                          json_pack("[{s:s, s:o}]", "field", path, "reason",
                                                    json_sprintf(HUSK_NESTING_REASON, HUSK_NESTING_MAX)),
                                          "%s: " HUSK_NESTING_REASON, path, HUSK_NESTING_MAX);
        if (r < 0)
                return http_reply_problem(req, 400, "malformed-json", "Malformed JSON", NULL,
                                          "invalid JSON at line %d, column %d: %s", error.line, error.column,
                                          error.text);

        r = manifest_parse(input, &m, &violations);
        if (r == -EINVAL) {
                size_t n = json_array_size(violations);

                return http_reply_problem(req, 422, "invalid-manifest", "Invalid deployment manifest",
                                          TAKE_PTR(violations), "the deployment manifest has %zu problem%s to fix", n,
                                          n == 1 ? "" : "s");
        }
        if (r < 0)
                return http_reply_internal(req, r, "validating the manifest");

        /* A host port forwards to one VM: the second deployment asking for it is refused here,
         * where the user sees why, rather than crash-looping on PortAllocationFailed. */
        r = apiserver_ports_conflict(req->api->store, &m, conflict, sizeof(conflict));
        if (r == -EADDRINUSE)
                return http_reply_problem(req, 409, "port-conflict", "Published port already taken", NULL, "%s",
                                          conflict);
        if (r < 0)
                return http_reply_internal(req, r, "checking published ports");
        if (dry_run[0])
                return http_reply_json(req, 200,
                                       json_pack("{s:s, s:s, s:b, s:O}", "namespace", m.namespace_, "name", m.name,
                                                 "dry_run", 1, "spec", m.spec),
                                       "Husk-Apply-Result: valid\r\n");

        r = store_deployment_apply(req->api->store, &m, &d);
        if (r == -EBUSY)
                return http_reply_problem(req, 409, "conflict", "Conflict", NULL,
                                          "deployment %s/%s is still being deleted; apply again once it is gone",
                                          m.namespace_, m.name);
        if (r < 0)
                return http_reply_internal(req, r, "storing the deployment");

        if (apply_outcomes[r].event) {
                log_info("Deployment %s/%s (%s) %s, generation %" PRIu64, d.d.namespace_, d.d.name, d.d.id,
                         apply_outcomes[r].result, d.d.generation);
                apiserver_publish(req->api, apply_outcomes[r].event, &d, NULL);
                apiserver_event(req->api, d.d.id, EVENT_LEVEL_INFO,
                                r == STORE_APPLY_CREATED ? EVENT_CREATED : EVENT_UPDATED,
                                "%s, generation %" PRIu64 ": %u replica%s of %s", apply_outcomes[r].result,
                                d.d.generation, d.d.replicas, d.d.replicas == 1 ? "" : "s", d.d.image);
                apiserver_warn_ignored(req->api, &d);
        }
        /* The body is the deployment either way; the header tells `husk apply` what it did. */
        snprintf(headers, sizeof(headers), "Husk-Apply-Result: %s\r\nLocation: /deployments/%s\r\n",
                 apply_outcomes[r].result, d.d.id);
        return http_reply_json(req, apply_outcomes[r].status, deployment_to_json(&d), headers);
}

/* ---- GET /deployments -------------------------------------------------------------------- */

static const char *const statuses[] = {
        DEPLOYMENT_STATUS_PENDING, DEPLOYMENT_STATUS_CREATING, DEPLOYMENT_STATUS_RUNNING,
        DEPLOYMENT_STATUS_COMPLETED, DEPLOYMENT_STATUS_FAILED, DEPLOYMENT_STATUS_CRASH_LOOP,
        DEPLOYMENT_STATUS_INSUFFICIENT_RESOURCES, DEPLOYMENT_STATUS_DELETED,
};

static bool one_of(const char *s, const char *const *list, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (streq(s, list[i]))
                        return true;
        return false;
}

/* "key=value" into a filter entry pointing into s (which it modifies). */
static bool parse_selector(char *s, store_label_t *ret) {
        char *eq = strchr(s, '=');

        if (!eq || eq == s)
                return false;
        *eq = '\0';
        ret->key = s;
        ret->value = eq + 1;
        return true;
}

int route_deployments_list(http_request_t *req) {
        char namespace_[MANIFEST_NAME_MAX + 1], status[32], selector[4096];
        char label_bufs[STORE_LABEL_FILTERS_MAX][LABEL_FILTER_MAX];
        store_label_t labels[STORE_LABEL_FILTERS_MAX];
        store_filter_t filter = { .labels = labels };
        store_deployment_t *a = NULL;
        json_auto_t *list = NULL;
        size_t n = 0;
        int r;

        r = http_query(req, "namespace", 0, namespace_, sizeof(namespace_));
        if (r < 0)
                return http_reply_problem(req, 400, "bad-query", "Bad request", NULL,
                                          "namespace: longer than %d characters", MANIFEST_NAME_MAX);
        if (r > 0)
                filter.namespace_ = namespace_;

        r = http_query(req, "status", 0, status, sizeof(status));
        if (r < 0 || (r > 0 && !one_of(status, statuses, ELEMENTSOF(statuses))))
                return http_reply_problem(req, 400, "bad-query", "Bad request", NULL,
                                          "status: \"%.32s\" is not a status; use pending, creating, running, "
                                          "completed, failed, crash_loop_back_off, insufficient_resources or deleted",
                                          r < 0 ? "(too long)" : status);
        if (r > 0)
                filter.status = status;

        for (unsigned i = 0;; i++) {
                if (filter.n_labels == STORE_LABEL_FILTERS_MAX)
                        return http_reply_problem(req, 400, "bad-query", "Bad request", NULL,
                                                  "at most %d label filters", STORE_LABEL_FILTERS_MAX);
                r = http_query(req, "label", i, label_bufs[filter.n_labels], LABEL_FILTER_MAX);
                if (r == 0)
                        break;
                if (r < 0 || !parse_selector(label_bufs[filter.n_labels], &labels[filter.n_labels]))
                        return http_reply_problem(req, 400, "bad-query", "Bad request", NULL,
                                                  "label: each must be key=value (e.g. label=app=web)");
                filter.n_labels++;
        }

        r = http_query(req, "labelSelector", 0, selector, sizeof(selector));
        if (r < 0)
                return http_reply_problem(req, 400, "bad-query", "Bad request", NULL, "labelSelector: too long");
        if (r > 0) {
                char *state = NULL;

                for (char *term = strtok_r(selector, ",", &state); term; term = strtok_r(NULL, ",", &state)) {
                        if (filter.n_labels == STORE_LABEL_FILTERS_MAX)
                                return http_reply_problem(req, 400, "bad-query", "Bad request", NULL,
                                                          "at most %d label filters", STORE_LABEL_FILTERS_MAX);
                        if (!parse_selector(term, &labels[filter.n_labels]))
                                return http_reply_problem(req, 400, "bad-query", "Bad request", NULL,
                                                          "labelSelector: \"%.64s\" is not key=value "
                                                          "(e.g. labelSelector=app=web,tier=front)",
                                                          term);
                        filter.n_labels++;
                }
        }

        r = store_deployment_list(req->api->store, &filter, &a, &n);
        if (r < 0)
                return http_reply_internal(req, r, "listing deployments");

        list = json_array();
        for (size_t i = 0; list && i < n; i++)
                if (json_array_append_new(list, deployment_to_json(&a[i])) < 0)
                        json_decref(TAKE_PTR(list));
        store_deployment_array_free(a, n);
        if (!list)
                return http_reply_internal(req, ENOMEM, "encoding the list");
        return http_reply_json(req, 200, TAKE_PTR(list), NULL);
}

/* ---- GET /deployments/{id} ------------------------------------------------------------------ */

int route_deployment_get(http_request_t *req) {
        _cleanup_deployment_ store_deployment_t d = {};
        _cleanup_free_ char *error = NULL;
        json_auto_t *o = NULL;
        json_t *instances = NULL;
        int r;

        r = store_deployment_get(req->api->store, req->arg, &d);
        if (r == -ENOENT)
                return reply_not_found(req);
        if (r < 0)
                return http_reply_internal(req, r, "reading the deployment");
        o = deployment_to_json(&d);
        if (!o)
                return http_reply_internal(req, ENOMEM, "encoding the deployment");

        /* The record is ours and answers alone; instances are vmm-driver's, and a slow or absent
         * vmm-driver must not make the deployment unreadable. */
        r = apiserver_instances(req->api, d.d.id, &instances, &error);
        if (r < 0) {
                log_debug_errno(r, "instance.list for %s: %s", d.d.id, error ?: "failed");
                if (json_object_set_new(o, "instances", json_null()) < 0 ||
                    json_object_set_new(o, "instances_error", json_string(error ?: strerror(-r))) < 0)
                        return http_reply_internal(req, ENOMEM, "encoding the deployment");
        } else if (json_object_set_new(o, "instances", instances) < 0)
                return http_reply_internal(req, ENOMEM, "encoding the deployment");
        return http_reply_json(req, 200, TAKE_PTR(o), NULL);
}

/* ---- DELETE /deployments/{id} --------------------------------------------------------------- */

int route_deployment_delete(http_request_t *req) {
        _cleanup_deployment_ store_deployment_t d = {};
        int r;

        r = store_deployment_mark_deleted(req->api->store, req->arg, &d);
        if (r == -ENOENT)
                return reply_not_found(req);
        if (r < 0)
                return http_reply_internal(req, r, "deleting the deployment");
        if (r > 0) {
                log_info("Deployment %s/%s (%s) deleted; its instances are being stopped", d.d.namespace_, d.d.name,
                         d.d.id);
                apiserver_publish(req->api, "deployment.deleted", &d, NULL);
                apiserver_event(req->api, d.d.id, EVENT_LEVEL_INFO, EVENT_DELETED,
                                "deleted: its instances are being stopped");
        }
        /* Accepted: the scheduler stops the instances, then purges the record. */
        return http_reply_json(req, 202, deployment_to_json(&d), NULL);
}
