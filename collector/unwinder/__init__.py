"""The stack-trace engine; its sandboxed child (sandbox.py, unwind.py) may import freely."""
