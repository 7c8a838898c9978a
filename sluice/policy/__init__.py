"""Pure, deterministic decisions: no I/O, an injected clock and random source."""
