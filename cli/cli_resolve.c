/* cli_resolve.c: which deployment an ID, id prefix or NAME on the command line means. */
#include <errno.h>
#include <string.h>

#include "cli/cli_deployment.h"
#include "cli/cli_output.h"
#include "lib/util.h"

bool cli_is_full_id(const char *ref) {
        static const size_t dashes[] = { 8, 13, 18, 23 };
        size_t d = 0;

        if (strlen(ref) != 36)
                return false;
        for (size_t i = 0; i < 36; i++) {
                char ch = ref[i];

                if (d < ELEMENTSOF(dashes) && i == dashes[d]) {
                        if (ch != '-')
                                return false;
                        d++;
                } else if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F'))) {
                        return false;
                }
        }
        return true;
}

typedef enum match_kind {
        MATCH_ID,
        MATCH_NAME,
        MATCH_PREFIX,
} match_kind_t;

static bool matches(const json_t *d, match_kind_t kind, const char *ref, const char *namespace_) {
        const char *id = cli_json_str(d, "id", ""), *ns = cli_json_str(d, "namespace", "");

        if (namespace_ && !streq(ns, namespace_))
                return false;
        switch (kind) {
        case MATCH_ID:
                return streq(id, ref);
        case MATCH_NAME:
                return streq(cli_json_str(d, "name", ""), ref);
        case MATCH_PREFIX:
                return strncmp(id, ref, strlen(ref)) == 0;
        }
        return false;
}

/* The matches of one rule: 0 with *ret for exactly one, -ENOENT, or -ENOTUNIQ with the
 * candidates. */
static int find(const json_t *list, match_kind_t kind, const char *ref, const char *namespace_, const json_t **ret,
                json_t **ret_candidates) {
        const json_t *found = NULL;
        json_t *candidates = NULL, *d;
        size_t i;

        json_array_foreach(list, i, d) {
                if (!matches(d, kind, ref, namespace_))
                        continue;
                if (!found) {
                        found = d;
                        continue;
                }
                if (!candidates) {
                        candidates = json_array();
                        if (!candidates || json_array_append(candidates, (json_t *)found) < 0) {
                                json_decref(candidates);
                                return -ENOMEM;
                        }
                }
                if (json_array_append(candidates, d) < 0) {
                        json_decref(candidates);
                        return -ENOMEM;
                }
        }
        if (candidates) {
                /* A deployment being deleted is going away: when exactly one candidate is not,
                 * it is the one meant. */
                const json_t *live = NULL;
                size_t n_live = 0;

                json_array_foreach(candidates, i, d) if (!streq(cli_json_str(d, "status", ""), "deleted")) {
                        live = d;
                        n_live++;
                }
                if (n_live == 1) {
                        json_decref(candidates);
                        *ret = live;
                        return 0;
                }
                *ret_candidates = candidates;
                return -ENOTUNIQ;
        }
        if (!found)
                return -ENOENT;
        *ret = found;
        return 0;
}

int cli_resolve_deployment(const json_t *list, const char *ref, const char *namespace_, const json_t **ret,
                           json_t **ret_candidates) {
        int r;

        *ret_candidates = NULL;
        if (!ref || !*ref)
                return -ENOENT;
        r = find(list, MATCH_ID, ref, namespace_, ret, ret_candidates);
        if (r != -ENOENT)
                return r;
        if (namespace_) {
                r = find(list, MATCH_NAME, ref, namespace_, ret, ret_candidates);
        } else {
                /* Like kubectl, a bare name means the default namespace; unlike it, a name that
                 * exists in exactly one other namespace is found there too. */
                r = find(list, MATCH_NAME, ref, "default", ret, ret_candidates);
                if (r == -ENOENT)
                        r = find(list, MATCH_NAME, ref, NULL, ret, ret_candidates);
        }
        if (r != -ENOENT || strlen(ref) < CLI_ID_PREFIX_MIN)
                return r;
        return find(list, MATCH_PREFIX, ref, namespace_, ret, ret_candidates);
}
