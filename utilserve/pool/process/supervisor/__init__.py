"""The supervisor process: starts and restarts model workers, and tells web processes where they listen."""
