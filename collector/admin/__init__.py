"""Commands and services beside the crash path: install/status, the core deletion service."""
