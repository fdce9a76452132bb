"""The kernel optimizer's catalogue: source transformations that make a kernel faster.

An offline expert cannot invent an algorithm, but it knows the moves that
make most slow numeric Python fast, and the scorer says which ones worked:
compile the loops with Numba, drop the checks the compiler inserts, turn
branches into arithmetic, run independent iterations in parallel. Each move is a rewrite of the syntax tree of the candidate
before it, so a move applies to any kernel written as Python loops, not to
one known task. A move that does not apply returns None; one that applies
but breaks the result is caught by the scorer's correctness gate.
"""

from __future__ import annotations

import ast
import builtins
import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from crew import parse_python as parse
from crew.tools.codecheck import _dotted

__all__ = ["TRANSFORMS", "Transform", "transform"]

_JIT_FLAGS = {"boundscheck": False, "nogil": True, "error_model": "numpy"}
"""Numba's defaults raise Python's errors (bounds, division by zero); a kernel that passed the gate needs neither."""


@dataclass(frozen=True)
class Transform:
    """One move: its name, what it does in a sentence, and the rewrite (None when it does not apply)."""

    name: str
    description: str
    rewrite: Callable[[str], str | None]


# -- syntax-tree helpers --------------------------------------------------------------------------


def _loops(node: ast.AST) -> list[ast.For | ast.While]:
    return [n for n in ast.walk(node) if isinstance(n, (ast.For, ast.While))]


def _decorator_name(node: ast.expr) -> str:
    return _dotted(node.func if isinstance(node, ast.Call) else node)


def _jitted(func: ast.FunctionDef) -> ast.Call | ast.expr | None:
    return next((d for d in func.decorator_list if _decorator_name(d).split(".")[-1] in ("njit", "jit")), None)


def _ensure_import(tree: ast.Module, module: str) -> None:
    present = any(isinstance(n, ast.Import) and any(a.name == module and a.asname is None for a in n.names)
                  for n in tree.body)
    if not present:
        at = 1 if tree.body and isinstance(tree.body[0], ast.Expr) and isinstance(
            getattr(tree.body[0], "value", None), ast.Constant) and isinstance(tree.body[0].value.value, str) else 0
        tree.body.insert(at, ast.Import(names=[ast.alias(name=module)]))


def _jit_call(flags: dict[str, Any]) -> ast.expr:
    decorator = ast.Attribute(value=ast.Name(id="numba", ctx=ast.Load()), attr="njit", ctx=ast.Load())
    if not flags:
        return decorator
    return ast.Call(func=decorator, args=[], keywords=[ast.keyword(arg=k, value=ast.Constant(v)) for k, v in flags.items()])


def _unparse(tree: ast.Module) -> str:
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


class _StripToList(ast.NodeTransformer):
    """`x.tolist()` -> `x`: Numba iterates arrays directly and cannot build a Python list of them."""

    changed = False

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.func, ast.Attribute) and node.func.attr == "tolist" and not node.args and not node.keywords:
            self.changed = True
            return node.func.value
        return node


# -- the moves ------------------------------------------------------------------------------------


def numba_jit(code: str, flags: dict[str, Any] | None = None) -> str | None:
    """Compile every top-level function that loops with `numba.njit` (the functions it calls come along)."""
    tree = parse(code)
    funcs = [n for n in tree.body if isinstance(n, ast.FunctionDef) and _loops(n) and _jitted(n) is None]
    if not funcs:
        return None
    for func in funcs:
        _StripToList().visit(func)
        func.decorator_list.insert(0, _jit_call(flags or {}))
    # a looping function's helpers must be compiled too, or Numba refuses to call them
    names = {f.name for f in funcs}
    called = {n.func.id for f in funcs for n in ast.walk(f) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    for helper in tree.body:
        if isinstance(helper, ast.FunctionDef) and helper.name in called - names and _jitted(helper) is None:
            helper.decorator_list.insert(0, _jit_call(flags or {}))
    _ensure_import(tree, "numba")
    return _unparse(tree)


def jit_flags(code: str) -> str | None:
    """Turn off bounds checks and Python's division semantics in already-compiled functions (or compile them so)."""
    tree = parse(code)
    changed = False
    for func in (n for n in tree.body if isinstance(n, ast.FunctionDef)):
        decorator = _jitted(func)
        if decorator is None:
            continue
        keywords = decorator.keywords if isinstance(decorator, ast.Call) else []
        have = {k.arg for k in keywords}
        missing = {k: v for k, v in _JIT_FLAGS.items() if k not in have}
        if not missing:
            continue
        new = ast.Call(func=decorator.func if isinstance(decorator, ast.Call) else decorator,
                       args=list(decorator.args) if isinstance(decorator, ast.Call) else [],
                       keywords=[*keywords, *(ast.keyword(arg=k, value=ast.Constant(v)) for k, v in missing.items())])
        func.decorator_list[func.decorator_list.index(decorator)] = new
        changed = True
    if not changed:
        return numba_jit(code, dict(_JIT_FLAGS))
    return _unparse(tree)


class _Branchless(ast.NodeTransformer):
    """`if c: a += e` (no else) -> `a += e * (c)`: a loop-carried branch the CPU cannot predict becomes arithmetic."""

    changed = False

    def visit_If(self, node: ast.If) -> ast.AST:
        self.generic_visit(node)
        if node.orelse or len(node.body) != 1 or not isinstance(node.body[0], ast.AugAssign):
            return node
        update = node.body[0]
        if not isinstance(update.op, (ast.Add, ast.Sub)) or not isinstance(update.target, ast.Name):
            return node
        test = node.test
        gate: ast.expr = test if isinstance(test, ast.Compare) else ast.Compare(
            left=test, ops=[ast.NotEq()], comparators=[ast.Constant(0)])
        self.changed = True
        return ast.AugAssign(target=update.target, op=update.op,
                             value=ast.BinOp(left=update.value, op=ast.Mult(), right=gate))


def branchless(code: str) -> str | None:
    """Replace conditional accumulations inside compiled loops with multiplications by the condition."""
    tree = parse(code)
    visitor = _Branchless()
    for func in (n for n in tree.body if isinstance(n, ast.FunctionDef) and _jitted(n) is not None):
        for loop in _loops(func):
            visitor.visit(loop)
    return _unparse(tree) if visitor.changed else None


def _parity_counters(func: ast.FunctionDef) -> set[str]:
    """Names set to 0, only ever increased by 1 (or by a 0/1 condition) and only ever read as `name % 2`."""
    candidates: set[str] = set()
    for node in ast.walk(func):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                and isinstance(node.value, ast.Constant) and node.value.value == 0:
            candidates.add(node.targets[0].id)
    parity_reads: set[int] = set()
    for node in ast.walk(func):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod) and isinstance(node.left, ast.Name) \
                and isinstance(node.right, ast.Constant) and node.right.value == 2:
            parity_reads.add(id(node.left))
    for node in ast.walk(func):
        if isinstance(node, ast.Name) and node.id in candidates:
            if isinstance(node.ctx, ast.Load) and id(node) not in parity_reads:
                candidates.discard(node.id)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id in candidates and not (
                        isinstance(node.value, ast.Constant) and node.value.value == 0):
                    candidates.discard(target.id)
        elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name) and node.target.id in candidates \
                and not (isinstance(node.op, ast.Add) and _step_of_one(node.value) is not None):
            candidates.discard(node.target.id)
    return candidates


def _step_of_one(value: ast.expr) -> ast.expr | None:
    """For `1` -> the constant 1; for `1 * (cond)` (what `branchless` writes) -> the 0/1 condition; else None."""
    if isinstance(value, ast.Constant) and value.value == 1:
        return value
    if isinstance(value, ast.BinOp) and isinstance(value.op, ast.Mult) and isinstance(value.left, ast.Constant) \
            and value.left.value == 1 and isinstance(value.right, ast.Compare):
        return value.right
    return None


class _Parity(ast.NodeTransformer):
    def __init__(self, names: set[str]):
        self.names = names

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.op, ast.Mod) and isinstance(node.left, ast.Name) and node.left.id in self.names:
            return ast.Name(id=node.left.id, ctx=ast.Load())
        return node

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        if isinstance(node.target, ast.Name) and node.target.id in self.names:
            step = _step_of_one(node.value)
            assert step is not None
            return ast.AugAssign(target=node.target, op=ast.BitXor(), value=step)
        return self.generic_visit(node)


def parity_flags(code: str) -> str | None:
    """A counter read only modulo 2 becomes a 0/1 flag toggled by xor: no division, no growing integer."""
    tree = parse(code)
    changed = False
    for func in (n for n in tree.body if isinstance(n, ast.FunctionDef) and _jitted(n) is not None):
        names = _parity_counters(func)
        if names:
            _Parity(names).visit(func)
            changed = True
    return _unparse(tree) if changed else None


_ALLOCATORS = {"empty", "zeros", "ones", "full", "empty_like", "zeros_like", "ones_like", "full_like"}


def hoist_allocation(code: str) -> str | None:
    """Allocate a compiled function's output arrays with NumPy in a thin Python wrapper, passed in as arguments.

    NumPy asks the OS for huge pages on large arrays; Numba's own allocator
    does not, and first-touch page faults on a big output can cost as much
    as the loop that fills it.
    """
    tree = parse(code)
    changed = False
    body: list[ast.stmt] = []
    for func in tree.body:
        if not (isinstance(func, ast.FunctionDef) and _jitted(func) is not None) or func.args.vararg or \
                func.args.kwarg or func.args.kwonlyargs or func.args.defaults:
            body.append(func)
            continue
        params = [a.arg for a in func.args.args]
        hoisted = []
        for stmt in func.body:
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                continue  # the docstring
            if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
                    and isinstance(stmt.value, ast.Call) and _decorator_name(stmt.value.func).split(".")[-1]
                    in _ALLOCATORS and _decorator_name(stmt.value.func).split(".")[0] in ("np", "numpy")):
                break
            used = {n.id for n in ast.walk(stmt.value) if isinstance(n, ast.Name)} - {"np", "numpy", *dir(builtins)}
            if not used <= set(params):
                break
            hoisted.append(stmt)
        if not hoisted:
            body.append(func)
            continue
        names = [s.targets[0].id for s in hoisted]
        kernel = ast.FunctionDef(name=f"_{func.name}_kernel", args=ast.arguments(
            posonlyargs=[], args=[*(ast.arg(arg=p) for p in params), *(ast.arg(arg=n) for n in names)],
            kwonlyargs=[], kw_defaults=[], defaults=[]), body=[s for s in func.body if s not in hoisted],
            decorator_list=func.decorator_list, returns=None, type_params=[])
        wrapper = ast.FunctionDef(name=func.name, args=func.args, decorator_list=[], returns=func.returns,
                                  type_params=[], body=[*hoisted, ast.Return(value=ast.Call(
                                      func=ast.Name(id=kernel.name, ctx=ast.Load()),
                                      args=[ast.Name(id=n, ctx=ast.Load()) for n in [*params, *names]], keywords=[]))])
        body += [kernel, wrapper]
        changed = True
    if not changed:
        return None
    tree.body = body
    return _unparse(tree)


def _carried(loop: ast.For) -> set[str]:
    """Names a loop body both reads and assigns (augmented or rebound): its loop-carried scalars."""
    assigned: set[str] = set()
    for node in ast.walk(loop):
        if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
            assigned.add(node.target.id)
    read = {n.id for stmt in loop.body for n in ast.walk(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    for stmt in loop.body:
        for node in ast.walk(stmt):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name) and target.id in read and _read_before_write(loop, target.id):
                        assigned.add(target.id)
    return assigned


def _read_before_write(loop: ast.For, name: str) -> bool:
    for stmt in loop.body:
        reads = [n for n in ast.walk(stmt) if isinstance(n, ast.Name) and n.id == name and isinstance(n.ctx, ast.Load)]
        writes = [n for n in ast.walk(stmt) if isinstance(n, ast.Name) and n.id == name and isinstance(n.ctx, ast.Store)]
        if reads and not (isinstance(stmt, ast.Assign) and writes and not any(
                isinstance(n, ast.Name) and n.id == name for n in ast.walk(stmt.value))):
            return True
        if writes:
            return False
    return False


def parallel_loops(code: str) -> str | None:
    """`range` -> `numba.prange` in compiled loops whose iterations share no scalar, with `parallel=True`."""
    tree = parse(code)
    changed = False
    for func in (n for n in tree.body if isinstance(n, ast.FunctionDef) and _jitted(n) is not None):
        loops = [n for n in func.body if isinstance(n, ast.For)]
        for loop in loops:
            call = loop.iter
            if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "range"):
                continue
            if _carried(loop) or any(isinstance(n, (ast.Break, ast.Return)) for n in ast.walk(loop)):
                continue
            loop.iter = ast.Call(func=ast.Attribute(value=ast.Name(id="numba", ctx=ast.Load()), attr="prange",
                                                    ctx=ast.Load()), args=call.args, keywords=[])
            changed = True
        if changed:
            decorator = _jitted(func)
            keywords = [k for k in (decorator.keywords if isinstance(decorator, ast.Call) else []) if k.arg != "parallel"]
            base = decorator.func if isinstance(decorator, ast.Call) else decorator
            func.decorator_list[func.decorator_list.index(decorator)] = ast.Call(
                func=base, args=[], keywords=[*keywords, ast.keyword(arg="parallel", value=ast.Constant(True))])
    return _unparse(tree) if changed else None


class _NotAScan(Exception):
    """The loop is not a scan `numpy_scan` can rewrite (the move then does not apply)."""


def _scan_loop(func: ast.FunctionDef) -> tuple[ast.For, str, str, str] | None:
    """The function's one top-level `for` over its first argument: (loop, index name, element name, array name)."""
    loops = [n for n in func.body if isinstance(n, ast.For)]
    if len(loops) != 1 or not func.args.args or loops[0].orelse:
        return None
    loop, array = loops[0], func.args.args[0].arg
    iterable = loop.iter
    if isinstance(iterable, ast.Call) and isinstance(iterable.func, ast.Name) and iterable.func.id == "enumerate" \
            and len(iterable.args) == 1 and isinstance(loop.target, ast.Tuple) and len(loop.target.elts) == 2 \
            and all(isinstance(e, ast.Name) for e in loop.target.elts):
        source = iterable.args[0]
        if isinstance(source, ast.Call) and isinstance(source.func, ast.Attribute) and source.func.attr == "tolist":
            source = source.func.value
        if isinstance(source, ast.Name) and source.id == array:
            return loop, loop.target.elts[0].id, loop.target.elts[1].id, array
    return None


def _update(stmt: ast.stmt) -> tuple[str, ast.expr] | None:
    """`v += e`, `v -= e` or `if c: v += e` as (v, the per-iteration increment)."""
    condition = None
    if isinstance(stmt, ast.If) and not stmt.orelse and len(stmt.body) == 1:
        condition, stmt = stmt.test, stmt.body[0]
    if not (isinstance(stmt, ast.AugAssign) and isinstance(stmt.target, ast.Name)
            and isinstance(stmt.op, (ast.Add, ast.Sub))):
        return None
    value = stmt.value if isinstance(stmt.op, ast.Add) else ast.UnaryOp(op=ast.USub(), operand=stmt.value)
    if condition is not None:
        gate = condition if isinstance(condition, ast.Compare) else ast.Compare(
            left=condition, ops=[ast.NotEq()], comparators=[ast.Constant(0)])
        value = ast.BinOp(left=value, op=ast.Mult(), right=gate)
    return stmt.target.id, value


def numpy_scan(code: str) -> str | None:
    """A loop that only accumulates sums into scalars and stores them per element becomes NumPy cumulative sums.

    Each scalar `v` updated once per iteration by an increment that depends
    on the element and on other scalars (never on `v` itself) is the array
    `v0 + cumsum(increment)`, read before or after its update as the loop
    body's order says; the stores `out[i] = ...` become whole-array
    assignments. Anything else in the loop means the move does not apply.
    """
    tree = parse(code)
    changed = False
    for func in [n for n in tree.body if isinstance(n, ast.FunctionDef)]:
        found = _scan_loop(func)
        if found is None:
            continue
        try:
            body = _vectorised_body(func, *found)
        except _NotAScan:
            continue
        func.body = body
        func.decorator_list = [d for d in func.decorator_list if d is not _jitted(func)]
        changed = True
    if not changed:
        return None
    if not any(isinstance(n, ast.Import) and any(a.name == "numpy" and a.asname == "np" for a in n.names)
               for n in tree.body):
        tree.body.insert(0, ast.Import(names=[ast.alias(name="numpy", asname="np")]))
    return _unparse(tree)


class _Scan:
    """Builds the NumPy statements of one scan loop: each scalar's increments, its running sums, the stores."""

    def __init__(self, loop: ast.For, index: str, element: str, initial: Mapping[str, ast.expr]):
        self.index, self.element, self.initial = index, element, initial
        self.updates: dict[str, tuple[int, ast.expr]] = {}  # scalar -> (its statement's position, increment)
        self.stores: list[tuple[int, str, ast.expr]] = []
        for k, stmt in enumerate(loop.body):
            update = _update(stmt)
            target = stmt.targets[0] if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 else None
            if update is not None and update[0] in initial and update[0] not in self.updates:
                self.updates[update[0]] = (k, update[1])
            elif isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name) \
                    and isinstance(target.slice, ast.Name) and target.slice.id == index:
                self.stores.append((k, target.value.id, stmt.value))
            else:
                raise _NotAScan
        if not self.updates or not self.stores:
            raise _NotAScan
        self.arrays: dict[tuple[str, bool], str] = {}  # (scalar, read after its update) -> array name
        self.lines: list[str] = []

    def expression(self, expr: ast.expr, at: int, visiting: tuple[str, ...] = ()) -> str:
        """`expr` as read at statement `at` of the loop body, with every scalar replaced by its array."""
        expr = copy.deepcopy(expr)
        for node in ast.walk(expr):
            if isinstance(node, ast.Name) and node.id == self.index:
                raise _NotAScan  # the position itself as a value: not a plain scan
            if isinstance(node, ast.Name) and node.id in self.updates:
                node.id = self.array(node.id, self.updates[node.id][0] < at, visiting)
        return ast.unparse(expr)

    def array(self, name: str, after_update: bool, visiting: tuple[str, ...]) -> str:
        if name in visiting:
            raise _NotAScan  # an increment that depends on its own scalar is not a sum
        if (name, True) not in self.arrays:
            at, increment = self.updates[name]
            step = self.expression(increment, at, (*visiting, name))
            self.lines += [f"_{name}_step = np.zeros_like({self.element}) + ({step})",
                           f"_{name}_after = {ast.unparse(self.initial[name])} + np.cumsum(_{name}_step)"]
            self.arrays[(name, True)] = f"_{name}_after"
        if not after_update and (name, False) not in self.arrays:
            self.lines.append(f"_{name}_before = _{name}_after - _{name}_step")
            self.arrays[(name, False)] = f"_{name}_before"
        return self.arrays[(name, after_update)]


def _vectorised_body(func: ast.FunctionDef, loop: ast.For, index: str, element: str, array: str) -> list[ast.stmt]:
    position = func.body.index(loop)
    before, after = func.body[:position], func.body[position + 1:]
    initial = {stmt.targets[0].id: stmt.value for stmt in before
               if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
               and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, int | float)}
    scan = _Scan(loop, index, element, initial)
    if any(isinstance(n, ast.Name) and n.id in scan.updates for stmt in after for n in ast.walk(stmt)):
        raise _NotAScan  # a scalar's final value used after the loop
    scan.lines += [f"{element} = np.asarray({array})",
                   f"{element} = {element}.astype(np.int64) if {element}.dtype.kind in 'biu' else {element}"]
    stores = [f"{target}[:] = {scan.expression(value, k)}" for k, target, value in scan.stores]  # fills scan.lines
    kept = [s for s in before if not (isinstance(s, ast.Assign) and isinstance(s.targets[0], ast.Name)
                                      and s.targets[0].id in scan.updates)]
    return kept + parse("\n".join([*scan.lines, *stores])).body + after


TRANSFORMS: tuple[Transform, ...] = (
    Transform("numba_jit", "compile the looping functions with numba.njit", numba_jit),
    Transform("numpy_scan", "a loop of running sums becomes NumPy cumulative sums", numpy_scan),
    Transform("jit_flags", "no bounds checks, no GIL, NumPy's division semantics in compiled code", jit_flags),
    Transform("branchless", "conditional accumulations become multiplications by the condition", branchless),
    Transform("hoist_allocation", "output arrays allocated by NumPy (huge pages) outside the compiled loop",
              hoist_allocation),
    Transform("parity_flags", "a counter read only modulo 2 becomes a flag toggled by xor", parity_flags),
    Transform("parallel_loops", "independent iterations run on all cores (numba.prange)", parallel_loops),
)
"""The expert's moves, in the order it tries them; each applies to the best valid candidate so far."""


def transform(name: str) -> Transform:
    for each in TRANSFORMS:
        if each.name == name:
            return each
    raise KeyError(f"no kernel transform named {name!r}; known: {', '.join(t.name for t in TRANSFORMS)}")
