"""What ftguard remembers between and within runs, all under ``$FTGUARD_HOME`` (:mod:`.home`):
model answers (:mod:`.responses`, read through :mod:`.backend`), suite results
(:mod:`.results`), file digests (:mod:`.digests`), and answers within one evaluation
(:mod:`.memo`)."""
