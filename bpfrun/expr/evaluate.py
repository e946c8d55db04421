"""User-space expressions: `when`, thresholds, captures and `${{ }}` templates over results.

Values keep their types (Duration, Size, int, str, bool, None). Null propagates: a field of
null is null, a comparison with null is false, and the evaluator remembers that it saw a null
so that a threshold can say "no data" instead of "ok".
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from bpfrun.expr.nodes import Attr, Binary, Call, In, Index, Literal, Name, Node, Unary, dotted
from bpfrun.expr.parser import TemplateExpr
from bpfrun.expr.rows import RESULT_FUNCTIONS, FunctionError
from bpfrun.units import Duration, Size

# Where the run puts its cgroup namer (id → "unit checkout.service") for cgroup_name(): not
# a name a runbook can write, and the names come from the host, which expr cannot see.
CGROUP_NAMES = "$cgroup_names"

# The functions of user-space expressions and how many arguments each takes (None: one or
# more): the evaluator and the checks before a run (frontend/check.py) read the same table.
FUNCTIONS: dict[str, int | None] = {
    "len": 1, "str": 1, "startswith": 2, "over": 2, "percent": 2, "cgroup_name": 1,
    "min": None, "max": None, **{name: n for name, (n, _) in RESULT_FUNCTIONS.items()}}


def call_problem(node: Call) -> str | None:
    """What is wrong with a call whatever its arguments' values: an unknown function or a
    wrong number of arguments."""
    if node.func not in FUNCTIONS:
        return f"unknown function '{node.func}'"
    n = FUNCTIONS[node.func]
    if n is None:
        return None if node.args else f"{node.func}() takes one or more arguments"
    if len(node.args) != n:
        return f"{node.func}() takes {n} argument{'s' if n > 1 else ''}"
    return None


class EvalError(Exception):
    def __init__(self, message: str, node: Node) -> None:
        super().__init__(message)
        self.node = node


class Fields:
    """Something with named fields for expressions (aggregation views, rows)."""

    def field(self, name: str) -> Any:
        raise KeyError(name)


# Percentile fields of histograms and the rank each stands for.
PERCENTILE_RANKS = {"p50": 0.50, "p90": 0.90, "p99": 0.99}


class Distribution(Fields):
    """A histogram (or one of its rows) that may decide a percentile against a limit on an
    exact count of the values above it, counted in the kernel (compile/lower/limits.py)."""

    def over(self, limit: Any) -> int | None:
        """How many values were above `limit`; None when that limit was not counted."""
        return None

    def compare_percentile(self, name: str, op: str, limit: Any) -> bool | None:
        """`self.<name> <op> limit` decided exactly; None: undecided, compare the value."""
        return None


class _Partial(Fields):
    """`row.args` while looking for the key `args.next_comm`."""

    def __init__(self, owner: Fields, prefix: str) -> None:
        self.owner, self.prefix = owner, prefix

    def field(self, name: str) -> Any:
        return self.owner.field(f"{self.prefix}.{name}")


_CMP: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
    "==": operator.eq, "!=": operator.ne}
_ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "*": operator.mul, "/": operator.floordiv, "%": operator.mod, "+": operator.add,
    "-": operator.sub, "<<": operator.lshift, ">>": operator.rshift, "&": operator.and_,
    "^": operator.xor, "|": operator.or_}


def _magnitude(v: Any) -> tuple[str, Any]:
    if isinstance(v, Duration):
        return "duration", v.ns
    if isinstance(v, Size):
        return "size", v.bytes
    if isinstance(v, bool):
        return "bool", v
    if isinstance(v, (int, float)):
        return "number", v
    if isinstance(v, str):
        return "str", v
    return type(v).__name__, v


class Evaluator:
    def __init__(self, names: dict[str, Any]) -> None:
        self.names = names
        self.null_seen: list[str] = []

    def eval(self, node: Node) -> Any:
        value = self._visit(node)
        if isinstance(value, _Partial):  # `row.args.nxet_comm`: no such key, whole or in part
            known = getattr(value.owner, "key", None)
            have = f" (it has: {', '.join(map(str, known))})" if isinstance(known, dict) else ""
            raise EvalError(f"no field '{value.prefix}'{have}", node)
        return value

    def _visit(self, node: Node) -> Any:
        method: Callable[[Any], Any] = getattr(self, f"visit_{type(node).__name__}")
        return method(node)

    def truth(self, node: Node) -> bool:
        value = self.eval(node)
        return bool(value) if value is not None else False

    def visit_Literal(self, node: Literal) -> Any:
        return {"duration": Duration, "size": Size}.get(node.kind, lambda v: v)(node.value)

    def visit_Name(self, node: Name) -> Any:
        if node.name not in self.names:
            known = ", ".join(sorted(self.names))
            raise EvalError(f"unknown name '{node.name}' (known here: {known})", node)
        return self._null_check(self.names[node.name], node)

    def _null_check(self, value: Any, node: Node) -> Any:
        if value is None:
            self.null_seen.append(dotted(node) or "value")
        return value

    def visit_Attr(self, node: Attr) -> Any:
        obj = self._visit(node.obj)  # may be a _Partial: `row.args` of `row.args.next_comm`
        if obj is None:
            return None
        if isinstance(obj, dict):
            if node.name not in obj:
                raise EvalError(f"'{dotted(node.obj)}' has no '{node.name}' "
                                f"(it has: {', '.join(map(str, obj))})", node)
            return self._null_check(obj[node.name], node)
        if isinstance(obj, Fields):
            try:
                return self._null_check(obj.field(node.name), node)
            except KeyError:
                if isinstance(obj, _Partial):  # keep the row as owner: args.next.comm
                    return _Partial(obj.owner, f"{obj.prefix}.{node.name}")
                return _Partial(obj, node.name)
        raise EvalError(f"a {type(obj).__name__} has no field '{node.name}'", node)

    def visit_Index(self, node: Index) -> Any:
        obj, idx = self.eval(node.obj), self.eval(node.index)
        if obj is None or idx is None:
            return None
        if isinstance(obj, Fields) and isinstance(idx, str):
            try:
                return self._null_check(obj.field(idx), node)
            except KeyError:
                raise EvalError(f"no field {idx!r}", node) from None
        if isinstance(obj, dict) and isinstance(idx, str):
            if idx not in obj:
                raise EvalError(f"no field {idx!r} (it has: {', '.join(map(str, obj))})", node)
            return self._null_check(obj[idx], node)
        if isinstance(obj, (list, tuple, str)) and isinstance(idx, int) \
                and not isinstance(idx, bool):
            if -len(obj) <= idx < len(obj):
                return obj[idx]
            self.null_seen.append(f"{dotted(node.obj) or 'list'}[{idx}]")
            return None  # no such row: no data
        raise EvalError("only lists can be indexed, by an integer", node)

    def visit_Call(self, node: Call) -> Any:
        problem = call_problem(node)
        if problem is not None and node.func in FUNCTIONS:
            raise EvalError(problem, node)
        args = [self.eval(a) for a in node.args]
        if node.func == "len":
            if isinstance(args[0], Fields):  # an aggregation: its rows
                args[0] = args[0].field("rows")
            if args[0] is not None and not isinstance(args[0], (list, tuple, str)):
                raise EvalError(f"len() of {_magnitude(args[0])[0]}: it takes a list or a "
                                "string", node)
            return None if args[0] is None else len(args[0])
        if node.func == "str":
            return None if args[0] is None else display(args[0])
        if node.func == "startswith":
            return None if None in args else str(args[0]).startswith(str(args[1]))
        if node.func in ("over", "percent"):
            return _over(node, args) if node.func == "over" else _percent(node, args)
        if node.func == "cgroup_name":
            return _cgroup_name(self.names.get(CGROUP_NAMES), args[0])
        if node.func in RESULT_FUNCTIONS:
            return _result_function(node, args)
        if node.func in ("min", "max") and args:
            vals = [a for a in args if a is not None]
            if len({_magnitude(v)[0] for v in vals}) > 1:
                raise EvalError(f"{node.func}() of values of different kinds", node)
            return (min if node.func == "min" else max)(vals) if vals else None
        raise EvalError(f"unknown function '{node.func}' (len, str, startswith, min, max, "
                        "over, percent, cgroup_name, " + ", ".join(RESULT_FUNCTIONS) + ")",
                        node)

    def visit_Unary(self, node: Unary) -> Any:
        v = self.eval(node.operand)
        if node.op == "!":
            return not v if v is not None else True
        if v is None:
            return None
        kind, _ = _magnitude(v)
        if kind not in ("number", "duration", "size"):
            raise EvalError(f"cannot negate a {kind}", node)
        return -v if not isinstance(v, (Duration, Size)) else type(v)(-_magnitude(v)[1])

    def visit_In(self, node: In) -> Any:
        v = self.eval(node.item)
        return v is not None and any(v == self.eval(o) for o in node.options)

    def visit_Binary(self, node: Binary) -> Any:
        if node.op == "&&":
            return self.truth(node.left) and self.truth(node.right)
        if node.op == "||":
            return self.truth(node.left) or self.truth(node.right)
        exact = self._percentile_vs_limit(node) if node.op in _FLIP else None
        if exact is not None:
            return exact
        left, right = self.eval(node.left), self.eval(node.right)
        if node.op in ("==", "!=") and (left is None or right is None):
            return (left is right) == (node.op == "==")
        if left is None or right is None:
            return False if node.op in _CMP else None
        (lk, lv), (rk, rv) = _magnitude(left), _magnitude(right)
        if node.op in _CMP:
            if lk != rk and not (0 in (lv, rv) and {lk, rk} <= {"number", "duration", "size"}):
                raise EvalError(f"cannot compare a {lk} with a {rk}", node)
            return _CMP[node.op](lv, rv)
        if node.op in ("/", "%") and rv == 0:
            return None  # no meaningful value, like a stat of no data
        if lk in ("duration", "size") or rk in ("duration", "size"):
            value = _unit_arith(node, lk, lv, rk, rv)
            if isinstance(value, (Duration, Size)) \
                    and not _INT_MIN <= _magnitude(value)[1] <= _INT_MAX:
                raise EvalError(f"the result of {node.op} does not fit in 64 bits", node)
            return value
        if lk == "str" and rk == "str" and node.op == "+":
            return lv + rv
        if lk not in ("number", "bool") or rk not in ("number", "bool"):
            raise EvalError(f"cannot use {node.op} on a {lk} and a {rk}", node)
        return _bounded(node, lv, rv)

    def _percentile_vs_limit(self, node: Binary) -> bool | None:
        """`dist.p99 > X` decided on the exact count of values above X where it was counted."""
        for pct, other, op in ((node.left, node.right, node.op),
                               (node.right, node.left, _FLIP[node.op])):
            if isinstance(pct, Attr) and pct.name in PERCENTILE_RANKS:
                dist = self._visit(pct.obj)
                if isinstance(dist, Distribution):
                    limit = self.eval(other)
                    return None if limit is None else dist.compare_percentile(pct.name, op,
                                                                              limit)
        return None


_FLIP = {">": "<", "<": ">", ">=": "<=", "<=": ">="}
# What a kernel program can hold: integer arithmetic stays within 64 bits, as there.
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1


def _bounded(node: Binary, lv: Any, rv: Any) -> Any:
    """`lv op rv` for plain numbers, refused where the kernel could not compute it: a shift
    by a negative or 64+ count (no 2**99999999999-sized integers), a result past 64 bits."""
    if node.op in ("<<", ">>") and not (isinstance(rv, int) and 0 <= rv < 64):
        raise EvalError(f"cannot shift by {rv}: shift counts go from 0 to 63", node)
    if node.op in ("<<", ">>", "&", "^", "|") and not (isinstance(lv, int)
                                                       and isinstance(rv, int)):
        raise EvalError(f"{node.op} takes integers", node)
    value = _ARITH[node.op](lv, rv)
    if isinstance(value, int) and not _INT_MIN <= value <= _INT_MAX:
        raise EvalError(f"the result of {node.op} does not fit in 64 bits", node)
    return value


def _over(node: Call, args: list[Any]) -> int | None:
    """over(dist, limit): how many of a histogram's values were above `limit`."""
    dist, limit = args
    if dist is None or limit is None:
        return None
    if not isinstance(dist, Distribution):
        raise EvalError("over() takes a histogram (or one of its rows) and a limit", node)
    count = dist.over(limit)
    if count is None:
        raise EvalError("over(): this limit was not counted in the kernel (it must be known "
                        "before the step runs: a param, a constant or an earlier step's value)",
                        node)
    return count


def _result_function(node: Call, args: list[Any]) -> Any:
    """Functions over stacks, rows and series (frames.py, rows.py); null in, null out."""
    if any(a is None for a in args):
        return None
    try:
        return RESULT_FUNCTIONS[node.func][1](*args)
    except FunctionError as e:
        raise EvalError(f"{node.func}() {e}", node) from None


def _cgroup_name(namer: Any, value: Any) -> Any:
    """A cgroup id by the name the run took ("unit checkout.service"); `cgroup <id>` when
    the run named none (a step that does not key by cgroup)."""
    if value is None or isinstance(value, bool) or not isinstance(value, int):
        return value
    return namer(value) if callable(namer) else f"cgroup {value}"


def _percent(node: Call, args: list[Any]) -> float | None:
    """percent(part, whole): part as a percentage of whole, two decimals; null of nothing."""
    part, whole = (_magnitude(a)[1] if a is not None else None for a in args)
    if part is None or not whole:
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (part, whole)):
        raise EvalError("percent() takes two numbers of the same kind", node)
    return round(100 * part / whole, 2)


def _unit_arith(node: Binary, lk: str, lv: Any, rk: str, rv: Any) -> Any:
    """The rules of the kernel side (cvalue.arith_type): a duration plus a plain number is a
    mistake, not a duration; a duration divided by a duration is a plain ratio."""
    kind = lk if lk in ("duration", "size") else rk
    make = Duration if kind == "duration" else Size
    op = node.op
    if lk == rk == kind and op in ("+", "-"):
        return make(_ARITH[op](lv, rv))
    if lk == rk == kind and op == "/":
        return lv / rv
    if lk == kind and rk == "number" and op in ("*", "/", "%"):
        return make(int(_ARITH[op](lv, rv)))
    if lk == "number" and rk == kind and op == "*":
        return make(int(lv * rv))
    raise EvalError(f"cannot use {op} on a {lk} and a {rk}", node)


def display(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ";".join(map(str, value))
    if isinstance(value, float):
        # A rate (`calls.total * 1s / elapsed`) reads as 1312004, not 1.312e+06.
        return str(round(value)) if abs(value) >= 1e4 else f"{value:.4g}"
    return str(value)


def render_template(parts: tuple[str | TemplateExpr, ...], names: dict[str, Any],
                    quote: Callable[[str, str], str] | None = None) -> str:
    """Substitute every `${{ expr }}` with the display form of its value, passed through
    `quote(value, text_so_far)` when given (e.g. a Markdown escape that depends on whether
    the value lands in a code span: a value cannot become markup while the author's text
    around it stays Markdown)."""
    out: list[str] = []
    ev = Evaluator(names)
    for part in parts:
        if isinstance(part, str):
            out.append(part)
        else:
            shown = display(ev.eval(part.node))
            out.append(quote(shown, "".join(out)) if quote else shown)
    return "".join(out)
