"""The trainer and the run orchestrator end to end on the offline data: files, CLI, exact resume, DDP agreement,
official checkpoints, and every user-facing failure."""

import hashlib
import json
import math
import shutil
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import command_env, learnt_changes, run_command
from h2t_nb.checkpoints import load_checkpoint, save_atomic
from h2t_nb.config import config_from_dict
from h2t_nb.presets import PRESETS
from h2t_nb.runs import resume_run, train_run

BIN = Path(sys.executable).parent
TINY = replace(
    PRESETS['offline'],
    stage1=replace(PRESETS['offline'].stage1, epochs=4, warmup_epochs=1, milestones=(3,)),
    stage2=replace(PRESETS['offline'].stage2, epochs=3),
)
ENV = command_env(OMP_NUM_THREADS='1')


def cli(*args, cwd):
    return run_command('h2t-train', *args, cwd=cwd, env=ENV)


def tree_digest(folder):
    """Name and content hash of every file below `folder` (but the lock, which names its latest holder): equal digests
    mean nothing was touched."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(Path(folder).rglob('*'))
        if p.is_file() and p.name != '.lock'
    }


def weights(path):
    return load_checkpoint(path)['model']


def test_end_to_end_offline_with_h2t(tmp_path):
    res = train_run(TINY, tmp_path, quiet=True)
    run_dir = res['run_dir']
    assert run_dir == tmp_path / 'offline'
    results = json.loads((run_dir / 'results.json').read_text())
    rows = {(r['stage'], r['selection']): r for r in results['summary']}
    assert set(rows) == {
        ('stage1', 'last'),
        ('stage1', 'best_val'),
        ('stage2', 'last'),
        ('stage2', 'best_val'),
    }  # best_test: only with paper_protocol
    for r in rows.values():
        assert 10 < r['top1'] <= 100 and 0 <= r['ece'] <= 100 and r['seeds'] == 1
        assert {'paper_few', 'threshold_few', 'paper_many', 'threshold_medium'} <= set(r)
    assert rows[('stage2', 'last')]['top1'] > 50  # four short epochs already learn most digits
    csv_lines = (run_dir / 'results.csv').read_text().splitlines()
    assert (
        csv_lines[0].startswith('stage,selection,seeds,top1') and len(csv_lines) == 5
    )  # a header and the four rows above
    assert (run_dir / 'curves_and_per_class.png').stat().st_size > 10_000
    ckpt = load_checkpoint(run_dir / 'seed0' / 'stage2' / 'final.pt', stage=2)
    assert ckpt['epoch'] == 2 and ckpt['config']['stage2']['ratio'] == 0.3 and len(ckpt['history']) == 3
    stage1 = load_checkpoint(run_dir / 'seed0' / 'stage1' / 'final.pt', stage=1)
    assert learnt_changes(stage1['model'], ckpt['model']) == {'fc.weight', 'fc.bias'}  # stage 2: head only


def test_several_seeds_give_mean_and_std(tmp_path):
    cfg = replace(TINY, stage1=replace(TINY.stage1, epochs=2), stage2=replace(TINY.stage2, epochs=1))
    res = train_run(cfg, tmp_path, seeds=[0, 1], quiet=True)
    row = next(r for r in res['summary'] if (r['stage'], r['selection']) == ('stage2', 'last'))
    tops = [res['per_seed'][s]['stage2']['last']['top1'] for s in (0, 1)]
    # the sample standard deviation (ddof 1), as the paired intervals use: |a - b| / sqrt(2) for two seeds (ddof 0 gave
    # |a - b| / 2)
    assert (
        row['seeds'] == 2
        and row['top1'] == pytest.approx(sum(tops) / 2)
        and row['top1_std'] == pytest.approx(abs(tops[0] - tops[1]) / math.sqrt(2))
    )


def test_resume_is_bit_identical(tmp_path):
    whole = train_run(TINY, tmp_path / 'a', quiet=True)['run_dir']
    first = train_run(TINY, tmp_path / 'b', stop_after={1: 2}, quiet=True)
    assert first['interrupted'] and not (first['run_dir'] / 'seed0' / 'stage1' / 'final.pt').exists()
    second = resume_run(first['run_dir'], stop_after={2: 1}, quiet=True)  # finish stage 1, stop inside stage 2
    assert second['interrupted']
    resume_run(first['run_dir'], quiet=True)
    for stage in ('stage1', 'stage2'):
        a, b = weights(whole / 'seed0' / stage / 'final.pt'), weights(first['run_dir'] / 'seed0' / stage / 'final.pt')
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), f'{stage} differs after resume'
    ra = json.loads((whole / 'results.json').read_text())['summary']
    rb = json.loads((first['run_dir'] / 'results.json').read_text())['summary']
    assert ra == rb


def test_cli_runs_offline_and_never_overwrites(tmp_path):
    out = cli('--preset', 'offline', '--out', 'res', '--epochs1', '2', '--epochs2', '1', cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (
        'paper_few' in out.stdout
        and 'threshold_few' in out.stdout
        and 'results, checkpoints and plots: res/offline' in out.stdout
    )
    before = tree_digest(tmp_path / 'res' / 'offline')
    again = cli('--preset', 'offline', '--out', 'res', '--epochs1', '1', '--epochs2', '1', cwd=tmp_path)
    assert again.returncode == 0 and 'res/offline-1' in again.stdout
    assert tree_digest(tmp_path / 'res' / 'offline') == before


def test_cli_help_lists_presets(tmp_path):
    "Every preset can be read off --help: by its own line, or as FAMILY_ROW with its row listed on the family's line."
    out = cli('--help', cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    section = out.stdout.split('presets:\n')[1].split('\n\n')[0]  # up to the options
    listed = set()
    for line in map(str.strip, section.splitlines()):
        if ', ROW one of: ' in line:
            family, rows = line.split(', ROW one of: ')
            listed |= {family.removesuffix('_ROW') + '_' + row for row in rows.split()}
        else:
            listed.add(line)
    assert listed == set(PRESETS), set(PRESETS) ^ listed


def test_unknown_preset_is_refused_in_one_line_with_the_closest_names(tmp_path):
    "An unknown preset is refused in one short line that names the closest ones, not a list of every preset."
    out = cli('--preset', 'cifar100_lt_if100_dr_h2', '--out', 'res', cwd=tmp_path)
    one_line_failure(out, "unknown preset 'cifar100_lt_if100_dr_h2': did you mean cifar100_lt_if100_dr_h2t")
    assert len(out.stderr) < 300 and not any(tmp_path.iterdir())


def test_missing_data_dir(tmp_path):
    out = cli(
        '--preset', 'cifar100_lt_if100_dr_h2t', '--data-dir', str(tmp_path / 'nowhere'), '--out', 'res', cwd=tmp_path
    )
    assert out.returncode == 1 and '--download' in out.stderr and 'Traceback' not in out.stderr
    out = cli('--preset', 'cifar100_lt_if100_dr_h2t', '--out', 'res', cwd=tmp_path)
    assert out.returncode == 1 and '--data-dir' in out.stderr
    assert not (tmp_path / 'res').exists()  # refused before anything was written


def test_stage2_needs_a_stage1_checkpoint(tmp_path):
    out = cli('--preset', 'offline', '--stages', '2', '--out', 'res', cwd=tmp_path)
    assert out.returncode == 1 and '--stage1-ckpt' in out.stderr and not (tmp_path / 'res').exists()


@pytest.fixture(scope='module')
def finished_run(tmp_path_factory):
    "One finished TINY run for every test that needs checkpoints or a finished folder: copy it before changing it."
    return train_run(TINY, tmp_path_factory.mktemp('finished'), quiet=True)['run_dir']


@pytest.mark.parametrize('damage', ['truncated', 'garbage', 'foreign', 'stage2', 'objects'])
def test_bad_stage1_checkpoint(tmp_path, damage, finished_run):
    good = finished_run
    before = tree_digest(good)
    ckpt, bad = good / 'seed0' / 'stage1' / 'final.pt', tmp_path / 'bad.pt'
    if damage == 'truncated':
        bad.write_bytes(ckpt.read_bytes()[:5000])
    elif damage == 'garbage':
        bad.write_bytes(b'not a checkpoint at all')
    elif damage == 'foreign':
        torch.save({'state_dict': {}}, bad)
    elif damage == 'objects':
        torch.save({'format': 'h2t_nb', 'stage': 1, 'model': {}, 'note': Path('x')}, bad)  # weights_only refuses it
    else:
        shutil.copy(good / 'seed0' / 'stage2' / 'final.pt', bad)
    out = cli(
        '--preset', 'offline', '--stages', '2', '--stage1-ckpt', str(bad), '--out', str(tmp_path / 'res'), cwd=tmp_path
    )
    expected = {
        'truncated': 'corrupt or truncated',
        'garbage': 'corrupt or truncated',
        'foreign': 'not an h2t_nb checkpoint',
        'stage2': 'stage-2 checkpoint',
        'objects': 'holds Python objects besides tensors',
    }[damage]
    assert out.returncode == 1 and expected in out.stderr, out.stderr
    assert not (tmp_path / 'res').exists() and tree_digest(good) == before


def test_nan_loss_stops_with_a_clear_error_and_keeps_earlier_outputs(tmp_path, finished_run):
    good = tmp_path / 'offline'
    shutil.copytree(finished_run, good)
    before = tree_digest(good)
    exploding = replace(TINY, stage1=replace(TINY.stage1, lr=1e12, warmup_epochs=0, milestones=()))
    with pytest.raises(FloatingPointError, match='not finite'):
        train_run(exploding, tmp_path, quiet=True)
    assert tree_digest(good) == before
    assert not (tmp_path / 'offline-1' / 'seed0' / 'stage1' / 'last.pt').exists()  # no NaN checkpoint was written


def test_atomic_save_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / 'last.pt'
    save_atomic({'a': 1}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError('crash mid-save')

    with pytest.raises(RuntimeError, match='crash mid-save'):
        save_atomic({'a': Unpicklable()}, path)
    assert torch.load(path) == {'a': 1}


DDP_SCRIPT = '''
import json, sys
from h2t_nb.config import config_from_dict
from h2t_nb.runs import train_run
args = json.loads(sys.argv[1])
train_run(config_from_dict(args['config']), args['out'], stage1_ckpt=args.get('stage1_ckpt'), quiet=True)
'''


def test_ddp_two_processes_on_cpu_agree_with_one(tmp_path):
    """Stage 1 under torchrun (2 gloo processes), then stage 2 both ways from the same checkpoint: same head, same
    report."""
    cfg = replace(
        TINY,
        augment=False,
        stage1=replace(TINY.stage1, epochs=2),
        stage2=replace(TINY.stage2, epochs=2, shift_bn=False),
    )
    script = tmp_path / 'ddp_run.py'
    script.write_text(DDP_SCRIPT)
    launch = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc-per-node', '2', str(script)]
    out = subprocess.run(
        launch + [json.dumps(dict(config=asdict(cfg), out=str(tmp_path / 'ddp')))],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    ddp_dir = tmp_path / 'ddp' / 'offline'
    assert sorted(p.name for p in (tmp_path / 'ddp').iterdir()) == ['offline']  # rank 1 wrote no run folder of its own
    stage1 = ddp_dir / 'seed0' / 'stage1' / 'final.pt'
    single = train_run(replace(cfg, stages=(2,)), tmp_path / 'single', stage1_ckpt=stage1, quiet=True)['run_dir']
    out = subprocess.run(
        launch
        + [
            json.dumps(
                dict(config=asdict(replace(cfg, stages=(2,))), out=str(tmp_path / 'ddp2'), stage1_ckpt=str(stage1))
            )
        ],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    a, b = (
        weights(single / 'seed0' / 'stage2' / 'final.pt'),
        weights(tmp_path / 'ddp2' / 'offline' / 'seed0' / 'stage2' / 'final.pt'),
    )
    assert torch.allclose(a['fc.weight'], b['fc.weight'], atol=1e-5) and torch.allclose(
        a['fc.bias'], b['fc.bias'], atol=1e-5
    )
    ra = json.loads((single / 'results.json').read_text())['summary']
    rb = json.loads((tmp_path / 'ddp2' / 'offline' / 'results.json').read_text())['summary']
    assert [r['top1'] for r in ra] == pytest.approx(
        [r['top1'] for r in rb], abs=0.21
    )  # at most one test image of 500 differs


def test_compiled_backbone_trains_both_stages(tmp_path):
    """--compile goes through torch.compile (inductor on CPU here; CUDA graphs with reduce-overhead on a GPU): graphs
    are compiled."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    cfg = replace(TINY, compile=True, stage1=replace(TINY.stage1, epochs=1), stage2=replace(TINY.stage2, epochs=1))
    res = train_run(cfg, tmp_path, quiet=True)
    assert counters['stats']['unique_graphs'] >= 2  # forward_features compiled (train and eval modes at least)
    assert [(r['stage'], r['selection']) for r in res['summary']][0] == ('stage1', 'last')
    stage1, stage2 = (weights(res['run_dir'] / 'seed0' / stage / 'final.pt') for stage in ('stage1', 'stage2'))
    assert not [k for k in stage2 if '_orig_mod' in k]  # saved unwrapped: the checkpoint loads into a plain model
    assert learnt_changes(stage1, stage2) == {'fc.weight', 'fc.bias'}  # the compiled backbone stayed frozen


@pytest.mark.parametrize(
    'dataset, classes, images', [('synthetic_cifar100', 100, 10847), ('synthetic_cifar10', 10, 12406)]
)
def test_synthetic_cifar_has_the_real_class_counts(dataset, classes, images):
    from h2t_nb.config import TrainConfig
    from h2t_nb.datasets import build_data

    data = build_data(TrainConfig(dataset=dataset, imb_factor=100))
    assert (data.num_classes, len(data.train), data.train.images.shape[1:]) == (classes, images, (3, 32, 32))
    assert data.val.counts == [10] * classes and data.test.counts == [100] * classes and data.augment.padding == 4
    with pytest.raises(ValueError, match="TrainConfig.dataset='synthetic_imagenet' is not accepted: use one of"):
        build_data(TrainConfig(dataset='synthetic_imagenet'))


def test_best_test_is_the_best_epoch_on_test_and_labelled(tmp_path):
    """The paper-protocol row (paper_protocol): the stage-2 epoch with the best test accuracy, recorded every epoch,
    never the headline."""
    res = train_run(replace(TINY, paper_protocol=True), tmp_path, quiet=True)
    report = res['per_seed'][0]['stage2']
    per_epoch = [h['test_top1'] for h in report['history']]
    assert len(per_epoch) == TINY.stage2.epochs and report['best_test']['top1'] == max(per_epoch)
    assert report['best_test']['epoch'] == per_epoch.index(max(per_epoch)) + 1
    assert report['last']['top1'] == per_epoch[-1]  # the last epoch's test accuracy is the headline
    assert 'best_test: paper protocol (selected on test: optimistic)' in __import__(
        'h2t_nb.reports', fromlist=['x']
    ).run_summary_text(res['summary'])


class OfficialBlock(nn.Module):
    """The LDAM-DRW / MiSLAS / H2T CIFAR BasicBlock, written from its published description: option-A shortcut, no
    parameters."""

    def __init__(self, in_planes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = stride != 1 or in_planes != planes
        self.extra = planes // 4  # zero channels added on each side when the width doubles

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.extra, self.extra)) if self.downsample else x
        return F.relu(out + shortcut)


class OfficialResNet32(nn.Module):
    """ResNet-32 as the official code lays it out: conv1/bn1, layer1..layer3 of 5 blocks (16/32/64), average pool; the
    classifier is a separate `fc`."""

    def __init__(self, num_classes=100):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        widths, in_planes = (16, 32, 64), 16
        for i, planes in enumerate(widths, 1):
            blocks = []
            for b in range(5):
                blocks.append(OfficialBlock(in_planes, planes, 2 if i > 1 and b == 0 else 1))
                in_planes = planes
            setattr(self, f'layer{i}', nn.Sequential(*blocks))
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def official_checkpoint(path, num_classes=100, lws=False, classifier=True):
    """A stage-1 (or, with `lws`, a MiSLAS stage-2) checkpoint in the official layout: DataParallel's `module.` prefix,
    model and classifier apart."""
    torch.manual_seed(1)
    net = OfficialResNet32(num_classes)
    with (
        torch.no_grad()
    ):  # non-trivial BatchNorm statistics and affine parameters, so that a mismatch shows in the logits
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    state = net.state_dict()
    ckpt = {
        'epoch': 200,
        'best_acc1': torch.tensor(39.55),
        'state_dict_model': {f'module.{k}': v for k, v in state.items() if not k.startswith('fc.')},
    }
    if classifier:
        ckpt['state_dict_classifier'] = {f'module.{k}': v for k, v in state.items() if k.startswith('fc.')}
    if lws:
        ckpt['state_dict_lws_model'] = {'module.learned_norm': torch.ones(1, num_classes)}
    torch.save(ckpt, path)
    return net.eval()


def small_digits100(cfg):
    "Digits-100-LT on the 32×32 canvas, cut to a few images per class: a fast stage 2 that keeps all 100 classes."
    from h2t_nb.data import LTImageDataset
    from h2t_nb.datasets import build_data

    data = build_data(cfg)

    def small(ds, per_class):
        keep = torch.cat([torch.where(ds.targets == c)[0][:per_class] for c in range(100)])
        return LTImageDataset(ds.images[keep], ds.targets[keep], ds.classes)

    data.train, data.val, data.test = small(data.train, 5), small(data.val, 2), small(data.test, 2)
    data.counts = data.train.counts
    return data


def test_official_stage1_checkpoint_starts_stage2(tmp_path):
    """A release written by an independent ResNet-32 of the official architecture (non-trivial BN statistics) gives the
    same logits here, and stage 2 trains from it."""
    from h2t_nb.train import setup_runtime, stage2_model, train_stage2

    cfg = replace(
        PRESETS['digits100_lt_if100_r32_mislas_h2t'],
        stage2=replace(PRESETS['digits100_lt_if100_r32_mislas_h2t'].stage2, epochs=1),
    )
    official = official_checkpoint(tmp_path / 'model_best.pth.tar')
    init = load_checkpoint(tmp_path / 'model_best.pth.tar', stage=1)
    assert (init['model_name'], init['num_classes']) == ('resnet32', 100)
    data, rt = small_digits100(cfg), setup_runtime(cfg)
    model, _ = stage2_model(cfg, data, rt, init)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model.eval()(x), official(x), atol=1e-5)  # same network, and MiSLAS's LWS starts at 1
    report = train_stage2(cfg, data, rt, tmp_path / 'stage2', init)
    trained = load_checkpoint(tmp_path / 'stage2' / 'final.pt', stage=2)['model']
    assert not torch.equal(trained['logit_scale.scale'], torch.ones(100))  # MiSLAS's LWS was trained
    assert torch.equal(trained['layers.7.conv1.weight'], init['model']['layers.7.conv1.weight'])  # backbone frozen
    assert not torch.equal(trained['fc.weight'], init['model']['fc.weight']) and {'last', 'best_val'} <= set(report)


@pytest.mark.parametrize(
    'case, message',
    [
        ('lws', 'official MiSLAS stage-2 checkpoint'),
        ('headless', 'has no classifier'),
        ('wider', 'no ResNet-32 counterpart'),
    ],
)
def test_official_checkpoints_that_cannot_start_stage2_are_refused(tmp_path, case, message):
    """A MiSLAS stage-2 release (its LWS would be dropped) and a file without a classifier are refused in one line, like
    unmapped keys."""
    path = tmp_path / 'release.pth.tar'
    official_checkpoint(path, lws=case == 'lws', classifier=case != 'headless')
    if case == 'wider':
        ckpt = torch.load(path)
        ckpt['state_dict_model']['module.layer4.0.conv1.weight'] = torch.zeros(1)
        torch.save(ckpt, path)
    out = cli(
        '--preset',
        'digits100_lt_if100_r32_dr_h2t',
        '--stages',
        '2',
        '--stage1-ckpt',
        str(path),
        '--out',
        'res',
        cwd=tmp_path,
    )
    one_line_failure(out, message)
    assert not (tmp_path / 'res').exists()
    official_checkpoint(tmp_path / 'ok.pth.tar')
    with pytest.raises(ValueError, match='official stage-1 checkpoint'):
        load_checkpoint(tmp_path / 'ok.pth.tar', stage=2)


def test_mislas_stage2_trains_lws_in_its_own_parameter_group(tmp_path):
    """MiSLAS: 4 consecutive images per visited class, ceil(N/B)+1 batches an epoch, and the optimiser's groups:
    classifier at 0.2x, LWS at the full lr."""
    from h2t_nb.datasets import build_data
    from h2t_nb.methods import stage2_sampler
    from h2t_nb.train import setup_runtime, stage2_model, stage_optimizer

    cfg = PRESETS['digits100_lt_if100_mislas']
    data, rt = build_data(cfg), setup_runtime(cfg)
    sampler = stage2_sampler(cfg.stage2, data.train.targets)
    labels = data.train.targets[sampler.indices()]
    assert len(sampler) == (-(-len(data.train) // 128) + 1) * 128
    assert (labels.view(-1, 4) == labels.view(-1, 4)[:, :1]).all()
    init = dict(
        format='h2t_nb',
        stage=1,
        model=__import__('h2t_nb.models', fromlist=['x']).SmallCNN(100).state_dict(),
        model_name='small_cnn',
        num_classes=100,
    )
    model, groups = stage2_model(cfg, data, rt, init)
    opt = stage_optimizer(groups, cfg.stage2, rt)
    assert [g['peak_lr'] for g in opt.param_groups] == [0.02, 0.1]
    assert [p for p in opt.param_groups[0]['params']] == [model.fc.weight, model.fc.bias]
    assert opt.param_groups[1]['params'] == [model.logit_scale.scale]


def one_line_failure(out, message):
    "A refusal as a user sees it: non-zero exit, the message, one line, no traceback."
    assert out.returncode != 0 and message in out.stderr, out.stderr[-2000:]
    assert 'Traceback' not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr[-2000:]


@pytest.mark.parametrize(
    'args, message',
    [
        (['--ratio', '1.5'], 'Stage2Config.ratio=1.5 must be a real number in [0, 1]'),
        (['--epochs1', '0'], 'Stage1Config.epochs=0 is not accepted: use an integer >= 1'),
        (['--epochs1', '-3'], 'Stage1Config.epochs=-3 is not accepted'),
        (
            ['--preset', 'digits100_lt_if100_dr', '--ratio', '0.3'],
            "fusion='none' fuses nothing",
        ),  # DR has no partner batch to fuse from
        (
            ['--seeds', '0', '-1'],
            'TrainConfig.seed=-1 is not accepted',
        ),  # refused before any folder: no config.json or .lock left behind
        (['--device', 'cuda'], 'torch sees no CUDA GPU here'),
        (['--amp', 'fp16'], "amp='fp16' on a CPU"),
    ],
)
def test_bad_input_is_refused_before_any_folder(tmp_path, args, message):
    if 'cuda' in args and torch.cuda.is_available():
        pytest.skip('this machine has a GPU')
    one_line_failure(cli(*args, '--out', 'res', cwd=tmp_path), message)
    assert not (tmp_path / 'res').exists()


def test_out_pointing_at_a_file(tmp_path):
    (tmp_path / 'res').write_text('my notes')
    one_line_failure(cli('--preset', 'offline', '--out', 'res', cwd=tmp_path), '--out res is a file')
    assert (tmp_path / 'res').read_text() == 'my notes'


def test_unknown_schedule_in_a_saved_config_is_refused_on_resume(tmp_path, finished_run):
    folder = tmp_path / 'edited'
    shutil.copytree(finished_run, folder)
    (folder / 'results.json').unlink()
    saved = json.loads((folder / 'plan.json').read_text())
    saved['base']['stage1']['schedule'] = 'cosin'
    (folder / 'plan.json').write_text(json.dumps(saved))
    before = tree_digest(folder)
    one_line_failure(
        cli('--resume', str(folder), cwd=tmp_path),
        "Stage1Config.schedule='cosin' is not accepted: use one of 'step', 'cosine'",
    )
    assert tree_digest(folder) == before


def test_resuming_a_finished_run_is_refused_and_changes_nothing(tmp_path, finished_run):
    before = tree_digest(finished_run)
    one_line_failure(cli('--resume', str(finished_run), cwd=tmp_path), 'is finished (it has results.json)')
    one_line_failure(
        cli('--resume', str(finished_run), '--ratio', '0.5', cwd=tmp_path), '--ratio would change what it trains'
    )
    zero = cli('--resume', str(finished_run), '--ratio', '0', cwd=tmp_path)  # 0 is a value, not an absent flag
    one_line_failure(zero, '--ratio would change what it trains')
    one_line_failure(
        cli('--resume', str(finished_run), '--epochs2', '1', cwd=tmp_path), 'a run can be extended, not shortened'
    )
    assert tree_digest(finished_run) == before


def test_resume_with_more_stage2_epochs_trains_on(tmp_path, finished_run):
    folder = tmp_path / 'longer'
    shutil.copytree(finished_run, folder)
    out = cli('--resume', str(folder), '--epochs2', str(TINY.stage2.epochs + 1), cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"resume: stage-2 epochs -> {TINY.stage2.epochs + 1} for ['stage2']" in out.stdout
    assert load_checkpoint(folder / 'seed0' / 'stage2' / 'final.pt', stage=2)['epoch'] == TINY.stage2.epochs
    report = json.loads((folder / 'seed0' / 'stage2' / 'report.json').read_text())
    assert (
        len(report['history']) == TINY.stage2.epochs + 1
        and report['trained']['stage2']['epochs'] == TINY.stage2.epochs + 1
    )


def test_truncated_best_checkpoint_is_refused_before_training(tmp_path):
    first = train_run(TINY, tmp_path, stop_after={1: 2}, quiet=True)['run_dir']
    best = first / 'seed0' / 'stage1' / 'best.pt'
    best.write_bytes(best.read_bytes()[:3000])
    before = tree_digest(first)
    one_line_failure(cli('--resume', str(first), cwd=tmp_path), 'corrupt or truncated')
    assert tree_digest(first) == before


def test_a_second_writer_is_refused(tmp_path):
    from filelock import FileLock

    first = train_run(TINY, tmp_path, stop_after={1: 1}, quiet=True)['run_dir']
    with FileLock(first / '.lock'):
        (first / '.lock').write_text('pid 4242 on another-host')
        before = tree_digest(first)
        one_line_failure(
            cli('--resume', str(first), cwd=tmp_path), 'is being written by another process (pid 4242 on another-host)'
        )
        assert tree_digest(first) == before


def test_log_to_a_file_has_one_line_per_epoch(tmp_path):
    out = cli(
        '--preset', 'offline', '--epochs1', '2', '--epochs2', '2', '--out', 'res', cwd=tmp_path
    )  # stdout is a pipe here
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [l for l in out.stdout.splitlines() if l.startswith('stage ')]
    assert [l.split('  ')[0] for l in lines] == [
        'stage 1 epoch 1/2',
        'stage 1 epoch 2/2',
        'stage 2 epoch 1/2',
        'stage 2 epoch 2/2',
    ]
    assert all(' loss ' in l and ' lr ' in l and ' val ' in l and 'img/s' in l for l in lines)
    assert '\r' not in out.stdout + out.stderr  # no carriage-return progress bars


def test_loader_pipeline_trains_like_the_device_pipeline(tmp_path):
    """pipeline='loader' in training: without augmentation both pipelines feed the same batches, so the same weights up
    to float noise."""
    cfg = replace(TINY, augment=False, stage1=replace(TINY.stage1, epochs=2), stage2=replace(TINY.stage2, epochs=1))
    runs = {
        name: train_run(replace(cfg, **change), tmp_path / name, quiet=True)['run_dir']
        for name, change in (
            ('device', dict(pipeline='device')),
            ('loader', dict(pipeline='loader')),
            ('augmented', dict(pipeline='device', augment=True)),
        )
    }  # the control: every batch drawn a little differently
    for stage in ('stage1', 'stage2'):
        w = {name: weights(run / 'seed0' / stage / 'final.pt') for name, run in runs.items()}
        apart = lambda name: max((w[name][k].float() - w['device'][k].float()).abs().max().item() for k in w['device'])
        # the same batches in the same order, normalised by different ops ((x/255 - mean)/std against x*scale - shift):
        # ulps apart at the
        # input, grown by training to 1e-4..4e-3 (it depends on the CPU's kernels); batches drawn differently move
        # weights by 0.07..0.5
        assert apart('loader') < apart('augmented') / 20, (stage, apart('loader'), apart('augmented'))


@pytest.fixture(scope='module')
def stage1_ckpt(finished_run):
    return finished_run / 'seed0' / 'stage1' / 'final.pt'


@pytest.mark.parametrize(
    'option', ['per_sample', 'fusing_reverse', 'fusing_balanced', 'logit_adjusted', 'reinit_classifier']
)
def test_stage2_options_take_effect(tmp_path, stage1_ckpt, option):
    "Each stage-2 option changes what stage 2 does, and a run with it trains."
    from h2t_nb.datasets import build_data
    from h2t_nb.methods import fusion_module, stage2_loss, stage2_sampler
    from h2t_nb.train import Stage2Forward, setup_runtime, stage2_model

    overrides = {
        'per_sample': dict(per_sample=True),
        'fusing_reverse': dict(fusing='reverse'),
        'fusing_balanced': dict(fusing='balanced'),
        'logit_adjusted': dict(method='logit_adjusted', tau=1.0),
        'reinit_classifier': dict(reinit_classifier=True),
    }[option]
    cfg = replace(TINY, stages=(2,), stage2=replace(TINY.stage2, epochs=1, **overrides))
    data, rt, init = build_data(cfg), setup_runtime(cfg), load_checkpoint(stage1_ckpt, stage=1)
    if option == 'per_sample':  # every sample of the batch takes its own subset of ρ·C partner channels
        fuse = Stage2Forward(stage2_model(cfg, data, rt, init)[0], fusion_module(cfg.stage2)).fuse.train()
        own, partner = torch.zeros(16, 20, 2, 2), torch.ones(16, 20, 2, 2)
        taken = fuse(own, partner, generator=torch.Generator().manual_seed(0))[:, :, 0, 0]  # 1: from the partner
        assert (taken.sum(1) == int(cfg.stage2.ratio * 20)).all() and len({tuple(t.tolist()) for t in taken}) > 8
    if option.startswith('fusing'):
        sampler = stage2_sampler(cfg.stage2, data.train.targets)
        partners = torch.bincount(data.train.targets[sampler.indices()[:, 1]], minlength=10).float()
        counts = torch.tensor(data.counts, dtype=torch.float)
        target = 1 / counts if option == 'fusing_reverse' else torch.ones(10)
        assert torch.allclose(partners / partners.sum(), target / target.sum(), atol=0.06)
    if option == 'logit_adjusted':  # Menon et al.: cross-entropy of the logits plus τ·log(class prior)
        logits, y = torch.randn(6, 10, generator=torch.Generator().manual_seed(0)), torch.arange(6)
        prior = torch.tensor(data.counts, dtype=torch.float64) / sum(data.counts)
        expected = F.cross_entropy(logits.double() + cfg.stage2.tau * prior.log(), y).item()
        assert stage2_loss(cfg.stage2, data.counts)(logits, y).item() == pytest.approx(expected, rel=1e-5)
    if option == 'reinit_classifier':
        model, _ = stage2_model(cfg, data, rt, init)
        assert not torch.equal(model.fc.weight.cpu(), init['model']['fc.weight'])
        assert torch.equal(model.state_dict()['features.0.weight'].cpu(), init['model']['features.0.weight'])
    res = train_run(cfg, tmp_path, stage1_ckpt=stage1_ckpt, quiet=True)
    assert res['per_seed'][0]['stage2']['last']['top1'] > 20  # still learns the 10 digits well above chance


def test_fast_dev_run_trains_n_batches_and_writes_every_file(tmp_path):
    """The issue's check: the CIFAR-100-LT DR+H2T preset as a fast dev run on a CPU, both stages, the usual files, and
    it says so."""
    out = cli(
        '--preset', 'cifar100_lt_if100_dr_h2t', '--synthetic', '--fast-dev-run', '2', '--out', 'res', cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert (
        'fast dev run: every stage trains 2 batches' in out.stdout
        and 'FAST DEV RUN of 2 batches: the numbers mean nothing' in out.stdout
    )
    run_dir = tmp_path / 'res' / 'cifar100_lt_if100_dr_h2t'
    assert {p.name for p in run_dir.iterdir()} >= {
        'plan.json',
        'results.json',
        'results.csv',
        'curves_and_per_class.png',
        'seed0',
    }
    results = json.loads((run_dir / 'results.json').read_text())
    assert results['fast_dev_run'] == 2
    for stage in ('stage1', 'stage2'):
        assert {p.name for p in (run_dir / 'seed0' / stage).iterdir()} == {
            'best.pt',
            'last.pt',
            'final.pt',
            'report.json',
        }
        history = results['per_seed']['0'][stage]['history']
        assert [(h['epoch'], h['steps']) for h in history] == [(1, 2)]  # one epoch of two batches
    assert [l.split('  ')[0] for l in out.stdout.splitlines() if l.startswith('stage ')] == [
        'stage 1 epoch 1/1',
        'stage 2 epoch 1/1',
    ]


def test_fast_dev_run_from_the_environment_evaluates_a_spread_of_each_split(tmp_path, monkeypatch):
    """H2T_FAST_DEV_RUN is the default of every configuration built after it is set; evaluations read N batches spread
    over the split."""
    saved = {k: v for k, v in asdict(replace(TINY, eval_batch_size=100)).items() if k != 'fast_dev_run'}
    monkeypatch.setenv('H2T_FAST_DEV_RUN', '1')
    cfg = config_from_dict(saved)
    assert cfg.fast_dev_run == 1 and TINY.fast_dev_run == 0  # read once, when a configuration is built
    res = train_run(cfg, tmp_path, quiet=True)
    stage2 = res['per_seed'][0]['stage2']
    assert [(h['epoch'], h['steps']) for h in stage2['history']] == [(1, 1)]
    assert len(stage2['per_class_last']) == 10 and not any(
        math.isnan(a) for a in stage2['per_class_last']
    )  # 100 of 500 test images, every class
    monkeypatch.setenv('H2T_FAST_DEV_RUN', 'two')
    with pytest.raises(ValueError, match="H2T_FAST_DEV_RUN='two': use a whole number of batches"):
        config_from_dict(saved)


def test_amp_auto_follows_the_gpu_capability(monkeypatch):
    """fp16 + GradScaler on 7.x (T4, V100), bf16 on 8.0+, off on a CPU; torch's capability query mocked as a GPU would
    answer."""
    from h2t_nb.train import TrainConfig, choose_amp, choose_channels_last, setup_runtime

    cuda = torch.device('cuda', 0)
    for capability, amp in (
        ((7, 5), 'fp16'),
        ((7, 0), 'fp16'),
        ((8, 0), 'bf16'),
        ((8, 9), 'bf16'),
        ((9, 0), 'bf16'),
        ((6, 1), None),
    ):
        monkeypatch.setattr(torch.cuda, 'get_device_capability', lambda device=None, c=capability: c)
        chosen, why = choose_amp('auto', cuda)
        assert chosen == amp and f'compute capability {capability[0]}.{capability[1]}' in why
        assert choose_channels_last('auto', cuda, chosen) == (amp is not None)
    assert choose_amp('fp16', cuda) == ('fp16', 'fp16 autocast as asked') and choose_amp(None, cuda)[0] is None
    rt = setup_runtime(TrainConfig())  # this machine: a CPU, whatever torch.cuda answers about capabilities
    assert (rt.amp, rt.channels_last) == (None, False) and 'full precision' in rt.why


def test_a_copied_half_finished_run_resumes_to_the_same_numbers(tmp_path):
    """A run folder holds no absolute paths: moved elsewhere mid-run (the original deleted), it resumes to the
    uninterrupted run's weights and report."""
    whole = train_run(TINY, tmp_path / 'a', quiet=True)['run_dir']
    first = train_run(TINY, tmp_path / 'b', stop_after={1: 2}, quiet=True)['run_dir']
    moved = tmp_path / 'elsewhere' / 'copy'
    shutil.copytree(first, moved)
    shutil.rmtree(tmp_path / 'b')
    resume_run(moved, stop_after={2: 1}, quiet=True)  # stopped again, inside stage 2
    again = tmp_path / 'third' / 'place'
    shutil.copytree(moved, again)
    shutil.rmtree(moved)
    resume_run(again, quiet=True)
    for stage in ('stage1', 'stage2'):
        a, b = weights(whole / 'seed0' / stage / 'final.pt'), weights(again / 'seed0' / stage / 'final.pt')
        assert all(torch.equal(a[k], b[k]) for k in a), stage
    assert (
        json.loads((whole / 'results.json').read_text())['summary']
        == json.loads((again / 'results.json').read_text())['summary']
    )


def test_regime_knobs_reach_the_run_and_its_data(tmp_path):
    """The regime study's flags (#21): each lands in the plan, in what the stages book as trained, and in the data and
    model they shape."""
    from h2t_nb.config import config_from_dict
    from h2t_nb.datasets import build_data

    out = cli(
        '--preset',
        'digits100_lt_if100_dr_h2t',
        '--train-sources',
        '30',
        '--jitter',
        '3',
        '--rotate-left',
        '--width',
        '8',
        '--lr2',
        '0.005',
        '--imb-factor',
        '200',
        '--fast-dev-run',
        '2',
        '--out',
        'res',
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    run_dir = tmp_path / 'res' / 'digits100_lt_if100_dr_h2t'
    base = json.loads((run_dir / 'plan.json').read_text())['base']
    assert (
        base['train_sources'],
        base['jitter'],
        base['rotate_left'],
        base['width'],
        base['imb_factor'],
        base['stage2']['lr'],
    ) == (30, 3, True, 8, 200, 0.005)
    trained = json.loads((run_dir / 'seed0' / 'stage1' / 'report.json').read_text())['trained']
    assert {k: trained[k] for k in ('train_sources', 'jitter', 'rotate_left', 'width', 'imb_factor')} == dict(
        train_sources=30, jitter=3, rotate_left=True, width=8, imb_factor=200
    )
    assert weights(run_dir / 'seed0' / 'stage1' / 'final.pt')['fc.weight'].shape == (
        100,
        32,
    )  # 4 · width feature channels
    stage2 = json.loads((run_dir / 'seed0' / 'stage2' / 'report.json').read_text())
    assert max(h['lr'] for h in stage2['history']) <= 0.005 and stage2['trained']['stage2']['lr'] == 0.005
    data = build_data(config_from_dict(base))
    assert (
        tuple(data.train.images.shape[1:]) == (1, 8 + 2 * 3, 16 + 2 * 3) and sum(data.counts) == 9502
    )  # jitter 3, CIFAR-100-LT IF 200's count
    assert len(set(data.train.sources.flatten().tolist())) == 10 * 30
    upright = build_data(config_from_dict({**base, 'rotate_left': False}))
    assert torch.equal(upright.train.images[..., 8 + 3 :], data.train.images[..., 8 + 3 :])  # right digits as they were
    assert not torch.equal(upright.train.images[..., : 8 + 3], data.train.images[..., : 8 + 3])  # left digits turned
    before = tree_digest(run_dir)
    one_line_failure(
        cli('--resume', str(run_dir), '--rotate-left', '--lr2', '0.1', cwd=tmp_path),
        '--rotate-left --lr2 would change what it trains',
    )
    assert tree_digest(run_dir) == before


@pytest.mark.parametrize(
    'args, message',
    [
        (
            ['--jitter', '3', '--preset', 'cifar100_lt_if100_dr_h2t', '--synthetic'],
            "jitter=3 shapes Digits-100-LT only",
        ),
        (['--width', '8', '--preset', 'digits100_lt_if100_r32_dr_h2t'], "model='resnet32' does not"),
    ],
)
def test_bad_regime_knobs_are_refused_before_any_folder(tmp_path, args, message):
    "A knob where it means nothing, in one line (out-of-range values are 05d_config's notebook tests)."
    one_line_failure(cli(*args, '--out', 'res', cwd=tmp_path), message)
    assert not (tmp_path / 'res').exists()
