"""Compiled kernels (Cython, built by meson): hot loops over plain arrays only."""
