"""mma.datasets (filled by later issues)."""
