"""pad_data: generate, execute, label, store, check, curate and export synthetic program data."""

from .api import *  # noqa: F401,F403
from .api import __all__  # noqa: F401

__version__ = "0.1.0"
