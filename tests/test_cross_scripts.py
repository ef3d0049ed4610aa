"""The cross-build scripts' choice of Debian release (cpp/cmake/private_apt.sh)."""
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _suite(tmp_path, os_release: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    (tmp_path / "os-release").write_text(os_release)
    script = f'. "{REPO}/cpp/cmake/private_apt.sh"; private_apt_os_release="{tmp_path / "os-release"}"; ' \
             'suite=$(private_apt_debian_suite); echo "suite=$suite"'
    clean = {k: v for k, v in os.environ.items() if k != "CHEXMASK_RT_DEBIAN_SUITE"}
    return subprocess.run(["bash", "-euc", script], capture_output=True, text=True, env={**clean, **env})


@pytest.mark.parametrize("os_release, env, suite", [
    ('ID=debian\nVERSION_CODENAME=bookworm\n', {}, "bookworm"),
    ('ID=ubuntu\nVERSION_CODENAME=jammy\n', {"CHEXMASK_RT_DEBIAN_SUITE": "bookworm"}, "bookworm"),
    ('ID=debian\nVERSION_CODENAME=bookworm\n', {"CHEXMASK_RT_DEBIAN_SUITE": "trixie"}, "trixie")])
def test_the_suite_is_the_debian_hosts_or_the_one_named(tmp_path, os_release, env, suite):
    proc = _suite(tmp_path, os_release, env)
    assert proc.returncode == 0 and proc.stdout == f"suite={suite}\n", proc.stderr


def test_another_host_is_told_which_setting_names_the_suite(tmp_path):
    """On Ubuntu the scripts asked Debian's archive for "jammy" and apt failed ("does not have a Release file")."""
    proc = _suite(tmp_path, 'ID=ubuntu\nVERSION_CODENAME=jammy\n', {})
    assert proc.returncode != 0 and proc.stdout == ""
    assert "this host is not Debian: set CHEXMASK_RT_DEBIAN_SUITE" in proc.stderr
