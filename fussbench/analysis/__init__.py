"""Analyses across finished profiles, run after them (not DVC stages): paired comparisons
of two profiles (``versus``) and fedcc_auto's choices (``winners``)."""
