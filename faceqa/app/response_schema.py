"""A client's `response_format` JSON Schema: checked once with bounded work, then used without any retrieval.

A schema is the client's program run on the server, so it is held to what can be checked
before it runs:

- **Size**: at most `MAX_NODES` JSON values and `MAX_DEPTH` levels, and at most
  `MAX_EXPANDED` subschemas once every `$ref` is followed (a chain of `$defs` that each use
  the next twice would otherwise grow to 2^n). Each check walks iteratively, so no input
  reaches Python's recursion limit.
- **References are local**: a `$ref` is `#` or a JSON pointer `#/...` into this schema that
  lands on a subschema; recursion (`{"$ref": "#"}`, a `$defs` entry that reaches itself) is
  refused; `$dynamicRef`, `$recursiveRef` and a nested `$id` (which would move the base of
  later references) are refused. Validation uses a `referencing` registry that retrieves
  nothing, so no URL or file is ever read, and messages never quote what a reference points to.
- **No regular expressions** (`pattern`, `patternProperties`): they would run on the server and
  can backtrack for ever. A *property named* "pattern" is a name, not the keyword.

Everything here is CPU work on client input; the server calls it from a worker thread, never
on the event loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import unquote

import jsonschema
from referencing import Registry
from referencing.exceptions import Unresolvable

from .errors import APIError

PARAM = "response_format.json_schema.schema"
MAX_NODES = 2_000  # a schema for faceqa's answers needs a few dozen; the metaschema check costs ~0.1 ms a value
MAX_DEPTH = 32
MAX_EXPANDED = 2_000
_LATEST = "https://json-schema.org/draft/2020-12/schema"  # what jsonschema assumes without $schema
# Where each dialect's metaschema expects subschemas: a schema (one), a list of them (many), a name -> schema map.
# These positions are the ones `check_schema` verifies, so they are the only places a $ref may land.
_DRAFT6 = {"one": {"not", "additionalProperties", "additionalItems", "contains", "propertyNames", "items"},
           "many": {"allOf", "anyOf", "oneOf", "items"}, "named": {"properties", "definitions", "dependencies"}}
_DRAFT7 = {**_DRAFT6, "one": _DRAFT6["one"] | {"if", "then", "else"}}
_DRAFT2019 = {"one": _DRAFT7["one"] | {"unevaluatedItems", "unevaluatedProperties", "contentSchema"},
              "many": _DRAFT7["many"], "named": _DRAFT7["named"] | {"$defs", "dependentSchemas"}}
_DRAFT2020 = {"one": _DRAFT2019["one"] - {"additionalItems"}, "many": {"allOf", "anyOf", "oneOf", "prefixItems"},
              "named": _DRAFT2019["named"]}
DIALECTS = {
    "http://json-schema.org/draft-06/schema": _DRAFT6, "http://json-schema.org/draft-07/schema": _DRAFT7,
    "https://json-schema.org/draft/2019-09/schema": _DRAFT2019,
    "https://json-schema.org/draft/2020-12/schema": _DRAFT2020,
}
_REGEX = ("pattern", "patternProperties")
_REFUSED = ("$dynamicRef", "$recursiveRef")


def refused(message: str, code: str = "invalid_schema") -> APIError:
    return APIError(400, message, param=PARAM, code=code)


def check(schema: dict) -> None:
    """Returns if `schema` may be used; otherwise raises a 400 saying which rule it breaks."""
    _check_size(schema)
    dialect = schema.get("$schema")
    if dialect is not None and (not isinstance(dialect, str) or dialect.removesuffix("#") not in DIALECTS):
        raise refused("$schema must name JSON Schema draft 6, draft 7, 2019-09 or 2020-12")
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as error:
        raise refused(f"not a valid JSON Schema: {error.message}") from None
    positions = DIALECTS[dialect.removesuffix("#") if dialect else _LATEST]
    nodes, refs = _subschemas(schema, positions)
    _check_references(schema, nodes, refs, positions)


def validator(schema: dict) -> jsonschema.protocols.Validator:
    """A validator for a schema `check` accepted; its registry has no retrieval, so nothing is fetched."""
    return jsonschema.validators.validator_for(schema)(schema, registry=Registry())


def best_error(schema: dict, candidates: list[dict]) -> dict | jsonschema.ValidationError:
    """The first candidate the schema accepts, or the most relevant error of the last one."""
    checker = validator(schema)
    try:
        for candidate in candidates:
            if checker.is_valid(candidate):
                return candidate
        error = jsonschema.exceptions.best_match(checker.iter_errors(candidates[-1]))
    except Unresolvable:  # `check` resolves every reference first; kept so a gap there is a 400, not a 500
        raise refused("the schema refers to something it does not contain") from None
    assert error is not None, "a candidate that is not valid has at least one error"
    return error


def _check_size(schema: dict) -> None:
    count, stack = 0, [(schema, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise refused(f"the schema has more than {MAX_NODES:,} values (this server's limit)", "schema_too_large")
        if depth > MAX_DEPTH:
            raise refused(f"the schema nests deeper than {MAX_DEPTH} levels (this server's limit)",
                          "schema_too_large")
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((child, depth + 1) for child in children)


def _children(node: dict, positions: dict[str, set[str]]) -> Iterator[object]:
    """The subschemas directly inside a schema object (values of keywords that hold schemas)."""
    for key in positions["one"]:
        if key in node and isinstance(node[key], dict | bool):
            yield node[key]
    for key in positions["many"]:
        if isinstance(node.get(key), list):
            yield from node[key]
    for key in positions["named"]:
        if isinstance(node.get(key), dict):
            yield from (value for value in node[key].values() if isinstance(value, dict | bool))


def _subschemas(root: dict, positions: dict[str, set[str]]) -> tuple[dict[int, dict], list[tuple[dict, str]]]:
    """Every schema object in a schema position (by id), and each `$ref` with the object holding it.

    Checks keywords on the way: only keywords are looked at, so property names are free.
    """
    nodes: dict[int, dict] = {}
    refs: list[tuple[dict, str]] = []
    stack: list[object] = [root]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict) or id(node) in nodes:
            continue
        nodes[id(node)] = node
        regex = [key for key in _REGEX if key in node]
        if regex:
            raise refused(f"{' and '.join(regex)} (regular expressions) are not supported in response_format "
                          "schemas")
        for key in _REFUSED:
            if key in node:
                raise refused(f"{key} is not supported in response_format schemas; use $ref to #/$defs/...")
        if "$id" in node and node is not root:
            raise refused("$id is only accepted at the top of a response_format schema")
        if "$ref" in node:
            ref = node["$ref"]
            if not isinstance(ref, str) or not (ref == "#" or ref.startswith("#/")):
                raise refused("$ref must be a local reference: '#/' followed by a JSON pointer into this schema, "
                              "such as '#/$defs/face'")
            refs.append((node, ref))
        stack.extend(_children(node, positions))
    return nodes, refs


def _pointer(root: dict, ref: str) -> object:
    """What a `#/...` reference points to, resolved as `referencing` does; KeyError if nothing."""
    node: object = root
    for raw in unquote(ref[1:]).split("/")[1:]:
        segment = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and segment in node:
            node = node[segment]
        elif isinstance(node, list) and segment.isdigit() and int(segment) < len(node):
            node = node[int(segment)]
        else:
            raise KeyError(ref)
    return node


def _check_references(root: dict, nodes: dict[int, dict], refs: list[tuple[dict, str]],
                      positions: dict[str, set[str]]) -> None:
    """Every reference lands on a subschema; none leads back to itself; expanded size and depth stay bounded."""
    targets: dict[int, dict] = {}
    for holder, ref in refs:
        try:
            target = _pointer(root, ref)
        except KeyError:
            raise refused("a $ref points to nothing in this schema") from None
        if not isinstance(target, dict) or id(target) not in nodes:
            raise refused("a $ref must point to a subschema (e.g. an entry of $defs), not to another value")
        targets[id(holder)] = target

    def follow(node: dict) -> list[dict]:
        inside = [child for child in _children(node, positions) if isinstance(child, dict)]
        return inside + ([targets[id(node)]] if id(node) in targets else [])

    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    active: set[int] = set()
    stack: list[tuple[dict, bool]] = [(root, False)]
    while stack:
        node, leaving = stack.pop()
        key = id(node)
        if leaving:
            after = follow(node)
            active.discard(key)
            size[key] = 1 + sum(size[id(child)] for child in after)
            depth[key] = 1 + max((depth[id(child)] for child in after), default=0)
            if size[key] > MAX_EXPANDED:
                raise refused(f"the schema expands to more than {MAX_EXPANDED:,} subschemas once its $refs are "
                              "followed (this server's limit)", "schema_too_large")
            if depth[key] > MAX_DEPTH:
                raise refused(f"the schema nests deeper than {MAX_DEPTH} levels once its $refs are followed "
                              "(this server's limit)", "schema_too_large")
            continue
        if key in size:
            continue
        if key in active:
            raise refused("the schema is recursive (a $ref leads back to a schema that contains it); "
                          "recursive schemas are not supported")
        active.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in follow(node))
