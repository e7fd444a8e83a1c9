/* schema.h: the field tables generated from proto/schema.yaml, and a checker that holds a msgpack
 * body against them.
 *
 * Every message of the schema is a proto_message_t (proto_msg_<name>, e.g. proto_msg_instance_spec)
 * listing its fields with their msgpack type, whether they are required, and their bounds;
 * proto_methods, proto_events and proto_agent_frames say which message each method's arguments
 * and result, each event's body and each agent frame is. The codecs in proto/ stay hand-written;
 * tests/unit/proto/test_schema.c holds what they pack against these tables, and daemons use
 * proto_check() to say which field of a request was wrong. */
#pragma once

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/util.h"
#include "proto/names.h"

typedef enum proto_type {
        PROTO_ANY, /* anything (also: no element type) */
        PROTO_STR,
        PROTO_UINT,
        PROTO_INT,
        PROTO_BOOL,
        PROTO_MAP,
        PROTO_ARRAY,
        PROTO_BIN,
        PROTO_FLOAT, /* a number: msgpack float, or an integer (a sender may pack 0.0 as 0) */
} proto_type_t;

typedef struct proto_message proto_message_t;

typedef struct proto_field {
        const char *name;
        proto_type_t type;
        bool required;              /* present and not nil */
        bool nullable;              /* a required key whose value may be nil */
        uint64_t max;               /* str, bin: bytes; array, map: entries; uint, int: value; 0: none */
        uint64_t min;               /* uint, int: smallest value */
        proto_type_t elem;          /* array: element type; map: value type */
        const proto_message_t *sub; /* map: the message it holds; array: each element's */
        const char *const *values;  /* str: the values allowed, NULL-terminated; NULL: any */
} proto_field_t;

struct proto_message {
        const char *name;
        const proto_field_t *fields;
        size_t n_fields;
};

typedef struct proto_method {
        const char *name;
        const char *server; /* the daemon that serves it */
        const proto_message_t *args;
        const proto_message_t *result;
        bool result_array; /* the result is an array of result */
} proto_method_t;

typedef struct proto_event {
        const char *type; /* with prefix: the start of the type (log.<deployment_id>) */
        const char *publisher;
        const proto_message_t *body;
        bool prefix;
} proto_event_t;

typedef struct proto_agent_frame {
        const char *type;
        bool from_host; /* host to guest; else guest to host */
        const proto_message_t *body;
} proto_agent_frame_t;

#include "proto/tables_gen.h" /* $(BUILD)/gen/proto/tables_gen.h */

/* Why a body was refused, for people: "field: reason", the field as a path
 * ("ports[1].published: must be at most 65535"). */
typedef struct proto_error {
        char message[256];
} proto_error_t;

/* Sets e (when not NULL) and returns -EBADMSG. */
int proto_error_set(proto_error_t *e, const char *fmt, ...) _printf_(2, 3);

enum {
        /* Also refuse keys the message does not list and str values outside an enumeration: what
         * drift tests want. Without it the check is what every decoder enforces anyway (types,
         * required keys, bounds), and unknown keys are ignored so that fields can be added. */
        PROTO_CHECK_STRICT = 1 << 0,
};

/* Hold the map o against m: 0 when it fits, else -EBADMSG with e naming the first field wrong. */
int proto_check(const proto_message_t *m, const msgpack_object *o, unsigned flags, proto_error_t *e);

const proto_message_t *proto_message_find(const char *name);
const proto_method_t *proto_method_find(const char *name);
/* The event whose type is this (or, for a prefix event, starts with it); NULL when none. */
const proto_event_t *proto_event_find(const char *type);
