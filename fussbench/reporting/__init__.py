"""Tables and figures built from run metrics."""
