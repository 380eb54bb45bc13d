"""Storage: normalised span records ↔ disk, behind the small ``SpanStore`` interface."""
