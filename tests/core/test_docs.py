"""The README documents every setting and the two commands."""

from pathlib import Path

from kernel.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [
        f"EVHUB_{name.upper()}" for name in Settings.model_fields if f"EVHUB_{name.upper()}" not in readme
    ]
    assert missing == [], f"settings missing from README's configuration table: {missing}"


def test_readme_shows_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
