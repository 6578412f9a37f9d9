"""Paper reproductions, sweeps, plots and the ``memdrift`` command line."""
