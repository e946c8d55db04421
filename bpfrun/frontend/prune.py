"""Cut the parts of a document that fail the schema, so later checks can still run on the rest.

The README promises every problem of a runbook at once. The model trusts the schema's shapes,
so after schema errors it cannot be built from the document as written; built from what
remains once each offending value (an unknown key, a value of the wrong type, a mapping
missing a required key) is cut out, it can, and the names, expressions and types of the
parts that were valid are checked in the same pass.
"""

from __future__ import annotations

from typing import Any

from jsonschema.exceptions import ValidationError as SchemaError

from bpfrun.frontend.loader import Document, KeyPath
from bpfrun.frontend.schema import schema_errors

MAX_ROUNDS = 8  # each round cuts at least one value; a required key cut makes its parent go


def prune_invalid(doc: Document) -> tuple[Document, list[KeyPath]] | None:
    """A copy of `doc` without the values that fail the schema, and the paths (in `doc`) cut.

    None when nothing useful is left: the root itself is wrong, or it did not settle.
    """
    dead: set[KeyPath] = set()
    current, origin = doc, None  # None: the paths of `current` are those of `doc`
    for _ in range(MAX_ROUNDS):
        errors = schema_errors(current)
        if not errors:
            return current, sorted(dead, key=len)
        for error in errors:
            for path in _culprits(error):
                if not path:
                    return None
                old = path if origin is None else origin.get(path)
                if old is None:
                    return None
                dead.add(old)
        current, origin = _copy_without(doc, dead)
    return None


def _culprits(error: SchemaError) -> list[KeyPath]:
    """The paths to cut for one schema error: the unknown keys, or the offending value."""
    path: KeyPath = tuple(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        return [(*path, k) for k in error.instance if k not in allowed]
    if "propertyNames" in error.absolute_schema_path and isinstance(error.instance, str):
        return [(*path, error.instance)]
    return [path]


def _copy_without(doc: Document, dead: set[KeyPath]) -> tuple[Document, dict[KeyPath, KeyPath]]:
    """`doc` less the `dead` paths; list items after a cut one move up, so their positions
    are moved with them. Returns the copy and, for each of its paths, the path in `doc`."""
    out = Document(doc.path, doc.text, None, findings=doc.findings)
    origin: dict[KeyPath, KeyPath] = {}

    def copy(value: Any, old: KeyPath, new: KeyPath) -> Any:
        origin[new] = old
        if old in doc.locs:
            out.locs[new] = doc.locs[old]
        if old in doc.key_locs:
            out.key_locs[new] = doc.key_locs[old]
        if isinstance(value, dict):
            return {k: copy(v, (*old, k), (*new, k)) for k, v in value.items()
                    if (*old, k) not in dead}
        if isinstance(value, list):
            kept = [(i, v) for i, v in enumerate(value) if (*old, i) not in dead]
            return [copy(v, (*old, i), (*new, j)) for j, (i, v) in enumerate(kept)]
        return value

    out.data = copy(doc.data, (), ())
    return out, origin
