"""Entry points: the function handlers, the ``mailpipe`` command line, and ``compose``, the one place the
pipeline and its router are assembled."""
