"""The README's set-up is what CI runs: a green CI proves a newcomer's two commands work."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def setup_commands():
    readme = (ROOT / "README.md").read_text("utf-8")
    section = readme.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(?:bash|sh)?\n(.*?)\n```", section, flags=re.S)


def test_readme_has_two_setup_commands_and_ci_runs_them_verbatim():
    cmds = setup_commands()
    assert len(cmds) == 2
    ci = (ROOT / ".ci" / "run").read_text("utf-8").splitlines()
    for cmd in cmds:
        assert cmd.strip() in ci
    assert "pytest" in cmds[1] and "pip install ." in cmds[0]
