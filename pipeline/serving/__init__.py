"""`performer render` as a job (:mod:`.job`), run in the command's own process or handed to a render
server that keeps the models loaded (`performer serve`: :mod:`.server`, found and asked by :mod:`.client`)."""
