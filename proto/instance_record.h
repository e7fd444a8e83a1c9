/* instance_record.h: instance.json, the file vmm-driver keeps in each instance directory and other daemons (logd) read. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "proto/instance.h"

#define INSTANCE_RECORD_FILE "instance.json"
#define INSTANCE_RECORD_MAX (64u * 1024u) /* a record is ~1 KiB; anything bigger is not ours */
/* The guest's serial console in the instance directory when a record does not name it. */
#define INSTANCE_CONSOLE_LOG_DEFAULT "console.log"

/* What survives a vmm-driver restart: the published instance plus what adoption and the stop
 * sequence need to resume, and what other daemons need to know about the instance. */
typedef struct instance_record {
        instance_t inst;
        uint64_t pid_start_time;    /* /proc/<pid>/stat field 22 (ticks since boot): pid reuse guard */
        uint64_t stop_requested_at; /* unix ms; 0 unless a stop was asked */
        bool remove_on_exit;        /* instance.stop {remove: true} */
        char *shutdown_reason;      /* the last shutdown reason the VMM announced, NULL if none seen */
        char *console_log;          /* file name in the instance directory; NULL: INSTANCE_CONSOLE_LOG_DEFAULT */
        char *workload_mode; /* "rootfs" or "bundle" (kit mode), "disk" (a disk image with a command); NULL: no workload */
        char *image_path; /* spec.image with every symlink resolved at create: what virtiofsd and the VMM were given */
        int64_t fs_pid;   /* virtiofsd serving the image, 0 when none */
        uint64_t fs_pid_start_time;
        /* The virtiofsd of each of spec.volumes, by index; pid 0 when none (not started yet, or stopped). */
        struct {
                int64_t pid;
                uint64_t start_time;
        } volume_fs[VOLUMES_MAX];
        bool workload_started;   /* the agent accepted the start request */
        bool secret_environment; /* the spec had a secret environment: in vmm-driver's memory only, so
                                  * after a restart a workload not yet started cannot be (without it) */
        bool workload_exited;    /* the agent reported the workload's exit: workload_status is it */
        int64_t workload_status; /* code, or 128+signal */
        bool identity_given;     /* a clone (inst.template): the agent took its identity (hostname, address...) */
        bool pooled; /* a clone taken paused from the warm pool: its image is VMM_POOL_IMAGE of its 9p share */
} instance_record_t;

typedef enum instance_record_mode {
        /* The writer's own reading (vmm-driver adopting): every key it writes is required. */
        INSTANCE_RECORD_FULL,
        /* Another daemon's: only deployment_id is required; what is present is still checked. */
        INSTANCE_RECORD_SUMMARY,
} instance_record_mode_t;

bool instance_state_valid(const char *state);
void instance_record_clear(instance_record_t *r);
int instance_record_to_json(const instance_record_t *r, char **ret);
/* Missing or mistyped keys (see mode) are -EBADMSG; unknown keys are ignored; *ret is left
 * untouched on failure. */
int instance_record_from_json(const char *text, instance_record_mode_t mode, instance_record_t *ret);
static inline const char *instance_record_console_log(const instance_record_t *r) {
        return r->console_log ?: INSTANCE_CONSOLE_LOG_DEFAULT;
}
