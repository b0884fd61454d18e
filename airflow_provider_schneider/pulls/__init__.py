"""Internal: the pull engine, usable and testable without an operator: a pull's plan, running it, resuming
it, the catalog watermark, and where its output goes."""
