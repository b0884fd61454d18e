"""The published artifacts: ``python -m build`` makes an sdist and a wheel that ``twine check --strict`` accepts,
both carry LICENSE and NOTICE, the wheel holds the package (typed, emulator included) and nothing else, and
the sdist holds what its own tests need (conftest, support modules, example DAGs, docs) and runs one of them.

The build is isolated (``python -m build`` fetches ``setuptools>=77`` from the package index), so it takes
15-30 s and needs the index; ``make dist`` does the same into ``dist/``.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.packaging, pytest.mark.latest_only, pytest.mark.timeout(300)]

PACKAGE = "airflow_provider_schneider"


def run(*args: str, cwd: Path = REPO, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=240, check=False
    )
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> tuple[Path, Path]:
    """sdist and wheel, built as ``make dist`` builds them (the wheel from the sdist). One build of the checkout
    at a time: setuptools assembles the sdist in ``<checkout>/<name>-<version>/``, so two pytest workers
    building at once remove each other's release tree (a CI run failed with "No such file or directory")."""
    out = tmp_path_factory.mktemp("dist")
    lock_path = tmp_path_factory.getbasetemp().parent / "sdist-build.lock"  # shared by the xdist workers
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        run("-m", "build", "--outdir", str(out), str(REPO))
    sdists, wheels = sorted(out.glob("*.tar.gz")), sorted(out.glob("*.whl"))
    assert len(sdists) == 1 and len(wheels) == 1, sorted(p.name for p in out.iterdir())
    return sdists[0], wheels[0]


def sdist_names(sdist: Path) -> set[str]:
    """Member paths relative to the sdist's top folder (``airflow_provider_schneider-X.Y.Z/``)."""
    with tarfile.open(sdist) as tar:
        return {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}


def wheel_names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as whl:
        return set(whl.namelist())


def test_twine_check_strict_passes(artifacts):
    sdist, wheel = artifacts
    result = run("-m", "twine", "check", "--strict", str(sdist), str(wheel))
    assert result.stdout.count("PASSED") == 2, result.stdout


def test_wheel_holds_license_package_and_emulator(artifacts):
    _, wheel = artifacts
    names = wheel_names(wheel)
    dist_info = next(name.split("/")[0] for name in names if name.split("/")[0].endswith(".dist-info"))
    assert {f"{dist_info}/licenses/LICENSE", f"{dist_info}/licenses/NOTICE"} <= names, sorted(names)
    assert {
        f"{PACKAGE}/py.typed",
        f"{PACKAGE}/emulator/__init__.py",
        f"{PACKAGE}/emulator/__main__.py",
        f"{PACKAGE}/emulator/README.md",
    } <= names
    # Only the package and its metadata are installed: no tests, DAGs, scripts or docs in site-packages.
    assert {name.split("/")[0] for name in names} == {PACKAGE, dist_info}, sorted(names)
    with zipfile.ZipFile(wheel) as whl:
        metadata = whl.read(f"{dist_info}/METADATA").decode()
    assert "License-Expression: Apache-2.0" in metadata
    assert "Project-URL: Source," in metadata and "Requires-Dist: universal_pathlib" in metadata


def test_sdist_holds_license_and_what_its_tests_need(artifacts):
    sdist, _ = artifacts
    names = sdist_names(sdist)
    wanted = {"LICENSE", "NOTICE", "README.md", "CHANGELOG.md", "pyproject.toml", "tests/conftest.py"}
    wanted |= {"tests/support/dagrun.py", "tests/__init__.py", "docs/failures.md"}
    for tier in ("support", "unit", "integration", "integration/emulator", "system"):
        found = {p.relative_to(REPO).as_posix() for p in REPO.glob(f"tests/{tier}/*.py")}
        assert found, f"tests/{tier} holds no module"
        wanted |= found
    wanted |= {p.relative_to(REPO).as_posix() for p in REPO.glob("dags/*.py")}
    assert wanted <= names, f"missing from the sdist: {sorted(wanted - names)}"
    assert f"{PACKAGE}/emulator/__main__.py" in names


def test_sdist_tests_run_from_the_unpacked_sdist(artifacts, tmp_path):
    """One real test of the suite, run inside the unpacked sdist (it reads docs/failures.md and imports the
    support modules), and the package imported from there rather than from this checkout."""
    sdist, _ = artifacts
    with tarfile.open(sdist) as tar:
        # the "data" filter (no absolute paths, links out of the tree, devices) where Python has it (3.10.12+)
        tar.extractall(tmp_path, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    (root,) = tmp_path.iterdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTEST"))}
    where = run("-c", f"import {PACKAGE}; print({PACKAGE}.__file__)", cwd=root, env=env).stdout.strip()
    assert Path(where).resolve().is_relative_to(root.resolve()), where
    result = run(
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/integration/test_fault_matrix.py::test_failure_table_matches_the_matrix",
        cwd=root,
        env=env,
    )
    assert "1 passed" in result.stdout, result.stdout
