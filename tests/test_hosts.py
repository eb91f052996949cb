"""The hosts (GCL, LDAM-DRW, RIDE, ResLT): losses against independent computations (numpy, from the published formulas),
the
per-expert fusion, both stages of every host on the offline data, and the refusals."""

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from conftest import THREADS, learnt_changes
import torch
from hypothesis import given, settings, strategies as st

from h2t_nb.hosts import GCLLoss, LDAMLoss, ResLTLoss, RIDELoss, ride_small_cnn
from h2t_nb.checkpoints import load_checkpoint
from h2t_nb.fusion import H2T
from h2t_nb.train import Stage2Forward

BIN = Path(sys.executable).parent
ENV = {**os.environ, 'OMP_NUM_THREADS': THREADS, 'PYTHONWARNINGS': 'ignore'}


def cli(command, *args, cwd):
    return subprocess.run(
        [shutil.which(command, path=str(BIN)) or command, *args], cwd=cwd, capture_output=True, text=True, env=ENV
    )


def np_log_softmax(z):
    z = z - z.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    gamma=st.sampled_from([0.0, 1.0, 2.0]),
    m=st.sampled_from([0.0, 0.1]),
    s=st.sampled_from([20.0, 30.0]),
)
def test_gcl_loss_matches_numpy_with_fixed_clouds(seed, gamma, m, s):
    "GCL from its formula in numpy: z = s·(cos − noise_mul·ε·Δ/Δmax − m·[target]), focal-weighted cross-entropy."
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 500, size=6)
    cos, noise = rng.uniform(-1, 1, (8, 6)), np.abs(np.clip(rng.normal(0, 1 / 3, (8, 6)), -1, 1))
    y = rng.integers(0, 6, size=8)
    delta = np.log(counts.max()) - np.log(counts)
    z = s * (cos - 0.5 * noise * delta / max(delta.max(), 1e-12) - m * np.eye(6)[y])
    ce = -np_log_softmax(z)[np.arange(8), y]
    expected = ((1 - np.exp(-ce)) ** gamma * ce).mean()
    got = GCLLoss(counts.tolist(), s=s, m=m, noise_mul=0.5, gamma=gamma)(
        torch.tensor(cos, dtype=torch.float32), torch.tensor(y), torch.tensor(noise, dtype=torch.float32)
    )
    assert got.item() == pytest.approx(expected, rel=1e-4, abs=1e-4)


def test_gcl_clouds_come_from_the_epoch_generator():
    "The clouds are drawn from the loss's generator: the same generator state, the same loss (what exact resume needs)."
    loss, cos, y = GCLLoss([100, 10, 1]), torch.rand(4, 3) * 2 - 1, torch.tensor([0, 1, 2, 2])
    loss.generator = torch.Generator().manual_seed(3)
    a = loss(cos, y)
    loss.generator = torch.Generator().manual_seed(3)
    b = loss(cos, y)
    loss.generator = torch.Generator().manual_seed(4)
    c = loss(cos, y)
    assert a == b and a != c


def test_ride_diversity_vanishes_when_experts_agree_and_reweighting_is_effective_numbers():
    counts = [400, 60, 9, 2]
    w = (1 - 0.9999) / (1 - 0.9999 ** np.array(counts, dtype=float))
    loss = RIDELoss(counts, drw_epoch=2)
    assert np.allclose(loss.ldam.drw.numpy(), w / w.sum() * 4, rtol=1e-5)
    torch.manual_seed(0)
    z, y = torch.randn(6, 4) * 30, torch.tensor([0, 1, 2, 3, 0, 1])
    agree = torch.stack([z, z, z])
    no_diversity = RIDELoss(counts, diversity=0.0, drw_epoch=2)
    for epoch in (0, 5):  # before and after re-weighting (per-class temperatures from then on)
        loss.set_epoch(epoch)
        no_diversity.set_epoch(epoch)
        assert loss((z, agree), y).item() == pytest.approx(no_diversity((z, agree), y).item(), rel=1e-6)
        apart = torch.stack([z, -z, 0.5 * z])
        assert loss((apart.mean(0), apart), y) != no_diversity((apart.mean(0), apart), y)


def test_reslt_loss_and_masks_by_hand():
    "ResLT with 20 classes: medium from class 7 (round(0.35·20)), tail from class 14; numpy cross-entropies by hand."
    rng = np.random.default_rng(1)
    branches, y = rng.normal(size=(3, 5, 20)), np.array([0, 6, 7, 13, 19])
    ce = lambda b: -np_log_softmax(branches[b])[np.arange(5), y]
    in_m, in_t = (y >= 7).astype(float), (y >= 14).astype(float)
    ice = (ce(0).sum() + (ce(1) * in_m).sum() + (ce(2) * in_t).sum()) / (5 + in_m.sum() + in_t.sum())
    fce = (-np_log_softmax(branches.sum(0))[np.arange(5), y]).mean()
    b = torch.tensor(branches, dtype=torch.float32)
    got = ResLTLoss(20, beta=0.7, medium_from=0.35, tail_from=0.7)((b.sum(0), b), torch.tensor(y))
    assert got.item() == pytest.approx(0.7 * ice + 0.3 * fce, rel=1e-5)


@pytest.mark.parametrize('classes, medium, tail', [(10, 2, 4), (100, 35, 70)])
def test_reslt_default_branches_are_the_official_ones(classes, medium, tail):
    "ResLT's official scripts mask the branches from [2:10], [4:10] (CIFAR-10) and [35:100], [70:100] (CIFAR-100)."
    rng = np.random.default_rng(2)
    y = np.arange(classes)
    branches = rng.normal(size=(3, classes, classes))
    ce = lambda b: -np_log_softmax(branches[b])[np.arange(classes), y]
    in_m, in_t = (y >= medium).astype(float), (y >= tail).astype(float)
    ice = (ce(0).sum() + (ce(1) * in_m).sum() + (ce(2) * in_t).sum()) / (classes + in_m.sum() + in_t.sum())
    b = torch.tensor(branches, dtype=torch.float32)
    assert ResLTLoss(classes, beta=1.0)((b.sum(0), b), torch.tensor(y)).item() == pytest.approx(ice, rel=1e-5)


def test_reslt_refuses_a_split_no_published_config_uses():
    with pytest.raises(ValueError, match='pass medium_from and tail_from'):
        ResLTLoss(20)


def test_ldam_loss_by_hand():
    counts, cos, y = [1000, 100, 10], np.array([[0.3, -0.2, 0.1], [0.0, 0.5, -0.4]]), np.array([2, 1])
    margins = 0.5 * np.array(counts, dtype=float) ** -0.25 / 10**-0.25
    z = 30 * (cos - margins[y][:, None] * np.eye(3)[y])
    expected = (-np_log_softmax(z)[np.arange(2), y]).mean()
    assert LDAMLoss(counts)(torch.tensor(cos, dtype=torch.float32), torch.tensor(y)).item() == pytest.approx(
        expected, rel=1e-5
    )


def test_every_expert_gets_its_own_channel_subset_in_stage2():
    "RIDE + H2T's forward: the fused maps each expert's head sees take a different subset of the partner's channels."
    torch.manual_seed(0)
    model = ride_small_cnn(10).eval()
    seen = []
    model.forward_head = lambda features, pre_logits=False, parts=False: (
        seen.append(features) or torch.zeros(len(features[0]), 10)
    )
    forward = Stage2Forward(model, H2T(0.25)).train()
    x_fused, x_fusing = torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8)
    forward(x_fused, x_fusing, generator=torch.Generator().manual_seed(1))
    own, partner = model.forward_features(x_fused), model.forward_features(x_fusing)
    subsets = []
    for fused, f_own, f_partner in zip(seen[0], own, partner):
        from_partner = (fused == f_partner).flatten(2).all(2).all(0)
        assert torch.equal(
            from_partner, ~(fused == f_own).flatten(2).all(2).all(0)
        )  # each channel wholly from one of the two
        assert int(from_partner.sum()) == int(0.25 * f_own.shape[1])
        subsets.append(from_partner)
    assert len(subsets) == 3 and not torch.equal(subsets[0], subsets[1]) and not torch.equal(subsets[1], subsets[2])


@pytest.mark.rehearsal
@pytest.mark.parametrize('host', ['gcl', 'ldam_drw', 'ride', 'reslt'])
def test_each_host_trains_both_stages_on_the_offline_data(tmp_path, host):
    """The host's Digits-100-LT family through h2t-table for one epoch per stage: its stage 1, its stage-2 rows, its
    table."""
    out = cli(
        'h2t-table', f'digits100_lt_if100_{host}', '--epochs1', '1', '--epochs2', '1', '--out', 'res', cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr[-3000:]
    saved = json.loads((tmp_path / 'res' / f'digits100_lt_if100_{host}-table' / 'table.json').read_text())
    rows = [r['row'] for r in saved['summary']['last']]
    assert rows == (
        {'gcl': ['stage1', 'host', 'no_fusion', 'h2t'], 'ldam_drw': ['stage1']}.get(host)
        or ['stage1', 'dr', 'no_fusion', 'h2t']
    )
    assert all(r['top1'] > 2 for r in saved['summary']['last'])  # one epoch already beats chance (1 %) on 100 classes
    if host != 'ldam_drw':
        assert [d['row'] for d in saved['paired_control']['last']] == ['h2t']


@pytest.mark.parametrize('host, other', [('gcl', 'ride'), ('ride', 'reslt'), ('reslt', 'gcl')])
def test_stage2_of_a_host_refuses_another_architectures_stage1(tmp_path, host, other):
    first = cli(
        'h2t-train',
        '--preset',
        f'digits100_lt_if100_{other}_stage1',
        '--fast-dev-run',
        '1',
        '--out',
        'res',
        cwd=tmp_path,
    )
    assert first.returncode == 0, first.stderr[-2000:]
    ckpt = tmp_path / 'res' / f'digits100_lt_if100_{other}_stage1' / 'seed0' / 'stage1' / 'final.pt'
    out = cli(
        'h2t-train',
        '--preset',
        f'digits100_lt_if100_{host}_h2t',
        '--stages',
        '2',
        '--stage1-ckpt',
        str(ckpt),
        '--out',
        'two',
        cwd=tmp_path,
    )
    assert out.returncode == 1 and 'Traceback' not in out.stderr and len(out.stderr.strip().splitlines()) == 1, (
        out.stderr[-2000:]
    )
    assert 'the stage-1 checkpoint is a' in out.stderr and not (tmp_path / 'two').exists()


@pytest.mark.rehearsal
@pytest.mark.parametrize('family', ['imagenet_lt_r50_gcl', 'inat2018_r50_ride'])
def test_large_host_presets_take_one_step_on_synthetic_data(tmp_path, family):
    """The large datasets' GCL and RIDE presets (GPU recipes): validated, and one step of each stage on their synthetic
    stand-ins."""
    out = cli(
        'h2t-train', '--preset', f'{family}_h2t', '--synthetic', '--fast-dev-run', '1', '--out', 'res', cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr[-3000:]
    run = tmp_path / 'res' / f'{family}_h2t'
    summary = json.loads((run / 'results.json').read_text())['summary']
    assert {(r['stage'], r['selection']) for r in summary} >= {('stage1', 'last'), ('stage2', 'last')}
    stage1, stage2 = (load_checkpoint(run / 'seed0' / s / 'final.pt')['model'] for s in ('stage1', 'stage2'))
    learnt = [k for k in stage2 if 'running' not in k and 'num_batches' not in k]
    changed = learnt_changes(stage1, stage2)
    stem = next(k for k in learnt if stage2[k].ndim == 4)  # the first convolution: the frozen backbone's
    assert changed and stem not in changed and len(changed) < len(learnt) / 4, changed  # the head re-trained, alone


def test_help_lists_the_hosts_presets_and_families(tmp_path):
    train, table = cli('h2t-train', '--help', cwd=tmp_path), cli('h2t-table', '--help', cwd=tmp_path)
    assert train.returncode == table.returncode == 0
    for host in ('gcl', 'ride', 'reslt', 'ldam_drw'):
        for prefix in ('cifar100_lt_if50', 'cifar100_lt_if100', 'cifar100_lt_if200', 'digits100_lt_if100'):
            assert f'{prefix}_{host}_ROW' in train.stdout and f'{prefix}_{host}' in table.stdout, (prefix, host)
