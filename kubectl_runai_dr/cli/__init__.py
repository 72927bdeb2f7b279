"""The typer CLI: parse, call an operation, render. Never imports the kubernetes client at
module level, so --help, version and completion start fast."""
