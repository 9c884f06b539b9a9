"""A regular (non-editable) install from a built wheel works: its fault scenarios ship.

The wheel is built with pip, unpacked into a directory of its own, and the installed
`scripts.cli` is run from there in a directory holding no project files; the venv's
third-party packages serve as the dependencies. If the scenarios were not package data,
`faults list` would find none and fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                            "--wheel-dir", str(out), str(ROOT)], capture_output=True, text=True,
                           timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    (found,) = out.glob("ipchain-*.whl")
    return found


def test_the_wheel_carries_every_fault_scenario(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(n.split("/")[-1] for n in names if n.startswith("configs/faults/"))
    assert shipped == sorted(p.name for p in (ROOT / "configs" / "faults").glob("*.toml"))


def test_faults_list_from_an_installed_wheel_lists_every_scenario(wheel: Path,
                                                                    tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    listed = subprocess.run([sys.executable, "-c", "import scripts.cli, sys; "
                             "assert scripts.cli.__file__.startswith(sys.argv[1]), "
                             "scripts.cli.__file__; sys.exit(scripts.cli.main(['faults', 'list']))",
                             str(site)], cwd=elsewhere, env=env, capture_output=True, text=True,
                            timeout=120)
    assert listed.returncode == 0, listed.stderr[-3000:]
    for scenario in (ROOT / "configs" / "faults").glob("*.toml"):
        assert scenario.stem in listed.stdout
