"""SemanticGanTrainer on phantom slices: losses, events, regularization schedule, EMA, non-finite losses, resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from ignite.engine import Events
from monai.engines.utils import IterationEvents

from monai_semgan.data import make_slice_dataset, make_slice_loader, split_cases
from monai_semgan.engines import (
    DifferentiableAugment,
    NonFiniteLossError,
    PairedSliceLoader,
    SemanticGanTrainer,
    lazy_adam,
)
from monai_semgan.engines.semantic_gan_trainer import masks_to_signed_onehot
from monai_semgan.handlers import ResumeFromCheckpoint, latest_checkpoint, make_checkpointer
from monai_semgan.networks import ImageDiscriminator, JointDiscriminator, SemanticGenerator

R = 16


def make_trainer(
    cases: list[dict], epochs: int = 1, epoch_length: int = 4, seed: int = 0, **kwargs
) -> SemanticGanTrainer:
    torch.manual_seed(seed)
    labeled, unlabeled = split_cases(cases, 1, 0)  # the same split whatever the seed
    lab = make_slice_loader(
        make_slice_dataset(labeled, "ct", R, True, label_values="chaos", slices_per_volume=4), 2, seed=seed
    )
    unl = make_slice_loader(make_slice_dataset(unlabeled, "ct", R, False, slices_per_volume=2), 2, seed=seed)
    g = SemanticGenerator(
        R, z_dim=16, w_dim=16, mapping_layers=1, channel_base=256, channel_multiplier=1, channel_max=16
    )
    d_img = ImageDiscriminator(R, channel_base=256, channel_multiplier=1, channel_max=16)
    d_joint = JointDiscriminator(base_channels=4, num_layers=2)
    return SemanticGanTrainer(
        "cpu",
        epochs,
        PairedSliceLoader(unl, lab, epoch_length, seed=seed),
        g,
        d_img,
        d_joint,
        lazy_adam(g.parameters(), interval=kwargs.pop("pl_interval", 2)),
        lazy_adam(d_img.parameters(), interval=2),
        lazy_adam(d_joint.parameters(), interval=2),
        r1_interval=2,
        pl_interval=2,
        ema_rampup=0.05,
        **kwargs,
    )


def checkpoint_objects(trainer: SemanticGanTrainer) -> dict:
    return {
        "generator": trainer.generator,
        "generator_ema": trainer.generator_ema,
        "image_discriminator": trainer.image_discriminator,
        "joint_discriminator": trainer.joint_discriminator,
        "g_optimizer": trainer.g_optimizer,
        "d_image_optimizer": trainer.d_image_optimizer,
        "d_joint_optimizer": trainer.d_joint_optimizer,
        "grad_scaler": trainer.grad_scaler,
        "trainer": trainer,
    }


def test_masks_to_signed_onehot() -> None:
    mask = torch.tensor([[[[0, 1], [2, 0]]]])
    assert masks_to_signed_onehot(mask, 1).tolist() == [[[[-1.0, 1.0], [1.0, -1.0]]]]
    three = masks_to_signed_onehot(mask, 3)
    assert three.shape == (1, 3, 2, 2) and three[0, :, 1, 0].tolist() == [-1.0, -1.0, 1.0]


def test_iterations_fire_monai_events_and_log_every_loss(phantom_cases: list[dict]) -> None:
    trainer = make_trainer(phantom_cases, epochs=1, epoch_length=4)
    fired: list[str] = []
    for event in IterationEvents:
        trainer.add_event_handler(event, lambda e, name=event.name: fired.append(name))
    outputs: list[dict] = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: outputs.append(dict(e.state.output)))
    ema_before = [p.clone() for p in trainer.generator_ema.parameters()]
    g_before = [p.clone() for p in trainer.generator.parameters()]
    trainer.run()
    assert trainer.state.iteration == 4
    assert fired[:4] == ["FORWARD_COMPLETED", "LOSS_COMPLETED", "BACKWARD_COMPLETED", "MODEL_COMPLETED"]
    assert len(fired) == 16
    for out in outputs:
        for key in ("loss_d_image", "loss_d_joint", "loss_g", "loss_g_feature_matching", "lr_g"):
            assert isinstance(out[key], float) and torch.isfinite(torch.tensor(out[key]))
    # lazy regularization every 2nd iteration (1-based)
    assert ["r1_image" in o for o in outputs] == [False, True, False, True]
    assert ["path_length_penalty" in o for o in outputs] == [False, True, False, True]
    assert trainer.path_length.mean_length > 0
    assert any(not torch.equal(a, b) for a, b in zip(g_before, trainer.generator.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(ema_before, trainer.generator_ema.parameters()))
    assert trainer.images_seen == 8


def test_differentiable_augmentation_reaches_every_discriminator_input(phantom_cases: list[dict]) -> None:
    class CountingAugment(DifferentiableAugment):
        calls = 0

        def __call__(self, image, *masks):
            CountingAugment.calls += 1
            return super().__call__(image, *masks)

    trainer = make_trainer(phantom_cases, epochs=1, epoch_length=2, diff_augment=CountingAugment("translation,cutout"))
    outputs: list[dict] = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: outputs.append(dict(e.state.output)))
    trainer.run()
    # per iteration: image D (real, fake), joint D (real, fake), generator (image D, joint D on fake and real)
    assert CountingAugment.calls == 7 * 2
    assert all(torch.isfinite(torch.tensor(o["loss_g"])) for o in outputs)
    with pytest.raises(ValueError, match="unknown differentiable augmentation"):
        make_trainer(phantom_cases, diff_augment="flip")


@pytest.mark.parametrize("reuse_fakes", [False, True])
def test_reuse_fakes_scores_the_generator_steps_images(phantom_cases: list[dict], reuse_fakes: bool) -> None:
    trainer = make_trainer(phantom_cases, epochs=1, epoch_length=2, reuse_fakes=reuse_fakes, amp="bf16")
    generator_calls: list[int] = []
    trainer.generator.register_forward_hook(lambda m, args, out: generator_calls.append(trainer.state.iteration))
    scored: list[torch.Tensor] = []
    trainer.image_discriminator.register_forward_hook(lambda m, args, out: scored.append(args[0].detach().clone()))
    weights = {
        name: [p.clone() for p in getattr(trainer, name).parameters()]
        for name in ("generator", "image_discriminator", "joint_discriminator")
    }
    outputs: list[dict] = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: outputs.append(dict(e.state.output)))
    trainer.run()
    # iteration 2 adds the path-length pass; three forwards per iteration (two without gradient) without reuse
    assert generator_calls == ([1, 2, 2] if reuse_fakes else [1, 1, 1, 2, 2, 2, 2])
    # iteration 1 (no R1): the image discriminator scores real, fake (its step), fake (the generator step)
    assert torch.equal(scored[1], scored[2]) is reuse_fakes
    for name, before in weights.items():
        assert any(not torch.equal(a, b) for a, b in zip(before, getattr(trainer, name).parameters())), name
    assert all(torch.isfinite(torch.tensor(o[k])) for o in outputs for k in ("loss_d_image", "loss_d_joint", "loss_g"))


@pytest.mark.parametrize("amp", ["off", "bf16"])
def test_non_finite_loss_stops_with_its_name(phantom_cases: list[dict], tmp_path: Path, amp: str) -> None:
    trainer = make_trainer(phantom_cases, epochs=2, epoch_length=2, amp=amp)
    objects = checkpoint_objects(trainer)
    make_checkpointer(tmp_path, objects).attach(trainer)  # as the bundle attaches it: epoch ends and COMPLETED

    @trainer.on(Events.EPOCH_COMPLETED)
    def poison(engine: SemanticGanTrainer) -> None:
        with torch.no_grad():
            next(engine.joint_discriminator.parameters()).fill_(float("nan"))

    with pytest.raises(NonFiniteLossError, match="joint discriminator loss became nan at iteration 3"):
        trainer.run()
    saved = latest_checkpoint(tmp_path)
    assert saved is not None and saved.name == "checkpoint_2.pt"
    state = torch.load(saved, weights_only=False)
    assert all(torch.isfinite(t).all() for t in state["joint_discriminator"].values() if t.is_floating_point())


def test_resume_reaches_the_weights_of_an_uninterrupted_run(phantom_cases: list[dict], tmp_path: Path) -> None:
    full = make_trainer(phantom_cases, epochs=2, epoch_length=2, seed=5)
    full.run()

    first = make_trainer(phantom_cases, epochs=1, epoch_length=2, seed=5)
    first.add_event_handler(Events.EPOCH_COMPLETED, make_checkpointer(tmp_path, checkpoint_objects(first)))
    first.run()
    resumed = make_trainer(
        phantom_cases, epochs=2, epoch_length=2, seed=99
    )  # other seed: everything comes from the file
    resumed.data_loader.seed = 5
    loader = ResumeFromCheckpoint(tmp_path, checkpoint_objects(resumed))
    loader.attach(resumed)
    resumed.run()
    assert loader.loaded is not None and loader.loaded.name == "checkpoint_2.pt"
    assert resumed.state.iteration == 4 and resumed.images_seen == full.images_seen
    for a, b in zip(full.generator.parameters(), resumed.generator.parameters()):
        torch.testing.assert_close(a, b)
    for a, b in zip(full.generator_ema.parameters(), resumed.generator_ema.parameters()):
        torch.testing.assert_close(a, b)
    for a, b in zip(full.joint_discriminator.parameters(), resumed.joint_discriminator.parameters()):
        torch.testing.assert_close(a, b)
    exp_avg = [s["exp_avg"] for s in resumed.g_optimizer.state.values()]
    assert exp_avg and all(torch.isfinite(t).all() for t in exp_avg)


def test_bad_arguments(phantom_cases: list[dict]) -> None:
    g = SemanticGenerator(
        R, z_dim=16, w_dim=16, mapping_layers=1, channel_base=256, channel_multiplier=1, channel_max=16
    )
    with pytest.raises(ValueError, match="PairedSliceLoader"):
        SemanticGanTrainer("cpu", 1, [], g, g, g, *(lazy_adam(g.parameters()) for _ in range(3)))
    with pytest.raises(ValueError, match="epoch_length"):
        PairedSliceLoader([], [], 0)
