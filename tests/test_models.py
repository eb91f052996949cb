"One contract for every backbone: the feature / head seam that H2T fuses at (as timm's test_models does)."

import pytest
import torch

from h2t_nb.fusion import h2t_fuse
from h2t_nb.models import MODELS, freeze_backbone, resnet32
import h2t_nb.hosts  # noqa: F401  registers the hosts' models in MODELS

# input and feature-map shapes per registry entry; resnet152_imagenet is resnet152 with downloaded weights (no network
# here)
SHAPES = {
    'resnet32': (100, (2, 3, 32, 32), (64, 8, 8)),
    'small_cnn': (10, (2, 1, 8, 8), (128, 4, 4)),
    'resnet50': (7, (2, 3, 64, 64), (2048, 2, 2)),
    'resnext50': (7, (2, 3, 64, 64), (2048, 2, 2)),
    'resnet152': (7, (2, 3, 32, 32), (2048, 1, 1)),
    # the hosts' cosine-head models (06d_hosts)
    'resnet32_cosine': (100, (2, 3, 32, 32), (64, 8, 8)),
    'small_cnn_cosine': (10, (2, 1, 8, 8), (128, 4, 4)),
    'resnet50_cosine': (7, (2, 3, 64, 64), (2048, 2, 2)),
}
DOWNLOADS = {
    'resnet152_imagenet',
    'resnet152_imagenet_cosine',
    'ride_resnet152_imagenet',
}  # need ImageNet weights (no network here)
EXPERTS = {
    'ride_resnet32',
    'ride_resnet32_reduced',
    'ride_small_cnn',
    'ride_resnet50',
}  # one map per expert: tests/test_hosts.py
BRANCHES = {
    'reslt_resnet32',
    'reslt_small_cnn',
}  # a head of three branches (pre-logits per branch): tests/test_hosts.py


def test_every_registered_model_has_a_contract_case():
    assert set(MODELS) == set(SHAPES) | DOWNLOADS | EXPERTS | BRANCHES


@pytest.mark.parametrize('name', SHAPES)
def test_feature_head_contract(name):
    classes, in_shape, feat_shape = SHAPES[name]
    torch.manual_seed(0)
    model = MODELS[name](classes, in_shape[1]).eval()
    x = torch.randn(in_shape)
    with torch.no_grad():
        f = model.forward_features(x)
        assert f.shape == (in_shape[0], *feat_shape) and f.shape[1] == model.num_features
        logits = model.forward_head(f)
        assert logits.shape == (in_shape[0], model.get_classifier().out_features)
        assert torch.allclose(model(x), logits)
        assert model.forward_head(f, pre_logits=True).shape == (in_shape[0], model.num_features)
        # the pooled path: fusing the maps or the pooled vectors with the same subset gives the same logits
        g = torch.randn_like(f)
        a = model.forward_head(h2t_fuse(f, g, 0.3, generator=torch.Generator().manual_seed(0)))
        b = model.forward_head(
            h2t_fuse(f.mean((2, 3)), g.mean((2, 3)), 0.3, generator=torch.Generator().manual_seed(0))
        )
        assert torch.allclose(a, b, atol=1e-5)
    model.reset_classifier(3)
    assert model(x).shape == (in_shape[0], 3)


@pytest.mark.parametrize('shift_bn', [True, False])
def test_freeze_backbone_trains_only_the_head(shift_bn):
    torch.manual_seed(0)
    model = resnet32(10).train()
    params = freeze_backbone(model, shift_bn)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(params, lr=0.1)
    loss = model(torch.randn(8, 3, 32, 32) + 1).logsumexp(1).mean()
    loss.backward()
    opt.step()
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    stats = {k for k in changed if 'running' in k or 'num_batches' in k}
    assert changed - stats == {'fc.weight', 'fc.bias'}
    assert bool(stats) == shift_bn
