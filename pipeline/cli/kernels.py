"""``pipeline kernels``: list the available kernels with their parameters and defaults."""

from __future__ import annotations

import click


def _default(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@click.command()
@click.option("--names", "names_only", is_flag=True, help="Only the names, one per line.")
def kernels(names_only: bool) -> None:
    """List kernels (built-in, registered and from installed entry points).

    Parameters are given to `pipeline compute` as --param KEY=VALUE.
    """
    from pipeline.kernels import REQUIRED, list_kernels

    specs = list_kernels()
    if names_only:
        for spec in specs:
            click.echo(spec.name)
        return
    width = max(len(s.name) for s in specs)
    for spec in specs:
        halo = (
            ""
            if spec.depth == 0
            else f" [halo: {spec.depth if isinstance(spec.depth, int) else 'from parameters'}]"
        )
        click.echo(f"{spec.name:<{width}}  {spec.description}{halo}")
        for param, default in spec.params.items():
            value = "(required)" if default is REQUIRED else f"= {_default(default)}"
            click.echo(f"{'':<{width}}    {param}: {spec.type_name(param)} {value}")
