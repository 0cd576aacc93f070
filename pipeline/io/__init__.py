"""Raster I/O: block-aligned lazy open and locked, atomic write."""
