"""The local runner: the parse worker, its child process and its journals (the stand-in for a bucket trigger)."""
