"""Every command the image and the manifests run is one the `careline` CLI has.

The command lines are parsed by the Typer app's own click parser (bots/cli.py), so a renamed
command, a dropped option or a role the settings do not know fails here, not in a cluster.
"""

from __future__ import annotations

import tomllib
import typing
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main
from starlette.routing import Match
from typer.exceptions import TyperException

from bots.cli import app
from bots.server import create_app
from core.config import Settings
from tests.deploy.conftest import OVERLAYS, REPO, pod_specs
from tests.deploy.dockerfile import exec_form, parse

IMAGE = parse(REPO / "Dockerfile").final
ENTRYPOINT = exec_form(IMAGE.last("ENTRYPOINT")) or []
CMD = exec_form(IMAGE.last("CMD")) or []
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")


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


# What each Ingress path is for: the endpoints behind it (method, path, http or websocket).
INGRESS_ENDPOINTS = {
    "/telegram": [("POST", "/telegram/webhook", "http")],
    "/slack": [("POST", "/slack/events", "http"), ("POST", "/slack/interactions", "http")],
    "/sendgrid": [("POST", "/sendgrid/events", "http")],
    "/twilio": [("POST", "/twilio/sms", "http"), ("POST", "/twilio/status", "http")],
    "/chat": [("GET", "/chat", "http"), ("GET", "/chat/ws", "websocket")],
    "/files": [("GET", "/files/0123456789abcdef0123456789abcdef", "http")],
    "/api": [("GET", "/api/v1/tickets", "http")],
    "/docs": [("GET", "/docs", "http")],
}


def app_for(tmp_path: Path, role: str) -> Any:
    """The app in `role` with every channel configured; nothing is started."""
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'careline.db'}",
        role=role,
        telegram_bot_token="1:token",
        telegram_webhook_secret="secret",
        slack_bot_token="xoxb-token",
        slack_signing_secret="secret",
        twilio_account_sid="AC" + "0" * 32,
        twilio_auth_token="token",
        twilio_from_number="+15005550006",
    )
    return create_app(settings)


def serves(app: Any, method: str, path: str, kind: str = "http") -> bool:
    """Whether the app's own router sends this request to a route (not to its 404)."""
    scope: dict[str, Any] = {"type": kind, "path": path, "method": method, "root_path": ""}
    scope |= {"headers": [], "path_params": {}, "app": app}
    return any(route.matches(scope)[0] is not Match.NONE for route in app.routes)


def test_route_check_tells_a_served_path_from_an_unknown_one(tmp_path: Path) -> None:
    app = app_for(tmp_path, "web")
    assert serves(app, "GET", "/healthz")
    assert not serves(app, "GET", "/no-such-page")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_probe_path_is_served_by_the_role_it_probes(
    rendered: dict[str, list[dict[str, Any]]], overlay: str, tmp_path: Path
) -> None:
    for workload, spec in pod_specs(rendered[overlay]).items():
        for container in spec["containers"]:
            probes = [container[p] for p in PROBES if p in container]
            if not probes:
                continue
            argv = effective_argv(container)
            role = argv[argv.index("--role") + 1] if "--role" in argv else "all"
            app = app_for(tmp_path, role)
            for probe in probes:
                path = probe["httpGet"]["path"]
                assert serves(app, "GET", path), f"{workload} probes {path}; {role} lacks it"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_ingress_path_leads_to_endpoints_web_serves(
    rendered: dict[str, list[dict[str, Any]]], overlay: str, tmp_path: Path
) -> None:
    app = app_for(tmp_path, "web")
    for doc in rendered[overlay]:
        if doc["kind"] != "Ingress":
            continue
        for rule in doc["spec"]["rules"]:
            for entry in rule["http"]["paths"]:
                prefix = entry["path"]
                assert prefix in INGRESS_ENDPOINTS, f"what is {prefix} for? add its endpoints"
                for method, path, kind in INGRESS_ENDPOINTS[prefix]:
                    assert path.startswith(prefix)
                    assert serves(app, method, path, kind), f"{prefix}: web lacks {path}"
