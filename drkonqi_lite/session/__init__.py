"""A desktop session on this machine, for `drkonqi-lite demo` and the integration tests.

journald, an X server with a tray host (display.py), and a user's own session bus and
notification server (user.py), each started only when asked and ended by its pid. Root only:
the processes of a user run as that user (setpriv), because only the uid that started a session
bus may connect to it (TESTING.md). Stdlib only, and nothing here runs what a crash entry names.
Nothing started here inherits a caller's open files (subprocess's close_fds): a daemon must not
keep the core_pattern lock of the test that started it.
"""
