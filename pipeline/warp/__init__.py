"""Everything about warping, from the destination grid to the dask graph.

Read in this order (each module imports only those above it)::

    resampling   the one table of resampling methods (name, GDAL name, kernel radius)
    grid         georeferenced grids and pure warp maths: CRS parsing, destination grid,
                 XSCALE/YSCALE, source windows, the warp's block grid
    spec         WarpOptions (what the user asks) -> WarpSpec (what every chunk is warped with)
    overviews    which overview a shrinking warp reads (gdalwarp -ovr AUTO)
    engine       GDAL's warper and every GDAL workaround: one window, bit-identical per chunking
    tile         the warp step every task runs; a whole tile for batch mode
    graph        one dask task per destination chunk
    reproject    the public `pipeline.reproject`
"""
