"""The model worker process: one ``Model`` instance, its batcher, and the web processes' connections."""
