"""`tthc-bus adapter new`: what it writes passes the contract suite, ruff and mypy as written.

The generator runs in a copy of the project (the files git lists, tracked or untracked but not
ignored), so that this checkout is left alone; the copy's tests, ruff and mypy run there with
this interpreter, the copy first on the path and its own settings.toml.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

import bus.settings
from bus.tooling.cli import app
from bus.tooling.scaffold import NAME_MAX, ScaffoldError, SourceProtocol, new_source

PROJECT = Path(__file__).resolve().parents[2]
SANDBOX_URL = "http://127.0.0.1:8090"
# Generated with --write-settings: configured, so the contract suite covers them.
CONFIGURED = {"demo_rest": SourceProtocol.REST, "demo_soap": SourceProtocol.SOAP}
# Names as long as allowed, so that no generated line outgrows what ruff accepts.
LONGEST = {
    "land_registry_of_the_provinces": SourceProtocol.REST,
    "soap_registry_of_the_provinces": SourceProtocol.SOAP,
}
FOLDERS = ("adapters", "mappings", "sandbox", "tests/adapters")


def files_of(name: str) -> list[str]:
    return [
        f"adapters/{name}.py",
        f"mappings/{name}.toml",
        f"sandbox/{name}.py",
        f"tests/adapters/test_{name}_adapter.py",
    ]


def copy_project(into: Path) -> Path:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=PROJECT,
        capture_output=True,
        check=True,
    ).stdout
    for relative in filter(None, listed.decode().split("\0")):
        source = PROJECT / relative
        if source.is_file():  # not one deleted in the working tree
            target = into / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return into


def command(copy: Path, *args: str) -> subprocess.Popen[str]:
    """A command started in the copy: its modules first on the path, its own settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("TTHC_BUS_")}
    env.update(PYTHONPATH=str(copy), PYTHONDONTWRITEBYTECODE="1")
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=copy,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finished(process: subprocess.Popen[str], timeout: float = 120) -> str:
    """What the command printed; the test fails with it when the command failed."""
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, f"{process.args!r}:\n{output}"
    return output


def generate(copy: Path, name: str, protocol: SourceProtocol, *flags: str) -> str:
    cli = ["-m", "bus.tooling.cli", "adapter", "new", name, "--protocol", protocol.value]
    return finished(command(copy, *cli, *flags))


def test_generated_sources_pass_the_contract_suite_ruff_and_mypy(tmp_path: Path) -> None:
    copy = copy_project(tmp_path / "project")
    printed = {
        name: generate(copy, name, protocol, "--write-settings")
        for name, protocol in CONFIGURED.items()
    }
    for name, protocol in LONGEST.items():
        generate(copy, name, protocol)
    names = [*CONFIGURED, *LONGEST]
    python_files = [path for name in names for path in files_of(name) if path.endswith(".py")]

    where = finished(command(copy, "-c", "import adapters, sandbox; print(adapters.__file__)"))
    assert Path(where.strip()).is_relative_to(copy), where  # the copy's modules, not ours
    for name, output in printed.items():
        assert f"[sources.{name}]" in output
        assert all(path in output for path in files_of(name))
    sources = tomllib.loads((copy / "settings.toml").read_text())["sources"]
    assert sources["demo_rest"]["adapter"] == "adapters.demo_rest:DemoRestAdapter"
    assert sources["demo_rest"]["url"] == f"{SANDBOX_URL}/demo_rest/api"
    assert sources["demo_soap"]["url"] == f"{SANDBOX_URL}/demo_soap/soap"

    tests = [f"tests/adapters/test_{name}_adapter.py" for name in names]
    running = [  # side by side: the two slow ones
        command(copy, "-m", "pytest", "-v", "-p", "no:cacheprovider", "tests/contract", *tests),
        command(copy, "-m", "mypy", "--no-incremental", *python_files),
    ]
    try:
        finished(command(copy, "-m", "ruff", "check", "--no-cache", *python_files))
        finished(command(copy, "-m", "ruff", "format", "--check", "--no-cache", *python_files))
        # The import contracts of pyproject.toml (the stub imports only the sandbox, ...).
        finished(command(copy, "-c", "from importlinter.cli import lint_imports_command as c; c()"))
        report = finished(running[0])
        finished(running[1])
    finally:
        for process in running:
            if process.poll() is None:
                process.kill()
                process.wait()
    for name in CONFIGURED:
        assert f"test_found_records_map_to_their_schema[{name}] PASSED" in report
        assert f"test_each_fault_is_its_own_source_error[{name}-hang] PASSED" in report
        own_test = f"test_{name}_adapter.py::test_held_citizens_are_found_and_map_field_by_field"
        assert f"{own_test} PASSED" in report


# -- refusals --------------------------------------------------------------------------------


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """An empty project layout: the folders a new source's files go into."""
    for folder in FOLDERS:
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "settings.toml").write_text(
        '[sources.licence]\nadapter = "licence"\nurl = "http://127.0.0.1:8090/gplx/api/v1"\n'
    )
    return tmp_path


def written(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


@pytest.mark.parametrize(
    "name",
    [
        "Land",
        "1land",
        "land-registry",
        "land__registry",
        "_land",
        "land_",
        "",
        "lạnd",
        "x" * (NAME_MAX + 1),
    ],
)
def test_a_name_that_is_not_a_lowercase_identifier_is_refused(checkout: Path, name: str) -> None:
    with pytest.raises(ScaffoldError, match="expected a lowercase identifier"):
        new_source(checkout, name, SourceProtocol.REST, sandbox_url=SANDBOX_URL)
    assert written(checkout) == ["settings.toml"]


def test_a_python_keyword_is_refused(checkout: Path) -> None:
    with pytest.raises(ScaffoldError, match="'class' is a Python keyword"):
        new_source(checkout, "class", SourceProtocol.SOAP, sandbox_url=SANDBOX_URL)


@pytest.mark.parametrize("existing", [*files_of("land"), "sandbox/land/service.py"])
def test_an_existing_file_refuses_them_all(checkout: Path, existing: str) -> None:
    (checkout / existing).parent.mkdir(parents=True, exist_ok=True)
    (checkout / existing).write_text("# someone's work\n")
    with pytest.raises(ScaffoldError, match=r"'land' is taken: .* already exists;"):
        new_source(
            checkout, "land", SourceProtocol.REST, sandbox_url=SANDBOX_URL, write_settings=True
        )
    assert written(checkout) == sorted(["settings.toml", existing])
    assert (checkout / existing).read_text() == "# someone's work\n"
    assert "land" not in (checkout / "settings.toml").read_text()


def test_a_configured_source_is_refused(checkout: Path) -> None:
    with pytest.raises(ScaffoldError, match=r"'licence' is already a configured source"):
        new_source(checkout, "licence", SourceProtocol.REST, sandbox_url=SANDBOX_URL)
    with pytest.raises(ScaffoldError, match=r"'land' is already a configured source"):
        new_source(
            checkout, "land", SourceProtocol.REST, sandbox_url=SANDBOX_URL, configured={"land"}
        )
    assert written(checkout) == ["settings.toml"]


def test_without_write_settings_the_block_is_printed_not_written(checkout: Path) -> None:
    done = new_source(checkout, "land", SourceProtocol.SOAP, sandbox_url=SANDBOX_URL)
    assert written(checkout) == sorted([*files_of("land"), "settings.toml"])
    assert "land" not in (checkout / "settings.toml").read_text()
    block = tomllib.loads(done.settings_block)["sources"]["land"]
    assert block["adapter"] == "adapters.land:LandAdapter"
    assert block["url"] == f"{SANDBOX_URL}/land/soap"
    assert "--write-settings" in done.report()


def test_write_settings_appends_the_block_to_settings_toml(checkout: Path) -> None:
    settings = checkout / "settings.toml"
    settings.write_text(settings.read_text().rstrip("\n"))  # no newline at the end
    done = new_source(
        checkout, "land", SourceProtocol.REST, sandbox_url=SANDBOX_URL, write_settings=True
    )
    assert done.settings_file == settings
    sources = tomllib.loads(settings.read_text())["sources"]
    assert sorted(sources) == ["land", "licence"]
    assert sources["land"]["url"] == f"{SANDBOX_URL}/land/api"
    assert f"Appended to {settings}" in done.report()


def test_the_command_says_what_is_wrong_and_exits_2(
    checkout: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bus.settings, "PROJECT_ROOT", checkout)
    (checkout / "adapters" / "land.py").write_text("")
    runner = CliRunner()
    bad = runner.invoke(app, ["adapter", "new", "Land", "--protocol", "rest"])
    taken = runner.invoke(app, ["adapter", "new", "land", "--protocol", "soap"])
    unknown = runner.invoke(app, ["adapter", "new", "land", "--protocol", "grpc"])
    assert bad.exit_code == 2 and "'Land', expected a lowercase identifier" in bad.output
    assert taken.exit_code == 2 and "adapters/land.py already exists" in taken.output
    assert unknown.exit_code == 2 and "grpc" in unknown.output
    assert written(checkout) == ["adapters/land.py", "settings.toml"]
