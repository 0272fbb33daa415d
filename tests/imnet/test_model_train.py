from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from reprolab.core.sweep import Sweep
from reprolab.imnet.model import (
    CNNAE,
    IMAE,
    ImplicitDecoder,
    LatentCritic,
    LatentGenerator,
    VoxelEncoder,
    gradient_penalty,
    leaky_clip,
)
from reprolab.imnet.train import resolution_at, train_cnnae, train_imae, train_latent_gan


def test_paper_and_official_decoder_widths():
    paper = ImplicitDecoder(z_dim=128, gf_dim=128, variant="paper")
    assert paper.widths == [2048, 1024, 512, 256, 128]
    assert paper.layers[1].in_features == 2048 + 131  # skip: (z, p) concatenated to every hidden layer
    # the output layer reads the 128 units only (supplementary network-structure.pdf, implicit-decoder code)
    assert paper.out.in_features == 128
    assert ImplicitDecoder(z_dim=128, gf_dim=128, output_skip=True).out.in_features == 128 + 131
    official = ImplicitDecoder(z_dim=256, gf_dim=128, variant="official")
    assert official.widths == [1024, 1024, 1024, 512, 256, 128]
    assert official.layers[1].in_features == 1024
    with pytest.raises(ValueError):
        ImplicitDecoder(variant="other")


@pytest.mark.parametrize(("variant", "output_skip"), [("paper", False), ("paper", True), ("official", False)])
def test_decoder_equals_explicit_concatenation(variant, output_skip):
    torch.manual_seed(0)
    dec = ImplicitDecoder(z_dim=6, gf_dim=4, variant=variant, output_skip=output_skip)
    z, p = torch.rand(2, 6), torch.rand(2, 5, 3) - 0.5
    zp = torch.cat([z[:, None].expand(-1, 5, -1), p], dim=-1)
    h = zp
    for i, layer in enumerate(dec.layers):
        h = torch.nn.functional.leaky_relu(layer(torch.cat([h, zp], -1) if variant == "paper" and i else h), 0.02)
    logit = dec.out(torch.cat([h, zp], -1) if output_skip else h)
    expected = torch.sigmoid(logit) if variant == "paper" else leaky_clip(logit)
    assert torch.allclose(dec(z, p), expected, atol=1e-6)


def test_leaky_clip_values():
    h = torch.tensor([-1.0, 0.5, 2.0])
    assert torch.allclose(leaky_clip(h), torch.tensor([-0.01, 0.5, 1.01]))


def test_shapes_ranges_and_gradients():
    torch.manual_seed(0)
    model = IMAE(res=16, ef_dim=2, z_dim=8, gf_dim=4)
    vox = (torch.rand(3, 1, 16, 16, 16) > 0.5).float()
    z = model.encoder(vox)
    assert z.shape == (3, 8) and bool(((z > 0) & (z < 1)).all())
    out = model(vox, torch.rand(3, 7, 3) - 0.5)
    assert out.shape == (3, 7, 1) and bool(((out >= 0) & (out <= 1)).all())
    out.sum().backward()
    assert model.encoder.net[0].weight.grad.abs().sum() > 0 and model.decoder.out.weight.grad.abs().sum() > 0
    cnn = CNNAE(res=16, ef_dim=2, z_dim=8, gf_dim=2)
    assert cnn(vox).shape == (3, 1, 16, 16, 16)
    assert len([m for m in VoxelEncoder(64, 2, 8).net if isinstance(m, torch.nn.Conv3d)]) == 5  # paper: 5 convs
    with pytest.raises(ValueError):
        VoxelEncoder(res=24)


def test_gradient_penalty_is_zero_for_a_unit_gradient_critic():
    critic = torch.nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[0.6, 0.8, 0.0, 0.0]]))
    gp = gradient_penalty(critic, torch.rand(5, 4), torch.rand(5, 4), torch.Generator().manual_seed(0))
    assert gp.item() == pytest.approx(0.0, abs=1e-10)
    with torch.no_grad():
        critic.weight.mul_(3.0)
    assert gradient_penalty(critic, torch.rand(5, 4), torch.rand(5, 4)).item() == pytest.approx(4.0, rel=1e-5)


def test_resolution_schedule():
    schedule = [(16, 2), (32, 3), (64, 1)]
    assert [resolution_at(s, schedule) for s in range(6)] == [16, 16, 32, 32, 32, 64]
    with pytest.raises(ValueError):
        resolution_at(6, schedule)


def test_progressive_training_switches_resolution_and_learns(run_context):
    torch.manual_seed(0)
    ctx = run_context("imnet")
    model = IMAE(res=8, ef_dim=2, z_dim=4, gf_dim=2)
    vox = torch.zeros(2, 1, 8, 8, 8)
    vox[:, :, 2:6, 2:6, 2:6] = 1
    sets = {r: (torch.rand(2, 20, 3) - 0.5, torch.ones(2, 20, 1) * (r == 8)) for r in (4, 8)}
    train_imae(
        Sweep(ctx),
        "ae",
        model,
        vox,
        sets,
        schedule=[(4, 3), (8, 2)],
        batch_shapes=2,
        batch_points=10,
        lr=1e-3,
        beta1=0.5,
        generator=torch.Generator().manual_seed(0),
        log_every=1,
    )
    logs = [json.loads(line) for line in ctx.metrics_path.read_text().splitlines()]
    assert [entry["res"] for entry in logs] == [4, 4, 4, 8, 8]
    with pytest.raises(ValueError, match="16"):
        train_imae(
            Sweep(ctx),
            "ae2",
            model,
            vox,
            sets,
            schedule=[(16, 1)],
            batch_shapes=1,
            batch_points=1,
            lr=1e-3,
            beta1=0.5,
            generator=torch.Generator(),
        )


def test_cnnae_and_gan_steps_reduce_their_losses(run_context):
    torch.manual_seed(0)
    ctx = run_context("imnet")
    vox = torch.zeros(4, 1, 8, 8, 8)
    vox[:, :, 2:6, 2:6, 2:6] = 1
    cnn = CNNAE(res=8, ef_dim=2, z_dim=4, gf_dim=2)
    before = torch.mean((cnn(vox) - vox) ** 2).item()
    train_cnnae(
        Sweep(ctx),
        "cnn",
        cnn,
        vox,
        steps=30,
        batch_shapes=4,
        lr=1e-2,
        beta1=0.5,
        generator=torch.Generator().manual_seed(0),
    )
    assert torch.mean((cnn(vox) - vox) ** 2).item() < before
    codes = torch.rand(64, 3) * 0.1 + 0.6
    gen, critic = LatentGenerator(4, 3, 16), LatentCritic(3, 16)
    train_latent_gan(
        Sweep(ctx),
        "gan",
        gen,
        critic,
        codes,
        steps=3,
        batch_size=8,
        noise_dim=4,
        n_critic=2,
        gp_weight=10.0,
        lr=1e-3,
        generator=torch.Generator().manual_seed(0),
    )
    sample = gen(torch.randn(5, 4))
    assert sample.shape == (5, 3) and np.isfinite(sample.detach().numpy()).all()


def test_batch_norm_option_of_the_encoder_and_cnn_decoder():
    batch = IMAE(res=16, ef_dim=2, z_dim=4, gf_dim=2, norm="batch")
    assert any(isinstance(m, torch.nn.BatchNorm3d) for m in batch.encoder.modules())
    assert not any(isinstance(m, torch.nn.InstanceNorm3d) for m in batch.modules())
    cnn = CNNAE(res=16, ef_dim=2, z_dim=4, gf_dim=2, norm="batch")
    assert any(isinstance(m, torch.nn.BatchNorm3d) for m in cnn.decoder.modules())
    with pytest.raises(ValueError, match="norm"):
        VoxelEncoder(16, 2, 4, norm="group")
