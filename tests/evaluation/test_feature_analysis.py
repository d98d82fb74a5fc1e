"""Feature analysis: linear CKA on known cases, the tokenizer grid -> teacher patch order, and
``feature_alignment`` on a tiny model (its projector cosine is validation's ``cos/{teacher}``)."""
import numpy as np
import pytest
import torch
from scipy.stats import ortho_group

from gear.evaluation.feature_analysis import (feature_alignment, grid_to_rows, linear_cka,
                                              mean_patch_cosine)
from gear.registry import MODELS

from ..models.test_frozen_tokenizer_ar import stage1_weights, stage2_cfg  # noqa: F401 (fixture)
from ..models.test_gear_invariants import TINY_GEAR


def cka_by_hand(x, y):
    """Linear CKA (Kornblith et al. 2019), written out: ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)."""
    x, y = (np.asarray(a, dtype=np.float64) for a in (x, y))
    x, y = x - x.mean(0), y - y.mean(0)
    return np.sum((y.T @ x) ** 2) / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))


def _rng_features(n=500, d=12, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)) @ np.diag(np.linspace(0.5, 3, d))


def test_cka_identical_is_one_and_symmetric():
    x = _rng_features()
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    y = x[:, :5] + 0.3 * _rng_features(d=5, seed=1)
    assert linear_cka(x, y) == pytest.approx(linear_cka(y, x), rel=1e-12)
    assert linear_cka(x, y) == pytest.approx(cka_by_hand(x, y), rel=1e-10)


def test_cka_invariant_to_orthogonal_transform_isotropic_scaling_and_shift():
    x = _rng_features()
    y = np.tanh(x[:, :6]) + 0.2 * _rng_features(d=6, seed=2)
    q = ortho_group.rvs(12, random_state=3)
    reference = linear_cka(x, y)
    assert linear_cka(x @ q, y) == pytest.approx(reference, rel=1e-10)
    assert linear_cka(7.5 * x + 3.0, 0.01 * y) == pytest.approx(reference, rel=1e-10)
    # a non-isotropic scaling is not an invariance of CKA
    assert abs(linear_cka(x * np.linspace(1, 20, 12), y) - reference) > 1e-3


def test_cka_known_values():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(2000, 1)), rng.normal(size=(2000, 1))
    # 1-D features: linear CKA is the squared Pearson correlation
    y = a + 0.5 * b
    r = np.corrcoef(a[:, 0], y[:, 0])[0, 1]
    assert linear_cka(a, y) == pytest.approx(r ** 2, rel=1e-10)
    # independent random features: near 0 (bias ~ d / n)
    assert linear_cka(rng.normal(size=(4000, 8)), rng.normal(size=(4000, 16))) < 0.02
    # float32 tensors go through float64
    t = torch.from_numpy(_rng_features()).float()
    assert linear_cka(t, t) == pytest.approx(1.0, abs=1e-9)
    assert np.isnan(linear_cka(np.ones((10, 3)), rng.normal(size=(10, 2))))
    with pytest.raises(ValueError, match='same examples'):
        linear_cka(np.zeros((3, 2)), np.zeros((4, 2)))


def test_mean_patch_cosine_and_grid_order():
    a = torch.randn(2, 5, 7)
    assert mean_patch_cosine(a, a) == pytest.approx(1.0, abs=1e-6)
    assert mean_patch_cosine(a, -3 * a) == pytest.approx(-1.0, abs=1e-6)
    feat = torch.randn(2, 3, 4, 5)  # (B, C, h, w)
    rows = grid_to_rows(feat)  # (B*h*w, C)
    assert rows.shape == (40, 3)
    assert torch.equal(rows[1 * 20 + 2 * 5 + 3], feat[1, :, 2, 3])  # b * h * w + i * w + j


def test_feature_alignment_on_a_tiny_stage2_model(stage1_weights):  # noqa: F811
    _, path = stage1_weights
    torch.manual_seed(0)
    model = MODELS.build(stage2_cfg(path)).eval()
    g = torch.Generator().manual_seed(5)
    x = torch.rand(4, 3, 16, 16, generator=g) * 2 - 1
    labels = torch.tensor([0, 3, 7, 9])
    out = feature_alignment(model, x, labels)
    assert out['num_images'] == 4 and out['num_patches'] == 64 and out['align_depth'] == 1
    stats = out['teachers']['effnet']
    # the two CKAs, by hand: EMA tokenizer latents and the EMA prior's hidden state after
    # align_depth blocks, one row per token position, against the teacher's patch features
    with torch.no_grad():
        y = model.teacher_features(x)['effnet'].flatten(0, 1).numpy()  # (B*N, C)
        z = model.tokenizer.encode_features(x)  # (B, C_z, h, w)
        z = z.permute(0, 2, 3, 1).flatten(0, 2).numpy()  # (B*h*w, C_z), row-major grid
        tokens = model.encode(x)  # (B, N)
        prior = model.prior_ema.module
        h = prior.ar(tokens[:, :-1], labels, return_hidden_at=prior.align_depth).hidden
    assert stats['cka_tokenizer'] == pytest.approx(cka_by_hand(z, y), rel=1e-4)
    assert stats['cka_ar'] == pytest.approx(cka_by_hand(h.flatten(0, 1).numpy(), y), rel=1e-4)
    # the projector cosine is validation's per-image cos, averaged
    val = model.val_step(dict(img=x, label=labels))
    assert stats['projector_cosine'] == pytest.approx(np.mean([v['cos/effnet'] for v in val]),
                                                      abs=1e-5)
    # CKA of the tokenizer against the teacher, by hand
    y = model.teacher_features(x)['effnet'].reshape(4 * 64, -1)  # (B*N, C)
    z = model.tokenizer.encode_features(x)  # (B, C_z, 8, 8)
    assert stats['cka_tokenizer'] == pytest.approx(linear_cka(grid_to_rows(z), y), rel=1e-9)
    tokenizer_only = MODELS.build(dict(
        type='TokenizerWarmup', tokenizer=TINY_GEAR['tokenizer'],
        discriminator=TINY_GEAR['discriminator'], recon_loss=dict(type='L1Loss'),
        gan_loss=dict(type='GANLoss')))
    with pytest.raises(ValueError, match='no teachers'):
        feature_alignment(tokenizer_only, x, labels)
