"""``band-math``: an arithmetic expression over the bands, e.g. NDVI ``(b4 - b3) / (b4 + b3)``.

The expression is parsed with `ast` and only this subset is accepted: numbers, band names
``b1``..``bN`` (1-based, as GDAL numbers bands), ``+ - * / **``, unary ``-``/``+``, one
comparison per pair (``< <= > >= == !=``, giving 1 or 0), ``&`` and ``|`` (logical and/or of
non-zero values) and the functions ``sqrt abs log exp min(a, b) max(a, b) where(cond, a,
b)``. It is compiled to a small stack program that a numba ``nogil`` loop evaluates row by row
in float64; nothing is passed to `eval`.

The output is one float32 band with nodata NaN. A pixel is nodata when any band the
expression uses is nodata there, when it divides by zero (unless ``where`` discards that
branch), or when the result is not finite (``sqrt``/``log`` of negative numbers, overflow).
"""

from __future__ import annotations

import ast
import math
import re
from typing import Any

import numpy as np

from pipeline.errors import KernelError
from pipeline.kernels._numba import nogil_kernel
from pipeline.kernels.pointwise import nodata_args
from pipeline.kernels.registry import REQUIRED, KernelSpec, register_kernel

CONST, BAND, NEG, SQRT, ABS, LOG, EXP = 0, 1, 2, 3, 4, 5, 6
ADD, SUB, MUL, DIV, POW, MIN, MAX, LT, LE, GT, GE, EQ, NE, AND, OR = range(10, 25)
WHERE = 30

_BINOPS: dict[type[ast.AST], int] = {
    ast.Add: ADD, ast.Sub: SUB, ast.Mult: MUL, ast.Div: DIV, ast.Pow: POW,
    ast.BitAnd: AND, ast.BitOr: OR,
}  # fmt: skip
_COMPARE: dict[type[ast.AST], int] = {
    ast.Lt: LT, ast.LtE: LE, ast.Gt: GT, ast.GtE: GE, ast.Eq: EQ, ast.NotEq: NE
}  # fmt: skip
_FUNCS: dict[str, tuple[int, int]] = {
    "sqrt": (SQRT, 1), "abs": (ABS, 1), "log": (LOG, 1), "exp": (EXP, 1),
    "min": (MIN, 2), "max": (MAX, 2), "where": (WHERE, 3),
}  # fmt: skip
_MAX_LENGTH = 2000
_BAND = re.compile(r"b([1-9][0-9]*)")
_ALLOWED = "numbers, b1..bN, + - * / **, comparisons, & |, sqrt abs log exp min max where"


class _Compiler:
    """Emits the stack program of a parsed expression, tracking the stack depth."""

    def __init__(self, expr: str, n_bands: int) -> None:
        self.expr, self.n_bands = expr, n_bands
        self.ops: list[int] = []
        self.args: list[int] = []
        self.consts: list[float] = []
        self.used: set[int] = set()
        self.depth = self.max_depth = 0

    def fail(self, what: str) -> KernelError:
        return KernelError(f"kernel 'band-math': {what} in {self.expr!r}; allowed: {_ALLOWED}")

    def emit(self, op: int, arg: int = 0, pops: int = 0) -> None:
        self.ops.append(op)
        self.args.append(arg)
        self.depth += 1 - pops
        self.max_depth = max(self.max_depth, self.depth)

    def visit(self, node: ast.AST) -> None:
        if isinstance(node, ast.Expression):
            self.visit(node.body)
        elif isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise self.fail(f"the constant {value!r} is not a number")
            if not math.isfinite(float(value)):
                raise self.fail(f"the constant {value!r} is not finite")
            self.consts.append(float(value))
            self.emit(CONST, len(self.consts) - 1)
        elif isinstance(node, ast.Name):
            match = _BAND.fullmatch(node.id)
            if not match:
                raise self.fail(f"unknown name {node.id!r} (bands are b1..b{self.n_bands})")
            band = int(match.group(1))
            if band > self.n_bands:
                raise KernelError(
                    f"kernel 'band-math': {self.expr!r} uses {node.id} but the raster has "
                    f"{self.n_bands} band(s)"
                )
            self.used.add(band - 1)
            self.emit(BAND, band - 1)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            self.visit(node.operand)
            if isinstance(node.op, ast.USub):
                self.emit(NEG, pops=1)
        elif isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            self.visit(node.left)
            self.visit(node.right)
            self.emit(_BINOPS[type(node.op)], pops=2)
        elif isinstance(node, ast.Compare):
            if len(node.ops) != 1 or type(node.ops[0]) not in _COMPARE:
                raise self.fail("only single comparisons (a < b) are supported")
            self.visit(node.left)
            self.visit(node.comparators[0])
            self.emit(_COMPARE[type(node.ops[0])], pops=2)
        elif isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else None
            if name not in _FUNCS or node.keywords:
                raise self.fail(f"the call {ast.unparse(node)!r} is not allowed")
            op, arity = _FUNCS[name]
            if len(node.args) != arity:
                raise self.fail(f"{name}() takes {arity} argument(s), got {len(node.args)}")
            for arg in node.args:
                self.visit(arg)
            self.emit(op, pops=arity)
        else:
            raise self.fail(f"{type(node).__name__} {ast.unparse(node)!r} is not allowed")


def compile_expression(expr: str, n_bands: int) -> dict[str, Any]:
    """Compile ``expr`` over ``n_bands`` bands into the arrays `band_math` evaluates.

    Raises
    ------
    KernelError
        Syntax errors, constructs outside the allowed subset, or bands beyond ``n_bands``.
    """
    if not isinstance(expr, str) or not expr.strip():
        raise KernelError(f"kernel 'band-math': expr must be a non-empty string, got {expr!r}")
    if len(expr) > _MAX_LENGTH:
        raise KernelError(f"kernel 'band-math': expr is longer than {_MAX_LENGTH} characters")
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError as err:
        raise KernelError(f"kernel 'band-math': syntax error in {expr!r} ({err.msg})") from None
    compiler = _Compiler(expr, n_bands)
    try:
        compiler.visit(tree)
    except RecursionError:
        raise KernelError(f"kernel 'band-math': {expr!r} is nested too deeply") from None
    return {
        "ops": np.asarray(compiler.ops, dtype=np.int64),
        "args": np.asarray(compiler.args, dtype=np.int64),
        "consts": np.asarray(compiler.consts, dtype=np.float64),
        "used": np.asarray(sorted(compiler.used), dtype=np.int64),
        "stack": compiler.max_depth,
    }


@nogil_kernel(error_model="numpy")
def _unary(op, a):
    if op == NEG:
        return -a
    if op == SQRT:
        return np.sqrt(a)
    if op == ABS:
        return abs(a)
    if op == LOG:
        return np.log(a)
    return np.exp(a)


@nogil_kernel(error_model="numpy")
def _binary(op, a, b):
    if a != a or b != b:
        return np.nan
    if op == ADD:
        return a + b
    if op == SUB:
        return a - b
    if op == MUL:
        return a * b
    if op == DIV:
        return np.nan if b == 0.0 else a / b
    if op == POW:
        return np.power(a, b)
    if op == MIN:
        return min(a, b)
    if op == MAX:
        return max(a, b)
    if op == LT:
        return 1.0 if a < b else 0.0
    if op == LE:
        return 1.0 if a <= b else 0.0
    if op == GT:
        return 1.0 if a > b else 0.0
    if op == GE:
        return 1.0 if a >= b else 0.0
    if op == EQ:
        return 1.0 if a == b else 0.0
    if op == NE:
        return 1.0 if a != b else 0.0
    if op == AND:
        return 1.0 if (a != 0.0 and b != 0.0) else 0.0
    return 1.0 if (a != 0.0 or b != 0.0) else 0.0


@nogil_kernel(error_model="numpy")
def _band_math_core(src, ops, args, consts, used, stack_size, has_nodata, nodata, fill, out):
    _, ny, nx = src.shape
    stack = np.empty((max(stack_size, 1), nx), dtype=np.float64)
    for r in range(ny):
        sp = 0
        for p in range(ops.size):
            op = ops[p]
            if op == CONST:
                stack[sp, :] = consts[args[p]]
                sp += 1
            elif op == BAND:
                for c in range(nx):
                    stack[sp, c] = src[args[p], r, c]
                sp += 1
            elif op < ADD:
                for c in range(nx):
                    stack[sp - 1, c] = _unary(op, stack[sp - 1, c])
            elif op < WHERE:
                for c in range(nx):
                    stack[sp - 2, c] = _binary(op, stack[sp - 2, c], stack[sp - 1, c])
                sp -= 1
            else:
                for c in range(nx):
                    cond = stack[sp - 3, c]
                    if cond != cond:
                        stack[sp - 3, c] = np.nan
                    elif cond != 0.0:
                        stack[sp - 3, c] = stack[sp - 2, c]
                    else:
                        stack[sp - 3, c] = stack[sp - 1, c]
                sp -= 2
        for c in range(nx):
            bad = False
            for u in used:
                v = np.float64(src[u, r, c])
                if v != v or (has_nodata and v == nodata):
                    bad = True
            value = np.float32(stack[0, c])
            out[0, r, c] = fill if bad or not np.isfinite(value) else value


def band_math(
    block: np.ndarray,
    *,
    ops: np.ndarray,
    args: np.ndarray,
    consts: np.ndarray,
    used: np.ndarray,
    stack: int,
    nodata: Any = None,
    out_nodata: Any = None,
) -> np.ndarray:
    """Evaluate a compiled expression on a ``(band, y, x)`` block.

    Parameters
    ----------
    block : ndarray
        ``(band, y, x)`` with every band (the band axis is one chunk).
    ops, args, consts, used, stack
        The program from `compile_expression`.
    nodata, out_nodata
        Context from `apply_kernel` (see `KernelSpec`).

    Returns
    -------
    ndarray
        ``(1, y, x)`` float32; ``out_nodata`` where a used band is nodata or the result is
        not finite (division by zero included).
    """
    out = np.empty((1, *block.shape[1:]), dtype=np.float32)
    has, value = nodata_args(nodata)
    fill = np.float32(np.nan if out_nodata is None else out_nodata)
    _band_math_core(block, ops, args, consts, used, stack, has, value, fill, out)
    return out


def _validate(params: dict[str, Any], n_bands: int) -> dict[str, Any]:
    return compile_expression(params["expr"], n_bands)


BAND_MATH = register_kernel(
    KernelSpec(
        name="band-math",
        func=band_math,
        description="expression over bands b1..bN, e.g. expr='(b4 - b3) / (b4 + b3)' (float32)",
        whole_band_axis=True,
        bands_out=1,
        output_dtype=np.float32,
        params={"expr": REQUIRED},
        param_types={"expr": str},
        nodata="kernel",
        output_nodata=math.nan,
        validate=_validate,
        units="",
        releases_gil=True,
    )
)
