"""The command side: what every surface calls to change state, and the reads beside it."""
