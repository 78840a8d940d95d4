"""Where the project's top-level files are, in a source checkout and in an installed wheel.

A source checkout reads `config/`, `models/manifest.toml` and `migrations/` from the repository;
a wheel carries copies of them under `appliance/_bundled/` (see pyproject's force-include).
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def source_checkout_root() -> Path | None:
    """The repository root when running from a checkout (editable install), else None."""
    root = PACKAGE_DIR.parent
    return root if (root / "pyproject.toml").is_file() and (root / "migrations").is_dir() else None


def bundled_resource(relative: str, bundled_name: str) -> Path:
    root = source_checkout_root()
    if root is not None:
        return root / relative
    return PACKAGE_DIR / "_bundled" / bundled_name


def migrations_dir() -> Path:
    return bundled_resource("migrations", "migrations")


def manifest_path() -> Path:
    return bundled_resource("models/manifest.toml", "manifest.toml")
