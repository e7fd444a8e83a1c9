/* cli_deployment_view.c: deployments rendered for people: the list table and the inspect view. */
#include <errno.h>
#include <string.h>

#include "cli/cli_deployment.h"
#include "cli/cli_output.h"
#include "lib/util.h"

bool cli_deployment_matches(const json_t *d, const char *namespace_, char *const *statuses, size_t n_statuses,
                            char *const *labels, size_t n_labels) {
        const json_t *have = json_object_get(d, "labels");
        bool any = n_statuses == 0;

        if (namespace_ && !streq(cli_json_str(d, "namespace", ""), namespace_))
                return false;
        for (size_t i = 0; i < n_statuses && !any; i++)
                any = streq(cli_json_str(d, "status", ""), statuses[i]);
        if (!any)
                return false;
        for (size_t i = 0; i < n_labels; i++) {
                const char *eq = strchr(labels[i], '=');
                _cleanup_free_ char *key = eq ? strndup(labels[i], (size_t)(eq - labels[i])) : NULL;
                const char *value;

                if (!key)
                        return false;
                value = json_string_value(json_object_get(have, key));
                if (!value || !streq(value, eq + 1))
                        return false;
        }
        return true;
}

static const char *uint_str(const json_t *v, char *buf, size_t size) {
        if (!json_is_integer(v))
                return "?";
        snprintf(buf, size, "%lld", (long long)json_integer_value(v));
        return buf;
}

int cli_deployments_table(FILE *f, const json_t *list, uint64_t now_ms) {
        static const char *const headers[] = { "ID", "NAMESPACE", "NAME", "RUNTIME", "STATUS", "READY", "AGE" };
        _cleanup_(cli_table_freep) cli_table_t *t = NULL;
        const json_t *d;
        size_t i;
        int r;

        r = cli_table_new(ELEMENTSOF(headers), headers, &t);
        if (r < 0)
                return r;
        json_array_foreach(list, i, d) {
                char id[CLI_SHORT_ID + 1], ready_n[24], replicas[24], ready[64], age[32];
                const char *cells[ELEMENTSOF(headers)];

                snprintf(id, sizeof(id), "%s", cli_json_str(d, "id", "?"));
                snprintf(ready, sizeof(ready), "%s/%s",
                         uint_str(json_object_get(d, "ready_replicas"), ready_n, sizeof(ready_n)),
                         uint_str(json_object_get(d, "replicas"), replicas, sizeof(replicas)));
                cells[0] = id;
                cells[1] = cli_json_str(d, "namespace", "");
                cells[2] = cli_json_str(d, "name", "");
                cells[3] = cli_json_str(d, "runtime", "");
                cells[4] = cli_json_str(d, "status", "");
                cells[5] = ready;
                cells[6] = cli_format_json_age(json_object_get(d, "created_at"), now_ms, age, sizeof(age));
                r = cli_table_add_row(t, cells);
                if (r < 0)
                        return r;
        }
        cli_table_write(t, f);
        return 0;
}

/* "2026-11-22T05:30:00.000Z (5m ago)" from either timestamp form the API may use. */
static void write_time(FILE *f, const char *label, const json_t *v, uint64_t now_ms) {
        char ts[32], age[32];
        uint64_t ms;

        if (!v || json_is_null(v))
                return;
        if (cli_time_from_json(v, &ms) < 0) {
                char *raw = json_dumps(v, JSON_ENCODE_ANY);
                fprintf(f, "%-12s %s\n", label, raw ? raw : "?");
                free(raw);
                return;
        }
        fprintf(f, "%-12s %s (%s ago)\n", label, format_timestamp_ms(ms, ts, sizeof(ts)),
                cli_format_age(now_ms, ms, age, sizeof(age)));
}

static void write_field(FILE *f, const char *label, const char *value) {
        if (value && *value)
                fprintf(f, "%-12s %s\n", label, value);
}

/* A scalar as text: strings bare, numbers and booleans as JSON writes them. */
static char *scalar_text(const json_t *v) {
        if (json_is_string(v))
                return strdup(json_string_value(v));
        if (!v || json_is_null(v))
                return NULL;
        return json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
}

/* "guest-shutdown (3)", "killed" when the status is unknown, "-" when it has not exited. */
static const char *exit_text(const json_t *in, char *buf, size_t size) {
        const json_t *status = json_object_get(in, "exit_status");
        const char *reason = cli_json_str(in, "exit_reason", NULL);

        if (reason && json_is_integer(status) && json_integer_value(status) >= 0)
                snprintf(buf, size, "%s (%lld)", reason, (long long)json_integer_value(status));
        else
                snprintf(buf, size, "%s", reason ? reason : "-");
        return buf;
}

static void write_instances(FILE *f, const json_t *instances, uint64_t now_ms) {
        static const char *const headers[] = { "INSTANCE", "STATE", "ADDRESS", "PID", "AGE", "READY", "EXIT" };
        _cleanup_(cli_table_freep) cli_table_t *t = NULL;
        const json_t *in;
        size_t i;

        if (cli_table_new(ELEMENTSOF(headers), headers, &t) < 0)
                return;
        json_array_foreach(instances, i, in) {
                char pid[24], age[32], ready[32], exit_[96];
                const char *cells[ELEMENTSOF(headers)];
                const json_t *ready_at = json_object_get(in, "ready_at");

                snprintf(pid, sizeof(pid), "%lld", (long long)json_integer_value(json_object_get(in, "pid")));
                if (json_integer_value(ready_at) > 0 || json_is_string(ready_at))
                        cli_format_json_age(ready_at, now_ms, ready, sizeof(ready));
                else
                        snprintf(ready, sizeof(ready), "-");
                cells[0] = cli_json_str(in, "instance_id", "?");
                cells[1] = cli_json_str(in, "state", "?");
                cells[2] = cli_json_str(in, "address", "-");
                cells[3] = pid;
                cells[4] = cli_format_json_age(json_object_get(in, "started_at"), now_ms, age, sizeof(age));
                cells[5] = ready;
                cells[6] = exit_text(in, exit_, sizeof(exit_));
                if (cli_table_add_row(t, cells) < 0)
                        return;
        }
        cli_table_write(t, f);
}

/* Instances vmm-driver removed, as apiserver keeps them (the last few, newest first). */
static void write_exited(FILE *f, const json_t *exited, uint64_t now_ms) {
        static const char *const headers[] = { "INSTANCE", "GENERATION", "ADDRESS", "STARTED", "EXITED", "EXIT" };
        _cleanup_(cli_table_freep) cli_table_t *t = NULL;
        const json_t *in;
        size_t i;

        if (cli_table_new(ELEMENTSOF(headers), headers, &t) < 0)
                return;
        json_array_foreach(exited, i, in) {
                char generation[24], started[32], ended[32], exit_[96];
                const char *cells[ELEMENTSOF(headers)];

                cells[0] = cli_json_str(in, "instance_id", "?");
                cells[1] = uint_str(json_object_get(in, "generation"), generation, sizeof(generation));
                cells[2] = cli_json_str(in, "address", "-");
                cells[3] = cli_format_json_age(json_object_get(in, "started_at"), now_ms, started, sizeof(started));
                cells[4] = cli_format_json_age(json_object_get(in, "exited_at"), now_ms, ended, sizeof(ended));
                cells[5] = exit_text(in, exit_, sizeof(exit_));
                if (cli_table_add_row(t, cells) < 0)
                        return;
        }
        cli_table_write(t, f);
}

void cli_deployment_details(FILE *f, const json_t *d, uint64_t now_ms) {
        const json_t *limits = json_object_get(json_object_get(d, "resources"), "limits");
        const json_t *labels = json_object_get(d, "labels"), *instances = json_object_get(d, "instances");
        const char *message = cli_json_str(d, "status_message", NULL);
        _cleanup_free_ char *cpu = scalar_text(json_object_get(limits, "cpu"));
        _cleanup_free_ char *memory = scalar_text(json_object_get(limits, "memory"));
        _cleanup_free_ char *generation = scalar_text(json_object_get(d, "generation"));
        _cleanup_free_ char *restarts = scalar_text(json_object_get(d, "restart_count"));
        char buf[256], n1[24], n2[24];
        const char *key;
        json_t *v;
        bool first = true;
        size_t i;

        write_field(f, "Name:", cli_json_str(d, "name", NULL));
        write_field(f, "ID:", cli_json_str(d, "id", NULL));
        write_field(f, "Namespace:", cli_json_str(d, "namespace", NULL));
        write_field(f, "Runtime:", cli_json_str(d, "runtime", NULL));
        write_field(f, "Kind:", cli_json_str(d, "kind", NULL));
        write_field(f, "Image:", cli_json_str(d, "image", NULL));
        write_field(f, "Kernel:", cli_json_str(d, "kernel", NULL));
        if (message && *message)
                snprintf(buf, sizeof(buf), "%s (%s)", cli_json_str(d, "status", "?"), message);
        else
                snprintf(buf, sizeof(buf), "%s", cli_json_str(d, "status", "?"));
        write_field(f, "Status:", buf);
        if (json_is_integer(json_object_get(d, "exit_code"))) {
                snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(json_object_get(d, "exit_code")));
                write_field(f, "Exit code:", buf);
        }
        snprintf(buf, sizeof(buf), "%s/%s ready", uint_str(json_object_get(d, "ready_replicas"), n1, sizeof(n1)),
                 uint_str(json_object_get(d, "replicas"), n2, sizeof(n2)));
        write_field(f, "Replicas:", buf);
        if (cpu || memory) {
                snprintf(buf, sizeof(buf), "cpu %s, memory %s", cpu ? cpu : "-", memory ? memory : "-");
                write_field(f, "Limits:", buf);
        }
        write_field(f, "Generation:", generation);
        write_field(f, "Restarts:", restarts);
        write_time(f, "Created:", json_object_get(d, "created_at"), now_ms);
        write_time(f, "Updated:", json_object_get(d, "updated_at"), now_ms);
        json_object_foreach((json_t *)labels, key, v) {
                _cleanup_free_ char *value = scalar_text(v);

                fprintf(f, "%-12s %s=%s\n", first ? "Labels:" : "", key, value ? value : "");
                first = false;
        }
        /* type source -> destination (permission), one line each. */
        json_array_foreach(json_object_get(json_object_get(d, "spec"), "volumes"), i, v)
                fprintf(f, "%-12s %s %s -> %s (%s)\n", i == 0 ? "Volumes:" : "", cli_json_str(v, "type", "?"),
                        cli_json_str(v, "source", "?"), cli_json_str(v, "destination", "?"),
                        cli_json_str(v, "permission", "rw"));

        if (json_object_get(d, "instances_error")) {
                /* A string, or a structured error {code, message} from vmm-driver. */
                const json_t *err = json_object_get(d, "instances_error");
                _cleanup_free_ char *why =
                        scalar_text(json_object_get(err, "message") ? json_object_get(err, "message") : err);
                fprintf(f, "\nInstances: unknown (%s)\n", why ? why : "no reason given");
        } else if (json_array_size(instances) > 0) {
                fputs("\nInstances:\n", f);
                write_instances(f, instances, now_ms);
        } else if (instances) {
                fputs("\nInstances: none\n", f);
        }
        if (json_array_size(json_object_get(d, "exited_instances")) > 0) {
                fputs("\nExited instances:\n", f);
                write_exited(f, json_object_get(d, "exited_instances"), now_ms);
        }
}
