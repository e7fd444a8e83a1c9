"""chd_openapi.py: request bodies checked against cloud-hypervisor's OpenAPI document, the subset of OpenAPI 3.0 it uses.

Cloud Hypervisor deserialises bodies with serde (no deny_unknown_fields): a mistyped value is a 400,
an unknown field is silently dropped. The double is stricter on purpose: a field the spec does not
name is a violation too, because CH ignoring it means husk asked for a device or setting it will not
get. Every violation is reported with a JSON-pointer-like path so a test failure says what to fix.
"""

import yaml

# Integer formats the spec uses, and the Rust types behind them.
INT_RANGES = {
    "int16": (-(1 << 15), (1 << 15) - 1),
    "uint8": (0, 255),
    "uint16": (0, 65535),
    "int32": (-(1 << 31), (1 << 31) - 1),
    "uint32": (0, (1 << 32) - 1),
    "int64": (-(1 << 63), (1 << 63) - 1),
    "uint64": (0, (1 << 64) - 1),
}


class Spec:
    def __init__(self, path):
        with open(path) as f:
            # The C loader when built in: the double answers its socket sooner.
            self.doc = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        self.schemas = self.doc["components"]["schemas"]

    def resolve(self, schema):
        seen = 0
        while "$ref" in schema:
            ref = schema["$ref"]
            if not ref.startswith("#/components/schemas/"):
                raise ValueError(f"unsupported $ref {ref}")
            schema = self.schemas[ref.rsplit("/", 1)[1]]
            seen += 1
            if seen > 32:
                raise ValueError(f"$ref loop at {ref}")
        return schema

    def request_schema(self, path, method):
        """The request body schema of an operation, None when it takes no body, KeyError when unknown."""
        op = self.doc["paths"][path][method.lower()]
        body = op.get("requestBody")
        if not body:
            return None
        return body["content"]["application/json"]["schema"]

    def body_required(self, path, method):
        op = self.doc["paths"][path][method.lower()]
        return bool(op.get("requestBody", {}).get("required", False))

    def validate(self, value, schema, where="$"):
        """A list of human-readable violations, empty when value conforms."""
        errors = []
        self._check(value, schema, where, errors)
        return errors

    def _check(self, v, schema, where, errors):
        schema = self.resolve(schema)
        for key in ("allOf",):
            for sub in schema.get(key, []):
                self._check(v, sub, where, errors)
        if v is None:
            if not schema.get("nullable", False):
                errors.append(f"{where}: null where {schema.get('type', 'a value')} is expected")
            return
        t = schema.get("type")
        if t is None and "properties" in schema:
            t = "object"
        if t == "object":
            if not isinstance(v, dict):
                errors.append(f"{where}: expected an object, got {type(v).__name__}")
                return
            props = schema.get("properties", {})
            for req in schema.get("required", []):
                if req not in v:
                    errors.append(f"{where}: missing required field `{req}`")
            extra = schema.get("additionalProperties")
            for k, sub in v.items():
                if k in props:
                    self._check(sub, props[k], f"{where}.{k}", errors)
                elif isinstance(extra, dict):
                    self._check(sub, extra, f"{where}.{k}", errors)
                elif extra is True or (extra is None and not props):
                    pass
                else:
                    expected = ", ".join(f"`{p}`" for p in props)
                    errors.append(f"{where}: unknown field `{k}`, expected one of {expected}")
        elif t == "array":
            if not isinstance(v, list):
                errors.append(f"{where}: expected an array, got {type(v).__name__}")
                return
            for i, item in enumerate(v):
                self._check(item, schema.get("items", {}), f"{where}[{i}]", errors)
        elif t == "string":
            if not isinstance(v, str):
                errors.append(f"{where}: expected a string, got {type(v).__name__}")
                return
            if "minLength" in schema and len(v) < schema["minLength"]:
                errors.append(f"{where}: shorter than {schema['minLength']}")
        elif t == "integer":
            if isinstance(v, bool) or not isinstance(v, int):
                errors.append(f"{where}: expected an integer, got {type(v).__name__}")
                return
            lo, hi = INT_RANGES.get(schema.get("format"), (None, None))
            if lo is not None and not lo <= v <= hi:
                errors.append(f"{where}: {v} out of range for {schema['format']}")
        elif t == "number":
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                errors.append(f"{where}: expected a number, got {type(v).__name__}")
                return
        elif t == "boolean":
            if not isinstance(v, bool):
                errors.append(f"{where}: expected a boolean, got {type(v).__name__}")
                return
        if "enum" in schema and v not in schema["enum"]:
            errors.append(f"{where}: {v!r} is not one of {schema['enum']}")
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if "minimum" in schema and v < schema["minimum"]:
                errors.append(f"{where}: {v} is below the minimum {schema['minimum']}")
            if "maximum" in schema and v > schema["maximum"]:
                errors.append(f"{where}: {v} is above the maximum {schema['maximum']}")

    def with_defaults(self, v, schema):
        """v with the spec's defaults filled in, as CH's serde defaults show in vm.info."""
        schema = self.resolve(schema)
        if isinstance(v, dict) and (schema.get("type") == "object" or "properties" in schema):
            out = {}
            for k, sub in schema.get("properties", {}).items():
                subr = self.resolve(sub)
                if k in v:
                    out[k] = self.with_defaults(v[k], sub)
                elif "default" in subr:
                    out[k] = subr["default"]
            for k in v:
                if k not in out:
                    out[k] = v[k]
            return out
        if isinstance(v, list) and schema.get("type") == "array":
            return [self.with_defaults(x, schema.get("items", {})) for x in v]
        return v
