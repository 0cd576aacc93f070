"""Pure chunk/block maths."""

from __future__ import annotations

import pytest

from pipeline import chunking


def test_regular_chunks_have_a_short_last_chunk() -> None:
    assert chunking.regular_chunks(10, 4) == (4, 4, 2)
    assert chunking.regular_chunks(8, 4) == (4, 4)
    assert chunking.regular_chunks(3, 10) == (3,)


def test_balanced_block_multiple_splits_evenly_on_blocks() -> None:
    assert chunking.balanced_block_multiple(4096, 3000, 512) == 2048
    assert chunking.balanced_block_multiple(4096, 5000, 512) == 4096
    assert chunking.balanced_block_multiple(300, 1000, 512) == 300


@pytest.mark.parametrize(
    ("shape", "block", "target"),
    [
        ((4096, 4096), (512, 512), 4 * 2**20),
        ((5000, 7001), (256, 256), 2**20),
        ((718, 791), (3, 791), 50_000),
    ],
)
def test_auto_chunks_are_block_aligned_and_cover_the_axis(shape, block, target) -> None:
    ys, xs = chunking.auto_spatial_chunks(shape, block, bytes_per_pixel=3, target_bytes=target)
    assert sum(ys) == shape[0] and sum(xs) == shape[1]
    assert chunking.is_block_aligned(ys, block[0]) and chunking.is_block_aligned(xs, block[1])
    assert max(ys) * max(xs) * 3 <= max(target * 4, block[0] * block[1] * 3)


def test_striped_layout_keeps_full_width_chunks() -> None:
    ys, xs = chunking.auto_spatial_chunks(
        (718, 791), (3, 791), bytes_per_pixel=3, target_bytes=10_000
    )
    assert xs == (791,)
    assert all(c % 3 == 0 for c in ys[:-1])


def test_write_block_size_divides_every_interior_chunk() -> None:
    assert chunking.write_block_size((2048, 2048, 100)) == 512
    assert chunking.write_block_size((768, 768, 5)) == 384
    assert chunking.write_block_size((48, 48, 1)) == 48
    assert chunking.write_block_size((791,)) == 512
    assert chunking.write_block_size((20,)) == 32
    assert chunking.write_block_size((1000, 1000, 1)) == 0  # no multiple of 16 divides 1000


def test_halo_spans_cover_each_extended_chunk_from_the_blocks_it_touches() -> None:
    # Chunks (3, 1, 1, 4) with a halo of 2: thin chunks pull in blocks two chunks away.
    spans = chunking.halo_spans((3, 1, 1, 4), 2)
    assert spans[0] == ((0, 0, 3, 2, 5), (1, 0, 1, 5, 6), (2, 0, 1, 6, 7))
    assert spans[1] == ((0, 1, 3, 0, 2), (1, 0, 1, 2, 3), (2, 0, 1, 3, 4), (3, 0, 1, 4, 5))
    assert spans[3] == ((1, 0, 1, 0, 1), (2, 0, 1, 1, 2), (3, 0, 4, 2, 6))
    assert chunking.halo_spans((5,), 0) == [((0, 0, 5, 0, 5),)]


@pytest.mark.parametrize("chunks", [(1,) * 7, (2, 5), (4, 1, 1, 1, 3), (10,)])
@pytest.mark.parametrize("depth", [0, 1, 2, 3])
def test_halo_spans_reassemble_the_padded_axis(chunks, depth) -> None:
    axis = list(range(sum(chunks)))
    starts = [sum(chunks[:i]) for i in range(len(chunks))]
    blocks = [axis[s : s + c] for s, c in zip(starts, chunks, strict=True)]
    for i, pieces in enumerate(chunking.halo_spans(chunks, depth)):
        padded = [None] * (chunks[i] + 2 * depth)
        for j, s0, s1, d0, d1 in pieces:
            padded[d0:d1] = blocks[j][s0:s1]
        origin = starts[i] - depth
        expected = [p if 0 <= p < len(axis) else None for p in range(origin, origin + len(padded))]
        assert padded == expected
