"""What a kernel declares (`KernelSpec`), its command-line parameters, and the registry of names.

Kernels are looked up by name in this order: kernels registered in this process (the built-ins
and `register_kernel`), then ``package.module:function`` references, then the
``pipeline.kernels`` entry-point group (loaded only when a name is asked for, or when every
kernel is listed).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import re
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, overload

import numpy as np

from pipeline.errors import KernelError, PipelineWarning
from pipeline.kernels.params import parse_bool, parser_for_default

BlockFunc = Callable[..., np.ndarray]
NodataPolicy = Literal["propagate", "kernel", "none"]

#: Entry-point group through which installed packages contribute kernels.
ENTRY_POINT_GROUP = "pipeline.kernels"

#: Names a kernel function may declare to receive per-block context from `apply_kernel`.
CONTEXT_ARGS = frozenset({"valid", "nodata", "out_nodata", "cellsize"})


class _Required:
    """Default of a parameter that has none (shown as ``required``)."""

    _instance: _Required | None = None

    def __new__(cls) -> _Required:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "required"

    def __reduce__(self) -> str:
        return "REQUIRED"


#: Marks a kernel parameter without a default.
REQUIRED: Any = _Required()


@dataclass(frozen=True)
class KernelSpec:
    """What `apply_kernel` needs to know about a kernel.

    Attributes
    ----------
    name : str
        Registry name, also used in dask layer names (``pipeline-<name>-<token>``).
    func : callable
        ``func(block: ndarray[band, y, x], **params, **context) -> ndarray[band, y, x]``.
        It should release the GIL (numba ``nogil=True`` or large numpy ufuncs) to scale over
        threads. With ``depth > 0`` the block carries ``depth`` extra pixels on each side in y and
        x; the function may return the result for the whole block (it is trimmed) or only for
        the inner part. Context arguments are passed only if the function names them:
        ``valid`` (bool array like ``block``: False for nodata, NaN and pixels beyond the raster
        edge), ``nodata`` (input nodata value or None), ``out_nodata`` (value to write for
        nodata output pixels, or None) and ``cellsize`` (two float64 arrays, pixel width and
        height in metres for each row of the block).
    description : str
        One line for ``pipeline kernels``.
    depth : int or callable
        Halo in pixels needed on each side (0: ``map_blocks``); a callable receives the
        parameters, e.g. ``lambda p: p["size"] // 2``.
    whole_band_axis : bool
        The kernel mixes bands, so the band axis must be one chunk.
    output_dtype : dtype, str or callable
        Output dtype; a callable maps the input dtype (and, if it takes a second argument, the
        parameters) to it.
    params : dict
        Parameter names and defaults (`REQUIRED` for parameters without one).
    bands_out : int, optional
        Number of output bands (e.g. 1 for band math); None keeps the input's band count.
    param_types : dict, optional
        Parsers from command-line strings for each parameter; inferred from the default's type
        (bool, int, float, else str) when missing.
    nodata : {"propagate", "kernel", "none"}
        ``"propagate"``: `apply_kernel` writes ``out_nodata`` wherever the input is nodata (any
        band, when the band count changes). ``"kernel"``: the kernel does that itself (it takes
        ``valid`` or ``nodata`` and ``out_nodata``). ``"none"``: values pass through untouched
        and the input's nodata value is kept.
    output_nodata : float or callable, optional
        Nodata value of the output; a callable maps ``(input dtype, output dtype, input
        nodata)`` to it. Default: the input's nodata if the dtype is unchanged; otherwise NaN
        for float output, and for integer output the input's nodata if it fits, else the
        dtype's maximum (unsigned) or minimum (signed), or None if no nodata can occur.
    validate : callable, optional
        ``validate(params, n_bands) -> params``: checks parameter values (raising
        `KernelError`) and may return normalised ones (e.g. a compiled expression) that are
        passed to ``func``.
    units : str, optional
        None: the output is in the input's units (``scale_factor``/``add_offset`` kept).
        Otherwise the output is a new quantity: scale and offset are dropped and a non-empty
        string is written as the ``units`` attribute.
    releases_gil : bool, optional
        Whether ``func`` releases the GIL; ``False`` makes `apply_kernel` warn. None: not
        declared (hand-written specs are trusted); kernels built from user functions are
        checked by `spec_from_callable`.
    """

    name: str
    func: BlockFunc
    description: str
    depth: int | Callable[[Mapping[str, Any]], int] = 0
    whole_band_axis: bool = False
    output_dtype: Any = lambda dt: dt
    params: dict[str, Any] = field(default_factory=dict)
    bands_out: int | None = None
    param_types: dict[str, Callable[[str], Any]] = field(default_factory=dict)
    nodata: NodataPolicy = "propagate"
    output_nodata: Any = None
    validate: Callable[[dict[str, Any], int], dict[str, Any]] | None = None
    units: str | None = None
    releases_gil: bool | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise KernelError(f"a kernel needs a non-empty name, got {self.name!r}")
        if not callable(self.func):
            raise KernelError(f"kernel {self.name!r}: func must be callable, got {self.func!r}")
        if self.nodata not in ("propagate", "kernel", "none"):
            raise KernelError(
                f"kernel {self.name!r}: nodata policy must be 'propagate', 'kernel' or 'none', "
                f"got {self.nodata!r}"
            )
        if self.bands_out is not None and (
            not isinstance(self.bands_out, int) or self.bands_out < 1
        ):
            raise KernelError(
                f"kernel {self.name!r}: bands_out must be a positive int, got {self.bands_out!r}"
            )
        unknown = set(self.param_types) - set(self.params)
        if unknown:
            raise KernelError(
                f"kernel {self.name!r}: param_types for undeclared parameters {sorted(unknown)!r}"
            )

    def halo(self, params: Mapping[str, Any]) -> int:
        """Halo depth in pixels for these parameters."""
        depth = self.depth(params) if callable(self.depth) else self.depth
        if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 0:
            raise KernelError(f"kernel {self.name!r}: depth must be an int >= 0, got {depth!r}")
        return int(depth)

    def dtype_for(self, dtype: np.dtype[Any], params: Mapping[str, Any]) -> np.dtype[Any]:
        """Output dtype for input ``dtype`` and these parameters."""
        rule = self.output_dtype
        if not callable(rule) or isinstance(rule, type):
            return np.dtype(rule)
        try:
            n_args = len(inspect.signature(rule).parameters)
        except (TypeError, ValueError):
            n_args = 1
        return np.dtype(rule(dtype, params) if n_args >= 2 else rule(dtype))

    def parser_for(self, param: str) -> Callable[[str], Any]:
        """Parser from a command-line string for ``param``."""
        if param in self.param_types:
            return self.param_types[param]
        return parser_for_default(self.params[param])

    def type_name(self, param: str) -> str:
        """Short name of the type of ``param`` (for listings and messages)."""
        parser = self.parser_for(param)
        if parser is parse_bool:
            return "bool"
        return getattr(parser, "__name__", type(parser).__name__)

    def merge_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults updated with ``params``; `KernelError` for unknown or missing names."""
        unknown = set(params) - set(self.params)
        if unknown:
            raise KernelError(
                f"kernel {self.name!r} has no parameter(s) {sorted(unknown)!r}; "
                f"it takes {sorted(self.params) or 'none'}"
            )
        merged = {**self.params, **params}
        missing = sorted(k for k, v in merged.items() if v is REQUIRED)
        if missing:
            raise KernelError(
                f"kernel {self.name!r} needs parameter(s) {missing!r} "
                f"(e.g. --param {missing[0]}=VALUE)"
            )
        return merged


def parse_param_strings(spec: KernelSpec, items: Iterable[str]) -> dict[str, Any]:
    """``["key=value", ...]`` from the command line as typed parameters of ``spec``.

    Parameters
    ----------
    spec : KernelSpec
        The kernel whose parameters are given (names, defaults and parsers).
    items : iterable of str
        ``key=value`` strings, e.g. the values of ``--param``.

    Returns
    -------
    dict
        Parameter names and parsed values (only those given; defaults are not filled in).

    Raises
    ------
    KernelError
        Malformed item, unknown parameter, repeated parameter or unparsable value.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise KernelError(f"--param {item!r}: expected key=value")
        if key not in spec.params:
            raise KernelError(
                f"kernel {spec.name!r} has no parameter {key!r}; "
                f"it takes {sorted(spec.params) or 'none'}"
            )
        if key in out:
            raise KernelError(f"--param {key!r} given twice for kernel {spec.name!r}")
        try:
            out[key] = spec.parser_for(key)(text)
        except (TypeError, ValueError, KernelError) as err:
            raise KernelError(
                f"kernel {spec.name!r}: parameter {key!r} expects {spec.type_name(key)}, "
                f"got {text!r} ({err})"
            ) from None
    return out


_REGISTRY: dict[str, KernelSpec] = {}


def _add(spec: KernelSpec) -> KernelSpec:
    _REGISTRY[spec.name] = spec
    return spec


def _dashed(name: str) -> str:
    return name.strip("_").replace("_", "-") or name


def holds_gil(func: Callable[..., Any]) -> bool | None:
    """True if ``func`` certainly holds the GIL, False if it releases it, None if unknown.

    numba dispatchers release it only when compiled with ``nogil=True``; numpy ufuncs release
    it; any other Python function holds it (unless it only calls code that releases it, which
    cannot be seen from outside: declare ``releases_gil=True`` then).
    """
    options = getattr(func, "targetoptions", None)
    if isinstance(options, Mapping):
        return not options.get("nogil", False)
    if isinstance(func, np.ufunc):
        return False
    if inspect.isfunction(func) or inspect.ismethod(func) or inspect.isbuiltin(func):
        return True
    return None


def _signature_params(func: Callable[..., Any]) -> dict[str, Any]:
    """Keyword parameters of ``func`` after the block (context names excluded)."""
    target = getattr(func, "py_func", func)
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return {}
    params: dict[str, Any] = {}
    for i, p in enumerate(sig.parameters.values()):
        if i == 0 or p.name in CONTEXT_ARGS or p.name == "block_id":
            continue
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        params[p.name] = REQUIRED if p.default is p.empty else p.default
    return params


def spec_from_callable(
    func: Callable[..., Any],
    *,
    name: str | None = None,
    description: str | None = None,
    releases_gil: bool | None = None,
    **options: Any,
) -> KernelSpec:
    """A `KernelSpec` for a user function (parameters taken from its signature by default).

    Parameters
    ----------
    func : callable
        ``func(block, **params) -> ndarray``; see `KernelSpec` for the context arguments.
    name : str, optional
        Registry name (default: the function's name with ``_`` as ``-``).
    description : str, optional
        Default: the first line of the function's docstring.
    releases_gil : bool, optional
        Declare whether ``func`` releases the GIL; default: detected with `holds_gil`
        (plain Python functions and numba functions without ``nogil=True`` hold it).
    **options
        Other `KernelSpec` fields (``depth``, ``output_dtype``, ``bands_out``, ``params``, ...).

    Returns
    -------
    KernelSpec
    """
    if isinstance(func, KernelSpec):
        return func
    if not callable(func):
        raise KernelError(f"a kernel must be a callable or a KernelSpec, got {func!r}")
    base = getattr(func, "py_func", func)
    kernel_name = name or _dashed(getattr(base, "__name__", "kernel"))
    doc = inspect.getdoc(base) or ""
    if releases_gil is None:
        held = holds_gil(func)
        releases_gil = None if held is None else not held
    options.setdefault("params", _signature_params(func))
    if options.get("bands_out") is not None:
        options.setdefault("whole_band_axis", True)
    return KernelSpec(
        name=kernel_name,
        func=func,
        description=description or (doc.splitlines()[0] if doc else f"user kernel {kernel_name}"),
        releases_gil=releases_gil,
        **options,
    )


@overload
def register_kernel(spec: KernelSpec | BlockFunc, /) -> Any: ...


@overload
def register_kernel(
    spec: None = None, /, *, name: str | None = None, **options: Any
) -> Callable[[BlockFunc], BlockFunc]: ...


def register_kernel(
    spec: KernelSpec | BlockFunc | None = None, /, *, name: str | None = None, **options: Any
) -> Any:
    """Register a kernel; usable as a call or as a decorator.

    Parameters
    ----------
    spec : KernelSpec or callable, optional
        A spec (registered as is and returned) or a function (wrapped with
        `spec_from_callable`, registered, and returned unchanged).
    name : str, optional
        Registry name for a function (default: its name with ``_`` as ``-``).
    **options
        `KernelSpec` fields for a function: ``depth``, ``output_dtype``, ``bands_out``,
        ``params``, ``param_types``, ``nodata``, ``description``, ``releases_gil``, ...

    Returns
    -------
    KernelSpec, callable or decorator
        ``register_kernel(spec)`` returns ``spec``; ``register_kernel(func)`` returns ``func``;
        ``register_kernel(name=..., depth=...)`` returns a decorator.

    Examples
    --------
    >>> import numba
    >>> @register_kernel(name="double", output_dtype="float32")
    ... @numba.njit(nogil=True)
    ... def double(block):
    ...     return block * 2.0

    A kernel of the same name is replaced.
    """
    if isinstance(spec, KernelSpec):
        if name is not None or options:
            raise KernelError("register_kernel(spec) takes no other arguments")
        return _add(spec)
    if spec is not None:
        _add(spec_from_callable(spec, name=name, **options))
        return spec

    def decorator(func: BlockFunc) -> BlockFunc:
        _add(spec_from_callable(func, name=name, **options))
        return func

    return decorator


def _entry_points() -> Iterable[importlib.metadata.EntryPoint]:
    return importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)


def _spec_from_object(obj: Any, name: str, origin: str) -> KernelSpec:
    if isinstance(obj, KernelSpec):
        return obj if obj.name == name else replace(obj, name=name)
    if callable(obj):
        return spec_from_callable(obj, name=name)
    raise KernelError(f"{origin}: {obj!r} is neither a function nor a KernelSpec")


def _load_reference(ref: str) -> KernelSpec:
    """The kernel at ``package.module:function`` (a function or a `KernelSpec`)."""
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr or not re.fullmatch(r"[\w.]+", module_name + "." + attr):
        raise KernelError(f"kernel reference {ref!r} must look like package.module:function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise KernelError(f"kernel {ref!r}: cannot import {module_name!r} ({err})") from err
    obj: Any = module
    try:
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise KernelError(f"kernel {ref!r}: module {module_name!r} has no {attr!r}") from None
    return _spec_from_object(obj, ref, f"kernel {ref!r}")


def _load_entry_point(ep: importlib.metadata.EntryPoint) -> KernelSpec:
    try:
        obj = ep.load()
    except Exception as err:
        raise KernelError(
            f"kernel {ep.name!r} from entry point {ep.value!r} failed to load "
            f"({type(err).__name__}: {err})"
        ) from err
    return _spec_from_object(obj, ep.name, f"entry point {ep.name!r} ({ep.value})")


def get_kernel(name: str) -> KernelSpec:
    """The kernel called ``name``.

    Parameters
    ----------
    name : str
        A registered name, a ``package.module:function`` reference (imported), or the name of
        a ``pipeline.kernels`` entry point (loaded on first use). Loaded kernels are
        registered, so later look-ups are cheap.

    Returns
    -------
    KernelSpec

    Raises
    ------
    KernelError
        Unknown name (the message lists the known ones), or a reference or entry point that
        cannot be loaded.
    """
    spec = _REGISTRY.get(name)
    if spec is not None:
        return spec
    if ":" in name:
        return _add(_load_reference(name))
    for ep in _entry_points():
        if ep.name == name:
            return _add(_load_entry_point(ep))
    known = ", ".join(sorted(_REGISTRY))
    raise KernelError(f"unknown kernel {name!r}; known kernels: {known}") from None


def list_kernels() -> list[KernelSpec]:
    """All kernels, sorted by name, including those of installed entry points.

    Returns
    -------
    list of KernelSpec

    Warns
    -----
    PipelineWarning
        An entry point that fails to load (it is skipped).
    """
    for ep in _entry_points():
        if ep.name in _REGISTRY:
            continue
        try:
            _add(_load_entry_point(ep))
        except KernelError as err:
            warnings.warn(str(err), PipelineWarning, stacklevel=2)
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def resolve_kernel(kernel: str | KernelSpec | BlockFunc) -> KernelSpec:
    """A `KernelSpec` for a name, a spec or a bare function."""
    if isinstance(kernel, KernelSpec):
        return kernel
    if isinstance(kernel, str):
        return get_kernel(kernel)
    return spec_from_callable(kernel)
