"""The web process's side of the process pool: its connections to the supervisor and to the model workers."""
