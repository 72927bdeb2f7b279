"""Pure planning: what runs, in which order, and why. No I/O."""
