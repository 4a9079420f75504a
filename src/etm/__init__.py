"""etm: the Embedded Topic Model (Dieng, Ruiz & Blei, TACL 2020), sparse, safe and easy to use."""

from etm.model import ETM

__version__ = "0.1.0"

__all__ = ["ETM", "__version__"]
