/* event.c: codec of the per-deployment event record (proto/SCHEMA.md, "event"). */
#include "proto/event.h"

#include <errno.h>
#include <string.h>

#include "lib/mp.h"
#include "lib/util.h"

#define LEVEL_MAX 16

static const char *const levels[] = { EVENT_LEVEL_INFO, EVENT_LEVEL_WARNING, EVENT_LEVEL_ERROR };

int event_level_rank(const char *level) {
        for (size_t i = 0; level && i < ELEMENTSOF(levels); i++)
                if (streq(level, levels[i]))
                        return (int)i;
        return -1;
}

bool event_level_valid(const char *level) { return event_level_rank(level) >= 0; }

void event_clear(event_t *e) {
        free(e->deployment_id);
        free(e->level);
        free(e->component);
        free(e->reason);
        free(e->message);
        memset(e, 0, sizeof(*e));
}

void event_pack(msgpack_packer *pk, const event_t *e) {
        msgpack_pack_map(pk, 7);
        mp_pack_kv_u64(pk, "id", e->id);
        mp_pack_kv_str(pk, "deployment_id", e->deployment_id);
        mp_pack_kv_u64(pk, "timestamp", e->timestamp);
        mp_pack_kv_str(pk, "level", e->level);
        mp_pack_kv_str(pk, "component", e->component);
        mp_pack_kv_str(pk, "reason", e->reason);
        mp_pack_kv_str(pk, "message", e->message ?: "");
}

int event_unpack(const msgpack_object *o, event_t *e) {
        int r;

        memset(e, 0, sizeof(*e));
        if (!o || o->type != MSGPACK_OBJECT_MAP)
                goto malformed;
        r = mp_get_u64(o, "id", &e->id);
        if (r < 0 && r != -ENOENT)
                goto malformed;
        r = mp_get_u64(o, "timestamp", &e->timestamp);
        if (r < 0 && r != -ENOENT)
                goto malformed;
        if (mp_get_str(o, "deployment_id", PROTO_ID_MAX, &e->deployment_id) < 0 ||
            mp_get_str(o, "level", LEVEL_MAX, &e->level) < 0 ||
            mp_get_str(o, "component", EVENT_COMPONENT_MAX, &e->component) < 0 ||
            mp_get_str(o, "reason", EVENT_REASON_MAX, &e->reason) < 0 ||
            mp_get_str(o, "message", EVENT_MESSAGE_MAX, &e->message) < 0)
                goto malformed;
        if (!event_level_valid(e->level) || !e->reason[0] || !e->component[0])
                goto malformed;
        return 0;

malformed:
        event_clear(e);
        return -EBADMSG;
}
