"""The ``cnnlab`` command line: a thin layer over the Python API (one API call per command)."""
