"""The dock agent: finds finished clips in bay folders, uploads them to the ingest service over
tus, and wipes a camera file only after verifying a signed receipt for its exact SHA-256.

Public surface::

    DockConfig, write_enrollment        # docks.config
    DockAgent, RunReport, status        # docks.agent
    RetryPolicy                         # docks.client
"""

from docks.agent import DockAgent, RunReport, status
from docks.client import RetryPolicy
from docks.config import DockConfig, write_enrollment

__all__ = ["DockAgent", "DockConfig", "RetryPolicy", "RunReport", "status", "write_enrollment"]
