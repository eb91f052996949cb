"Metrics against independent implementations: torchmetrics' calibration error and a confusion matrix."

import pytest
import torch
from hypothesis import given, settings, strategies as st
from torchmetrics.classification import MulticlassCalibrationError, MulticlassConfusionMatrix

from h2t_nb.metrics import calibration, lt_report, per_class_accuracy, topk_accuracy


@settings(max_examples=30, deadline=None)
@given(n=st.integers(10, 400), k=st.integers(2, 12), scale=st.floats(0.1, 5), seed=st.integers(0, 10**6))
def test_ece_matches_torchmetrics(n, k, scale, seed):
    g = torch.Generator().manual_seed(seed)
    logits, targets = (
        torch.randn(n, k, generator=g, dtype=torch.float64) * scale,
        torch.randint(0, k, (n,), generator=g),
    )
    ours = calibration(logits, targets)
    tm_ece = MulticlassCalibrationError(num_classes=k, n_bins=15, norm='l1')(logits.softmax(1), targets)
    assert ours['ece'] == pytest.approx(100 * tm_ece.item(), abs=1e-4)
    # MCE by brute force over right-closed bins (torchmetrics' norm='max' counts empty bins oddly, so it is no
    # reference)
    conf, pred = logits.softmax(1).max(1)
    gaps = []
    for m in range(15):
        inside = (conf > m / 15) & (conf <= (m + 1) / 15)
        if inside.any():
            gaps.append(abs((pred[inside] == targets[inside]).double().mean() - conf[inside].mean()).item())
    assert ours['mce'] == pytest.approx(100 * max(gaps), abs=1e-4)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 300), k=st.integers(2, 9), seed=st.integers(0, 10**6))
def test_per_class_accuracy_is_the_confusion_diagonal(n, k, seed):
    g = torch.Generator().manual_seed(seed)
    preds, targets = torch.randint(0, k, (n,), generator=g), torch.randint(0, k, (n,), generator=g)
    cm = MulticlassConfusionMatrix(num_classes=k)(preds, targets).float()
    expected = 100 * cm.diag() / cm.sum(1)
    assert torch.allclose(per_class_accuracy(preds, targets, k), expected, equal_nan=True)


def test_top5_and_report_groups_by_hand():
    "Every number of the report against counts done by hand, with each class's group listed explicitly."
    logits = torch.eye(10)[torch.arange(10)].roll(1, dims=1)  # true class is never first; it sits in second place
    logits = logits + torch.eye(10) * 0.5
    assert topk_accuracy(logits, torch.arange(10)) == {1: 0.0, 5: 100.0}
    right = [4, 3, 2, 1, 0, 4, 3, 2, 1, 4]  # of the 4 test images of each class, this many are classified right
    targets = torch.arange(10).repeat_interleave(4)
    preds = torch.tensor([c if j < right[c] else (c + 1) % 10 for c in range(10) for j in range(4)])
    counts = [250, 200, 150, 101, 100, 60, 20, 19, 5, 1]  # > 100 many, 20..100 medium, < 20 few
    r = lt_report(torch.eye(10)[preds], targets, train_counts=counts, thresholds=(100, 20), index_bounds=(3, 8))
    mean = lambda classes: sum(25 * right[c] for c in classes) / len(classes)
    expected = dict(
        top1=100 * sum(right) / 40,
        balanced=mean(range(10)),
        threshold_many=mean([0, 1, 2, 3]),
        threshold_medium=mean([4, 5, 6]),
        threshold_few=mean([7, 8, 9]),
        paper_many=mean([0, 1, 2]),
        paper_medium=mean([3, 4, 5, 6, 7]),
        paper_few=mean([8, 9]),
    )
    assert {k: r[k] for k in expected} == pytest.approx(expected)
    assert set(r) == set(expected) | {'top5', 'ece', 'mce'}
