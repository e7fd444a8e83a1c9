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

/* An event body as tap prints it: lib/mp_json.h's mp_to_json with MP_JSON_SHOW_BYTES (bin and
 * strings that are not UTF-8 as "base64:...", ext as {"ext": type, "data": "base64:..."},
 * non-string keys as their JSON text). */
json_t *cli_msgpack_to_json(const msgpack_object *o);
