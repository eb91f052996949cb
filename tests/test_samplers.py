"Property tests: every sampler draws its target class distribution; seeds, epochs and DDP shares behave."

import math

import pytest
import torch
from hypothesis import given, settings, strategies as st

from h2t_nb.samplers import (
    ClassAwareSampler,
    ClassBalancedSampler,
    DualStreamSampler,
    InstanceSampler,
    PowerLawSampler,
    ProgressivelyBalancedSampler,
    ReverseSampler,
    SquareRootSampler,
    check_labels,
)

class_counts = st.lists(st.integers(1, 300), min_size=2, max_size=12)
SAMPLERS = [InstanceSampler, ClassBalancedSampler, SquareRootSampler, ReverseSampler]


def labels_of(counts):
    return torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))


def assert_matches(drawn_labels, probs, num_classes):
    "Each class frequency within 5 binomial standard deviations (+1/n) of its target: failures are ~1e-6 events."
    n = len(drawn_labels)
    freq = torch.bincount(drawn_labels, minlength=num_classes).double() / n
    tol = 5 * torch.sqrt(probs * (1 - probs) / n) + 1 / n
    assert ((freq - probs).abs() <= tol).all(), (freq, probs)


@settings(max_examples=40, deadline=None)
@given(counts=class_counts, sampler=st.sampled_from(SAMPLERS), seed=st.integers(0, 2**31 - 1))
def test_class_frequencies_match_target(counts, sampler, seed):
    labels = labels_of(counts)
    s = sampler(labels, num_samples=4000, seed=seed)
    assert_matches(labels[s.indices()], s.target_class_probs(), len(counts))


@settings(max_examples=25, deadline=None)
@given(counts=class_counts, q=st.floats(-2, 2), seed=st.integers(0, 1000))
def test_power_law_family(counts, q, seed):
    labels = labels_of(counts)
    s = PowerLawSampler(labels, num_samples=4000, seed=seed, q=q)
    w = torch.tensor(counts, dtype=torch.float64) ** q
    assert torch.allclose(s.target_class_probs(), w / w.sum())
    assert_matches(labels[s.indices()], w / w.sum(), len(counts))


@settings(max_examples=25, deadline=None)
@given(counts=class_counts, fusing=st.sampled_from(['instance', 'reverse', 'balanced']), seed=st.integers(0, 1000))
def test_dual_stream_follows_both_targets(counts, fusing, seed):
    labels = labels_of(counts)
    s = DualStreamSampler(labels, num_samples=4000, seed=seed, fusing=fusing)
    pairs = s.indices()
    assert pairs.shape == (4000, 2)
    assert_matches(labels[pairs[:, 0]], torch.full((len(counts),), 1 / len(counts), dtype=torch.float64), len(counts))
    assert_matches(labels[pairs[:, 1]], s.fusing_sampler.target_class_probs(), len(counts))


@settings(max_examples=30, deadline=None)
@given(
    counts=class_counts,
    sampler=st.sampled_from(SAMPLERS + [DualStreamSampler, ClassAwareSampler]),
    num_samples=st.integers(1, 3000),
    replicas=st.integers(1, 8),
    seed=st.integers(0, 1000),
)
def test_ddp_shares_are_disjoint_equal_and_cover_the_draw(counts, sampler, num_samples, replicas, seed):
    labels = labels_of(counts)
    shares = [
        sampler(labels, num_samples=num_samples, seed=seed, num_replicas=replicas, rank=r) for r in range(replicas)
    ]
    lengths = {len(s) for s in shares}
    assert lengths == {math.ceil(num_samples / replicas)} and {len(s.indices()) for s in shares} == lengths
    whole = sampler(labels, num_samples=num_samples, seed=seed, num_replicas=replicas).global_indices()
    # position p of the global draw belongs to rank p % replicas, and to no other rank
    interleaved = torch.stack([s.indices() for s in shares], 1).reshape(whole.shape)
    assert torch.equal(interleaved, whole)


@settings(max_examples=15, deadline=None)
@given(counts=class_counts, replicas=st.integers(2, 4))
def test_instance_shares_hold_distinct_samples(counts, replicas):
    labels = labels_of(counts)
    n = len(labels) - len(labels) % replicas  # within one pass of the permutation
    if n == 0:
        return
    shares = [set(InstanceSampler(labels, num_samples=n, num_replicas=replicas, rank=r)) for r in range(replicas)]
    assert sum(map(len, shares)) == len(set.union(*shares)) == n


@pytest.mark.parametrize('sampler', SAMPLERS + [DualStreamSampler])
def test_seed_and_epoch(sampler):
    labels = labels_of([50, 20, 5])
    a, b, c = (sampler(labels, seed=s) for s in (7, 7, 8))
    assert list(a) == list(b) and list(a) != list(c)
    a.set_epoch(1)
    assert list(a) != list(b)
    b.set_epoch(1)
    assert list(a) == list(b)


def test_progressive_moves_from_instance_to_balanced():
    labels = labels_of([80, 15, 5])
    s = ProgressivelyBalancedSampler(labels, total_epochs=3, num_samples=6000)
    probs = []
    for e in range(3):
        s.set_epoch(e)
        probs.append(s.target_class_probs()[0].item())
        assert_matches(labels[s.indices()], s.target_class_probs(), 3)
    assert probs[0] == pytest.approx(0.8) and probs[2] == pytest.approx(1 / 3) and probs[0] > probs[1] > probs[2]


@pytest.mark.parametrize(
    'labels, error, match',
    [
        ([0.0, 1.0, 1.0], TypeError, 'integer'),
        (['a', 'b'], TypeError, 'integer'),
        ([[0, 1], [1, 0]], TypeError, '1-D'),
        ([3, 3, 3], ValueError, 'at least 2 classes'),
        ([0, 1, 3], ValueError, r'classes \[2\] have zero samples'),
        ([-1, 0], ValueError, '>= 0'),
        ([], ValueError, 'empty'),
    ],
)
def test_bad_labels(labels, error, match):
    with pytest.raises(error, match=match):
        ClassBalancedSampler(labels)


def test_bad_arguments():
    with pytest.raises(ValueError, match='fusing='):
        DualStreamSampler([0, 1], fusing='head')
    with pytest.raises(ValueError, match='num_samples'):
        ClassBalancedSampler([0, 1], num_samples=0)
    with pytest.raises(ValueError, match=r'rank=-1'):
        ClassBalancedSampler([0, 1], num_replicas=2, rank=-1)
    assert check_labels(torch.tensor([1, 0]))[1].tolist() == [1, 1]


@settings(max_examples=25, deadline=None)
@given(
    counts=class_counts,
    sampler=st.sampled_from(SAMPLERS + [DualStreamSampler]),
    n=st.integers(1, 500),
    extra=st.integers(0, 500),
    seed=st.integers(0, 1000),
)
def test_draws_are_prefix_stable(counts, sampler, n, extra, seed):
    "The first n draws do not depend on how many are drawn (DDP pads the global draw; shares must still line up)."
    labels = labels_of(counts)
    short = sampler(labels, num_samples=n, seed=seed).global_indices()
    long = sampler(labels, num_samples=n + extra, seed=seed).global_indices()
    assert torch.equal(short, long[:n])


@settings(max_examples=25, deadline=None)
@given(counts=class_counts, k=st.integers(1, 6), seed=st.integers(0, 1000))
def test_class_aware_visits(counts, k, seed):
    """MiSLAS's sampler: runs of k draws from one class; every class once per cycle of visits; each class's images in
    turn."""
    labels = labels_of(counts)
    C = len(counts)
    cycles = max(math.ceil(n / k) for n in counts)  # enough visits for every class to go through all its images
    s = ClassAwareSampler(labels, num_samples=k * C * cycles, seed=seed, samples_per_class=k)
    drawn = s.indices()
    classes = labels[drawn].view(-1, k)
    assert (classes == classes[:, :1]).all()
    for cycle in classes[:, 0].view(cycles, C):
        assert sorted(cycle.tolist()) == list(range(C))
    for c in range(C):  # within every class, its first n_c draws are a permutation of its images
        mine = drawn[labels[drawn] == c][: counts[c]]
        assert sorted(mine.tolist()) == sorted(torch.where(labels == c)[0].tolist())
    assert len(ClassAwareSampler(labels, seed=seed)) == max(counts) * C
