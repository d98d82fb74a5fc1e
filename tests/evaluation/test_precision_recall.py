"""Improved precision / recall on hand-made and random feature sets, and the Inception Score on
hand-made logits."""
import math

import numpy as np
import pytest
import torch

from gear.evaluation.generative import inception_score
from gear.evaluation.precision_recall import manifold_radii, precision_recall


def _brute_force(real, fake, k):
    """Loop-by-loop reference: k-th nearest other point, balls inclusive."""
    def radii(x):
        d = ((x[:, None] - x[None]) ** 2).sum(-1)  # (N, N)
        return np.sort(d, axis=1)[:, k]  # column 0 is the point itself
    def inside(points, manifold, r):
        d = ((points[:, None] - manifold[None]) ** 2).sum(-1)  # (M, N)
        return (d <= r[None]).any(1).mean()
    return inside(fake, real, radii(real)), inside(real, fake, radii(fake))


def test_identical_sets_give_one_and_one():
    x = torch.randn(50, 8, generator=torch.Generator().manual_seed(0))
    assert precision_recall(x, x.clone()) == dict(precision=1.0, recall=1.0)


def test_far_apart_clusters_give_zero_and_zero():
    g = torch.Generator().manual_seed(1)
    real = torch.randn(40, 16, generator=g)
    fake = torch.randn(30, 16, generator=g) + 1000.0
    assert precision_recall(real, fake) == dict(precision=0.0, recall=0.0)


def test_hand_made_2d_case():
    # real: unit-square corners (k=1 radius^2 = 1) and an outlier at (-10, 10) (radius^2 181)
    real = np.array([[0, 0], [1, 0], [0, 1], [1, 1], [-10, 10]], np.float64)
    # fake: (0.5, 0.5) d^2 0.5, (1.9, 0) d^2 0.81, (0, -0.9) d^2 0.81 lie in corner balls;
    # (3, 3) is d^2 8 from (1, 1) and 218 from the outlier: outside -> precision 3/4.
    # fake k=1 radii^2: 2.21, 2.21, 2.21, 10.21: every corner is within 0.5 of (0.5, 0.5), the
    # outlier is 200.5 / 218 away from the nearest fake balls -> recall 4/5.
    fake = np.array([[0.5, 0.5], [1.9, 0], [0, -0.9], [3, 3]], np.float64)
    out = precision_recall(real, fake, k=1)
    assert out['precision'] == pytest.approx(0.75) and out['recall'] == pytest.approx(0.8)
    assert torch.allclose(manifold_radii(torch.as_tensor(real), k=1),
                          torch.tensor([1., 1., 1., 1., 181.], dtype=torch.float64))


def test_hand_made_1d_case_with_boundary():
    real = np.arange(10, dtype=np.float64)  # (10,) 1-D features; k=3 radius^2: 9 at the ends
    fake = np.array([-3.0, 4.5, 12.5, 20.0, 30.0])
    # -3 is exactly on the ball of 0 (inclusive), 4.5 inside; 12.5 is 12.25 from 9 (radius^2 9).
    out = precision_recall(real, fake, k=3)
    assert out['precision'] == pytest.approx(2 / 5)
    # fake k=3 radii^2: -3 -> 23^2, 4.5 -> 15.5^2, 12.5 -> 15.5^2, 20 -> 15.5^2, 30 -> 25.5^2
    # -> every real point 0..9 is within 7.5 of 4.5: recall 1.
    assert out['recall'] == 1.0
    assert out == pytest.approx(dict(zip(('precision', 'recall'),
                                         _brute_force(real[:, None], fake[:, None], 3))))


@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
def test_batched_matches_brute_force(dtype):
    rng = np.random.default_rng(2)
    real = rng.normal(size=(60, 5))
    fake = rng.normal(size=(45, 5)) * 1.5 + 0.5
    expected = _brute_force(real, fake, 3)
    out = precision_recall(real, fake, k=3, row_batch_size=7, dtype=dtype)
    assert 0 < expected[0] < 1 and 0 < expected[1] < 1
    assert (out['precision'], out['recall']) == pytest.approx(expected)


def test_errors():
    with pytest.raises(ValueError, match='more than k'):
        precision_recall(np.zeros((3, 2)), np.zeros((10, 2)), k=3)
    with pytest.raises(ValueError, match='dims differ'):
        precision_recall(np.zeros((10, 2)), np.zeros((10, 3)))


def test_inception_score_uniform_is_one():
    assert inception_score(torch.zeros(12, 7)) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize('num_classes', [2, 10, 1008])
def test_inception_score_confident_balanced_is_num_classes(num_classes):
    labels = torch.arange(3 * num_classes) % num_classes
    logits = 60.0 * torch.nn.functional.one_hot(labels, num_classes).double()  # p(y|x) ~ one-hot
    assert inception_score(logits) == pytest.approx(num_classes, rel=1e-9)
    # 3 splits of C consecutive samples, each balanced over all classes: each scores C
    assert inception_score(logits, split_size=num_classes) == pytest.approx(num_classes, rel=1e-9)


def test_inception_score_one_class_and_two_half_confident():
    assert inception_score(torch.tensor([[50.0, 0.0]] * 4)) == pytest.approx(1.0)
    # p(y|x) = (p, 1-p) and (1-p, p): marginal uniform, IS = exp(log 2 - H(p))
    p = 0.8
    logits = torch.tensor([[math.log(p), math.log(1 - p)], [math.log(1 - p), math.log(p)]],
                          dtype=torch.float64)
    h = -(p * math.log(p) + (1 - p) * math.log(1 - p))
    assert inception_score(logits) == pytest.approx(math.exp(math.log(2) - h), rel=1e-9)
