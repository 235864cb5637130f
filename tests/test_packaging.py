"""Packaging: the desktop entry, MIME package and install.sh (into a temporary XDG data folder),
and the wheel's file list and metadata (a wheel built from a copy of the source tree).

The bundle itself (packaging/build.sh, smoke.sh) and the fresh-venv install of the wheel
(packaging/wheel_check.sh) are too slow for the suite; these tests catch what breaks them cheaply.
"""

from __future__ import annotations

import configparser
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGING = ROOT / "packaging"
DESKTOP = PACKAGING / "bst-studio.desktop"
MIME_XML = PACKAGING / "bst-studio.xml"
INSTALL = PACKAGING / "install.sh"
MIME_NS = "{http://www.freedesktop.org/standards/shared-mime-info}"
BUILTIN_MIME_TYPES = {"inode/directory"}   # every MIME database has it; no glob defines it
ICON_SIZES = (48, 128, 256)
FIELD_CODES = {"%f", "%F", "%u", "%U"}


def _entry(path: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, delimiters=("=",))
    parser.optionxform = str   # keys are case-sensitive
    parser.read(path, encoding="utf-8")
    return parser["Desktop Entry"]


def _exec_argv(value: str) -> list[str]:
    """The Exec value as an argument list, by the Desktop Entry spec: string escapes undone
    (``\\\\`` -> ``\\``), then arguments split on spaces, ``"..."`` quoting an argument in which
    a backslash escapes ``"``, `````, ``$`` and ``\\``."""
    value = value.replace("\\\\", "\\")
    args: list[str] = []
    current: list[str] | None = None
    quoted = False
    chars = iter(value)
    for char in chars:
        if quoted:
            if char == '"':
                quoted = False
            elif char == "\\":
                escaped = next(chars)
                assert escaped in '"`$\\', f"bad escape \\{escaped} in Exec={value}"
                current.append(escaped)   # type: ignore[union-attr]
            else:
                current.append(char)      # type: ignore[union-attr]
        elif char == " ":
            if current is not None:
                args.append("".join(current))
            current = None
        else:
            current = [] if current is None else current
            if char == '"':
                quoted = True
            else:
                assert char not in '"`$\\', f"{char} outside quotes in Exec={value}"
                current.append(char)
    assert not quoted, f"unterminated quote in Exec={value}"
    if current is not None:
        args.append("".join(current))
    return args


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _list(value: str) -> list[str]:
    return [item for item in value.split(";") if item]


# --- the desktop entry and the MIME package ----------------------------------------------------------

def test_desktop_entry_starts_the_app_with_one_path_and_names_its_icon() -> None:
    entry = _entry(DESKTOP)
    argv = _exec_argv(entry["Exec"])
    assert argv[0] == entry["TryExec"] == "bst-studio"
    assert argv[0] in _pyproject()["project"]["scripts"]                 # the pip/pipx console script
    assert f'name="{argv[0]}"' in (PACKAGING / "bst-studio.spec").read_text()  # and the bundle's program
    codes = [arg for arg in argv[1:] if arg in FIELD_CODES]
    assert codes == ["%f"], argv        # one local path: what `bst-studio SOURCE` takes
    assert set(_list(entry["MimeType"])) == {"inode/directory", "text/csv"}
    assert entry["Icon"] == "bst-studio" and entry["Terminal"] == "false"
    for size in ICON_SIZES:
        assert (PACKAGING / f"bst-studio-{size}.png").is_file()
    assert (PACKAGING / "bst-studio.svg").read_bytes() == (ROOT / "bst_gui" / "icons" / "bst-studio.svg").read_bytes()


def test_the_app_takes_the_path_a_file_manager_passes() -> None:
    from bst_gui.app import _parser

    assert _parser().parse_args(["/data/My Sounds"]).source == "/data/My Sounds"
    assert _parser().parse_args([]).source is None     # started from the menu: %f expands to nothing


def test_mime_package_defines_what_the_entry_opens() -> None:
    root = ET.parse(MIME_XML).getroot()
    assert root.tag == f"{MIME_NS}mime-info"
    defined = {}
    for mime_type in root.iter(f"{MIME_NS}mime-type"):
        globs = [glob.get("pattern") for glob in mime_type.iter(f"{MIME_NS}glob")]
        assert globs, f"{mime_type.get('type')} has no glob"
        defined[mime_type.get("type")] = globs
    assert defined == {"text/csv": ["*.csv"]}
    assert set(_list(_entry(DESKTOP)["MimeType"])) - set(defined) <= BUILTIN_MIME_TYPES


def test_desktop_file_validate_accepts_the_entry() -> None:
    validate = shutil.which("desktop-file-validate")
    if validate is None:
        pytest.skip("desktop-file-validate not installed (Debian: apt-get install desktop-file-utils)")
    done = subprocess.run([validate, str(DESKTOP)], capture_output=True, text=True)
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


# --- install.sh ----------------------------------------------------------------------------------------

def _fake_program(folder: Path, name: str = "bst-studio") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    program = folder / name
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o755)
    return program


def _install(data_home: Path, *args: str, path: str = "/usr/bin:/bin") -> subprocess.CompletedProcess[str]:
    env = {"HOME": str(data_home.parent), "PATH": path, "XDG_DATA_HOME": str(data_home)}
    return subprocess.run(["bash", str(INSTALL), *args], capture_output=True, text=True, env=env, timeout=60)


def _installed_files(data_home: Path) -> set[str]:
    return {"applications/bst-studio.desktop", "mime/packages/bst-studio.xml",
            "icons/hicolor/scalable/apps/bst-studio.svg",
            *(f"icons/hicolor/{s}x{s}/apps/bst-studio.png" for s in ICON_SIZES)}


def test_install_sh_installs_for_the_user_and_uninstalls(tmp_path: Path) -> None:
    data_home = tmp_path / "my data"                          # spaces and a $ in the paths: quoting
    program = _fake_program(tmp_path / "BST Studio $1", "bst-studio")
    done = _install(data_home, "--exec", str(program))
    assert done.returncode == 0, done.stderr
    for name in _installed_files(data_home):
        assert (data_home / name).is_file(), name
    installed = data_home / "applications" / "bst-studio.desktop"
    entry = _entry(installed)
    assert _exec_argv(entry["Exec"]) == [str(program), "%f"]
    assert entry["TryExec"] == str(program)
    assert entry["MimeType"] == _entry(DESKTOP)["MimeType"]
    assert (data_home / "icons/hicolor/256x256/apps/bst-studio.png").read_bytes() == \
        (PACKAGING / "bst-studio-256.png").read_bytes()
    if shutil.which("update-desktop-database"):     # the association itself: "Open With" lists it
        cache = (data_home / "applications" / "mimeinfo.cache").read_text()
        assert "inode/directory=bst-studio.desktop;" in cache and "text/csv=bst-studio.desktop;" in cache
    if shutil.which("update-mime-database"):
        assert "text/csv:*.csv" in (data_home / "mime" / "globs").read_text()
    if shutil.which("desktop-file-validate"):
        validated = subprocess.run(["desktop-file-validate", str(installed)], capture_output=True, text=True)
        assert validated.returncode == 0 and not validated.stdout.strip(), validated.stdout

    done = _install(data_home, "--uninstall")
    assert done.returncode == 0, done.stderr
    assert not any((data_home / name).exists() for name in _installed_files(data_home))
    if shutil.which("update-desktop-database"):
        assert "bst-studio" not in (data_home / "applications" / "mimeinfo.cache").read_text()


def test_install_sh_finds_the_program_on_path_or_refuses(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    program = _fake_program(bin_dir)
    done = _install(tmp_path / "data", path=f"{bin_dir}:/usr/bin:/bin")
    assert done.returncode == 0, done.stderr
    assert _entry(tmp_path / "data" / "applications" / "bst-studio.desktop")["TryExec"] == str(program)

    done = _install(tmp_path / "other")          # not beside the script, not on PATH, no --exec
    assert done.returncode == 2
    assert "--exec" in done.stderr and not (tmp_path / "other" / "applications").exists()


def test_install_sh_beside_a_bundle_points_at_the_bundle(tmp_path: Path) -> None:
    """build.sh puts install.sh at the bundle's top and the files in share/: that layout works."""
    bundle = tmp_path / "bst-studio"
    program = _fake_program(bundle)
    shutil.copy(INSTALL, bundle / "install.sh")
    (bundle / "share").mkdir()
    for name in ("bst-studio.desktop", "bst-studio.xml", "bst-studio.svg",
                 *(f"bst-studio-{s}.png" for s in ICON_SIZES)):
        shutil.copy(PACKAGING / name, bundle / "share" / name)
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "XDG_DATA_HOME": str(tmp_path / "data")}
    done = subprocess.run(["bash", str(bundle / "install.sh")], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    entry = _entry(tmp_path / "data" / "applications" / "bst-studio.desktop")
    assert _exec_argv(entry["Exec"])[0] == str(program)


def test_xdg_mime_reports_bst_studio_for_csv_and_folders(tmp_path: Path) -> None:
    if not (shutil.which("xdg-mime") and shutil.which("update-desktop-database")):
        pytest.skip("xdg-mime or update-desktop-database not installed (Debian: xdg-utils, desktop-file-utils)")
    data_home = tmp_path / "data"          # no spaces: xdg-mime 1.1.3 splits its search path on them
    assert _install(data_home, "--exec", str(_fake_program(tmp_path / "bin"))).returncode == 0
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "XDG_DATA_HOME": str(data_home),
           "XDG_DATA_DIRS": str(tmp_path / "none"), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    for mime_type in ("text/csv", "inode/directory"):
        done = subprocess.run(["xdg-mime", "query", "default", mime_type], capture_output=True, text=True,
                              env=env, timeout=60)
        assert done.stdout.strip() == "bst-studio.desktop", (mime_type, done.stdout, done.stderr)


# --- the wheel -----------------------------------------------------------------------------------------

def _copy_source_tree(dest: Path) -> None:
    """What a clean checkout holds of the package (no build/, .venv, egg-info, caches)."""
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("bst_core", "bst_gui", "tests"):
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)


def _setuptools_is_new_enough() -> bool:
    try:
        return int(importlib.metadata.version("setuptools").split(".")[0]) >= 77
    except importlib.metadata.PackageNotFoundError:
        return False


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("wheel-src")
    out = tmp_path_factory.mktemp("wheel")
    _copy_source_tree(src)
    # The pyproject's build backend (setuptools>=77) from the package index unless this env has it.
    isolation = ["--no-build-isolation"] if _setuptools_is_new_enough() else []
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *isolation, "-w", str(out),
                           str(src)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    wheels = list(out.glob("bst_studio-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_holds_every_module_and_data_file_and_no_tests(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "bst_core/data/bst_taxonomy.csv" in names
    assert "bst_gui/icons/bst-studio.svg" in names
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "packaging/", "scripts/"))]
    # Every file of the two packages in the source tree ships (a new data file outside the
    # package-data globs of pyproject.toml fails here, not on a user's machine).
    for package in ("bst_core", "bst_gui"):
        for path in (ROOT / package).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                rel = path.relative_to(ROOT).as_posix()
                assert rel in names, f"{rel} is not in the wheel (pyproject.toml [tool.setuptools.package-data])"


def test_wheel_metadata_has_both_programs_and_the_extras(wheel: Path) -> None:
    archive = zipfile.ZipFile(wheel)
    info = next(n.split("/")[0] for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
    metadata = archive.read(f"{info}/METADATA").decode()
    entry_points = archive.read(f"{info}/entry_points.txt").decode()
    assert "bst = bst_core.cli:main" in entry_points and "bst-studio = bst_gui.app:main" in entry_points
    extras = set(re.findall(r"^Provides-Extra: (\S+)$", metadata, flags=re.MULTILINE))
    assert {"gui", "clap"} <= extras
    requires = re.findall(r"^Requires-Dist: (.+)$", metadata, flags=re.MULTILINE)
    assert any(r.lower().startswith("pyside6-essentials") and 'extra == "gui"' in r for r in requires)
    assert any(r.startswith("laion-clap") and 'extra == "clap"' in r for r in requires)
    assert any(r.startswith("torch") and "extra" not in r for r in requires)
    assert f"Version: {_pyproject()['project']['version']}" in metadata
