"""GIN + IPA random-appearance augmentation (RandGIN, RandGINd) and its use in the slice datasets."""

from __future__ import annotations

import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_semgan.data import RandGIN, RandGINd, make_slice_dataset


def _image(seed: int = 0) -> torch.Tensor:
    """A 1 x 32 x 32 image in [-1, 1]: a bright disc on a dark background, with noise."""
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    disc = ((yy - 16) ** 2 + (xx - 14) ** 2 < 100).float()
    return (disc * 1.2 - 0.8 + 0.1 * torch.rand(1, 32, 32, generator=gen)).clamp(-1, 1)


@pytest.mark.parametrize("ipa_prob", [0.0, 1.0])
def test_shape_dtype_and_range_are_kept_and_the_input_untouched(ipa_prob: float) -> None:
    x = _image()
    before = x.clone()
    t = RandGIN(ipa_prob=ipa_prob).set_random_state(0)
    for _ in range(5):
        y = t(x)
        assert y.shape == x.shape and y.dtype == x.dtype and torch.isfinite(y).all()
        assert float(y.min()) >= float(x.min()) - 1e-6 and float(y.max()) <= float(x.max()) + 1e-6
    assert torch.equal(x, before)
    assert (t._control is not None) is (ipa_prob == 1.0)  # IPA drew its blend map exactly when asked


def test_other_array_types_and_dtypes_are_kept() -> None:
    x = _image()
    t = RandGIN().set_random_state(1)
    y = t(x.numpy())
    assert isinstance(y, np.ndarray) and y.dtype == np.float32 and y.shape == (1, 32, 32)
    assert t(x.half()).dtype == torch.float16
    meta = MetaTensor(x, meta={"filename_or_obj": "a.nii.gz"})
    out = t(meta)
    assert isinstance(out, MetaTensor) and out.meta["filename_or_obj"] == "a.nii.gz"


def test_output_differs_from_the_input_and_between_draws() -> None:
    x = _image()
    t = RandGIN().set_random_state(2)
    first, second = t(x), t(x)
    assert (first - x).abs().mean() > 0.01
    assert (first - second).abs().mean() > 0.01


def test_the_same_seed_gives_the_same_output() -> None:
    x = _image()
    a = [RandGIN().set_random_state(7)(x) for _ in range(2)]
    assert torch.equal(a[0], a[1])
    draws_a = RandGIN().set_random_state(7)
    draws_b = RandGIN().set_random_state(7)
    for _ in range(4):  # the whole sequence, GIN and IPA draws alike
        assert torch.equal(draws_a(x), draws_b(x))
    assert not torch.equal(RandGIN().set_random_state(8)(x), a[0])


def test_prob_zero_is_the_identity() -> None:
    x = _image()
    t = RandGIN(prob=0.0)
    assert all(t(x) is x for _ in range(3))
    d = {"image": x, "label": torch.ones(1, 32, 32)}
    out = RandGINd("image", prob=0.0)(d)
    assert out["image"] is x and out is not d


@pytest.mark.parametrize("value", [0.0, 0.3, -1.0])
def test_a_constant_image_stays_finite(value: float) -> None:
    x = torch.full((1, 32, 32), value)
    t = RandGIN(ipa_prob=0.5).set_random_state(3)
    for _ in range(4):
        y = t(x)
        assert torch.isfinite(y).all() and torch.allclose(y, x)  # nothing to vary: [min, max] is one value


@pytest.mark.parametrize("shape", [(1, 8, 8, 4), (32, 32)])
def test_other_than_2d_is_refused_naming_the_shape(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=rf"\[C, H, W\], got shape {re.escape(str(shape))}"):
        RandGIN()(torch.zeros(shape))
    with pytest.raises(ValueError, match="got shape"):
        RandGINd("image", prob=0.0)({"image": torch.zeros(shape)})  # refused whatever the draw


def test_bad_settings_are_refused() -> None:
    for kwargs, message in (
        ({"n_layers": 0}, "n_layers"),
        ({"n_channels": 0}, "n_channels"),
        ({"kernel_sizes": (2,)}, "odd"),
        ({"kernel_sizes": ()}, "odd"),
        ({"ipa_prob": 1.5}, "ipa_prob"),
        ({"control_points": 1}, "control_points"),
    ):
        with pytest.raises(ValueError, match=message):
            RandGIN(**kwargs)


def test_the_dictionary_version_leaves_labels_alone_and_is_seeded() -> None:
    x = _image()
    label = (x > 0).to(torch.uint8)
    label_bytes = label.numpy().tobytes()
    data = {"image": x, "label": label, "slice_index": 3}
    out = RandGINd("image").set_random_state(0)(data)
    assert out["label"] is label and out["label"].numpy().tobytes() == label_bytes and out["slice_index"] == 3
    assert not torch.equal(out["image"], x) and data["image"] is x
    again = RandGINd("image").set_random_state(0)(data)
    assert torch.equal(again["image"], out["image"])
    assert RandGINd("missing", allow_missing_keys=True)(data)["image"] is x
    with pytest.raises(KeyError):
        RandGINd("missing")(data)


def _write_volume(folder: Path) -> dict[str, str]:
    """A 32 x 32 x 6 CT volume (body -100 HU, liver 60 HU, air -1000 HU) and its liver label."""
    yy, xx = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    body = ((yy - 16) ** 2 / 196 + (xx - 16) ** 2 / 144) < 1
    liver = ((yy - 12) ** 2 + (xx - 20) ** 2) < 25
    rng = np.random.default_rng(0)
    image = np.where(body, -100.0, -1000.0)[..., None] + 10 * rng.standard_normal((32, 32, 6))
    image[liver] += 160.0
    label = np.repeat(liver[..., None], 6, axis=-1).astype(np.uint8)
    affine = np.diag([4.0, 4.0, 8.0, 1.0])
    paths = {"image": folder / "image_1.nii.gz", "label": folder / "label_1.nii.gz"}
    nib.save(nib.Nifti1Image(image.astype(np.float32), affine), paths["image"])
    nib.save(nib.Nifti1Image(label, affine), paths["label"])
    return {k: str(v) for k, v in paths.items()}


def test_slice_dataset_augments_images_and_keeps_labels(tmp_path: Path) -> None:
    cases = [_write_volume(tmp_path)]

    def dataset(augment: bool, seed: int = 0) -> list[dict]:
        ds = make_slice_dataset(
            cases, "ct", 32, labeled=True, slices_per_volume=4,
            intensity_augmentation=RandGINd("image") if augment else None,
        )  # fmt: skip
        ds.set_random_state(seed)  # seeds RandGINd too: it is the last random transform of the Compose
        return [ds[i] for i in range(len(ds))]

    plain, augmented, again = dataset(False), dataset(True), dataset(True)
    for p, a, b in zip(plain, augmented, again):
        # the same slices are drawn: the augmentation comes after the sampler and does not shift its seed
        assert a["slice_index"] == p["slice_index"]
        assert a["image"].shape == (1, 32, 32) and a["image"].dtype == torch.float32
        assert torch.equal(a["label"], p["label"])
        assert not torch.equal(a["image"], p["image"])
        assert float(a["image"].min()) >= float(p["image"].min()) - 1e-6
        assert float(a["image"].max()) <= float(p["image"].max()) + 1e-6
        assert torch.equal(a["image"], b["image"])  # SliceSampleDataset.set_random_state reaches RandGINd
    other = dataset(True, seed=1)
    assert not all(torch.equal(a["image"], o["image"]) for a, o in zip(augmented, other))
