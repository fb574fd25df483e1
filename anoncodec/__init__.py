"""anoncodec: a learned image codec that anonymizes faces while keeping persons detectable.

Importing the package is cheap (no torch); subpackages load what they need.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
