"""Pure chunk/block maths."""

from __future__ import annotations

import pytest

from pipeline import grid


def test_regular_chunks_have_a_short_last_chunk() -> None:
    assert grid.regular_chunks(10, 4) == (4, 4, 2)
    assert grid.regular_chunks(8, 4) == (4, 4)
    assert grid.regular_chunks(3, 10) == (3,)


def test_balanced_block_multiple_splits_evenly_on_blocks() -> None:
    assert grid.balanced_block_multiple(4096, 3000, 512) == 2048
    assert grid.balanced_block_multiple(4096, 5000, 512) == 4096
    assert grid.balanced_block_multiple(300, 1000, 512) == 300


@pytest.mark.parametrize(
    ("shape", "block", "target"),
    [
        ((4096, 4096), (512, 512), 4 * 2**20),
        ((5000, 7001), (256, 256), 2**20),
        ((718, 791), (3, 791), 50_000),
    ],
)
def test_auto_chunks_are_block_aligned_and_cover_the_axis(shape, block, target) -> None:
    ys, xs = grid.auto_spatial_chunks(shape, block, bytes_per_pixel=3, target_bytes=target)
    assert sum(ys) == shape[0] and sum(xs) == shape[1]
    assert grid.is_block_aligned(ys, block[0]) and grid.is_block_aligned(xs, block[1])
    assert max(ys) * max(xs) * 3 <= max(target * 4, block[0] * block[1] * 3)


def test_striped_layout_keeps_full_width_chunks() -> None:
    ys, xs = grid.auto_spatial_chunks((718, 791), (3, 791), bytes_per_pixel=3, target_bytes=10_000)
    assert xs == (791,)
    assert all(c % 3 == 0 for c in ys[:-1])


def test_write_block_size_divides_every_interior_chunk() -> None:
    assert grid.write_block_size((2048, 2048, 100)) == 512
    assert grid.write_block_size((768, 768, 5)) == 384
    assert grid.write_block_size((48, 48, 1)) == 48
    assert grid.write_block_size((791,)) == 512
    assert grid.write_block_size((20,)) == 32
    assert grid.write_block_size((1000, 1000, 1)) == 0  # no multiple of 16 divides 1000
