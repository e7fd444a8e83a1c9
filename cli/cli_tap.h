/* cli_tap.h: `husk tap`'s pure parts: event type patterns and msgpack bodies as JSON. */
#pragma once

#include <jansson.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>

/* Deepest msgpack nesting rendered; deeper values print as null. */

/* PATTERN is a type prefix ("instance." or "instance") or a glob ("instance.*", "*.exited").
 * The SUB prefix to subscribe to is its part before the first glob character. */
void cli_tap_prefix(const char *pattern, char *buf, size_t size);
bool cli_tap_match(const char *pattern, const char *type);

/* Any msgpack value as JSON: maps with non-string keys use the key's JSON text, uint64
 * beyond int64 becomes a decimal string, bin and strings that are not UTF-8 become
 * "base64:...", ext becomes {"ext": type, "data": "base64:..."}, NaN and infinities null. */
json_t *cli_msgpack_to_json(const msgpack_object *o);
