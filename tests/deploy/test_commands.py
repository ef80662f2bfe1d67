"""Every command the image and the manifests run is one the `careline` CLI has.

The command lines are parsed by the Typer app's own click parser (bots/cli.py), so a renamed
command, a dropped option or a role the settings do not know fails here, not in a cluster.
"""

from __future__ import annotations

import tomllib
import typing
from typing import Any

import pytest
import typer
import typer.main
from typer.exceptions import TyperException

from bots.cli import app
from bots.server import create_app
from core.config import Settings
from tests.deploy.conftest import OVERLAYS, REPO, pod_specs
from tests.deploy.dockerfile import exec_form, parse

IMAGE = parse(REPO / "Dockerfile").final
ENTRYPOINT = exec_form(IMAGE.last("ENTRYPOINT")) or []
CMD = exec_form(IMAGE.last("CMD")) or []


def effective_argv(container: dict[str, Any]) -> list[str]:
    """What a container runs: Kubernetes' command/args over the image's ENTRYPOINT/CMD."""
    if "command" in container:
        return [*container["command"], *container.get("args", [])]
    return [*ENTRYPOINT, *container.get("args", CMD)]


def check_cli(argv: list[str]) -> None:
    """Raise a usage error unless `argv` is a valid `careline` command line.

    Typer 0.29 ships its own click, whose errors all derive from `TyperException`.
    """
    if not argv or argv[0] != "careline":
        raise typer.BadParameter(f"{argv} does not run the careline command")
    group: Any = typer.main.get_command(app)
    root = typer.Context(group, info_name="careline")
    name, command, rest = group.resolve_command(root, argv[1:])
    assert name is not None and command is not None
    context = command.make_context(name, list(rest), parent=root)
    # --role is a plain string on the command line; the settings decide what is valid.
    role = context.params.get("role")
    roles = typing.get_args(Settings.model_fields["role"].annotation)
    if role is not None and role not in roles:
        raise typer.BadParameter(f"role {role!r} is not one of {roles}")


def test_careline_console_script_is_the_typer_app() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["careline"] == "bots.cli:main"


def test_image_default_command_exists_in_the_cli() -> None:
    assert ENTRYPOINT == ["careline"]
    check_cli([*ENTRYPOINT, *CMD])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_command_exists_in_the_cli(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    seen = []
    for workload, spec in pod_specs(rendered[overlay]).items():
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            argv = effective_argv(container)
            try:
                check_cli(argv)
            except TyperException as e:
                pytest.fail(f"{workload} runs {argv}: {e}")
            seen.append(argv[1])
    # Every role has a workload.
    assert {"serve", "migrate"} <= set(seen)


@pytest.mark.parametrize(
    "argv",
    [
        ["careline", "deploy"],
        ["careline", "serve", "--roles", "web"],
        ["careline", "serve", "--role", "webhooks"],
        ["careline", "serve", "--port", "http"],
        ["python", "-m", "bots.cli", "serve"],
    ],
)
def test_a_command_the_cli_does_not_have_is_caught(argv: list[str]) -> None:
    with pytest.raises(TyperException):
        check_cli(argv)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_probe_path_is_served_by_the_app(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    server = create_app(Settings(database_url="sqlite+aiosqlite:///:memory:"))
    routes = {getattr(route, "path", None) for route in server.routes}
    for workload, spec in pod_specs(rendered[overlay]).items():
        for container in spec["containers"]:
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                if probe in container:
                    path = container[probe]["httpGet"]["path"]
                    assert path in routes, f"{workload} {probe} asks {path}, not served"
