"""The offline bundle: everything a clinic's server needs to install the appliance with no internet.

`appliance bundle build --out DIR` runs on a connected machine (a source checkout with its venv);
`appliance bundle verify DIR` runs anywhere, and the Ansible role installs only from a bundle
that passed it. The server never talks to a package index: it runs
`pip install --no-index --find-links DIR/wheels '<requirement>'` with the requirement the
manifest names, and copies `DIR/models/*` into its models directory.

Layout of a bundle::

    DIR/
      manifest.json      what the bundle is and every file in it (see below)
      SHA256SUMS         `sha256sum -c` format: every file of the manifest plus manifest.json itself
      wheels/            the appliance's own wheel, built from the checkout, and every dependency
                         of the profile, as wheels for the target Python and platform
      models/<name>/...  model files, laid out as the appliance's models directory expects
                         (demo: the packaged demo models; gpu: the clinic's models; core: none)

manifest.json (format 1) holds: `format`, `appliance_version`, `profile` (core, demo or gpu),
`requirement` (what pip installs, e.g. `appliance[demo]`), `target` (`python_version`,
`implementation`, `abi`, `platforms`), `created_at` (UTC, ISO 8601), `project_wheel` (path of the
appliance's wheel), `built_here` (wheels that this machine compiled from source, with the
`CMAKE_ARGS` they were built with), `models` (name, role, where it came from, its files) and
`files` (every file under wheels/ and models/: relative path, size in bytes, sha256).

The bundle is checked strictly: a listed file that is missing, has another size or another
sha256 fails, and so does any file the manifest does not list (the server installs only what was
verified). An operator can check by hand with `cd DIR && sha256sum -c SHA256SUMS`, or, before the
appliance is installed, with the verifier inside the bundle's own wheel, which needs only the
standard library::

    PYTHONPATH=DIR/wheels/appliance-<version>-py3-none-any.whl \
        python3 -m appliance.bundle.verify DIR

Both prove integrity (nothing changed since the build), not origin: carry the bundle, or its
SHA256SUMS, over a channel the clinic trusts.

Packages that PyPI ships only as source (llama-cpp-python) must be compiled for the target: on a
machine like the clinic's server (same Python, same CUDA), either pass
`--build 'llama-cpp-python>=0.3.8'` with `CMAKE_ARGS=-DGGML_CUDA=on` in the environment, which runs
`pip wheel` here and carries the wheel it makes, or build the wheel there yourself
(`CMAKE_ARGS=-DGGML_CUDA=on pip wheel --no-deps -w WHEELS llama-cpp-python`) and pass
`--find-links WHEELS`. A wheel built without CUDA runs on the CPU only.

This package imports nothing heavy; `manifest` and `verify` use the standard library alone.
"""
