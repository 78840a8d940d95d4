"""`appliance bundle build|verify`: the offline bundle the Ansible role installs from."""

from __future__ import annotations

import json
from pathlib import Path

import click

from appliance.bundle.manifest import BundleError
from appliance.cli import json_option, main, one_line_errors

PATH = click.Path(path_type=Path)


@main.group()
def bundle() -> None:
    """Offline bundle: wheels, models, manifest and checksums for a server without internet."""


@bundle.command("build")
@click.option("--out", type=PATH, required=True, help="New or empty folder to write.")
@click.option(
    "--profile",
    type=click.Choice(("core", "demo", "gpu")),
    default="core",
    show_default=True,
    help="core: base dependencies; demo: [demo] and its models; gpu: [gpu] and the clinic's.",
)
@click.option("--python-version", default=None, help="Target Python, e.g. 3.11 (default: this).")
@click.option(
    "--platform",
    "platforms",
    multiple=True,
    help="Target platform tag, repeatable (default: manylinux_2_35_x86_64; older ones implied).",
)
@click.option(
    "--models-from",
    type=PATH,
    default=None,
    help="gpu profile: folder holding one folder per clinic model.",
)
@click.option(
    "--find-links",
    type=PATH,
    multiple=True,
    help="Folder of wheels built elsewhere (e.g. llama-cpp-python with CUDA), repeatable.",
)
@click.option(
    "--build",
    "build_requirements",
    multiple=True,
    help="Compile this requirement here with pip wheel (CMAKE_ARGS is passed on), repeatable.",
)
@click.option(
    "--constraint",
    type=PATH,
    multiple=True,
    help="pip constraints file, e.g. the versions the release was tested with.",
)
@json_option
@one_line_errors
def bundle_build(
    out: Path,
    profile: str,
    python_version: str | None,
    platforms: tuple[str, ...],
    models_from: Path | None,
    find_links: tuple[Path, ...],
    build_requirements: tuple[str, ...],
    constraint: tuple[Path, ...],
    as_json: bool,
) -> None:
    """Write the offline bundle for PROFILE into OUT (a connected machine, a source checkout)."""
    from appliance.bundle.build import BuildRequest, build_bundle
    from appliance.bundle.target import make_target
    from appliance.paths import source_checkout_root

    source = source_checkout_root()
    try:
        if source is None:
            raise BundleError(
                "bundle build runs from a source checkout of the appliance (its venv), "
                "not from an installed wheel"
            )
        request = BuildRequest(
            out=out,
            profile=profile,
            target=make_target(python_version, platforms),
            source=source,
            models_from=models_from,
            find_links=find_links,
            build=build_requirements,
            constraints=constraint,
        )
        result = build_bundle(request, progress=lambda line: click.echo(line, err=True))
    except BundleError as exc:
        raise click.ClickException(str(exc).splitlines()[0]) from None
    summary = result.as_dict()
    click.echo(
        json.dumps(summary)
        if as_json
        else (
            f"bundle {summary['out']}: {summary['requirement']} {summary['appliance_version']}, "
            f"{summary['wheels']} wheels, {len(result.manifest.models)} model(s), "
            f"{result.manifest.total_bytes / 1e6:.1f} MB in {summary['seconds']} s"
        )
    )


@bundle.command("verify")
@click.argument("directory", type=PATH)
@json_option
@one_line_errors
def bundle_verify(directory: Path, as_json: bool) -> None:
    """Check every file of the bundle in DIRECTORY against its manifest (size and sha256),
    and that it holds nothing else. Exit 1 naming the first bad file."""
    from appliance.bundle.verify import failure_message, verify_bundle

    result = verify_bundle(directory)
    if as_json:
        click.echo(json.dumps(result.as_dict()))
    if not result.ok:
        raise click.ClickException(failure_message(result))
    if not as_json:
        manifest = result.manifest
        assert manifest is not None
        click.echo(
            f"{failure_message(result)}: {manifest.requirement} {manifest.appliance_version} "
            f"for Python {manifest.target.python_version}, {len(manifest.files)} files"
        )
