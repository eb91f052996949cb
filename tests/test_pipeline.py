"The device-resident pipeline against torchvision's per-image transforms."

import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from hypothesis import given, settings, strategies as st
from torchvision.transforms import v2

from h2t_nb.data import LTImageDataset
from h2t_nb.pipeline import Augment, DevicePipeline, LoaderPipeline, batch_crop, batch_flip


@settings(max_examples=40, deadline=None)
@given(
    b=st.integers(1, 6),
    c=st.sampled_from([1, 3]),
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    pad=st.integers(0, 4),
    seed=st.integers(0, 10**6),
)
def test_batched_crop_and_flip_equal_torchvision_for_the_same_draws(b, c, h, w, pad, seed):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (b, c, h, w), generator=g, dtype=torch.uint8)
    offsets = torch.randint(0, 2 * pad + 1, (b, 2), generator=g)
    flips = torch.rand(b, generator=g) < 0.5
    ours = batch_flip(batch_crop(F.pad(images, (pad,) * 4), offsets, (h, w)), flips)
    for i in range(b):
        ref = TF.crop(TF.pad(images[i], [pad]), int(offsets[i, 0]), int(offsets[i, 1]), h, w)
        assert torch.equal(ours[i], TF.horizontal_flip(ref) if flips[i] else ref)


def test_augmentation_distribution_matches_torchvision():
    "Offsets uniform over the (2p+1)^2 positions and flips at rate 1/2, as RandomCrop + RandomHorizontalFlip draw them."
    n, pad = 20000, 2
    marker = torch.zeros(1, 1, 5, 5, dtype=torch.uint8)
    marker[0, 0, 0, 0] = 255  # a single bright pixel reveals the offset
    pipe = DevicePipeline(LTImageDataset(marker, [0]), Augment(pad, True, (0.0,), (1 / 255,)))
    x, _ = pipe.load(torch.zeros(n, dtype=torch.long), train=True, generator=torch.Generator().manual_seed(0))
    seen = (x[:, 0] == 255).flatten(1).float()
    visible = seen.sum(1) == 1  # offsets that keep the pixel inside the crop
    positions = torch.bincount(seen[visible].argmax(1), minlength=25).float() / n
    # the pixel lands in a cell with probability (offsets that put it there) / 25, from both unflipped and flipped draws
    ref_tf = v2.Compose([v2.RandomCrop((5, 5), padding=pad), v2.RandomHorizontalFlip()])
    torch.manual_seed(0)
    ref = torch.stack([ref_tf(marker[0]) for _ in range(n)])[:, 0].flatten(1).float()
    ref_positions = torch.bincount(ref[(ref == 255).sum(1) == 1].argmax(1), minlength=25).float() / n
    assert torch.allclose(positions, ref_positions, atol=0.012)


def test_both_pipelines_give_identical_eval_batches_and_pairs():
    g = torch.Generator().manual_seed(0)
    ds = LTImageDataset(torch.randint(0, 256, (40, 3, 6, 6), generator=g, dtype=torch.uint8), torch.arange(40) % 4)
    aug = Augment(2, True, (0.5, 0.4, 0.3), (0.2, 0.25, 0.3))
    device_pipe = DevicePipeline(ds, aug)
    loader_pipe = LoaderPipeline(ds, aug.transform((6, 6)), aug.transform((6, 6), train=False))
    idx = torch.randperm(40, generator=g)
    for (a, ya), (b, yb) in zip(device_pipe.batches(idx, 16, train=False), loader_pipe.batches(idx, 16, train=False)):
        assert torch.allclose(a, b, atol=1e-6) and torch.equal(ya, yb)
    pairs = torch.stack([idx, idx.flip(0)], 1)
    for pipe in (device_pipe, loader_pipe):
        batches = list(pipe.batches(pairs, 16, train=True, generator=torch.Generator().manual_seed(1)))
        assert len(batches) == 2 and all(
            len(b) == 4 and b[0].shape == (16, 3, 6, 6) for b in batches
        )  # last partial batch dropped
        assert torch.equal(batches[0][1], ds.targets[pairs[:16, 0]]) and torch.equal(
            batches[0][3], ds.targets[pairs[:16, 1]]
        )


def test_same_generator_same_batches():
    ds = LTImageDataset(torch.randint(0, 256, (32, 1, 8, 8), dtype=torch.uint8), torch.arange(32) % 2)
    pipe = DevicePipeline(ds, Augment(1, True, (0.3,), (0.4,)))
    run = lambda: [x for x, _ in pipe.batches(torch.arange(32), 8, generator=torch.Generator().manual_seed(3))]
    assert all(torch.equal(a, b) for a, b in zip(run(), run()))
