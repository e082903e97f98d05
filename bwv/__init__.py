"""bwv: a self-hosted evidence system for police body-worn video."""

__version__ = "0.1.0"
