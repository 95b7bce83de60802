"""`tfbench models`: every registered model (built-in and plugin) with its crop, weights and options."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from tfbench.cli.app import app, console


def _weights_cell(names: tuple[str, ...]) -> str:
    """One line per weight file: present, or missing with the command (or page) that gets it."""
    from tfbench import weights as w
    from tfbench.errors import TfbenchError

    if not names:
        return "[dim]none[/dim]"
    lines = []
    for name in names:
        try:
            spec, path = w.spec(name), w.expected_path(name)
        except TfbenchError:
            lines.append(f"[red]{escape(name)}: not in the weights registry[/red]")
            continue
        if path.is_file():
            packaged = " (ships with tfbench)" if spec.packaged else ""
            lines.append(f"[green]{escape(name)}: present{packaged}[/green]")
        elif spec.manual:
            lines.append(
                f"[yellow]{escape(name)}: missing[/yellow] (download by hand from {escape(spec.source)} "
                f"to {escape(str(path))})"
            )
        else:
            lines.append(f"[yellow]{escape(name)}: missing[/yellow] (tfbench weights fetch {escape(name)})")
    return "\n".join(lines)


def _options_cell(options_class: type) -> str:
    """One line per option: name=default (or "required"), type and help."""
    from tfbench.models.protocol import option_specs

    specs = option_specs(options_class)
    if not specs:
        return "[dim]none[/dim]"
    lines = []
    for spec in specs:
        if spec.default is None:
            value = "[bold]required[/bold]"
        else:  # quoted only where the bare text would be ambiguous (empty, spaces)
            value = escape(spec.default if spec.default.strip() == spec.default != "" else repr(spec.default))
        help_text = f" {escape(spec.help)}" if spec.help else ""
        lines.append(f"[cyan]{escape(spec.name)}[/cyan]={value} [dim]({spec.type_name})[/dim]{help_text}")
    return "\n".join(lines)


@app.command("models")
def models() -> None:
    """List every registered model with its description, crop size, weights and options."""
    import tfbench.baselines  # noqa: F401  (registers the built-in models; plugins load on first lookup)
    from tfbench.models.protocol import MODELS

    table = Table(title="tfbench models", show_lines=True)
    table.add_column("name", no_wrap=True)
    table.add_column("description", overflow="fold")
    table.add_column("crop", justify="right", no_wrap=True)
    table.add_column("weights", overflow="fold")
    table.add_column("options (--model-option KEY=VALUE)", overflow="fold")
    for name, model in MODELS.items():
        doc = (model.__doc__ or "").strip().splitlines()
        description = model.description or (doc[0] if doc else "")
        table.add_row(
            escape(name),
            escape(description),
            str(model.crop_size),
            _weights_cell(model.weights),
            _options_cell(model.options_class),
        )
    console.print(table)
