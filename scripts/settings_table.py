"""Print the README's configuration table from :class:`evhub.settings.Settings` (defaults and descriptions)."""

from __future__ import annotations

from evhub.settings import Settings


def main() -> None:
    print("| variable | default | meaning |")
    print("| --- | --- | --- |")
    for name, field in Settings.model_fields.items():
        default = field.default
        shown = (
            "(empty)"
            if default in ("", None)
            else f"`{str(default).lower() if isinstance(default, bool) else default}`"
        )
        print(f"| `EVHUB_{name.upper()}` | {shown} | {field.description or ''} |")


if __name__ == "__main__":
    main()
