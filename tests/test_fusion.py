"Properties of h2t_fuse / H2T over random shapes and ratios, and every bad input."

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from h2t_nb.fusion import H2T, channel_mask, h2t_fuse

shapes = st.one_of(
    st.tuples(st.integers(1, 6), st.integers(1, 40)),
    st.tuples(st.integers(1, 4), st.integers(1, 24), st.integers(1, 5), st.integers(1, 5)),
)


def taken_channels(out, fusing, fused):
    "B×C: True where a channel (its whole plane) came from `fusing`; asserts each channel came whole from one stream."
    dims = tuple(range(2, out.ndim))
    from_fusing = (out == fusing).all(dim=dims) if dims else out == fusing
    from_fused = (out == fused).all(dim=dims) if dims else out == fused
    assert (from_fusing | from_fused).all()
    return from_fusing & ~from_fused


@settings(max_examples=60, deadline=None)
@given(shape=shapes, ratio=st.floats(0, 1), per_sample=st.booleans(), seed=st.integers(0, 10**6))
def test_exactly_k_channels_replaced(shape, ratio, per_sample, seed):
    g = torch.Generator().manual_seed(seed)
    fused, fusing = torch.randn(shape, generator=g), torch.randn(shape, generator=g) + 10  # streams never equal
    fused_copy, fusing_copy = fused.clone(), fusing.clone()
    out = h2t_fuse(fused, fusing, ratio, per_sample=per_sample, generator=g)
    k = int(ratio * shape[1])
    taken = taken_channels(out, fusing, fused)
    assert taken.sum(1).tolist() == [k] * shape[0]
    if not per_sample:
        assert (taken == taken[0]).all()
    assert torch.equal(fused, fused_copy) and torch.equal(fusing, fusing_copy)
    assert out.data_ptr() not in (fused.data_ptr(), fusing.data_ptr())


def test_per_sample_masks_differ_and_cover_channels_uniformly():
    masks = channel_mask(20000, 10, 3, per_sample=True, generator=torch.Generator().manual_seed(0))
    assert (masks.sum(1) == 3).all()
    assert torch.allclose(masks.float().mean(0), torch.full((10,), 0.3), atol=0.02)  # each channel equally likely


def test_shared_mask_is_redrawn_every_call():
    f, g = torch.randn(4, 64), torch.randn(4, 64) + 10
    masks = {tuple(taken_channels(h2t_fuse(f, g, 0.25), g, f)[0].tolist()) for _ in range(20)}
    assert len(masks) > 15


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_dtypes_and_module(dtype):
    f, g = torch.randn(2, 8, 3, 3, dtype=dtype), torch.randn(2, 8, 3, 3, dtype=dtype)
    m = H2T(0.5)
    assert m(f, g).dtype == dtype and not torch.equal(m(f, g), f)
    assert m.eval()(f, g) is f
    assert H2T(0.0)(f, g) is f


@pytest.mark.parametrize(
    'fused, fusing, ratio, error, match',
    [
        (torch.randn(2, 4), torch.randn(2, 4), 1.01, ValueError, r'\[0, 1\]'),
        (torch.randn(2, 4), torch.randn(2, 4), -1, ValueError, r'\[0, 1\]'),
        (torch.randn(2, 4), torch.randn(2, 4), float('nan'), ValueError, r'\[0, 1\]'),
        (torch.randn(2, 4), torch.randn(2, 4), '0.3', ValueError, r'\[0, 1\]'),
        (torch.randn(2, 4), torch.randn(3, 4), 0.3, ValueError, 'same shape'),
        (torch.randn(2, 4, 2, 2), torch.randn(2, 4, 2, 3), 0.3, ValueError, 'same shape'),
        (torch.randn(2, 4), torch.randn(2, 4).double(), 0.3, TypeError, 'dtype'),
        (torch.randn(2, 4, 3), torch.randn(2, 4, 3), 0.3, ValueError, '3-D'),
        (torch.randn(4), torch.randn(4), 0.3, ValueError, '1-D'),
        (torch.ones(2, 4, dtype=torch.long), torch.ones(2, 4, dtype=torch.long), 0.3, TypeError, 'floating'),
        ([torch.randn(2, 4)], [torch.randn(2, 4)] * 2, 0.3, ValueError, 'same length'),
        (np.ones((2, 4), np.float32), torch.randn(2, 4), 0.3, TypeError, 'tensors'),
        ([torch.randn(2, 4)], torch.randn(2, 4), 0.3, ValueError, 'two lists'),
    ],
)
def test_bad_input(fused, fusing, ratio, error, match):
    with pytest.raises(error, match=match):
        h2t_fuse(fused, fusing, ratio)


def test_device_mismatch_is_refused():
    meta = torch.empty(2, 4, device='meta')
    with pytest.raises(ValueError, match='different devices'):
        h2t_fuse(torch.randn(2, 4), meta, 0.3)


def test_ratio_from_numpy_or_a_tensor_and_never_a_bool():
    "A sweep over np.linspace or tensors works; True would silently mean 'every channel' and is refused."
    import numpy as np

    a, b = torch.randn(4, 16, 2, 2), torch.randn(4, 16, 2, 2)
    same = lambda r: h2t_fuse(a, b, r, generator=torch.Generator().manual_seed(0))
    assert torch.equal(same(np.float32(0.25)), same(0.25)) and torch.equal(same(torch.tensor(0.25)), same(0.25))
    for bad in (True, np.bool_(True), float('nan'), 1.01):
        with pytest.raises(ValueError, match=r'must be a real number in \[0, 1\]'):
            h2t_fuse(a, b, bad)
