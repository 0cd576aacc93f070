"""The ``pipeline`` command line (click). Nothing imports this package."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import Any

import click

from pipeline._version import __version__
from pipeline.errors import PipelineError


class _Group(click.Group):
    """Turns errors into one line on stderr (exit 1), with the traceback only under --debug."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except BrokenPipeError:  # output piped into `head` and closed: stop quietly
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            ctx.exit(0)
        except Exception as err:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            text = str(err) if isinstance(err, PipelineError) else f"{type(err).__name__}: {err}"
            text = " ".join(text.split())
            hint = "" if isinstance(err, PipelineError) else " (run with --debug for a traceback)"
            click.echo(f"pipeline: error: {text}{hint}", err=True)
            ctx.exit(1)


def _format_warning(message: Warning | str, category: type[Warning], *args: Any, **kw: Any) -> str:
    """Warnings as one line on the terminal, like errors."""
    return f"pipeline: warning: {' '.join(str(message).split())}\n"


def _configure_logging(verbose: int, debug: bool) -> None:
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    warnings.formatwarning = _format_warning
    if verbose or debug:
        return
    # Task failures are reported once, by us: keep distributed's and GDAL's echoes out, also in
    # worker processes spawned later (they read DASK_* variables when importing distributed).
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "critical")
    for name in ("distributed", "rasterio"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    from rasterio.errors import NotGeoreferencedWarning

    warnings.simplefilter("ignore", NotGeoreferencedWarning)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="pipeline")
@click.option("-v", "--verbose", count=True, help="More log output (repeatable).")
@click.option("--debug", is_flag=True, help="Show full tracebacks and debug logs.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, debug: bool) -> None:
    """Scalable raster processing on Dask: block-aligned reads, nogil kernels, atomic writes."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    ctx.obj["verbose"] = verbose
    _configure_logging(verbose, debug)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv, prog_name="pipeline")


from pipeline.cli import batch as _batch  # noqa: E402
from pipeline.cli import cluster as _cluster  # noqa: E402
from pipeline.cli import compute as _compute  # noqa: E402
from pipeline.cli import demo as _demo  # noqa: E402
from pipeline.cli import kernels as _kernels  # noqa: E402
from pipeline.cli import reproject as _reproject  # noqa: E402
from pipeline.cli import verify as _verify  # noqa: E402

cli.add_command(_compute.compute)
cli.add_command(_reproject.reproject)
cli.add_command(_batch.batch)
cli.add_command(_verify.verify)
cli.add_command(_kernels.kernels)
cli.add_command(_demo.demo)
cli.add_command(_cluster.cluster_config)

if __name__ == "__main__":  # pragma: no cover
    main()
