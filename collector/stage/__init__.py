"""The kernel-facing stage: parses the kernel's argv and hands the crash over."""
