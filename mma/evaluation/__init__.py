"""mma.evaluation (filled by later issues)."""
