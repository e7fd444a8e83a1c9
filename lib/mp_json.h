/* mp_json.h: a msgpack value as JSON. The one converter for what the apiserver serves of bus
 * replies and what `husk tap` prints of bus events, so that both say the same of the same bytes. */
#pragma once

#include <jansson.h>
#include <msgpack.h>

/* Show what JSON has no type for instead of null: for people reading a stream (husk tap); an API
 * answer keeps null there. */
#define MP_JSON_SHOW_BYTES (1u << 0)

/* o as JSON, the same for every caller:
 * - nil, bool, str, float and integers as themselves; a uint64 above INT64_MAX (json_int_t is
 *   signed) as its exact decimal string ("18446744073709551615"), since a real would round it;
 *   NaN and the infinities (JSON has none) as null;
 * - a str that is not UTF-8, bin and ext as null;
 * - map pairs with a str key without NUL bytes; other keys are skipped, and so is a pair whose
 *   key is not UTF-8 (jansson refuses it);
 * - nesting deeper than HUSK_NESTING_MAX (lib/nesting.h) is refused: NULL, as on out of memory.
 * With MP_JSON_SHOW_BYTES, instead of null or skipping: bin and non-UTF-8 str as "base64:...",
 * ext as {"ext": type, "data": "base64:..."}, and a non-str (or NUL-holding) key as its JSON text. */
json_t *mp_to_json(const msgpack_object *o, unsigned flags);
