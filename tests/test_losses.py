import math

import pytest
import torch
import torch.nn.functional as F
from conftest import TEST_ARCH

from modaclip.core.errors import ModaclipError
from modaclip.model.clip_model import create_base_model, ensure_logit_bias, load_model, save_model
from modaclip.train.losses import LOSSES, FieldPart, caption_keys, create_loss, field_keys


def unit(n: int, d: int = 8, seed: int = 0) -> torch.Tensor:
    return F.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=1)


def test_multipos_equals_infonce_when_all_captions_differ() -> None:
    images, texts, scale = unit(6, seed=1), unit(6, seed=2), torch.tensor(10.0)
    keys = caption_keys([f"caption {i}" for i in range(6)])
    clip = create_loss("clip")(images, texts, scale, logit_bias=None, caption_keys=keys)
    multipos = create_loss("multipos")(images, texts, scale, logit_bias=None, caption_keys=keys)
    assert torch.allclose(multipos, clip, rtol=0, atol=1e-6)
    assert multipos.item() > 0


def text_gradients(name: str, images: torch.Tensor, texts: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    texts = texts.clone().requires_grad_(True)
    create_loss(name)(images, texts, torch.tensor(20.0), logit_bias=None, caption_keys=keys).backward()
    return texts.grad


def test_multipos_does_not_push_identical_captions_apart() -> None:
    # items 0 and 1 have the same caption, so the text tower gives them the same embedding.
    texts = unit(4, seed=3)
    texts[1] = texts[0]
    images = unit(4, seed=6)
    keys = caption_keys(["red dress", "red dress", "blue jeans", "black shoes"])
    clip = text_gradients("clip", images, texts, keys)
    multipos = text_gradients("multipos", images, texts, keys)
    # InfoNCE pulls each copy of the caption toward a different image (toward two places at once);
    # multi-positive gives both copies the same gradient, so equal inputs stay consistent.
    assert not torch.allclose(clip[0], clip[1], atol=1e-3)
    assert torch.allclose(multipos[0], multipos[1], atol=1e-7)


def test_siglip_needs_and_gets_a_logit_bias(tmp_path) -> None:
    bundle = create_base_model(TEST_ARCH, "none", 0)
    assert bundle.model.logit_bias is None and create_loss("siglip").needs_logit_bias
    assert ensure_logit_bias(bundle) and not ensure_logit_bias(bundle)
    images, texts = unit(4, seed=4), unit(4, seed=5)
    loss = create_loss("siglip")(
        images, texts, torch.tensor(10.0), logit_bias=bundle.model.logit_bias, caption_keys=caption_keys(list("abcd"))
    )
    assert torch.isfinite(loss)
    save_model(bundle, tmp_path / "m")
    assert load_model(tmp_path / "m").model.logit_bias.item() == pytest.approx(-10.0)


def test_caption_keys_are_equal_exactly_for_equal_texts() -> None:
    keys = caption_keys(["a", "b", "a"]).tolist()
    assert keys[0] == keys[2] != keys[1]
    assert caption_keys(["a"]).tolist() == keys[:1]  # stable across calls (and processes: no hash salt)


def test_unknown_loss_is_named() -> None:
    with pytest.raises(ModaclipError, match=r"train\.loss: unknown loss 'triplet'"):
        create_loss("triplet")
    assert set(LOSSES) == {"clip", "multipos", "siglip", "fields"}


def hand_multipos(images: list[list[float]], texts: list[list[float]], names: list[str | None], scale: float) -> float:
    """The multi-positive loss of one field written out with plain floats: for each item that has a
    text, cross-entropy against the uniform distribution over the items sharing its text, image->text
    and text->image averaged; items without a text (None) take no part."""
    present = [i for i, name in enumerate(names) if name is not None]

    def dot(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b))

    total = 0.0
    for i in present:
        positives = [j for j in present if names[j] == names[i]]
        for query, gallery in ((images[i], texts), (texts[i], images)):
            logits = {j: scale * dot(query, gallery[j]) for j in present}
            log_norm = math.log(sum(math.exp(v) for v in logits.values()))
            total += -sum(logits[j] - log_norm for j in positives) / len(positives) / 2
    return total / len(present)


def test_field_aware_loss_matches_a_hand_computation() -> None:
    """4 items; two share a type text, two share a colour text, one has no title."""
    images, captions, types, colours, titles = (unit(4, d=3, seed=s) for s in (10, 11, 12, 13, 14))
    types[1] = types[0]  # equal texts get equal embeddings
    colours[3] = colours[2]
    fields = {
        "captions": (captions, ["red dress", "blue dress", "red heels", "black heels"], 1.0),
        "type": (types, ["a photo of a dresses", "a photo of a dresses", "a photo of a heels", None], 0.5),
        "colour": (colours, ["red", "blue", "black", "black"], 2.0),
        "title": (titles, ["Roadster Red Dress", None, "Mochi Red Heels", "Bata Black Heels"], 0.25),
    }
    scale = 7.0
    parts = [FieldPart(weight, text, field_keys(names)) for text, names, weight in fields.values()]
    loss = create_loss("fields")(
        images, captions, torch.tensor(scale), logit_bias=None, caption_keys=parts[0].keys, fields=parts
    )

    by_hand = sum(
        weight * hand_multipos(images.tolist(), text.tolist(), names, scale) for text, names, weight in fields.values()
    )
    assert loss.item() == pytest.approx(by_hand, rel=1e-5)
    assert by_hand > 0


def test_field_aware_with_the_caption_alone_is_multipos() -> None:
    images, texts, keys = unit(6, seed=20), unit(6, seed=21), caption_keys(["a", "a", "b", "c", "c", "c"])
    fields = create_loss("fields")(
        images, texts, torch.tensor(9.0), logit_bias=None, caption_keys=keys, fields=[FieldPart(1.0, texts, keys)]
    )
    multipos = create_loss("multipos")(images, texts, torch.tensor(9.0), logit_bias=None, caption_keys=keys)
    assert torch.allclose(fields, multipos, rtol=0, atol=1e-6)


def test_field_aware_without_texts_is_an_error() -> None:
    images = unit(2)
    with pytest.raises(ModaclipError, match=r"train\.fields"):
        create_loss("fields")(
            images, images, torch.tensor(1.0), logit_bias=None, caption_keys=caption_keys(["a", "b"]), fields=[]
        )


def test_a_field_no_item_has_adds_nothing_and_keeps_gradients_finite() -> None:
    images = unit(3, seed=30).requires_grad_(True)
    texts = unit(3, seed=31)
    keys = caption_keys(["a", "b", "c"])
    nobody = FieldPart(1.0, unit(3, seed=32), field_keys([None, None, None]))
    with_empty = create_loss("fields")(
        images,
        texts,
        torch.tensor(5.0),
        logit_bias=None,
        caption_keys=keys,
        fields=[FieldPart(1.0, texts, keys), nobody],
    )
    alone = create_loss("fields")(
        images, texts, torch.tensor(5.0), logit_bias=None, caption_keys=keys, fields=[FieldPart(1.0, texts, keys)]
    )
    assert with_empty.item() == pytest.approx(alone.item())
    with_empty.backward()
    assert torch.isfinite(images.grad).all()


def softplus(x: float) -> float:
    """-log sigmoid(-x) = log(1 + e^x): the cost of a logit x on the wrong side."""
    return math.log1p(math.exp(x))


ORTHONORMAL = torch.eye(2)


def test_siglip_known_values() -> None:
    """SigLIP: -mean over images of the sum over pairs of log sigmoid(label * (scale * cos + bias)), label +-1."""
    siglip = create_loss("siglip")
    keys = caption_keys(["a", "b"])
    # cos = identity, scale 10, bias -10: matched pairs logit 0 -> log 2 each, mismatched -10 -> log(1 + e^-10) each
    loss = siglip(ORTHONORMAL, ORTHONORMAL, torch.tensor(10.0), logit_bias=torch.tensor(-10.0), caption_keys=keys)
    assert loss.item() == pytest.approx((2 * math.log(2) + 2 * softplus(-10)) / 2, rel=1e-6)
    # images (1, 0), (0.6, 0.8); texts (0.6, 0.8), (0, 1): cos [[0.6, 0], [1, 0.8]]; scale 2, bias 1
    # logits [[2.2, 1], [3, 2.6]]: matched 2.2 and 2.6 cost softplus(-x), mismatched 1 and 3 cost softplus(x)
    images = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    texts = torch.tensor([[0.6, 0.8], [0.0, 1.0]])
    loss = siglip(images, texts, torch.tensor(2.0), logit_bias=torch.tensor(1.0), caption_keys=keys)
    expected = (softplus(-2.2) + softplus(1.0) + softplus(3.0) + softplus(-2.6)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_clip_and_multipos_known_values() -> None:
    # InfoNCE on cos = identity, scale 2: each row's softmax gives its match e^2 / (e^2 + 1), both directions
    keys = caption_keys(["a", "b"])
    clip = create_loss("clip")(ORTHONORMAL, ORTHONORMAL, torch.tensor(2.0), logit_bias=None, caption_keys=keys)
    assert clip.item() == pytest.approx(softplus(-2), rel=1e-6)
    # the same pairs with one caption for both: each row's target is (1/2, 1/2), so
    # -(1/2) log(e^2 / (e^2 + 1)) - (1/2) log(1 / (e^2 + 1)) per row
    same = create_loss("multipos")(
        ORTHONORMAL, ORTHONORMAL, torch.tensor(2.0), logit_bias=None, caption_keys=caption_keys(["a", "a"])
    )
    assert same.item() == pytest.approx((softplus(-2) + softplus(2)) / 2, rel=1e-6)
