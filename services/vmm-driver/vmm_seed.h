/* vmm_seed.h: the cloud-init NoCloud seed of a disk-image instance: a vfat volume labelled
 * CIDATA (made with mkfs.fat and mcopy, no xorriso) holding meta-data, user-data and
 * network-config. Its own header so that the runtime table can use it without the rest of
 * vmm.h.
 *
 * The environment reaches the guest as Ring's three files, plus Ring's path:
 *   /etc/husk/env                              KEY="value" lines, mode 0600
 *   /etc/profile.d/husk-env.sh                 export KEY="value" lines, mode 0600 (login
 *                                              shells of root; /etc/profile skips files it
 *                                              cannot read, so other users see no error)
 *   /etc/systemd/system/service.d/husk-env.conf  EnvironmentFile=-/etc/husk/env for every unit
 *   /etc/ring/env                              a symlink to /etc/husk/env
 * Their bytes travel base64-encoded in user-data, so YAML never sees a value.
 *
 * One quoting serves both readers: the value in double quotes, with \, ", $ and ` preceded by
 * a backslash and nothing else escaped. POSIX sh removes exactly those backslashes inside
 * double quotes and keeps newlines and tabs; systemd's EnvironmentFile parser (v239 and later:
 * env-file.c, DOUBLE_QUOTE_VALUE and its SHELL_NEED_ESCAPE) does the same, keeps a literal
 * newline inside double quotes and does no $ expansion. So a value with spaces, quotes, $,
 * backslashes, newlines, tabs and any UTF-8 reads back byte for byte in both.
 * What neither carries is refused with the key in the message: a key that is not
 * [A-Za-z_][A-Za-z0-9_]*, a value that is not valid UTF-8 or holds a control character other
 * than tab and newline (systemd drops such an assignment, "Ignoring invalid environment
 * assignment"), or a Unicode noncharacter (systemd's UTF-8 check refuses those too). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define VMM_SEED_FILE "seed.img"
#define VMM_SEED_LABEL "CIDATA"
#define VMM_SEED_CONTENT_MAX (4u * 1024u * 1024u) /* bytes of user-data and the rest together */

/* A volume as cloud-init mounts it: Ring's mounts: entry (fstab) for its virtio-fs tag, and
 * the same mount in bootcmd for a cloud-init whose mounts module skips a tag it does not take
 * for a device (Debian 12's 22.4). */
typedef struct vmm_seed_mount {
        const char *tag;
        const char *destination; /* [A-Za-z0-9/._+-] only: it goes into fstab and a shell line */
        bool readonly;
        const char *file; /* the share holds this one file, bound onto destination; NULL: mount the share */
} vmm_seed_mount_t;

typedef struct vmm_seed_spec {
        const char *instance_id;         /* meta-data instance-id */
        const char *hostname;            /* local-hostname; NULL: the instance id */
        char *const *environment;        /* "KEY=value"; NULL: none (the files are written empty) */
        char *const *secret_environment; /* the same, from secrets: in the seed (0600, gone at exit)
                                          * and nowhere else on the host */
        const char *address;             /* the guest's IPv4 address; NULL: no network-config */
        unsigned prefix;                 /* its prefix length (netd's /30: 30) */
        const char *gateway;             /* IPv4; NULL: no default route */
        char *const *dns;                /* IPv4 or IPv6 name servers; NULL: none */
        const vmm_seed_mount_t *mounts;  /* the volumes, in order */
        size_t n_mounts;
} vmm_seed_spec_t;

typedef struct vmm_seed_files {
        char *meta_data;
        char *user_data;
        char *network_config; /* NULL when the spec has no address */
        char *env;            /* the bytes of /etc/husk/env */
        char *profile;        /* the bytes of /etc/profile.d/husk-env.sh */
} vmm_seed_files_t;

/* The quoted form of value (see above) into *ret, malloc'd, quotes included. Returns 0,
 * -EINVAL (a value neither reader carries: *ret_error says why, naming key), -ENOMEM. */
int vmm_seed_env_quote(const char *key, const char *value, char **ret, char **ret_error);

/* The seed's files for spec. Returns 0, -EINVAL with *ret_error (malloc'd, names the key or
 * field at fault), -E2BIG when they exceed VMM_SEED_CONTENT_MAX, -ENOMEM. */
int vmm_seed_render(const vmm_seed_spec_t *spec, vmm_seed_files_t *ret, char **ret_error);
void vmm_seed_files_clear(vmm_seed_files_t *f);

/* Render and write dir/VMM_SEED_FILE (mode 0600), replacing the previous one atomically. The
 * absolute path into ret_path (malloc'd; may be NULL). Errors as vmm_seed_render, and -ENOENT
 * when mkfs.fat or mcopy is missing (the message names the package), -EIO when one failed
 * (its output in the message). */
int vmm_seed_write(const char *dir, const vmm_seed_spec_t *spec, char **ret_path, char **ret_error);

/* Remove dir's seed (and what a write cut short left). Missing files are not an error. */
void vmm_seed_remove(const char *dir);
