"""CLIPScore through a real transformers CLIPModel (tiny, random weights: conftest's ``tiny_clip``): it pairs
image i with prompt i, equals 100 * max(cos, 0) of CLIP's own forward, and is reported
unavailable with the reason when no model loads."""
import pytest
import torch

from gear.evaluation.clip_score import build_clip_scorer

from ..conftest import CLIP_PROMPTS as PROMPTS


def test_clip_score_is_clips_own_cosine_per_pair(tiny_clip):
    scorer, why = build_clip_scorer(tiny_clip)
    assert why is None
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (3, 32, 32, 3), dtype=torch.uint8, generator=g)
    per = scorer.per_image(images, PROMPTS)
    text = scorer.tokenizer(PROMPTS, padding=True, return_tensors='pt')
    with torch.no_grad():
        out = scorer.model(**text, pixel_values=scorer._images(images))
    cos = out.logits_per_image.diag() / scorer.model.logit_scale.exp()  # (3,)
    torch.testing.assert_close(scorer.cosine(images, PROMPTS), cos, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(per, 100 * cos.clamp(min=0), atol=1e-4, rtol=1e-4)
    swapped = scorer.cosine(images.flip(0), PROMPTS)  # other pairs, other cosines
    assert not torch.allclose(swapped, cos, atol=1e-4)
    assert scorer.score(images, PROMPTS) == pytest.approx(float(per.mean()))
    with pytest.raises(ValueError, match='3 images but 2 prompts'):
        scorer.per_image(images, PROMPTS[:2])


def test_no_clip_model_is_reported_with_the_reason(tmp_path):
    assert build_clip_scorer(None)[0] is None and 'no CLIP model' in build_clip_scorer(None)[1]
    scorer, why = build_clip_scorer(str(tmp_path / 'missing'))
    assert scorer is None and 'missing' in why and 'does not load' in why
