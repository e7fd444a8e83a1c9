/* event.h: a per-deployment event (a decision or state change) as it travels on the bus. */
#pragma once

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#define EVENT_LEVEL_INFO "info"
#define EVENT_LEVEL_WARNING "warning"
#define EVENT_LEVEL_ERROR "error"

#define EVENT_REASON_MAX 63
#define EVENT_COMPONENT_MAX 63
#define EVENT_MESSAGE_MAX 1024

/* Reasons, CamelCase as Ring spells them (EVENT_CREATED, EVENT_BACK_OFF, ...): generated from
 * proto/schema.yaml, "reasons". */
#include "proto/names.h"

typedef struct event {
        uint64_t id; /* assigned by apiserver when stored; 0 in an event.record request */
        char *deployment_id;
        uint64_t timestamp; /* unix ms */
        char *level;        /* info, warning, error */
        char *component;    /* who decided: scheduler, apiserver, netd, ... */
        char *reason;       /* CamelCase */
        char *message;
} event_t;

bool event_level_valid(const char *level);
/* Ordering of levels (info 0, warning 1, error 2); -1 when unknown. */
int event_level_rank(const char *level);

void event_clear(event_t *e);
void event_pack(msgpack_packer *pk, const event_t *e);
/* Decode an event map. id and timestamp may be absent (a request to record one); the rest is
 * required, level must be known. -EBADMSG otherwise, with *e cleared. */
int event_unpack(const msgpack_object *o, event_t *e);
