"""Turn jsonschema's errors into (json_path, message) problems a user can act on.

jsonschema finds every violation; this module only rewords them into one shape,
`expected <what the spec wants>, got <what the file has>`, and names the field by its path.
Only imported when the fast check has already said the document is invalid.
"""

from __future__ import annotations

import json

from pyruntime.spec import jsonpath

# Type limits that need not be spelled out when the value is not even an integer.
_UNSIGNED_MAXIMA = {255, 65535, 4294967295, 18446744073709551615}
_TYPE_NAMES = {
    "object": "an object",
    "array": "an array",
    "string": "a string",
    "boolean": "a boolean (true or false)",
    "number": "a number",
    "integer": "an integer",
    "null": "null",
}


def shown(value: object, limit: int = 60) -> str:
    """A JSON rendering of a value, shortened for a one-line message."""
    text = json.dumps(value, separators=(", ", ": "), sort_keys=True, default=repr)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _integer(schema: dict, full_range: bool) -> str:
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and high is not None:
        if not full_range and low == 0 and high in _UNSIGNED_MAXIMA:
            return "an integer >= 0"
        return f"an integer between {low} and {high}"
    if low is not None:
        return f"an integer >= {low}"
    if high is not None:
        return f"an integer <= {high}"
    return "an integer"


def expected(schema: dict, full_range: bool = False) -> str:
    """What a (sub)schema asks for, in words."""
    if "x-expected" in schema:
        return schema["x-expected"]
    if "enum" in schema:
        return "one of " + ", ".join(shown(v) for v in schema["enum"])
    kind = schema.get("type")
    if kind == "integer":
        return _integer(schema, full_range)
    if kind == "string" and schema.get("minLength", 0) >= 1:
        return "a non-empty string"
    if kind == "array":
        items = schema.get("items", {})
        if isinstance(items, dict) and items.get("type") == "string":
            return "an array of strings"
        return "an array"
    if isinstance(kind, str):
        return _TYPE_NAMES.get(kind, kind)
    return "a valid value"


def _problems(error) -> list[tuple[str, str]]:
    path_parts = list(error.absolute_path)
    path = jsonpath.join(path_parts)
    rule = error.validator
    schema = error.schema if isinstance(error.schema, dict) else {}
    got = shown(error.instance)

    if "propertyNames" in error.relative_schema_path or "propertyNames" in error.absolute_schema_path:
        # The offending thing is a key: name it in the path.
        key = error.instance
        return [(jsonpath.child(path, key), f"key {shown(key)} is not allowed: expected {expected(schema)}")]
    if rule == "required":
        instance = error.instance if isinstance(error.instance, dict) else {}
        return [(jsonpath.child(path, name), "is required") for name in error.validator_value if name not in instance]
    if rule == "dependencies":
        instance = error.instance if isinstance(error.instance, dict) else {}
        out = []
        for name, needs in error.validator_value.items():
            if name in instance and isinstance(needs, list):
                missing = [n for n in needs if n not in instance]
                out += [(jsonpath.child(path, n), f"is required when {name} is set") for n in missing]
        return out
    if rule == "minItems":
        count = error.validator_value
        noun = "entry" if count == 1 else "entries"
        return [(path, f"expected at least {count} {noun}, got {got}")]
    if rule in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return [(path, f"expected {expected(schema, full_range=True)}, got {got}")]
    if rule in ("anyOf", "oneOf") and "x-expected" not in schema and error.context:
        from jsonschema.exceptions import best_match

        return _problems(best_match(error.context))
    return [(path, f"expected {expected(schema)}, got {got}")]


def problems_from(errors) -> list[tuple[str, str]]:
    """Problems for a batch of jsonschema errors, most relevant first, without duplicates."""
    from jsonschema.exceptions import relevance

    out: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for error in sorted(errors, key=relevance, reverse=True):
        for problem in _problems(error):
            if problem not in seen:
                seen.add(problem)
                out.append(problem)
    return out


def _ecma_pattern(validator, pattern, instance, schema):
    # JSON Schema patterns are ECMA-262 regexes, where "$" only matches at the very end; in
    # Python it also matches before a final newline. Translate it as the compiled check does,
    # so that both agree on "CAP_KILL\n".
    import re

    from jsonschema.exceptions import ValidationError

    if isinstance(instance, str) and not re.search(re.sub(r"(?<!\\)\$", r"\\Z", pattern), instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _validator_class():
    from jsonschema import Draft7Validator, validators

    return validators.extend(Draft7Validator, {"pattern": _ecma_pattern})


def schema_problems(document: object, schema: dict) -> list[tuple[str, str]]:
    """Every schema violation of the document, reworded (empty when it is valid)."""
    return problems_from(_validator_class()(schema).iter_errors(document))
