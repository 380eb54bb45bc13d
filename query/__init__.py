"""Query: stored records → answers (the FastAPI service)."""
