"""The local provider: the folder and memory stores and queues (``disk/`` holds the durability engineering,
``runner/`` the parse worker that stands in for a bucket trigger)."""
