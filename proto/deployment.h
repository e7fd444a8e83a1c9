/* deployment.h: the deployment record as it travels on the bus (see proto/SCHEMA.md). */
#pragma once

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/health.h"
#include "proto/names.h"
#include "proto/port.h"
#include "proto/volume.h"

/* Statuses, as Ring names them. */
#define DEPLOYMENT_STATUS_PENDING "pending"
#define DEPLOYMENT_STATUS_CREATING "creating"
#define DEPLOYMENT_STATUS_RUNNING "running"
#define DEPLOYMENT_STATUS_DELETED "deleted"
#define DEPLOYMENT_STATUS_FAILED "failed"
#define DEPLOYMENT_STATUS_COMPLETED "completed"
#define DEPLOYMENT_STATUS_CRASH_LOOP "crash_loop_back_off"
#define DEPLOYMENT_STATUS_INSUFFICIENT_RESOURCES "insufficient_resources"

/* A deployment id is 1 to PROTO_ID_MAX bytes of [A-Za-z0-9_-], not starting with '-' (apiserver
 * makes uuids). Every daemon checks ids it reads against this one rule: they become directory
 * and file names (logd), so the check is also the path-traversal guard. */
bool deployment_id_valid(const char *id);

typedef struct deployment {
        char *id; /* uuid */
        char *namespace_;
        char *name;
        uint64_t generation; /* bumped whenever the spec changes */
        char *status;
        char *runtime; /* "qemu" | "cloud-hypervisor" */
        char *kind;    /* "worker" | "job" */
        char *image;   /* absolute path: raw disk image or rootfs/bundle directory */
        char *kernel;  /* optional kernel override; NULL = the kit */
        char *boot;    /* a disk image's boot: "firmware" | "kit"; NULL: firmware unless kernel or command */
        uint32_t replicas;
        uint32_t cpus;
        uint32_t memory_mib;
        uint32_t ready_replicas;
        char **command;                /* kit mode: the workload's argv (manifest command + args); NULL: none */
        char **environment;            /* "KEY=VALUE" entries of the manifest's environment:; NULL: none */
        uint32_t restart_count;        /* instances replaced after failures (packed when non-zero) */
        uint64_t failed_at;            /* unix ms: exit of the newest failure counted (packed when non-zero) */
        char *status_message;          /* why the status is what it is (packed when set) */
        health_check_t *health_checks; /* packed when any */
        size_t n_health_checks;
        port_spec_t *ports; /* published ports (packed when any) */
        size_t n_ports;
        bool resolve;           /* its instances need deployment.resolve before instance.create: secrets in
                       * its environment, configs or secrets in its volumes (packed when true) */
        volume_spec_t *volumes; /* virtio-fs shares, never with files (packed when any) */
        size_t n_volumes;
} deployment_t;

void deployment_clear(deployment_t *d);
void deployment_pack(msgpack_packer *pk, const deployment_t *d);
/* Decode from a msgpack map. Unknown keys are ignored; missing required keys or wrong
 * types fail with -EBADMSG and leave *d cleared. */
int deployment_unpack(const msgpack_object *o, deployment_t *d);

/* Body of deployment.* events. */
typedef struct deployment_event {
        uint64_t ts;
        char *deployment_id;
        char *namespace_;
        char *name;
        uint64_t generation;
        char *status;
        char *message; /* optional */
} deployment_event_t;

void deployment_event_clear(deployment_event_t *e);
void deployment_event_pack(msgpack_packer *pk, const deployment_event_t *e);
int deployment_event_unpack(const msgpack_object *o, deployment_event_t *e);
