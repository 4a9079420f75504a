"""The version of etm, in a module of its own so that any module can import it without importing ``etm``."""

__version__ = "0.1.0"
