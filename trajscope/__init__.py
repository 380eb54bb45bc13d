"""trajscope: an observability backend for AI agents."""

__version__ = "0.1.0"
