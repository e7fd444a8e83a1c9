/* instance.h: the instance record vmm-driver keeps and publishes (see proto/SCHEMA.md). */
#pragma once

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/names.h"
#include "proto/port.h"
#include "proto/volume.h"

/* An instance id is INSTANCE_ID_LEN lowercase hex digits (vmm-driver makes them). Every daemon
 * checks ids it reads against this one rule: they become directory, TAP and log-file names, so
 * the check is also the path-traversal guard. */
#define INSTANCE_ID_LEN 12
bool instance_id_valid(const char *id);

#define INSTANCE_STATE_STARTING "starting" /* VMM spawned, its control channel not yet up */
#define INSTANCE_STATE_RUNNING "running"   /* VMM up, guest booting */
#define INSTANCE_STATE_READY "ready"       /* the guest agent reported ready */
#define INSTANCE_STATE_STOPPING "stopping" /* graceful stop requested */
#define INSTANCE_STATE_EXITED "exited"     /* VMM process gone; directory kept until removed */

/* What to run: the arguments of instance.create. */
typedef struct instance_spec {
        char *instance_id;
        char *deployment_id;
        uint64_t generation;
        char *runtime;
        char *image;
        char *kernel; /* NULL: the configured kit kernel */
        char *initrd; /* NULL: the configured kit initrd */
        char *boot;   /* a disk image's: "firmware" | "kit" (the kit with the disk as the workload's
                       * root); NULL: firmware unless kernel or command is given */
        uint32_t cpus;
        uint32_t memory_mib;
        char *kind;         /* "worker" | "job"; NULL: worker */
        char **command;     /* kit mode: the workload's argv; NULL: the bundle's, or none */
        char **environment; /* "KEY=VALUE" for the workload and exec; NULL: none */
        port_spec_t *ports; /* published ports; netd forwards them to the guest */
        size_t n_ports;
        /* "KEY=VALUE" of the secrets the environment names (deployment.resolve), for the workload
         * and exec alike; NULL: none. Only instance.create carries it: instance_pack() (events,
         * instance.list) and the instance record (instance.json) leave it out, and vmm-driver
         * keeps it in memory only. */
        char **secret_environment;
        volume_spec_t *volumes; /* virtio-fs shares, one virtiofsd each; files only in instance.create */
        size_t n_volumes;
} instance_spec_t;

typedef struct instance {
        instance_spec_t spec;
        char *state;
        int64_t pid;         /* VMM pid, 0 when none */
        uint64_t started_at; /* unix ms */
        uint64_t ready_at;   /* unix ms, 0 until ready */
        uint64_t exited_at;  /* unix ms, 0 while alive */
        char *exit_reason;   /* e.g. "guest-shutdown", "killed", "stopped", "crashed" */
        int64_t exit_status; /* wait status decoded: code, or 128+signal; -1 when unknown */
        char *exit_message;  /* the VMM's last output lines when it crashed or was killed; NULL: none */
        char *address;       /* the guest's IPv4 address as netd gave it (net.attach); NULL: no network */
        bool firmware_boot;  /* the guest boots its disk by its own firmware; false: the kit (agent as PID 1) */
        char *template;      /* a clone: the template it was restored from (its key); NULL: booted cold */
        /* Unix ns, for measuring husk's own share of a start (make bench); 0 (and not packed) when unknown. */
        uint64_t spawned_at_ns; /* the VMM was exec'd (posix_spawn returned) */
        uint64_t ready_at_ns;   /* vmm-driver read the agent's ready */
} instance_t;

#define INSTANCE_EXIT_MESSAGE_MAX 1024 /* bytes of exit_message a decoder accepts */

void instance_spec_clear(instance_spec_t *s);
/* instance.create's arguments: every field, secret_environment and the volumes' files included. */
void instance_spec_pack(msgpack_packer *pk, const instance_spec_t *s);
int instance_spec_unpack(const msgpack_object *o, instance_spec_t *s);

void instance_clear(instance_t *i);
/* Packs the spec fields (but secret_environment) and the state fields into one flat map. */
void instance_pack(msgpack_packer *pk, const instance_t *i);
int instance_unpack(const msgpack_object *o, instance_t *i);

/* instance.* event body: the instance map plus "ts". */
void instance_event_pack(msgpack_packer *pk, const instance_t *i, uint64_t ts);
