"""One module per thing backed up or restored."""
