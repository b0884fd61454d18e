"""Internal: the connection's fields, declared once, and the validated settings every other room reads."""
