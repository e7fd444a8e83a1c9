/* apiserver_manifest_workload.c: command, args and environment: their checks, and the workload a stored spec asks for. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/disk_image.h"
#include "lib/mp.h"
#include "services/apiserver/apiserver_json.h"
#include "services/apiserver/apiserver_manifest_private.h"

#define ENV_KEY_MAX 256

/* Scalars are accepted as YAML users write them (`PORT: 8080`, `DEBUG: true`) and handed to the
 * workload as their text; maps and lists have no environment form. */
static json_t *env_value_text(const json_t *v) {
        char buf[64];

        if (json_is_string(v))
                return json_incref((json_t *)v);
        if (json_is_integer(v))
                snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        else if (json_is_real(v))
                snprintf(buf, sizeof(buf), "%.17g", json_real_value(v));
        else if (json_is_boolean(v))
                snprintf(buf, sizeof(buf), "%s", json_is_true(v) ? "true" : "false");
        else
                return NULL;
        return json_string(buf);
}

void manifest_parse_environment(parse_ctx_t *c, const char *key, const json_t *v) {
        const char *name;
        json_t *value;
        bool ok = true;

        if (!json_is_object(v))
                return manifest_wrong_type(c, key, "a map", v);
        if (json_object_size(v) > MP_STRV_MAX)
                return manifest_violation(c, key, "has %zu variables, at most %u are allowed", json_object_size(v),
                                          MP_STRV_MAX);
        json_object_foreach((json_t *)v, name, value) {
                char field[96], q[96];
                _cleanup_(json_decrefp) json_t *text = NULL;

                manifest_field_path(field, sizeof(field), key, name);
                if (!*name || strchr(name, '=') || strlen(name) > ENV_KEY_MAX) {
                        manifest_violation(c, field, "is not a variable name: use 1-%d characters without '='",
                                           ENV_KEY_MAX);
                        ok = false;
                        continue;
                }
                text = env_value_text(value);
                if (!text && json_is_object(value) && json_object_get(value, "secretRef")) {
                        manifest_violation(c, field,
                                           "secretRef is not supported yet: husk has no secrets store; the volumes "
                                           "and secrets work will add it: until then give the value itself");
                        ok = false;
                } else if (!text) {
                        manifest_violation(c, field, "must be a string, number or boolean, got %s",
                                           manifest_show(value, q, sizeof(q)));
                        ok = false;
                } else if (json_string_length(text) > MP_STRV_ITEM_MAX ||
                           strlen(json_string_value(text)) != json_string_length(text)) {
                        manifest_violation(c, field, "must be at most %u bytes without NUL", MP_STRV_ITEM_MAX);
                        ok = false;
                }
        }
        if (ok)
                manifest_keep(c, key, v);
}

/* command: (and args:) run in kit mode only: the agent that runs them lives in the kit's
 * initramfs. A disk image booted by its own firmware runs its own init and no husk-agent
 * unless the image installs one, so a command would be silently ignored. */
void manifest_check_workload(parse_ctx_t *c, const json_t *input) {
        const json_t *command = json_object_get(input, "command"), *args = json_object_get(input, "args");
        const json_t *boot = json_object_get(input, "boot");
        const char *field = command && !json_is_null(command) ? "command" : "args";
        struct stat st;

        if ((!command || json_is_null(command)) && (!args || json_is_null(args)))
                return;
        if (json_array_size(command) + json_array_size(args) > MP_STRV_MAX)
                return manifest_violation(c, field, "has more than %u arguments", MP_STRV_MAX);
        if (!c->m.image || stat(c->m.image, &st) < 0 || S_ISDIR(st.st_mode))
                return; /* kit mode, or an image this host cannot see: vmm-driver decides */
        if (c->m.kernel || (json_is_string(boot) && streq(json_string_value(boot), "kit")))
                return; /* disk mode with the kit kernel: the agent runs from the initramfs */
        manifest_violation(c, field,
                           "cannot be used with a disk image booted by its firmware: husk runs command: "
                           "through husk-agent in kit mode; give image: a rootfs or OCI bundle directory, "
                           "or add `boot: kit` to boot the disk with the guest kit");
}

/* `boot: firmware` says the disk boots its own kernel: a kernel: beside it, or an image that is
 * a directory (run by the kit over virtio-fs), contradicts it. */
void manifest_check_boot(parse_ctx_t *c, const json_t *input) {
        const json_t *boot = json_object_get(input, "boot");
        struct stat st;

        if (!json_is_string(boot) || !streq(json_string_value(boot), "firmware"))
                return;
        if (c->m.kernel)
                return manifest_violation(c, "boot",
                                          "\"firmware\" boots the disk's own kernel: leave kernel: out, or use "
                                          "`boot: kit` to boot the kit (or that kernel) with the disk attached");
        if (c->m.image && stat(c->m.image, &st) == 0 && S_ISDIR(st.st_mode))
                manifest_violation(c, "boot",
                                   "\"firmware\" needs a disk image: %s is a directory, which the guest kit runs "
                                   "(leave boot: out)",
                                   c->m.image);
}

/* An image that boots through its firmware (a file, without `kernel:`, `boot: kit` or a command)
 * must be a disk the firmware can boot: said at apply rather than as a failed instance later.
 * Only where this host can see the path (apiserver runs next to vmm-driver here); an image it
 * cannot see is vmm-driver's to refuse, with the same words. */
void manifest_check_image(parse_ctx_t *c, const json_t *input) {
        const json_t *boot = json_object_get(input, "boot");
        char err[DISK_IMAGE_ERROR_MAX];
        disk_image_kind_t kind;
        struct stat st;
        int r;

        if (!c->m.image || c->m.kernel || (json_is_string(boot) && streq(json_string_value(boot), "kit")))
                return;
        if (!json_is_null(json_object_get(input, "command") ?: json_null()) ||
            !json_is_null(json_object_get(input, "args") ?: json_null()))
                return; /* kit mode, or refused by manifest_check_workload */
        if (stat(c->m.image, &st) < 0 || S_ISDIR(st.st_mode))
                return;
        r = disk_image_probe(c->m.image, &kind, err, sizeof(err));
        if (r < 0)
                /* err reads "image PATH: why"; the field names itself. */
                manifest_violation(c, "image", "%s", strncmp(err, "image ", 6) == 0 ? err + 6 : err);
}

/* Derived from the stored spec rather than stored twice: the spec is what was applied. */
int manifest_workload_from_spec(const json_t *spec, char ***ret_command, char ***ret_env) {
        _cleanup_(mp_strv_freep) char **command = NULL, **env = NULL;
        const json_t *parts[2];
        const char *name;
        json_t *value;
        size_t n = 0;

        *ret_command = *ret_env = NULL;
        if (!spec)
                return 0;
        parts[0] = json_object_get(spec, "command");
        parts[1] = json_object_get(spec, "args");
        if (json_array_size(parts[0]) + json_array_size(parts[1]) > 0) {
                command = calloc(json_array_size(parts[0]) + json_array_size(parts[1]) + 1, sizeof(char *));
                if (!command)
                        return -ENOMEM;
                for (size_t p = 0; p < 2; p++) {
                        size_t i;
                        json_t *item;

                        json_array_foreach(parts[p], i,
                                           item) if (json_is_string(item) &&
                                                     !(command[n++] = strdup(json_string_value(item)))) return -ENOMEM;
                }
        }
        json_object_foreach(json_object_get(spec, "environment"), name, value) {
                _cleanup_(json_decrefp) json_t *text = env_value_text(value);
                _cleanup_free_ char *entry = NULL;

                if (!text)
                        continue;
                if (asprintf(&entry, "%s=%s", name, json_string_value(text)) < 0)
                        return -ENOMEM;
                if (mp_env_set(&env, entry) < 0)
                        return -ENOMEM;
        }
        if (!env && json_is_object(json_object_get(spec, "environment")))
                env = calloc(1, sizeof(char *)); /* present but empty */
        *ret_command = TAKE_PTR(command);
        *ret_env = TAKE_PTR(env);
        return 0;
}

int manifest_boot_from_spec(const json_t *spec, char **ret) {
        const char *boot;

        *ret = NULL;
        if (!spec)
                return 0;
        boot = json_string_value(json_object_get(spec, "boot"));
        /* A kernel: boots the kit's way: the disk is the workload's root, as with `boot: kit`. */
        if (!boot && json_is_string(json_object_get(spec, "kernel")))
                boot = "kit";
        if (boot && !(*ret = strdup(boot)))
                return -ENOMEM;
        return 0;
}
