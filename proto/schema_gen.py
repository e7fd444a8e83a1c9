#!/usr/bin/python3
"""schema_gen.py: proto/schema.yaml -> the C constants and field tables, and the tests' Python tables.

    schema_gen.py proto/schema.yaml OUTDIR

writes OUTDIR/proto/names_gen.h (method, event, error, reason and agent frame names, bounds),
OUTDIR/proto/tables_gen.h and OUTDIR/proto/tables_gen.c (one proto_message_t per message, the
method, event and agent frame tables; types in proto/schema.h) and OUTDIR/husk_schema.py.
Run by the Makefile whenever the schema or this script changes. Refuses a schema that names an
unknown type, message or bound, so a typo fails the build rather than a test."""

import keyword
import os
import re
import sys

import yaml

TYPES = ("str", "uint", "int", "bool", "map", "array", "bin", "float", "any")
FIELD_KEYS = {"type", "required", "nullable", "max", "min", "of", "message", "values", "enum", "doc"}


class SchemaError(Exception):
    pass


def upper(name):
    """'instance.exited' -> INSTANCE_EXITED, 'CrashLoopBackOff' -> CRASH_LOOP_BACK_OFF."""
    s = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    return re.sub(r"[^A-Za-z0-9]+", "_", s).strip("_").upper()


def load(path):
    with open(path) as f:
        s = yaml.safe_load(f)
    bounds = s.get("bounds", {})
    messages = {}

    def bound(v, where):
        if v is None or isinstance(v, int):
            return v
        if v not in bounds:
            raise SchemaError(f"{where}: unknown bound {v!r}")
        return bounds[v]

    def fields_of(name, seen=()):
        if name in seen:
            raise SchemaError(f"message {name}: includes itself")
        m = s["messages"].get(name)
        if m is None:
            raise SchemaError(f"unknown message {name!r}")
        out = {}
        if m.get("include"):
            out.update(fields_of(m["include"], seen + (name,)))
        for fname, f in (m.get("fields") or {}).items():
            where = f"{name}.{fname}"
            f = dict(f or {})
            if set(f) - FIELD_KEYS:
                raise SchemaError(f"{where}: unknown keys {sorted(set(f) - FIELD_KEYS)}")
            if f.get("type") not in TYPES:
                raise SchemaError(f"{where}: type {f.get('type')!r} is not one of {TYPES}")
            f.setdefault("required", True)
            f.setdefault("nullable", False)
            f["max"] = bound(f.get("max"), where)
            f["min"] = bound(f.get("min"), where)
            for k in ("of", "values"):
                if f.get(k) is not None and f[k] not in TYPES and f[k] not in s["messages"]:
                    raise SchemaError(f"{where}: {k} {f[k]!r} is neither a type nor a message")
            if f.get("message") is not None and f["message"] not in s["messages"]:
                raise SchemaError(f"{where}: unknown message {f['message']!r}")
            out[fname] = f
        return out

    for name in s["messages"]:
        messages[name] = fields_of(name)
    for section, keys in (("methods", ("args", "result")), ("events", ("body",))):
        for name, m in s[section].items():
            for k in keys:
                if m[k] != "any" and m[k] not in messages:
                    raise SchemaError(f"{section} {name}: {k} {m[k]!r} is not a message")
            for code in m.get("errors", []):
                if code not in s["errors"]:
                    raise SchemaError(f"{section} {name}: unknown error {code!r}")
    for name, dirs in s["agent_frames"].items():
        for d, body in dirs.items():
            if d not in ("host", "guest") or body not in messages:
                raise SchemaError(f"agent frame {name}: {d}: {body!r}")
    return s, messages


def c_str(v):
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'


def names_h(s):
    out = ["/* names_gen.h: generated from proto/schema.yaml by proto/schema_gen.py. Do not edit. */",
           "#pragma once", "", "/* Bounds (proto/schema.yaml, bounds). */"]
    for name, v in s["bounds"].items():
        out.append(f"#define PROTO_{upper(name)}_MAX {v}u")
    out += ["", "/* Runtimes a deployment may name, the default first (an initializer list). */",
            "#define PROTO_RUNTIMES " + ", ".join(c_str(r) for r in s["runtimes"]),
            f"#define PROTO_RUNTIME_DEFAULT {c_str(s['runtimes'][0])}"]
    sections = (("Error codes of bus replies", "errors", "BUS_ERR_"),
                ("Error codes of agent error frames", "agent_errors", "AGENT_ERR_"),
                ("Event reasons", "reasons", "EVENT_"),
                ("Bus methods", "methods", "BUS_METHOD_"),
                ("Bus event types", "events", "BUS_EVENT_"),
                ("Agent frame types", "agent_frames", "AGENT_FRAME_"))
    for title, key, prefix in sections:
        out += ["", f"/* {title}. */"]
        for name, e in s[key].items():
            const = (e or {}).get("const") or prefix + upper(name)
            out.append(f"#define {const} {c_str(name)}")
    return "\n".join(out) + "\n"


def c_ident(name):
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def tables_h(s, messages):
    out = ["/* tables_gen.h: generated from proto/schema.yaml by proto/schema_gen.py. Do not edit.",
           " * Included by proto/schema.h, which declares the types. */", "#pragma once", ""]
    for name in messages:
        out.append(f"extern const proto_message_t proto_msg_{c_ident(name)};")
    out += ["", f"#define PROTO_N_METHODS {len(s['methods'])}",
            "extern const proto_method_t proto_methods[PROTO_N_METHODS];",
            f"#define PROTO_N_EVENTS {len(s['events'])}",
            "extern const proto_event_t proto_events[PROTO_N_EVENTS];",
            f"#define PROTO_N_AGENT_FRAMES {sum(len(d) for d in s['agent_frames'].values())}",
            "extern const proto_agent_frame_t proto_agent_frames[PROTO_N_AGENT_FRAMES];",
            f"#define PROTO_N_MESSAGES {len(messages)}",
            "extern const proto_message_t *const proto_messages[PROTO_N_MESSAGES];"]
    return "\n".join(out) + "\n"


def c_type(t):
    return "PROTO_" + t.upper()


def tables_c(s, messages):
    out = ["/* tables_gen.c: generated from proto/schema.yaml by proto/schema_gen.py. Do not edit. */",
           '#include "proto/schema.h"', ""]
    for name, fields in messages.items():
        ident = c_ident(name)
        enums = []
        for fname, f in fields.items():
            if f.get("enum"):
                vals = ", ".join(c_str(v) for v in f["enum"])
                out.append(f"static const char *const enum_{ident}_{c_ident(fname)}[] = {{ {vals}, NULL }};")
                enums.append(fname)
        rows = []
        for fname, f in fields.items():
            elem = f.get("of") or f.get("values")
            sub = f.get("message") or (elem if elem in messages else None)
            etype = elem if elem in TYPES else ("map" if sub else None)
            row = [f".name = {c_str(fname)}", f".type = {c_type(f['type'])}",
                   f".required = {'true' if f['required'] else 'false'}"]
            if f["nullable"]:
                row.append(".nullable = true")
            if f["max"] is not None:
                row.append(f".max = {f['max']}u")
            if f["min"] is not None:
                row.append(f".min = {f['min']}u")
            if etype:
                row.append(f".elem = {c_type(etype)}")
            if sub:
                row.append(f".sub = &proto_msg_{c_ident(sub)}")
            if fname in enums:
                row.append(f".values = enum_{ident}_{c_ident(fname)}")
            rows.append("        { " + ", ".join(row) + " },")
        if rows:
            out.append(f"static const proto_field_t fields_{ident}[] = {{")
            out += rows
            out.append("};")
        out.append(f"const proto_message_t proto_msg_{ident} = {{ {c_str(name)}, "
                   f"{'fields_' + ident if rows else 'NULL'}, {len(rows)} }};")
        out.append("")
    out.append("const proto_message_t *const proto_messages[PROTO_N_MESSAGES] = {")
    out += [f"        &proto_msg_{c_ident(n)}," for n in messages]
    out += ["};", "", "const proto_method_t proto_methods[PROTO_N_METHODS] = {"]
    for name, m in s["methods"].items():
        out.append(f"        {{ {c_str(name)}, {c_str(m['server'])}, &proto_msg_{c_ident(m['args'])}, "
                   f"&proto_msg_{c_ident(m['result'])}, {'true' if m.get('array') else 'false'} }},")
    out += ["};", "", "const proto_event_t proto_events[PROTO_N_EVENTS] = {"]
    for name, e in s["events"].items():
        out.append(f"        {{ {c_str(name)}, {c_str(e['publisher'])}, &proto_msg_{c_ident(e['body'])}, "
                   f"{'true' if e.get('prefix') else 'false'} }},")
    out += ["};", "", "const proto_agent_frame_t proto_agent_frames[PROTO_N_AGENT_FRAMES] = {"]
    for name, dirs in s["agent_frames"].items():
        for d, body in dirs.items():
            out.append(f"        {{ {c_str(name)}, {'true' if d == 'host' else 'false'}, "
                       f"&proto_msg_{c_ident(body)} }},")
    out.append("};")
    return "\n".join(out) + "\n"


PY_CHECK = '''

def _type_ok(kind, v):
    if kind == "str":
        return isinstance(v, str)
    if kind == "uint":
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0
    if kind == "int":
        return isinstance(v, int) and not isinstance(v, bool)
    if kind == "bool":
        return isinstance(v, bool)
    if kind == "map":
        return isinstance(v, dict)
    if kind == "array":
        return isinstance(v, (list, tuple))
    if kind == "bin":
        return isinstance(v, (bytes, bytearray))
    if kind == "float":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    return True


def _value_problems(where, f, v, strict):
    if v is None:
        return [] if f["nullable"] or not f["required"] else [f"{where}: nil"]
    if not _type_ok(f["type"], v):
        return [f"{where}: {v!r} is not {f['type']}"]
    out = []
    if f["type"] in ("str", "bin") and f["max"] is not None:
        n = len(v.encode()) if isinstance(v, str) else len(v)
        if n > f["max"]:
            out.append(f"{where}: {n} bytes, at most {f['max']}")
    if f["type"] in ("uint", "int"):
        if f["max"] is not None and v > f["max"]:
            out.append(f"{where}: {v} above {f['max']}")
        if f["min"] is not None and v < f["min"]:
            out.append(f"{where}: {v} below {f['min']}")
    if f["type"] in ("array", "map") and f["max"] is not None and len(v) > f["max"]:
        out.append(f"{where}: {len(v)} entries, at most {f['max']}")
    if f.get("enum") and v not in f["enum"]:
        out.append(f"{where}: {v!r} is not one of {f['enum']}")
    elem = f.get("of") if f["type"] == "array" else f.get("values") if f["type"] == "map" else None
    items = list(enumerate(v)) if f["type"] == "array" else list(v.items()) if f["type"] == "map" else []
    if f["type"] == "map" and f.get("message"):
        out += check(f["message"], v, strict, where)
    for k, e in items:
        ewhere = f"{where}[{k}]" if f["type"] == "array" else f"{where}.{k}"
        if elem in MESSAGES:
            out += check(elem, e, strict, ewhere)
        elif elem and not _type_ok(elem, e):
            out.append(f"{ewhere}: {e!r} is not {elem}")
    return out


def check(message, body, strict=True, where=None):
    """Problems of body against MESSAGES[message], as "field: reason" strings ([] when it fits).
    strict: a key the schema does not list is a problem too (what drift tests want; decoders
    ignore unknown keys)."""
    where = where or message
    fields = MESSAGES[message]
    if not isinstance(body, dict):
        return [f"{where}: not a map"]
    out = []
    for name, f in fields.items():
        if name not in body or (body[name] is None and not f["nullable"]):
            if f["required"]:
                out.append(f"{where}.{name}: missing")
            continue
        out += _value_problems(f"{where}.{name}", f, body[name], strict)
    if strict:
        out += [f"{where}.{k}: not in the schema" for k in body if k not in fields]
    return out


def event_body(event_type):
    """The message name of an event type's body, or None when the schema has no such type."""
    if event_type in EVENTS and not EVENTS[event_type].get("prefix"):
        return EVENTS[event_type]["body"]
    for name, e in EVENTS.items():
        if e.get("prefix") and event_type.startswith(name):
            return e["body"]
    return None
'''


def python(s, messages):
    def clean(fields):
        return {n: {k: f.get(k) for k in ("type", "required", "nullable", "max", "min", "of", "message",
                                           "values", "enum")} for n, f in fields.items()}
    out = ['"""husk_schema.py: generated from proto/schema.yaml by proto/schema_gen.py. Do not edit."""', ""]
    out.append(f"BOUNDS = {s['bounds']!r}")
    out.append(f"ERRORS = {sorted(s['errors'])!r}")
    out.append(f"AGENT_ERRORS = {sorted(s['agent_errors'])!r}")
    out.append(f"REASONS = {list(s['reasons'])!r}")
    out.append(f"MESSAGES = {{n: f for n, f in {[(n, clean(f)) for n, f in messages.items()]!r}}}")
    out.append(f"METHODS = {{n: m for n, m in {[(n, dict(m)) for n, m in s['methods'].items()]!r}}}")
    out.append(f"EVENTS = {{n: e for n, e in {[(n, dict(e)) for n, e in s['events'].items()]!r}}}")
    out.append(f"AGENT_FRAMES = {s['agent_frames']!r}")
    return "\n".join(out) + PY_CHECK


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: schema_gen.py SCHEMA OUTDIR")
    try:
        s, messages = load(sys.argv[1])
    except (SchemaError, KeyError, yaml.YAMLError) as e:
        sys.exit(f"{sys.argv[1]}: {e}")
    assert not any(keyword.iskeyword(n) for n in messages)
    outdir = sys.argv[2]
    os.makedirs(os.path.join(outdir, "proto"), exist_ok=True)
    for rel, text in (("proto/names_gen.h", names_h(s)), ("proto/tables_gen.h", tables_h(s, messages)),
                      ("proto/tables_gen.c", tables_c(s, messages)), ("husk_schema.py", python(s, messages))):
        path = os.path.join(outdir, rel)
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)


if __name__ == "__main__":
    main()
