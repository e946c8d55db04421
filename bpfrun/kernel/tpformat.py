"""Tracepoint records as tracefs describes them: a `format` file parsed into its fields, each
with the kind the compiler reads it by (integer, char array, __data_loc string, pointer, ...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FIELD_RE = re.compile(
    r"field(?: special)?:(?P<decl>[^;]*);\s*offset:(?P<offset>\d+);\s*size:(?P<size>\d+);"
    r"(?:\s*signed:(?P<signed>\d+);)?"
)
_ARRAY_RE = re.compile(r"^(?P<type>.*?)\s*(?P<name>[A-Za-z_]\w*)\s*\[(?P<len>[^\]]*)\]$")
_SCALAR_RE = re.compile(r"^(?P<type>.*?)\s*(?P<name>[A-Za-z_]\w*)$")
_INT_SIZES = (1, 2, 4, 8)


@dataclass(frozen=True)
class Field:
    """One field of a tracepoint record, as the format file describes it."""

    name: str
    ctype: str  # the whole declaration as written, e.g. "char prev_comm[16]", "pid_t pid"
    offset: int
    size: int
    signed: bool
    # "int" (integer scalar of size 1/2/4/8), "chararray" (char x[N]), "data_loc_str"
    # (__data_loc char[]), "data_loc" (other __data_loc arrays), "strptr" (char pointer),
    # "ptr" (other pointers), "array" (other fixed arrays), "other"
    kind: str
    array_len: int | None = None


@dataclass(frozen=True)
class TracepointFormat:
    category: str
    event: str
    id: int
    fields: tuple[Field, ...]  # without the common_* fields
    common_size: int  # bytes of the common_* fields: the offset of the first real field

    @property
    def probe(self) -> str:
        return f"tracepoint:{self.category}:{self.event}"

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)


def parse_format(text: str, category: str, event: str) -> TracepointFormat:
    """Parse a tracefs `format` file. Raises ValueError when it has no ID line."""
    m = re.search(r"^ID:\s*(\d+)", text, re.MULTILINE)
    if m is None:
        raise ValueError(f"format of {category}:{event} has no ID line")
    fields: list[Field] = []
    common_size = 0
    for fm in _FIELD_RE.finditer(text):
        offset, size = int(fm["offset"]), int(fm["size"])
        field = _parse_field(fm["decl"].strip(), offset, size, fm["signed"] == "1")
        if field.name.startswith("common_"):
            common_size = max(common_size, offset + size)
        else:
            fields.append(field)
    return TracepointFormat(category, event, int(m[1]), tuple(fields), common_size)


def _parse_field(decl: str, offset: int, size: int, signed: bool) -> Field:
    def make(name: str, kind: str, array_len: int | None = None) -> Field:
        return Field(name, decl, offset, size, signed, kind, array_len)

    for prefix in ("__data_loc", "__rel_loc"):
        if decl.startswith(prefix + " "):
            m = _SCALAR_RE.match(decl[len(prefix) :].strip())
            name = m["name"] if m else decl.split()[-1]
            if prefix == "__rel_loc":  # offset relative to the field's end: not generated yet
                return make(name, "other")
            elem = m["type"] if m else ""
            is_char = _base_type(elem.replace("[]", "")) == "char"
            return make(name, "data_loc_str" if is_char else "data_loc")
    if m := _ARRAY_RE.match(decl):
        n = int(m["len"]) if m["len"].strip().isdigit() else None
        if _base_type(m["type"]) == "char":
            return make(m["name"], "chararray", n if n is not None else size)
        return make(m["name"], "array", n)
    if m := _SCALAR_RE.match(decl):
        ctype = m["type"]
        if "*" in ctype:
            simple = ctype.count("*") == 1 and _base_type(ctype.replace("*", "")) == "char"
            return make(m["name"], "strptr" if simple else "ptr")
        is_aggregate = ctype.split()[:1] in (["struct"], ["union"])
        return make(m["name"], "int" if size in _INT_SIZES and not is_aggregate else "other")
    words = re.findall(r"[A-Za-z_]\w*", decl)
    return make(words[-1] if words else decl, "other")


def _base_type(ctype: str) -> str:
    """The type without qualifiers: "const char " -> "char"."""
    return " ".join(w for w in ctype.split() if w not in ("const", "volatile"))
