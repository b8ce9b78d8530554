"""The journal entry: the schema both processes share, its fields, delivery, the spool."""
