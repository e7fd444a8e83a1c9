/* test_manifest.c: YAML to JSON typing, anchors and merges, ${VAR} expansion, error locations
 * and Ring manifest structure (name fallback, label lists), env files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli_manifest.h"
#include "lib/util.h"

/* Convert yaml (one document) and compare with the expected JSON text. */
static void check_json(const char *yaml, const cli_vars_t *vars, const char *expected) {
        json_t *docs = NULL, *want;
        char *error = NULL;
        int r;

        r = cli_yaml_to_json("t.yaml", yaml, strlen(yaml), vars, &docs, &error);
        if (r < 0)
                fail_msg("'%s' failed: %s", yaml, error ? error : strerror(-r));
        want = json_loads(expected, JSON_DECODE_ANY, NULL);
        assert_non_null(want);
        assert_int_equal(json_array_size(docs), 1);
        if (!json_equal(json_array_get(docs, 0), want)) {
                char *got = json_dumps(json_array_get(docs, 0), JSON_ENCODE_ANY | JSON_COMPACT);
                fail_msg("'%s': got %s, want %s", yaml, got, expected);
        }
        json_decref(want);
        json_decref(docs);
        free(error);
}

/* Convert yaml, expect failure, and return the message (caller frees). */
static char *check_error(const char *yaml, const cli_vars_t *vars) {
        json_t *docs = NULL;
        char *error = NULL;
        int r;

        r = cli_yaml_to_json("t.yaml", yaml, strlen(yaml), vars, &docs, &error);
        if (r >= 0)
                fail_msg("'%s' should have failed", yaml);
        assert_int_equal(r, -EINVAL);
        assert_non_null(error);
        assert_null(docs);
        return error;
}

static void check_error_is(const char *yaml, const cli_vars_t *vars, const char *expected) {
        char *error = check_error(yaml, vars);

        if (!streq(error, expected))
                fail_msg("'%s': got error '%s', want '%s'", yaml, error, expected);
        free(error);
}

/* ---- typing ------------------------------------------------------------------------------ */

static void test_plain_scalars_typed(void **state) {
        check_json("a: 3", NULL, "{\"a\": 3}");
        check_json("a: -42", NULL, "{\"a\": -42}");
        check_json("a: +7", NULL, "{\"a\": 7}");
        check_json("a: 0", NULL, "{\"a\": 0}");
        check_json("a: 0x1F", NULL, "{\"a\": 31}");
        check_json("a: 0o17", NULL, "{\"a\": 15}");
        check_json("a: 9223372036854775807", NULL, "{\"a\": 9223372036854775807}");
        check_json("a: 1.5", NULL, "{\"a\": 1.5}");
        check_json("a: -.5", NULL, "{\"a\": -0.5}");
        check_json("a: 1e3", NULL, "{\"a\": 1000.0}");
        check_json("a: 2.", NULL, "{\"a\": 2.0}");
        check_json("a: true\nb: False\nc: TRUE", NULL, "{\"a\": true, \"b\": false, \"c\": true}");
        check_json("a: null\nb: ~\nc:\nd: NULL", NULL, "{\"a\": null, \"b\": null, \"c\": null, \"d\": null}");
}

static void test_strings_stay_strings(void **state) {
        /* YAML 1.1 booleans and friends are strings in 1.2: no "Norway problem". */
        check_json("a: yes\nb: no\nc: on\nd: off\ne: y", NULL,
                   "{\"a\": \"yes\", \"b\": \"no\", \"c\": \"on\", \"d\": \"off\", \"e\": \"y\"}");
        /* Zero-padded numbers are read differently by YAML 1.1 and 1.2: kept as written. */
        check_json("a: 0755\nb: -007", NULL, "{\"a\": \"0755\", \"b\": \"-007\"}");
        check_json("a: \"3\"\nb: '4'\nc: \"true\"\nd: 'null'", NULL,
                   "{\"a\": \"3\", \"b\": \"4\", \"c\": \"true\", \"d\": \"null\"}");
        check_json("a: 512Mi\nb: 10s\nc: 1.2.3\nd: 0x\ne: 1e\nf: .", NULL,
                   "{\"a\": \"512Mi\", \"b\": \"10s\", \"c\": \"1.2.3\", \"d\": \"0x\", \"e\": \"1e\", \"f\": \".\"}");
        check_json("a: 2026-01-01", NULL, "{\"a\": \"2026-01-01\"}");
        check_json("a: \"\"", NULL, "{\"a\": \"\"}");
        check_json("a: |\n  line1\n  line2\nb: >\n  folded\n  text\n", NULL,
                   "{\"a\": \"line1\\nline2\\n\", \"b\": \"folded text\\n\"}");
        /* Keys are strings whatever they look like. */
        check_json("1: a\ntrue: b\n~: c", NULL, "{\"1\": \"a\", \"true\": \"b\", \"~\": \"c\"}");
}

static void test_tags(void **state) {
        check_json("a: !!str 12\nb: !!str true\nc: ! 12", NULL, "{\"a\": \"12\", \"b\": \"true\", \"c\": \"12\"}");
        check_json("a: !!int \"12\"\nb: !!float 3\nc: !!bool 'true'\nd: !!null ''", NULL,
                   "{\"a\": 12, \"b\": 3.0, \"c\": true, \"d\": null}");
        check_error_is("a: !!int abc", NULL, "t.yaml:1:4: 'abc' is not a valid !!int");
        check_error_is("a: !!binary aGk=", NULL, "t.yaml:1:4: unsupported tag !!binary");
        check_error_is("a: !custom x", NULL, "t.yaml:1:4: unsupported tag !custom");
}

static void test_unrepresentable(void **state) {
        check_error_is("a: .inf", NULL,
                       "t.yaml:1:4: '.inf' cannot be represented in JSON; quote it to keep it a string");
        check_error_is("a: -.Inf", NULL,
                       "t.yaml:1:4: '-.Inf' cannot be represented in JSON; quote it to keep it a string");
        check_error_is("a: .nan", NULL,
                       "t.yaml:1:4: '.nan' cannot be represented in JSON; quote it to keep it a string");
        check_error_is(
                "a: 9223372036854775808", NULL,
                "t.yaml:1:4: '9223372036854775808' is out of the 64-bit integer range; quote it to keep it a string");
        check_error_is(
                "a: 0xFFFFFFFFFFFFFFFFF", NULL,
                "t.yaml:1:4: '0xFFFFFFFFFFFFFFFFF' is out of the 64-bit integer range; quote it to keep it a string");
        check_error_is("a: 1e999", NULL,
                       "t.yaml:1:4: '1e999' is out of the floating-point range; quote it to keep it a string");
        check_json("a: '.inf'", NULL, "{\"a\": \".inf\"}");
}

static void test_collections(void **state) {
        check_json("a: [1, x, {b: null}]\nc:\n  - d: 2\n    e: [ ]\n", NULL,
                   "{\"a\": [1, \"x\", {\"b\": null}], \"c\": [{\"d\": 2, \"e\": []}]}");
        check_json("[1, 2]", NULL, "[1, 2]");
        check_json("plain", NULL, "\"plain\"");
        check_json("---\n...\n", NULL, "null");
}

static void test_documents(void **state) {
        json_t *docs = NULL;
        char *error = NULL;

        assert_int_equal(cli_yaml_to_json("t.yaml", "", 0, NULL, &docs, &error), 0);
        assert_int_equal(json_array_size(docs), 0);
        json_decref(docs);
        /* Anchors belong to their document. */
        assert_int_equal(cli_yaml_to_json("t.yaml", "a: &x 1\n---\nb: *x\n", 17, NULL, &docs, &error), -EINVAL);
        assert_string_equal(error, "t.yaml:3:4: alias *x refers to no anchor defined before it");
        free(error);
        assert_int_equal(cli_yaml_to_json("t.yaml", "a: 1\n---\nb: 2\n", 14, NULL, &docs, &error), 0);
        assert_int_equal(json_array_size(docs), 2);
        json_decref(docs);
}

/* ---- anchors, aliases, merges ---------------------------------------------------------------- */

static void test_anchors_resolved(void **state) {
        check_json("base: &b {image: /x, replicas: 2}\nweb: *b\nlist: [&n 3, *n]", NULL,
                   "{\"base\": {\"image\": \"/x\", \"replicas\": 2}, \"web\": {\"image\": \"/x\", \"replicas\": 2},"
                   " \"list\": [3, 3]}");
        /* Redefining an anchor: later aliases see the new value, as YAML says. */
        check_json("a: &x 1\nb: *x\nc: &x 2\nd: *x", NULL, "{\"a\": 1, \"b\": 1, \"c\": 2, \"d\": 2}");
        check_error_is("a: *nope", NULL, "t.yaml:1:4: alias *nope refers to no anchor defined before it");
        /* An anchor is usable only once its node is complete: no cycles. */
        check_error_is("a: &x [1, *x]", NULL, "t.yaml:1:11: alias *x refers to no anchor defined before it");
        check_error_is("? *k\n: v", NULL, "t.yaml:1:3: mapping keys must be strings, not aliases");
}

static void test_merge_keys(void **state) {
        check_json("base: &b {image: /x, replicas: 2}\n"
                   "web:\n  <<: *b\n  replicas: 5\n",
                   NULL,
                   "{\"base\": {\"image\": \"/x\", \"replicas\": 2}, \"web\": {\"image\": \"/x\", \"replicas\": 5}}");
        /* Explicit keys win even when written before the merge; earlier merged maps win. */
        check_json("a: &a {x: 1, y: 1}\nb: &b {y: 2, z: 2}\n"
                   "c:\n  z: 3\n  <<: [*a, *b]\n",
                   NULL,
                   "{\"a\": {\"x\": 1, \"y\": 1}, \"b\": {\"y\": 2, \"z\": 2}, \"c\": {\"z\": 3, \"x\": 1, \"y\": 1}}");
        /* A quoted "<<" is an ordinary key. */
        check_json("'<<': 1", NULL, "{\"<<\": 1}");
        check_error_is("a:\n  <<: 3", NULL, "t.yaml:2:7: '<<' takes a mapping or a list of mappings");
}

static void test_billion_laughs_refused(void **state) {
        /* Each level multiplies by 10: 10^7 nodes if expanded, far past the budget. */
        static const char yaml[] = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                                   "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                                   "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                                   "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                                   "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
                                   "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
                                   "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n";
        char *error = check_error(yaml, NULL);

        assert_non_null(strstr(error, "document too large"));
        free(error);
}

static void test_depth_limited(void **state) {
        char yaml[512] = "";

        for (int i = 0; i < 100; i++)
                strcat(yaml, "[");
        char *error = check_error(yaml, NULL);
        assert_non_null(strstr(error, "nested deeper than 32 levels"));
        free(error);
}

/* ---- errors ------------------------------------------------------------------------------------ */

static void test_syntax_errors_located(void **state) {
        check_error_is("a: 1\nb: [1, 2\nc: 3\n", NULL,
                       "t.yaml:3:2: did not find expected ',' or ']' (while parsing a flow sequence at line 2)");
        check_error_is("a: 1\n  b: 2\n", NULL, "t.yaml:2:4: mapping values are not allowed in this context");
        check_error_is("a:\n  - 1\n  b: 2\n", NULL,
                       "t.yaml:3:3: did not find expected '-' indicator (while parsing a block collection at line 2)");
        check_error_is("a: 1\na: 2\n", NULL, "t.yaml:2:1: duplicate key 'a'");
        check_error_is("a: \"x\\0y\"", NULL, "t.yaml:1:4: NUL characters are not allowed in values");
        check_error_is("[a]: 1", NULL, "t.yaml:1:1: mapping keys must be strings, not lists or mappings");
        check_error_is("\xff: 1", NULL, "t.yaml: invalid leading UTF-8 octet at byte 0");
}

/* ---- variables ------------------------------------------------------------------------------------ */

static void test_expand(void **state) {
        cli_vars_t vars = {};
        char *out = NULL, *bad = NULL;

        setenv("HUSK_T_A", "alpha", 1);
        setenv("HUSK_T_EMPTY", "", 1);
        unsetenv("HUSK_T_UNDEF");

        assert_int_equal(cli_expand("x${HUSK_T_A}y", &vars, false, &out, &bad), 0);
        assert_string_equal(out, "xalphay");
        free(out);
        assert_int_equal(cli_expand("${HUSK_T_EMPTY}|$$|$$$$|$${HUSK_T_A}|$|a$|$1|${HUSK_T_A}${HUSK_T_A}", &vars, false,
                                    &out, &bad),
                         0);
        assert_string_equal(out, "|$|$$|${HUSK_T_A}|$|a$|$1|alphaalpha");
        free(out);
        /* Without ring_bare a bare $NAME is left alone. */
        assert_int_equal(cli_expand("$HUSK_T_A", &vars, false, &out, &bad), 0);
        assert_string_equal(out, "$HUSK_T_A");
        free(out);
        /* Ring's rule: defined names are replaced, undefined ones kept as written. */
        assert_int_equal(cli_expand("$HUSK_T_A-$HUSK_T_UNDEF/$$HUSK_T_A", &vars, true, &out, &bad), 0);
        assert_string_equal(out, "alpha-$HUSK_T_UNDEF/$HUSK_T_A");
        free(out);

        out = NULL;
        assert_int_equal(cli_expand("a ${HUSK_T_UNDEF} b", &vars, false, &out, &bad), -ENXIO);
        assert_string_equal(bad, "HUSK_T_UNDEF");
        assert_null(out);
        free(bad);
        assert_int_equal(cli_expand("a ${HUSK_T_A b", &vars, false, &out, &bad), -EINVAL);
        assert_string_equal(bad, "${HUSK_T_A b");
        free(bad);
        assert_int_equal(cli_expand("${}", &vars, false, &out, &bad), -EINVAL);
        assert_string_equal(bad, "${}");
        free(bad);
        assert_int_equal(cli_expand("${1X}", &vars, false, &out, &bad), -EINVAL);
        free(bad);
        assert_int_equal(cli_expand("${A-B}", &vars, false, &out, &bad), -EINVAL);
        free(bad);
}

static void test_expand_in_yaml(void **state) {
        cli_vars_t vars = {};

        setenv("HUSK_T_IMG", "/srv/img.raw", 1);
        setenv("HUSK_T_N", "3", 1);
        setenv("HUSK_T_HOME", "/home/x", 1);
        unsetenv("HUSK_T_UNDEF");

        /* Values are expanded, then typed as if written so; quoted ones stay strings; keys never. */
        check_json("image: ${HUSK_T_IMG}\nreplicas: ${HUSK_T_N}\nq: \"${HUSK_T_N}\"\n${HUSK_T_N}: k\n", &vars,
                   "{\"image\": \"/srv/img.raw\", \"replicas\": 3, \"q\": \"3\", \"${HUSK_T_N}\": \"k\"}");
        check_json("a: $${HUSK_T_UNDEF}\nb: cost $$5", &vars, "{\"a\": \"${HUSK_T_UNDEF}\", \"b\": \"cost $5\"}");
        /* Without vars there is no expansion at all. */
        check_json("a: ${HUSK_T_UNDEF}", NULL, "{\"a\": \"${HUSK_T_UNDEF}\"}");

        check_error_is("a: 1\nb: ${HUSK_T_UNDEF}\n", &vars, "t.yaml:2: undefined environment variable HUSK_T_UNDEF");
        check_error_is("a: |\n  one\n  two ${HUSK_T_UNDEF}\n", &vars,
                       "t.yaml:3: undefined environment variable HUSK_T_UNDEF");
        check_error_is("a: \"${HUSK_T_IMG\"\n", &vars,
                       "t.yaml:1: malformed variable reference '${HUSK_T_IMG' (write ${NAME}, or $$ for a literal $)");

        /* Ring's bare $NAME only where Ring expands it. */
        check_json("deployments:\n"
                   "  web:\n"
                   "    image: $HUSK_T_IMG\n"
                   "    command: [\"serve $HUSK_T_HOME\"]\n"
                   "    environment: {HOME: $HUSK_T_HOME, KEEP: $HUSK_T_UNDEF}\n"
                   "    config: {c: $HUSK_T_N}\n"
                   "    health_checks: [{type: command, command: \"test -d $HUSK_T_HOME\"}]\n"
                   "    labels: {l: $HUSK_T_N}\n"
                   "other: $HUSK_T_IMG\n",
                   &vars,
                   "{\"deployments\": {\"web\": {\"image\": \"/srv/img.raw\", \"command\": [\"serve /home/x\"],"
                   " \"environment\": {\"HOME\": \"/home/x\", \"KEEP\": \"$HUSK_T_UNDEF\"}, \"config\": {\"c\": 3},"
                   " \"health_checks\": [{\"type\": \"command\", \"command\": \"test -d $HUSK_T_HOME\"}],"
                   " \"labels\": {\"l\": \"$HUSK_T_N\"}}}, \"other\": \"$HUSK_T_IMG\"}");
}

static void test_env_file(void **state) {
        char path[] = "/tmp/husk-test-env-XXXXXX";
        cli_vars_t vars = {};
        char *error = NULL;
        int fd;

        fd = mkstemp(path);
        assert_true(fd >= 0);
        dprintf(fd, "# comment\n\nHUSK_T_F1=one\nexport HUSK_T_F2 = \"two words\"\nHUSK_T_F3='x'\nHUSK_T_F1=again\n");
        close(fd);
        unsetenv("HUSK_T_F1");
        setenv("HUSK_T_F3", "from-env", 1);

        assert_int_equal(cli_vars_load_env_file(&vars, path, &error), 0);
        assert_string_equal(cli_vars_get(&vars, "HUSK_T_F1"), "again");
        assert_string_equal(cli_vars_get(&vars, "HUSK_T_F2"), "two words");
        /* The environment comes first, as in Ring. */
        assert_string_equal(cli_vars_get(&vars, "HUSK_T_F3"), "from-env");
        assert_null(cli_vars_get(&vars, "HUSK_T_NONE"));
        cli_vars_clear(&vars);

        fd = open(path, O_WRONLY | O_TRUNC);
        dprintf(fd, "OK=1\nnot a pair\n");
        close(fd);
        assert_int_equal(cli_vars_load_env_file(&vars, path, &error), -EINVAL);
        assert_non_null(strstr(error, ":2: expected KEY=VALUE"));
        free(error);
        cli_vars_clear(&vars);
        unlink(path);

        assert_int_equal(cli_vars_load_env_file(&vars, "/nonexistent/env", &error), -ENOENT);
        assert_string_equal(error, "/nonexistent/env: No such file or directory");
        free(error);
}

/* ---- manifests ------------------------------------------------------------------------------------ */

static void test_manifest_name_from_key(void **state) {
        static const char yaml[] = "deployments:\n"
                                   "  hello:\n"
                                   "    image: /x\n"
                                   "  other:\n"
                                   "    name: explicit\n"
                                   "    image: /y\n"
                                   "  nulled:\n"
                                   "    name: ~\n"
                                   "    image: /z\n";
        cli_manifest_t m = {};
        char *error = NULL;

        assert_int_equal(cli_manifest_parse(&m, "m.yaml", yaml, strlen(yaml), NULL, &error), 0);
        assert_int_equal(m.n_entries, 3);
        assert_string_equal(m.entries[0].key, "hello");
        assert_string_equal(m.entries[0].file, "m.yaml");
        assert_string_equal(json_string_value(json_object_get(m.entries[0].deployment, "name")), "hello");
        assert_string_equal(m.entries[1].key, "other");
        assert_string_equal(json_string_value(json_object_get(m.entries[1].deployment, "name")), "explicit");
        assert_string_equal(json_string_value(json_object_get(m.entries[2].deployment, "name")), "nulled");
        assert_int_equal(m.n_warnings, 0);
        cli_manifest_clear(&m);
}

/* configs: entries: data as written, files: joined to the manifest's directory (read by husk
 * apply, not the parser), namespace default; a file of configs alone is a manifest; a value
 * that is not a string is refused with its path, and a failing file adds no config. */
static void test_manifest_configs(void **state) {
        static const char yaml[] = "configs:\n"
                                   "  nginx:\n"
                                   "    namespace: web\n"
                                   "    data: {LEVEL: info}\n"
                                   "    files: {site.conf: conf/site.conf, abs: /etc/hostname}\n"
                                   "  listed:\n"
                                   "    files: [a/b.txt]\n";
        static const char bad[] = "configs:\n  x:\n    data: {PORT: 8080}\n";
        cli_manifest_t m = {};
        char *error = NULL;

        assert_int_equal(cli_manifest_parse(&m, "/srv/app/m.yaml", yaml, strlen(yaml), NULL, &error), 0);
        assert_int_equal(m.n_entries, 0);
        assert_int_equal(m.n_configs, 2);
        assert_string_equal(m.configs[0].name, "nginx");
        assert_string_equal(m.configs[0].namespace_, "web");
        assert_string_equal(json_string_value(json_object_get(m.configs[0].data, "LEVEL")), "info");
        assert_string_equal(json_string_value(json_object_get(m.configs[0].files, "site.conf")),
                            "/srv/app/conf/site.conf");
        assert_string_equal(json_string_value(json_object_get(m.configs[0].files, "abs")), "/etc/hostname");
        assert_string_equal(m.configs[1].namespace_, "default");
        assert_string_equal(json_string_value(json_object_get(m.configs[1].files, "b.txt")), "/srv/app/a/b.txt");
        assert_int_equal(m.n_warnings, 0);

        assert_int_equal(cli_manifest_parse(&m, "m.yaml", bad, strlen(bad), NULL, &error), -EINVAL);
        assert_non_null(strstr(error, "configs.x.data.PORT"));
        assert_int_equal(m.n_configs, 2);
        free(error);
        cli_manifest_clear(&m);
}

static void test_manifest_labels_and_documents(void **state) {
        static const char yaml[] = "namespaces:\n"
                                   "  prod: {name: prod}\n"
                                   "deployments:\n"
                                   "  a:\n"
                                   "    image: /x\n"
                                   "    labels:\n"
                                   "      - app: web\n"
                                   "      - tier: \"front\"\n"
                                   "  b:\n"
                                   "    image: /x\n"
                                   "    labels: []\n"
                                   "---\n"
                                   "deployments:\n"
                                   "  c:\n"
                                   "    image: /x\n"
                                   "    labels: {k: v}\n"
                                   "extra: 1\n"
                                   "---\n";
        cli_manifest_t m = {};
        char *error = NULL, *labels;

        assert_int_equal(cli_manifest_parse(&m, "m.yaml", yaml, strlen(yaml), NULL, &error), 0);
        assert_int_equal(m.n_entries, 3);
        labels = json_dumps(json_object_get(m.entries[0].deployment, "labels"), JSON_COMPACT);
        assert_string_equal(labels, "{\"app\":\"web\",\"tier\":\"front\"}");
        free(labels);
        labels = json_dumps(json_object_get(m.entries[1].deployment, "labels"), JSON_COMPACT);
        assert_string_equal(labels, "{}");
        free(labels);
        labels = json_dumps(json_object_get(m.entries[2].deployment, "labels"), JSON_COMPACT);
        assert_string_equal(labels, "{\"k\":\"v\"}");
        free(labels);
        assert_int_equal(m.n_warnings, 1);
        assert_string_equal(m.warnings[0], "m.yaml: ignoring unknown top-level key 'extra'");
        assert_int_equal(json_array_size(m.namespaces), 1);
        assert_string_equal(json_string_value(json_array_get(m.namespaces, 0)), "prod");
        cli_manifest_clear(&m);
}

static void test_manifest_namespaces(void **state) {
        /* A list, Ring's mapping (name: defaults to the key), each name once, a document with
         * namespaces only; unknown fields warned about. */
        static const char yaml[] = "namespaces: [prod, staging, prod]\n"
                                   "---\n"
                                   "namespaces:\n"
                                   "  qa:\n"
                                   "  x: {name: dev, quota: 3}\n"
                                   "deployments:\n"
                                   "  a: {image: /x, namespace: qa}\n";
        static const char bad[] = "namespaces: [ok-one]\n"
                                  "---\n"
                                  "namespaces: [{name: nested}]\n";
        cli_manifest_t m = {};
        char *error = NULL, *all;

        assert_int_equal(cli_manifest_parse(&m, "m.yaml", yaml, strlen(yaml), NULL, &error), 0);
        all = json_dumps(m.namespaces, JSON_COMPACT);
        assert_string_equal(all, "[\"prod\",\"staging\",\"qa\",\"dev\"]");
        free(all);
        assert_int_equal(m.n_entries, 1);
        assert_int_equal(m.n_warnings, 1);
        assert_string_equal(m.warnings[0], "m.yaml: namespaces.x.quota is not supported by husk, ignoring it");

        /* A file that fails adds nothing, not even the namespaces of its good documents. */
        assert_int_equal(cli_manifest_parse(&m, "bad.yaml", bad, strlen(bad), NULL, &error), -EINVAL);
        assert_string_equal(error, "bad.yaml: namespaces[0]: must be a namespace name");
        assert_int_equal(json_array_size(m.namespaces), 4);
        free(error);
        cli_manifest_clear(&m);
}

static void test_manifest_aliases_are_copies(void **state) {
        /* The name fallback edits each deployment: an alias must not share the anchor's object. */
        static const char yaml[] = "deployments:\n"
                                   "  one: &base {image: /x}\n"
                                   "  two: *base\n";
        cli_manifest_t m = {};
        char *error = NULL;

        assert_int_equal(cli_manifest_parse(&m, "m.yaml", yaml, strlen(yaml), NULL, &error), 0);
        assert_int_equal(m.n_entries, 2);
        assert_string_equal(json_string_value(json_object_get(m.entries[0].deployment, "name")), "one");
        assert_string_equal(json_string_value(json_object_get(m.entries[1].deployment, "name")), "two");
        cli_manifest_clear(&m);
}

static void check_manifest_error(const char *yaml, const char *expected) {
        cli_manifest_t m = {};
        char *error = NULL;
        static const char good[] = "deployments: {ok: {image: /x}}";

        /* A failing file leaves what earlier files added untouched, and adds nothing. */
        assert_int_equal(cli_manifest_parse(&m, "good.yaml", good, strlen(good), NULL, &error), 0);
        assert_int_equal(cli_manifest_parse(&m, "m.yaml", yaml, strlen(yaml), NULL, &error), -EINVAL);
        if (!streq(error, expected))
                fail_msg("'%s': got '%s', want '%s'", yaml, error, expected);
        assert_int_equal(m.n_entries, 1);
        assert_int_equal(m.n_warnings, 0);
        free(error);
        cli_manifest_clear(&m);
}

static void test_manifest_structure_errors(void **state) {
        check_manifest_error("[1]", "m.yaml: a manifest is a mapping with a deployments: key");
        check_manifest_error("extra: 1\nservices: {}", "m.yaml: no deployments: key");
        check_manifest_error("deployments: [a]",
                             "m.yaml: deployments: must map each deployment's key to its definition");
        check_manifest_error("deployments: {a: {image: /x}, b: 3}", "m.yaml: deployments.b: must be a mapping");
        check_manifest_error("deployments: {a: {labels: [x]}}",
                             "m.yaml: deployments.a.labels[0]: list items must be key: value mappings");
        check_manifest_error("deployments: {a: {labels: 3}}",
                             "m.yaml: deployments.a.labels: must be a mapping of key: value");
        check_manifest_error("deployments:\n  a: {image: /x}\n  a: {image: /y}\n", "m.yaml:3:3: duplicate key 'a'");
}

static void test_manifest_empty(void **state) {
        cli_manifest_t m = {};
        char *error = NULL;

        assert_int_equal(cli_manifest_parse(&m, "m.yaml", "", 0, NULL, &error), 0);
        assert_int_equal(cli_manifest_parse(&m, "m.yaml", "deployments:\n", 13, NULL, &error), 0);
        assert_int_equal(m.n_entries, 0);
        cli_manifest_clear(&m);
}

static void test_ring_example_applies_unchanged(void **state) {
        /* The manifest from Ring's Cloud Hypervisor page, comments and all. */
        static const char yaml[] = "# my-vm.yaml\n"
                                   "deployments:\n"
                                   "  my-app:\n"
                                   "    name: my-app\n"
                                   "    namespace: production\n"
                                   "    runtime: cloud-hypervisor\n"
                                   "    image: \"/var/lib/ring/images/ubuntu-focal.raw\"\n"
                                   "    replicas: 1\n"
                                   "    resources:\n"
                                   "      limits:\n"
                                   "        cpu: \"2\"            # → 2 vCPUs (allocation, not cap; floor 1)\n"
                                   "        memory: \"512Mi\"     # → VM RAM size (minimum 128 MiB)\n"
                                   "    health_checks:\n"
                                   "      - type: tcp\n"
                                   "        port: 8080\n"
                                   "        interval: 10s\n"
                                   "        timeout: 5s\n"
                                   "        threshold: 3\n"
                                   "        on_failure: restart\n";
        cli_manifest_t m = {};
        cli_vars_t vars = {};
        char *error = NULL, *got;

        assert_int_equal(cli_manifest_parse(&m, "my-vm.yaml", yaml, strlen(yaml), &vars, &error), 0);
        assert_int_equal(m.n_entries, 1);
        got = json_dumps(m.entries[0].deployment, JSON_COMPACT);
        assert_string_equal(got, "{\"name\":\"my-app\",\"namespace\":\"production\",\"runtime\":\"cloud-hypervisor\","
                                 "\"image\":\"/var/lib/ring/images/ubuntu-focal.raw\",\"replicas\":1,"
                                 "\"resources\":{\"limits\":{\"cpu\":\"2\",\"memory\":\"512Mi\"}},"
                                 "\"health_checks\":[{\"type\":\"tcp\",\"port\":8080,\"interval\":\"10s\","
                                 "\"timeout\":\"5s\",\"threshold\":3,\"on_failure\":\"restart\"}]}");
        free(got);
        cli_manifest_clear(&m);
}

/* Where each node is written, by the paths the API's violations use (the dashboard places them
 * with it): keys at their key's line, list items at the item's, aliases not re-noted, the
 * first document first. */
static void test_lines(void **state) {
        static const char text[] = "deployments:\n"           /* 1 */
                                   "  web:\n"                 /* 2 */
                                   "    image: /x\n"          /* 3 */
                                   "    ports:\n"             /* 4 */
                                   "      - published: 80\n"  /* 5 */
                                   "        target: 8080\n"   /* 6 */
                                   "      - {published: 1}\n" /* 7 */
                                   "    labels: &l {a: b}\n"  /* 8 */
                                   "---\n"                    /* 9 */
                                   "deployments:\n"           /* 10 */
                                   "  web2:\n"                /* 11 */
                                   "    labels: *l2\n";       /* 12: an error, once lines are off */
        json_t *docs = NULL, *lines = NULL;
        char *error = NULL;

        assert_int_equal(cli_yaml_to_json_lines("f", text, strlen(text) - strlen("    labels: *l2\n"), NULL, &docs,
                                                &lines, &error),
                         0);
        assert_int_equal(json_integer_value(json_object_get(lines, "deployments")), 1);
        assert_int_equal(json_integer_value(json_object_get(lines, "deployments.web")), 2);
        assert_int_equal(json_integer_value(json_object_get(lines, "deployments.web.image")), 3);
        assert_int_equal(json_integer_value(json_object_get(lines, "deployments.web.ports[0]")), 5);
        assert_int_equal(json_integer_value(json_object_get(lines, "deployments.web.ports[0].target")), 6);
        assert_int_equal(json_integer_value(json_object_get(lines, "deployments.web.ports[1].published")), 7);
        assert_int_equal(json_integer_value(json_object_get(lines, "deployments.web.labels.a")), 8);
        assert_int_equal(json_integer_value(json_object_get(lines, "deployments.web2")), 11);
        json_decref(docs);
        json_decref(lines);

        /* Without lines asked for, the same documents; a failure leaves both unset. */
        docs = lines = NULL;
        assert_int_equal(cli_yaml_to_json_lines("f", text, strlen(text), NULL, &docs, &lines, &error), -EINVAL);
        assert_null(docs);
        assert_null(lines);
        assert_non_null(strstr(error, "f:12:"));
        free(error);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_lines),
                cmocka_unit_test(test_plain_scalars_typed),
                cmocka_unit_test(test_strings_stay_strings),
                cmocka_unit_test(test_tags),
                cmocka_unit_test(test_unrepresentable),
                cmocka_unit_test(test_collections),
                cmocka_unit_test(test_documents),
                cmocka_unit_test(test_anchors_resolved),
                cmocka_unit_test(test_merge_keys),
                cmocka_unit_test(test_billion_laughs_refused),
                cmocka_unit_test(test_depth_limited),
                cmocka_unit_test(test_syntax_errors_located),
                cmocka_unit_test(test_expand),
                cmocka_unit_test(test_expand_in_yaml),
                cmocka_unit_test(test_env_file),
                cmocka_unit_test(test_manifest_name_from_key),
                cmocka_unit_test(test_manifest_configs),
                cmocka_unit_test(test_manifest_labels_and_documents),
                cmocka_unit_test(test_manifest_namespaces),
                cmocka_unit_test(test_manifest_aliases_are_copies),
                cmocka_unit_test(test_manifest_structure_errors),
                cmocka_unit_test(test_manifest_empty),
                cmocka_unit_test(test_ring_example_applies_unchanged),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
