"""Operations: run a plan against a cluster and a bundle (I/O lives here and below)."""
