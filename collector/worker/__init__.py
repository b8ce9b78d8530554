"""The root worker: one crash captured, stored and recorded (supervisor, handler)."""
