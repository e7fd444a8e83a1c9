/* names.h: the name of every bus method, event type, error code, event reason and agent frame
 * type, and the shared bounds, as constants generated from proto/schema.yaml (BUS_METHOD_*,
 * BUS_EVENT_*, BUS_ERR_*, AGENT_ERR_*, EVENT_*, AGENT_FRAME_*, PROTO_*_MAX). Code names them
 * through these, never as string literals, so a rename is one edit of the schema. */
#pragma once

#include "proto/names_gen.h" /* $(BUILD)/gen/proto/names_gen.h */
