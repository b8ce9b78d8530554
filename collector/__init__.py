"""drkonqi-lite-collector: the kernel's crash handler (see main.py)."""

__version__ = "0.1.0"
