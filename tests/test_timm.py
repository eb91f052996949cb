"""timm models through the trainer and the CLI, offline and randomly initialised: four families train both stages with
H2T, a timm model under MiSLAS gets its logit scale, and every way it can go wrong is refused in one line before any
folder exists. Token fusion is checked against pooling as a property."""

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings, strategies as st

from conftest import command_env, learnt_changes
from h2t_nb.checkpoints import load_checkpoint
from h2t_nb.fusion import h2t_fuse
from h2t_nb.presets import PRESETS, TABLE_FAMILIES
from h2t_nb.runs import train_run

pytest.importorskip('timm', reason='the timm extra is part of the dev install')
BIN = Path(sys.executable).parent
ENV = command_env(OMP_NUM_THREADS='1', HF_HUB_OFFLINE='1')  # no weights can be downloaded
CLASSIFIER = {
    'resnet18': 'fc',
    'convnext_atto': 'head.fc',
    'efficientnet_b0': 'classifier',
    'vit_tiny_patch16_224': 'head',
}


def cli(command, *args, cwd, env=ENV):
    return subprocess.run(
        [shutil.which(command, path=str(BIN)) or command, *args], cwd=cwd, capture_output=True, text=True, env=env
    )


def one_line_error(out, text):
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 1 and len(lines) == 1 and text in lines[0], out.stderr[-2000:]


@pytest.mark.parametrize('name', list(CLASSIFIER))
def test_a_timm_family_trains_both_stages_with_h2t_through_the_cli(tmp_path, name):
    """ResNet, EfficientNet and ViT at the compact 12×20 canvas, ConvNeXt at 32×32: stage 2 trains the classifier and
    nothing else."""
    preset = 'digits100_lt_if100_r32_dr_h2t' if name.startswith('convnext') else 'digits100_lt_if100_dr_h2t'
    out = cli(
        'h2t-train', '--preset', preset, '--model', f'timm:{name}', '--fast-dev-run', '2', '--out', 'res', cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr[-3000:]
    run = tmp_path / 'res' / preset
    assert json.loads((run / 'plan.json').read_text())['base']['model'] == f'timm:{name}'
    s1, s2 = (load_checkpoint(run / 'seed0' / stage / 'final.pt')['model'] for stage in ('stage1', 'stage2'))
    classifier = {k for k in s2 if k.startswith(f'net.{CLASSIFIER[name]}.')}
    assert classifier == {f'net.{CLASSIFIER[name]}.weight', f'net.{CLASSIFIER[name]}.bias'}
    assert not any(torch.equal(s1[k], s2[k]) for k in classifier)
    frozen = [
        k for k in s1 if k not in classifier and not k.endswith(('running_mean', 'running_var', 'num_batches_tracked'))
    ]
    assert len(frozen) > 10 and all(torch.equal(s1[k], s2[k]) for k in frozen)
    assert json.loads((run / 'plan.json').read_text())['base']['stage2']['fusion'] == 'channels'


def test_h2t_fuses_a_vits_embedding_axis_in_training(tmp_path):
    """Inside stage 2 the ViT's tokens are fused along D (every token keeps its position), as the model's channel_dim
    says."""
    from h2t_nb.train import Stage2Forward
    from h2t_nb.methods import fusion_module
    from h2t_nb.timm_models import timm_model

    model = timm_model('vit_tiny_patch16_224', 100, 1, (12, 20)).eval()
    seen = {}
    hook = model.net.head.register_forward_pre_hook(lambda m, args: seen.setdefault('pooled', args[0]))
    sc = replace(PRESETS['digits100_lt_if100_dr_h2t'].stage2, ratio=1.0)
    net = Stage2Forward(model, fusion_module(sc, model.channel_dim)).train()
    x, partner = torch.randn(4, 1, 12, 20), torch.randn(4, 1, 12, 20)
    model.eval()  # dropout off: the head sees exactly the fused tokens
    net(x, partner)
    hook.remove()
    with torch.no_grad():
        expected = model.net.forward_head(model.net.forward_features(partner), pre_logits=True)
    torch.testing.assert_close(
        seen['pooled'], expected
    )  # ratio 1 on the embedding axis: the head sees the partner's tokens
    assert net.fuse.channel_dim == -1


def test_a_timm_model_under_mislas_gets_its_logit_scale_in_its_own_group(tmp_path):
    out = cli(
        'h2t-train',
        '--preset',
        'digits100_lt_if100_mislas_h2t',
        '--model',
        'timm:resnet18',
        '--fast-dev-run',
        '1',
        '--out',
        'res',
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    ckpt = load_checkpoint(tmp_path / 'res' / 'digits100_lt_if100_mislas_h2t' / 'seed0' / 'stage2' / 'last.pt')
    assert ckpt['model']['logit_scale.scale'].shape == (100,)
    groups = ckpt['optimizer']['param_groups']
    assert [len(g['params']) for g in groups] == [2, 1]
    assert [g['peak_lr'] for g in groups] == [
        PRESETS['digits100_lt_if100_mislas_h2t'].stage2.lr,
        PRESETS['digits100_lt_if100_mislas_h2t'].stage2.lws_lr,
    ]


def test_a_users_own_contract_model_plugs_in(tmp_path):
    "A builder that returns a plain timm model (no h2t_nb wrapper) is wrapped by the trainer and trains both stages."
    import timm
    from h2t_nb.models import MODELS

    MODELS['user_resnet18'] = lambda num_classes, in_chans=3: timm.create_model(
        'resnet18', num_classes=num_classes, in_chans=in_chans
    )
    try:
        out = train_run(
            replace(PRESETS['digits100_lt_if100_dr_h2t'], model='user_resnet18', fast_dev_run=1), tmp_path, quiet=True
        )
        s2 = load_checkpoint(out['run_dir'] / 'seed0' / 'stage2' / 'final.pt')['model']
        assert 'net.fc.weight' in s2
    finally:
        del MODELS['user_resnet18']


def test_a_model_without_the_contract_is_refused_before_any_folder(tmp_path):
    from torch import nn
    from h2t_nb.models import MODELS

    MODELS['bare_linear'] = lambda num_classes, in_chans=3: nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))
    try:
        with pytest.raises(
            TypeError, match="Sequential does not keep timm's model contract: it has no forward_features, forward_head"
        ):
            train_run(
                replace(PRESETS['digits100_lt_if100_dr_h2t'], model='bare_linear', fast_dev_run=1), tmp_path, quiet=True
            )
        assert list(tmp_path.iterdir()) == []
    finally:
        del MODELS['bare_linear']


@pytest.mark.parametrize(
    'args, message',
    [
        (['--model', 'timm:resnet19'], "timm has no model 'resnet19': did you mean resnet18"),
        (['--pretrained'], "pretrained=True loads timm's weights, and model='small_cnn' is not a timm model"),
        (['--model', 'timm:convnext_atto'], "model='timm:convnext_atto' cannot read 1×12×20 images"),
        (
            ['--preset', 'digits100_lt_if100_gcl_h2t', '--model', 'timm:resnet18'],
            "needs a model with a cosine head, and model='timm:resnet18' has a linear one",
        ),
        (
            ['--preset', 'imagenet_lt_r50_dr_h2t', '--image-size', '64', '--data-dir', '.'],
            "image_size=64 resizes in-memory images",
        ),
        (['--image-size', '4'], 'TrainConfig.image_size=4 is not accepted'),
        (['--resume', '.', '--model', 'timm:resnet18'], '--model would change what it trains'),
    ],
)
def test_timm_mistakes_are_one_line_and_leave_no_folder(tmp_path, monkeypatch, args, message):
    "h2t-train's own entry point, in this process (the command-line test below spawns the real script)."
    from h2t_nb.cli import h2t_train, run_command

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        run_command(h2t_train, 'h2t-train', [*args, '--out', 'res'])
    text = str(stop.value.code)
    assert text.startswith('h2t-train: ') and len(text.splitlines()) == 1 and message in text, text
    assert not (tmp_path / 'res').exists()


def test_weights_that_cannot_be_downloaded_are_one_line_from_the_command_line(tmp_path):
    out = cli('h2t-train', '--model', 'timm:resnet18', '--pretrained', '--out', 'res', cwd=tmp_path)
    one_line_error(out, "timm's pretrained weights for resnet18 could not be loaded")
    assert not (tmp_path / 'res').exists()


def test_without_timm_the_run_says_how_to_install_it(tmp_path):
    """An environment without the extra: the config is accepted, and the run stops in one line that names the extra,
    before any folder."""
    hide_timm = (
        "import sys; sys.modules['timm'] = None; import importlib.util as u; find = u.find_spec; "
        "u.find_spec = lambda name, *a, **k: None if name == 'timm' else find(name, *a, **k); "
        "from h2t_nb.cli import train_main; sys.argv = ['h2t-train', '--model', 'timm:resnet18', '--out', 'res']; "
        "train_main()"
    )
    out = subprocess.run([sys.executable, '-c', hide_timm], cwd=tmp_path, capture_output=True, text=True, env=ENV)
    one_line_error(out, 'timm models need timm: pip install "h2t_nb[timm]"')
    assert not (tmp_path / 'res').exists()


def test_resize_reaches_the_model(tmp_path):
    """--image-size 32 on the 12×20 canvas: a ViT is built for 32×32 (2×2 patches, no padding) and the run books the
    size."""
    out = cli(
        'h2t-train',
        '--model',
        'timm:vit_tiny_patch16_224',
        '--image-size',
        '32',
        '--fast-dev-run',
        '1',
        '--out',
        'res',
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    run = tmp_path / 'res' / 'digits100_lt_if100_dr_h2t'
    from h2t_nb.datasets import build_data
    from h2t_nb.train import make_pipeline, setup_runtime

    cfg = replace(PRESETS['digits100_lt_if100_dr_h2t'], image_size=32)
    data, rt = build_data(cfg), setup_runtime(cfg)
    for split, train in ((data.train, True), (data.test, False)):  # both the training and the evaluation batches
        x, _ = next(make_pipeline(cfg, data, split, rt).batches(torch.arange(8), 8, train=train))
        assert x.shape[-2:] == (32, 32) and split.images.shape[-2:] != (32, 32)
    assert load_checkpoint(run / 'seed0' / 'stage1' / 'final.pt')['model']['net.pos_embed'].shape == (
        1,
        5,
        192,
    )  # a class token + 2×2 patches


def test_the_timm_finetune_families_run_without_their_weights(tmp_path):
    """The GPU fine-tuning families, on synthetic CIFAR-100-LT with random weights and small images (their wiring, not
    their recipe)."""
    from h2t_nb.presets import family_rows

    for family in ('cifar100_lt_if100_timm_vit_s16', 'cifar100_lt_if100_timm_r50'):  # controls beside H2T
        _, rows = family_rows(family)
        assert {(sc.fusion, sc.ratio) for sc in rows.values()} >= {('none', 0), ('two_streams', 0), ('channels', 0.25)}
    cfg = replace(
        PRESETS['cifar100_lt_if100_timm_vit_s16_dr_h2t'],
        dataset='synthetic_cifar100',
        pretrained=False,
        image_size=32,
        eval_batch_size=50,
        fast_dev_run=1,
        stage1=replace(PRESETS['cifar100_lt_if100_timm_vit_s16_dr_h2t'].stage1, batch_size=8),
        stage2=replace(PRESETS['cifar100_lt_if100_timm_vit_s16_dr_h2t'].stage2, batch_size=8),
    )
    out = train_run(cfg, tmp_path, quiet=True)
    stage1, stage2 = (load_checkpoint(out['run_dir'] / 'seed0' / s / 'final.pt')['model'] for s in ('stage1', 'stage2'))
    assert learnt_changes(stage1, stage2) == {'net.head.weight', 'net.head.bias'}  # timm's classifier alone


@settings(max_examples=40, deadline=None)
@given(
    b=st.integers(1, 6),
    n=st.integers(1, 9),
    d=st.integers(1, 40),
    ratio=st.floats(0, 1),
    seed=st.integers(0, 2**31 - 1),
)
def test_fusing_tokens_then_average_pooling_equals_pooling_then_fusing(b, n, d, ratio, seed):
    tokens, partner = torch.randn(b, n, d, dtype=torch.float64), torch.randn(b, n, d, dtype=torch.float64)
    fused_then_pooled = h2t_fuse(
        tokens, partner, ratio, generator=torch.Generator().manual_seed(seed), channel_dim=-1
    ).mean(1)
    pooled_then_fused = h2t_fuse(tokens.mean(1), partner.mean(1), ratio, generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(fused_then_pooled, pooled_then_fused)
    # ... and every token keeps its own position: only channels move between the streams
    kept = (
        h2t_fuse(tokens, partner, ratio, generator=torch.Generator().manual_seed(seed), channel_dim=-1) == tokens
    ).all(1)
    assert kept.sum(1).tolist() == [d - int(ratio * d)] * b
