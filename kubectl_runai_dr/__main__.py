"""Entry point for `python -m kubectl_runai_dr`, the console script and the PyInstaller binary."""

from __future__ import annotations


def main() -> None:
    import sys

    if sys.argv[1:] == ["version"]:
        # The one line `version` prints, without loading the command line (typer, and the
        # pydantic it converts parameters with): a third of the time of `version`.
        import os

        from kubectl_runai_dr._version import describe

        try:
            print(describe(), flush=True)
        except BrokenPipeError:  # `| head -0`: quiet, 141 as the verbs (cli/options.py)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(141)
        return
    from kubectl_runai_dr.cli.app import run

    run()


if __name__ == "__main__":
    main()
