"""CI runs everything: where Chromium cannot be installed, CI=true fails the run instead of skipping the page tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from test_browser import require_chromium

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "install-chromium"


def install(tmp_path: Path, ci: bool, apt_get: bool) -> subprocess.CompletedProcess:
    """scripts/install-chromium on a PATH with no chromium, and an apt-get (if any) that fails."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    for tool in ("id", "env"):
        (bin_dir / tool).symlink_to(subprocess.run(["which", tool], capture_output=True, text=True).stdout.strip())
    (bin_dir / "sudo").write_text('#!/bin/sh\nexec "$@"\n')
    if apt_get:
        (bin_dir / "apt-get").write_text("#!/bin/sh\necho 'E: Unable to locate package chromium' >&2\nexit 100\n")
    for script in bin_dir.iterdir():
        script.chmod(0o755)
    env = {"PATH": str(bin_dir), **({"CI": "true"} if ci else {})}
    return subprocess.run(["/bin/bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("apt_get", [True, False], ids=["install-fails", "no-apt-get"])
def test_install_chromium_fails_in_ci_and_only_warns_elsewhere(tmp_path: Path, apt_get: bool) -> None:
    in_ci = install(tmp_path / "ci", ci=True, apt_get=apt_get)
    assert in_ci.returncode == 1 and "CI=true, so this fails the run" in in_ci.stderr
    local = install(tmp_path / "local", ci=False, apt_get=apt_get)
    assert local.returncode == 0 and "tests/test_browser.py will skip" in local.stderr


def outcome(chromium: Path) -> str:
    """What `require_chromium` does to the browser tests: 'ran', or 'failed: why' / 'skipped: why'."""
    try:
        require_chromium(chromium)
    except pytest.fail.Exception as stop:
        return f"failed: {stop}"
    except pytest.skip.Exception as stop:
        return f"skipped: {stop}"
    return "ran"


def test_browser_tests_fail_without_chromium_in_ci_and_skip_with_the_reason_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "no-chromium"
    why = f"no Chromium at {missing}: run scripts/install-chromium (apt-get install -y chromium)"
    monkeypatch.setenv("CI", "true")
    assert outcome(missing) == f"failed: CI=true and {why}"
    monkeypatch.delenv("CI")
    assert outcome(missing) == f"skipped: {why}"
    assert outcome(Path(__file__)) == "ran"  # any file that exists stands in for the browser
