"""mma.engine (filled by later issues)."""
