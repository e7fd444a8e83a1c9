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
#include "services/apiserver/apiserver_volumes.h"
#include "services/apiserver/apiserver_json.h"
#include "services/apiserver/apiserver_manifest.h"
#include "services/apiserver/apiserver_ports.h"

static void store_deployment_clearp(store_deployment_t *d) { store_deployment_clear(d); }
#define _cleanup_deployment_ _cleanup_(store_deployment_clearp)

_Static_assert(AUTH_NAMESPACES_MAX <= STORE_ANY_OF_MAX, "a token's namespaces fit a list filter");

int route_reply_no_deployment(http_request_t *req) {
        return http_reply_problem(req, 404, "not-found", "Not found", NULL, "no deployment with id \"%.64s\"",
                                  req->arg);
}

int route_deployment_need(http_request_t *req, store_deployment_t *ret) {
        _cleanup_deployment_ store_deployment_t d = {};
        int r;

        r = store_deployment_get(req->api->store, req->arg, ret ?: &d);
        if (r == -ENOENT)
                return route_reply_no_deployment(req);
        if (r < 0)
                return http_reply_internal(req, r, "reading the deployment");
        snprintf(req->audit_namespace, sizeof(req->audit_namespace), "%s", (ret ?: &d)->d.namespace_);
        /* Outside a namespace-bound token's namespaces, a deployment does not exist. */
        if (!auth_namespace_allowed(req->who, (ret ?: &d)->d.namespace_)) {
                if (ret)
                        store_deployment_clear(ret);
                return route_reply_no_deployment(req);
        }
        return 0;
}

/* ---- POST /deployments ------------------------------------------------------------------- */

static const struct {
        int status;
        const char *event; /* NULL: nothing happened worth an event */
        const char *result;
} apply_outcomes[] = {
        [STORE_APPLY_CREATED] = { 201, BUS_EVENT_DEPLOYMENT_CREATED, "created" },
        [STORE_APPLY_UPDATED] = { 200, BUS_EVENT_DEPLOYMENT_UPDATED, "updated" },
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
        /* A secret the environment names must exist now; one deleted later fails the deployment
         * at its next start (SecretResolutionError). */
        r = apiserver_check_refs(req->api, &m, &violations);
        if (r == -EINVAL) {
                size_t n = json_array_size(violations);

                return http_reply_problem(req, 422, "invalid-manifest", "Invalid deployment manifest",
                                          TAKE_PTR(violations), "the deployment manifest has %zu problem%s to fix", n,
                                          n == 1 ? "" : "s");
        }
        if (r < 0)
                return http_reply_internal(req, r, "looking up the secrets it names");

        snprintf(req->audit_namespace, sizeof(req->audit_namespace), "%s", m.namespace_);
        snprintf(req->audit_target, sizeof(req->audit_target), "%s/%s", m.namespace_, m.name);
        if (!auth_namespace_allowed(req->who, m.namespace_))
                return http_reply_problem(req, 403, "forbidden", "Forbidden", NULL,
                                          "this token may not touch namespace \"%s\"", m.namespace_);

        /* Ring's rule: applying into a namespace that does not exist creates it, for a caller
         * who may create namespaces; anyone else is told so. */
        r = store_namespace_get(req->api->store, m.namespace_, NULL);
        if (r == -ENOENT && !auth_allows(req->who, AUTH_SCOPE_NAMESPACES_WRITE))
                return http_reply_problem(req, 403, "forbidden", "Forbidden", NULL,
                                          "namespace \"%s\" does not exist, and creating it needs the scope "
                                          "namespaces:write",
                                          m.namespace_);
        if (r == -ENOENT && !dry_run[0]) {
                r = store_namespace_create(req->api->store, m.namespace_, NULL);
                if (r == -EEXIST) /* someone else's apply made it first */
                        r = 0;
        }
        if (r < 0 && r != -ENOENT)
                return http_reply_internal(req, r, "reading the namespace");

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

        /* Named volumes are made on first use, and kept across deletes and re-applies. */
        if (apiserver_volumes_ensure(d.d.namespace_, d.spec) < 0)
                log_warning("Deployment %s/%s: cannot create its named volumes, ignoring: vmm-driver makes them at "
                            "start",
                            d.d.namespace_, d.d.name);
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

/* Ring's filters, each also as name[] (namespace[]=a&namespace[]=b: any of them), husk's
 * labelSelector, and Ring's instances=true: the route table lists them, and the router
 * refuses any other name before we get here. */

static const char *const statuses[] = {
        DEPLOYMENT_STATUS_PENDING,
        DEPLOYMENT_STATUS_CREATING,
        DEPLOYMENT_STATUS_RUNNING,
        DEPLOYMENT_STATUS_COMPLETED,
        DEPLOYMENT_STATUS_FAILED,
        DEPLOYMENT_STATUS_CRASH_LOOP,
        DEPLOYMENT_STATUS_INSUFFICIENT_RESOURCES,
        DEPLOYMENT_STATUS_DELETED,
};

static const char *const kinds[] = { "worker", "job" };

static bool one_of(const char *s, const char *const *list, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (streq(s, list[i]))
                        return true;
        return false;
}

typedef struct list_query {
        store_filter_t filter;
        store_label_t labels[STORE_LABEL_FILTERS_MAX];
        char values[8192]; /* the decoded values, which filter and labels point into */
        size_t used;
        bool instances;
} list_query_t;

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

#define bad_query(req, ...) http_reply_problem(req, 400, "bad-query", "Bad request", NULL, __VA_ARGS__)

static int add_label(http_request_t *req, list_query_t *q, char *term, const char *param) {
        if (q->filter.n_labels == STORE_LABEL_FILTERS_MAX)
                return bad_query(req, "at most %d label filters", STORE_LABEL_FILTERS_MAX);
        if (!parse_selector(term, &q->labels[q->filter.n_labels]))
                return bad_query(req,
                                 "%s: each must be key=value (e.g. label=app=web, labelSelector=app=web,tier=front)",
                                 param);
        q->filter.n_labels++;
        return 0;
}

static int add_any_of(http_request_t *req, store_any_of_t *a, const char *value, const char *param) {
        if (a->n == STORE_ANY_OF_MAX)
                return bad_query(req, "%s: at most %d values", param, STORE_ANY_OF_MAX);
        a->v[a->n++] = value;
        return 0;
}

/* One decoded parameter. Returns 0, or the HTTP status already sent. */
static int list_param(http_request_t *req, list_query_t *q, const char *name, char *value) {
        if (streq(name, "namespace")) {
                if (strlen(value) > MANIFEST_NAME_MAX)
                        return bad_query(req, "namespace: longer than %d characters", MANIFEST_NAME_MAX);
                return add_any_of(req, &q->filter.namespaces, value, name);
        }
        if (streq(name, "status")) {
                if (!one_of(value, statuses, ELEMENTSOF(statuses)))
                        return bad_query(req,
                                         "status: \"%.32s\" is not a status; use pending, creating, running, "
                                         "completed, failed, crash_loop_back_off, insufficient_resources or deleted",
                                         value);
                return add_any_of(req, &q->filter.statuses, value, name);
        }
        if (streq(name, "kind")) {
                if (!one_of(value, kinds, ELEMENTSOF(kinds)))
                        return bad_query(req, "kind: \"%.32s\" is not a kind; use worker or job", value);
                return add_any_of(req, &q->filter.kinds, value, name);
        }
        if (streq(name, "label"))
                return add_label(req, q, value, name);
        if (streq(name, "labelSelector")) {
                char *state = NULL;

                for (char *term = strtok_r(value, ",", &state); term; term = strtok_r(NULL, ",", &state)) {
                        int r = add_label(req, q, term, name);
                        if (r != 0)
                                return r;
                }
                return 0;
        }
        /* instances */
        if (streq(value, "true") || streq(value, "1"))
                q->instances = true;
        else if (!streq(value, "false") && !streq(value, "0"))
                return bad_query(req, "instances: true or false");
        return 0;
}

/* Every name=value pair, names and values URL-decoded (namespace%5B%5D is namespace[]). */
static int parse_list_query(http_request_t *req, list_query_t *q) {
        const char *query = req->info->query_string;

        for (const char *p = query; p && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
                size_t n = strcspn(p, "&"), name_len = strcspn(p, "=&");
                char name[64], *value = q->values + q->used;
                int len;

                if (n == 0)
                        continue;
                if (q->used + 1 >= sizeof(q->values))
                        return bad_query(req, "the query is longer than %zu bytes", sizeof(q->values));
                len = mg_url_decode(p, (int)name_len, name, (int)sizeof(name), 1);
                if (len < 0 || strlen(name) != (size_t)len)
                        return bad_query(req, "a query parameter's name is longer than %zu bytes", sizeof(name) - 1);
                if (len > 2 && streq(name + len - 2, "[]"))
                        name[len - 2] = '\0';
                len = name_len < n ? mg_url_decode(p + name_len + 1, (int)(n - name_len - 1), value,
                                                   (int)(sizeof(q->values) - q->used), 1)
                                   : (value[0] = '\0', 0);
                if (len < 0 || strlen(value) != (size_t)len)
                        return bad_query(req, "%s: too long, or not text", name);
                q->used += (size_t)len + 1;
                len = list_param(req, q, name, value);
                if (len != 0)
                        return len;
        }
        return 0;
}

/* A deployment's members beside its record for instances=true: its instances out of all of
 * them, or null and why they are unknown (error). NULL on allocation failure. */
static json_t *instances_of(const store_deployment_t *d, const json_t *all, const char *error) {
        json_auto_t *extra = NULL, *mine = NULL;
        const json_t *i;
        size_t k;

        if (!all)
                return json_pack("{s:n, s:s}", "instances", "instances_error", error);
        mine = json_array();
        json_array_foreach(all, k, i) {
                const char *of = json_string_value(json_object_get(i, "deployment_id"));

                if (mine && of && streq(of, d->d.id) && json_array_append(mine, (json_t *)i) < 0)
                        return NULL;
        }
        return mine ? json_pack("{s:O}", "instances", mine) : NULL;
}

/* The answer is written as text, record after record (apiserver_json.h): no value of the whole
 * list is built, and the stored labels and specs are not re-parsed. */
static int reply_list(http_request_t *req, const store_deployment_t *a, size_t n, bool instances) {
        _cleanup_free_ char *error = NULL;
        _cleanup_free_ stored_readable_t *readable = calloc(n ?: 1, sizeof(*readable));
        json_auto_t *all = NULL;
        zchunk_t *out;
        size_t estimate = 2;
        int r = 0, status;

        if (!readable || deployments_stored_readable(a, n, readable) < 0)
                return http_reply_internal(req, ENOMEM, "encoding the list");

        if (instances) {
                r = apiserver_instances(req->api, NULL, &all, &error);
                if (r < 0 && !error)
                        error = strdup(strerror(-r));
                r = 0;
        }
        /* Sized once: the stored texts are most of it, the rest is well under 1 KiB a record. */
        for (size_t i = 0; i < n; i++)
                estimate += strlen(a[i].labels ?: "") + strlen(a[i].spec ?: "") + 1024;
        out = zchunk_new(NULL, estimate);
        if (!out)
                return http_reply_internal(req, ENOMEM, "encoding the list");
        zchunk_extend(out, "[", 1);
        for (size_t i = 0; r == 0 && i < n; i++) {
                json_auto_t *extra = instances ? instances_of(&a[i], all, error ?: "unknown") : NULL;

                if (i > 0)
                        zchunk_extend(out, ",", 1);
                r = instances && !extra ? -ENOMEM : deployment_json_append(out, &a[i], &readable[i], extra);
        }
        zchunk_extend(out, "]", 1);
        status = r < 0 ? http_reply_internal(req, ENOMEM, "encoding the list")
                       : http_reply_json_text(req, 200, (const char *)zchunk_data(out), zchunk_size(out), NULL);
        zchunk_destroy(&out);
        return status;
}

int route_deployments_list(http_request_t *req) {
        list_query_t *q = NULL;
        store_deployment_t *a = NULL;
        size_t n = 0;
        int r;

        q = calloc(1, sizeof(*q));
        if (!q)
                return http_reply_internal(req, ENOMEM, "parsing the query");
        q->filter.labels = q->labels;
        r = parse_list_query(req, q);
        if (r != 0) {
                free(q);
                return r;
        }
        /* A namespace-bound token lists its namespaces only, whatever the query asks. */
        if (req->who->n_namespaces > 0) {
                store_any_of_t *ns = &q->filter.namespaces;
                size_t kept = 0;

                if (ns->n == 0)
                        for (size_t i = 0; i < req->who->n_namespaces; i++)
                                ns->v[ns->n++] = req->who->namespaces[i];
                else {
                        for (size_t i = 0; i < ns->n; i++)
                                if (auth_namespace_allowed(req->who, ns->v[i]))
                                        ns->v[kept++] = ns->v[i];
                        ns->n = kept;
                        if (kept == 0) {
                                free(q);
                                return http_reply_json(req, 200, json_array(), NULL);
                        }
                }
        }
        r = store_deployment_list(req->api->store, &q->filter, &a, &n);
        if (r < 0) {
                free(q);
                return http_reply_internal(req, r, "listing deployments");
        }
        r = reply_list(req, a, n, q->instances);
        store_deployment_array_free(a, n);
        free(q);
        return r;
}

/* ---- GET /deployments/{id} ------------------------------------------------------------------ */

int route_deployment_get(http_request_t *req) {
        _cleanup_deployment_ store_deployment_t d = {};
        _cleanup_free_ char *error = NULL;
        json_auto_t *o = NULL;
        json_t *instances = NULL;
        store_exit_t *exits = NULL;
        size_t n_exits = 0;
        int r;

        r = route_deployment_need(req, &d);
        if (r > 0)
                return r;
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

        /* Instances vmm-driver removed live on here: how each of the last few ended. */
        r = store_exit_list(req->api->store, d.d.id, &exits, &n_exits);
        if (r < 0)
                return http_reply_internal(req, r, "reading the exited instances");
        r = json_object_set_new(o, "exited_instances", exits_to_json(exits, n_exits));
        store_exit_array_free(exits, n_exits);
        if (r < 0)
                return http_reply_internal(req, ENOMEM, "encoding the deployment");
        return http_reply_json(req, 200, TAKE_PTR(o), NULL);
}

/* ---- DELETE /deployments/{id} --------------------------------------------------------------- */

int route_deployment_mark_deleted(apiserver_t *api, const char *id) {
        _cleanup_deployment_ store_deployment_t d = {};
        int r;

        r = store_deployment_mark_deleted(api->store, id, &d);
        if (r > 0) {
                log_info("Deployment %s/%s (%s) deleted; its instances are being stopped", d.d.namespace_, d.d.name,
                         d.d.id);
                apiserver_publish(api, BUS_EVENT_DEPLOYMENT_DELETED, &d, NULL);
                apiserver_event(api, d.d.id, EVENT_LEVEL_INFO, EVENT_DELETED,
                                "deleted: its instances are being stopped");
        }
        return r;
}

int route_deployment_delete(http_request_t *req) {
        int r;

        r = route_deployment_need(req, NULL);
        if (r != 0)
                return r;
        r = route_deployment_mark_deleted(req->api, req->arg);
        if (r == -ENOENT)
                return route_reply_no_deployment(req);
        if (r < 0)
                return http_reply_internal(req, r, "deleting the deployment");
        /* Ring's answer: 204, also when it was deleted already. The scheduler stops the instances,
         * then purges the record; until then GET shows it with status "deleted". */
        return http_reply_no_content(req);
}
