"""Entry point for `python -m kubectl_runai_dr`, the console script and the PyInstaller binary."""

from __future__ import annotations


def main() -> None:
    from kubectl_runai_dr.cli.app import run

    run()


if __name__ == "__main__":
    main()
