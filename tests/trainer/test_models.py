"""ResNet-32 as LDAM-DRW defines it, and BCL's cosine classifier, against hand-derived values."""

import math

import pytest
import torch
import torch.nn as nn

from rcl_study.trainer.models import NormedLinear, ResNet32, build_model, count_parameters


def _conv(cin, cout, k=3):
    return cin * cout * k * k


def _bn(c):
    return 2 * c  # weight and bias


def expected_resnet32_params(in_channels=3, widths=(16, 32, 64), blocks=5):
    """From the architecture (He et al. 2016 Sec. 4.2, LDAM-DRW resnet_cifar.py): stem conv + BN,
    then per block two 3x3 convs + two BNs; option-A shortcuts add nothing."""
    total = _conv(in_channels, widths[0]) + _bn(widths[0])
    cin = widths[0]
    for w in widths:
        for _ in range(blocks):
            total += _conv(cin, w) + _bn(w) + _conv(w, w) + _bn(w)
            cin = w
    return total


def test_resnet32_parameter_count_matches_the_canon():
    backbone = ResNet32()
    assert count_parameters(backbone) == expected_resnet32_params()
    # backbone + LDAM-DRW's linear layer (64 -> 10, with bias): "ResNet32 ... 0.46M"
    net = build_model("resnet32", 3, 10, 32)
    fc = 64 * 10 + 10
    assert (
        count_parameters(net.backbone) + count_parameters(net.fc) == expected_resnet32_params() + fc
    )
    assert round((expected_resnet32_params() + fc) / 1e6, 2) == 0.46
    # BCL's two MLP heads on top (64 -> 512 -> BN -> 128, twice), counted apart
    head = 64 * 512 + 512 + _bn(512) + 512 * 128 + 128
    assert count_parameters(net.head) == head and count_parameters(net.head_fc) == head
    assert count_parameters(net) == expected_resnet32_params() + fc + 2 * head
    # the cosine classifier has no bias
    cos = build_model("resnet32", 3, 10, 32, classifier="cosine")
    assert count_parameters(cos.fc) == 64 * 10


def test_option_a_shortcut_has_no_parameters_and_pads_with_zeros():
    net = ResNet32()
    blocks = list(net.layers)
    assert len(blocks) == 15
    changing = [b for b in blocks if not isinstance(b.shortcut, nn.Identity)]
    assert len(changing) == 2  # first block of stages 2 and 3
    for b in blocks:
        assert sum(p.numel() for p in b.shortcut.parameters()) == 0
        assert not any(isinstance(m, nn.Conv2d) for m in b.shortcut.modules())
    x = torch.randn(2, 16, 8, 8)
    out = changing[0].shortcut(x)
    assert out.shape == (2, 32, 4, 4)
    # 8 zero channels, the input subsampled at even rows and columns, 8 zero channels
    assert torch.equal(out[:, :8], torch.zeros(2, 8, 4, 4))
    assert torch.equal(out[:, 8:24], x[:, :, 0::2, 0::2])
    assert torch.equal(out[:, 24:], torch.zeros(2, 8, 4, 4))


def test_resnet32_shapes():
    net = build_model("resnet32", 3, 10, 32).eval()
    x = torch.randn(2, 3, 32, 32)
    h = net.backbone.stem(x)
    sizes = []
    for b in net.backbone.layers:
        h = b(h)
        sizes.append(tuple(h.shape[1:]))
    assert sizes[:5] == [(16, 32, 32)] * 5
    assert sizes[5:10] == [(32, 16, 16)] * 5
    assert sizes[10:] == [(64, 8, 8)] * 5
    feats, logits, _ = net(x)
    assert feats.shape == (2, 64) and logits.shape == (2, 10)


def _assert_kaiming_normal(weight, fan_in):
    """Sample mean 0 and std sqrt(2 / fan_in), within 5 standard errors of a normal sample."""
    w = weight.detach().flatten().double()
    n, sigma = w.numel(), math.sqrt(2.0 / fan_in)
    assert abs(w.mean().item()) < 5 * sigma / math.sqrt(n)
    # the sample std of n normal draws has standard error about sigma / sqrt(2 n)
    assert abs(w.std().item() / sigma - 1) < 5 / math.sqrt(2 * n), (w.std().item(), sigma)


def test_kaiming_normal_init_of_convs_and_classifier():
    torch.manual_seed(0)
    net = build_model("resnet32", 3, 10, 32)
    convs = [m for m in net.backbone.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 31  # stem + 15 blocks x 2
    for conv in convs:
        cin, k = conv.weight.shape[1], conv.weight.shape[2]
        _assert_kaiming_normal(conv.weight, cin * k * k)
    _assert_kaiming_normal(net.fc.weight, 64)
    # normal, not uniform: kurtosis of a normal sample is 3 (uniform: 1.8)
    w = [c.weight.detach().flatten().double() for c in convs[-8:]]  # all 64 -> 64
    z = torch.cat([(v - v.mean()) / v.std() for v in w])
    assert abs((z**4).mean().item() - 3.0) < 0.1


def test_cosine_classifier_equals_hand_formula():
    fc = NormedLinear(2, 3)
    with torch.no_grad():
        # class vectors at 0, 90 and 180 degrees, of lengths 2, 0.5 and 3 (length must not matter)
        fc.weight.copy_(torch.tensor([[2.0, 0.0], [0.0, 0.5], [-3.0, 0.0]]))
    # inputs at 60 degrees (length 4) and at 0 degrees (length 0.1)
    x = torch.tensor([[2.0, 2.0 * math.sqrt(3)], [0.1, 0.0]])
    want = 30 * torch.tensor([[0.5, math.sqrt(3) / 2, -0.5], [1.0, 0.0, -1.0]])
    assert torch.allclose(fc(x), want, atol=1e-5)


def test_cosine_classifier_init_is_bcl_s():
    torch.manual_seed(0)
    fc = NormedLinear(64, 100)
    w = fc.weight.detach()
    # uniform(-1, 1) then every class vector rescaled to unit norm
    assert torch.allclose(w.norm(dim=1), torch.ones(100), atol=1e-6)
    assert w.abs().max() <= 1.0
    # directions of a uniform cube sample: mean |coordinate| / norm = E|U| / sqrt(E U^2) = sqrt(3)/2
    ratio = (w.abs().mean(dim=1) * math.sqrt(64)).mean().item()
    assert abs(ratio - math.sqrt(3) / 2) < 0.02


@pytest.mark.parametrize("classifier", ["linear", "cosine"])
def test_bclnet_with_either_classifier(classifier):
    net = build_model("resnet32", 3, 5, 32, proj_hidden=16, proj_dim=8, classifier=classifier)
    _, logits, proj = net(torch.randn(4, 3, 32, 32))
    assert logits.shape == (4, 5) and proj.shape == (4, 8)
    if classifier == "cosine":
        assert isinstance(net.fc, NormedLinear) and logits.abs().max() <= 30 + 1e-4
    protos = net.prototypes()
    assert protos.shape == (5, 8) and torch.allclose(protos.norm(dim=1), torch.ones(5))
    protos.sum().backward()
    assert net.fc.weight.grad is not None  # prototypes are built from the classifier's weights


def test_unknown_classifier_is_rejected():
    with pytest.raises(ValueError, match="classifier"):
        build_model("resnet32", 3, 5, 32, classifier="cos")


def test_small_cnn_s2_is_small_cnn_with_a_stride_2_stem():
    """Same weights as ``small_cnn`` (same parameter count, same init stream); the first conv at
    stride 2, so its output is half the input's size (28 -> 14; the max-pool then gives 7)."""
    torch.manual_seed(0)
    plain = build_model("small_cnn", 1, 10, 28, 32, 16, 8)
    torch.manual_seed(0)
    s2 = build_model("small_cnn_s2", 1, 10, 28, 32, 16, 8)
    assert count_parameters(s2) == count_parameters(plain)
    for (na, a), (nb, b) in zip(plain.state_dict().items(), s2.state_dict().items(), strict=True):
        assert na == nb and torch.equal(a, b)
    x = torch.rand(3, 1, 28, 28)
    stem = s2.backbone.net[0]
    assert stem.stride == (2, 2) and plain.backbone.net[0].stride == (1, 1)
    assert stem(x).shape == (3, 8, 14, 14)
    # by hand: the stride-2 stem is the stride-1 stem's output at every other pixel
    assert torch.allclose(stem(x), plain.backbone.net[0](x)[:, :, ::2, ::2], atol=1e-6)
    feats, logits, proj = s2(x)
    assert feats.shape == (3, 16) and logits.shape == (3, 10) and proj.shape == (3, 16)


def test_small_cnn_s2_refuses_images_too_small_to_halve_twice():
    with pytest.raises(ValueError, match="needs >= 4 px"):
        build_model("small_cnn_s2", 1, 10, 3)
