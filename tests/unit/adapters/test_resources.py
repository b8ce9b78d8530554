"""Where the app finds its icons and D-Bus XML: the tree, the install prefix, XDG_DATA_DIRS."""

from __future__ import annotations

from pathlib import Path

import pytest

from drkonqi_lite.adapters import resources


def _copy(base: Path) -> Path:
    found = base / "drkonqi-lite"
    found.mkdir(parents=True)
    (found / resources.MARKER).write_text("<svg/>")
    return found


@pytest.fixture
def no_tree(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """As in an installed copy: no resources/ beside the package."""
    monkeypatch.setattr(resources, "SOURCE_TREE", tmp_path / "no-tree" / "resources")
    return resources.SOURCE_TREE


def test_source_tree_first() -> None:
    assert resources.resource_dir({}, "/nonexistent") == resources.SOURCE_TREE
    assert (resources.SOURCE_TREE / resources.MARKER).is_file()


def test_a_pip_install_uses_its_own_prefix_before_xdg(no_tree: Path, tmp_path: Path) -> None:
    venv = _copy(tmp_path / "venv/share")
    _copy(tmp_path / "usr/share")  # another version installed system-wide
    env = {"XDG_DATA_DIRS": str(tmp_path / "usr/share")}
    assert resources.resource_dir(env, str(tmp_path / "venv")) == venv


def test_the_package_is_found_through_xdg(no_tree: Path, tmp_path: Path) -> None:
    usr = _copy(tmp_path / "usr/share")
    env = {"XDG_DATA_DIRS": f"relative/share:{tmp_path / 'empty'}:{tmp_path / 'usr/share'}"}
    assert resources.resource_dir(env, str(tmp_path / "venv")) == usr


def test_nothing_found_names_the_tree(no_tree: Path, tmp_path: Path) -> None:
    (tmp_path / "venv/share/drkonqi-lite").mkdir(parents=True)  # empty: not a copy
    assert resources.resource_dir({"XDG_DATA_DIRS": "/nonexistent"}, str(tmp_path / "venv")) == (
        no_tree
    )
