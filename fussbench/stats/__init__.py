"""Paired significance tests between methods: the tests, which comparisons to run, and the
``stats`` stage's two families of rows (:mod:`.significance`)."""
