/* agent_frame.h: frames between vmm-driver and husk-agent (see proto/SCHEMA.md, "Agent").
 *
 * A frame is a u32 big-endian length followed by that many bytes of one msgpack map with a
 * string "type" key. This is the security boundary between guest and host: the decoder
 * bounds every size and reports malformed input as an error, never a crash. */
#pragma once

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

/* 2: processes (proto/agent_proc.h); every frame of 1 unchanged. */
#define AGENT_PROTOCOL_VERSION 2
/* Largest frame body accepted, bytes: an exec answer carries up to 1 MiB each of stdout and
 * stderr, and still fits a bus message (4 MiB) when vmm-driver relays it. */
#define AGENT_FRAME_MAX (3u << 20)
#define AGENT_PORT_NAME "husk.agent"
/* The AF_VSOCK port husk-agent listens on (cloud-hypervisor, disk images), Ring's agent's. */
#define AGENT_VSOCK_PORT 2375

/* Incremental reader: feed bytes as they arrive, take complete frames out. */
typedef struct agent_frame_reader {
        uint8_t *buf;
        size_t len, cap;
} agent_frame_reader_t;

void agent_frame_reader_init(agent_frame_reader_t *r);
void agent_frame_reader_clear(agent_frame_reader_t *r);
int agent_frame_reader_feed(agent_frame_reader_t *r, const void *data, size_t size);
/* Returns 1 and fills *ret (caller calls msgpack_unpacked_destroy) when a whole frame is
 * buffered, 0 when more bytes are needed, -EMSGSIZE when the announced length exceeds
 * AGENT_FRAME_MAX, -EBADMSG when the body is not one msgpack map with a string "type". After
 * an error the stream is out of sync and must be closed. */
int agent_frame_reader_next(agent_frame_reader_t *r, msgpack_unpacked *ret);

/* Prefix a packed body with its length: out receives 4 + size bytes. */
int agent_frame_encode(const void *body, size_t size, msgpack_sbuffer *out);
