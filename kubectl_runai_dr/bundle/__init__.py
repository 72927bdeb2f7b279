"""Bundle format: layout, manifest, atomic writer, verifying reader."""
