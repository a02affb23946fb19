import pytest
import torch

from p2nlib import align, nerf, vae
from p2nlib.profiles import PROFILES


def test_paper_profile_shapes_512_latent_14_tokens():
    p = PROFILES["paper"]
    spec = nerf.NerfSpec.from_profile(p)
    model = vae.ParamVAE(spec, vae.VaeConfig(latent_dim=p.clip_embed_dim, hidden=64))
    params = nerf.init_params(spec, 2, "random", seed=3)
    mu, logvar = model.encode(params)
    assert mu.shape == logvar.shape == (2, 14, 512)
    out = model.decode(mu)
    assert {k: tuple(v.shape[1:]) for k, v in out.items()} == spec.shapes()
    al = align.Aligner(align.AlignConfig(embed_dim=512, latent_dim=512, d_model=64, heads=4, ff=64))
    assert al.generate(torch.randn(3, 512)).shape == (3, 14, 512)
    assert al(torch.randn(3, 512), mu[:1].expand(3, -1, -1)).shape == (3, 14, 512)


def test_vae_normalisation_round_trip_and_training_reduces_loss():
    spec = nerf.NerfSpec(16, 2)
    params = nerf.init_params(spec, 12, "random", seed=1)
    cfg = vae.VaeConfig(latent_dim=8, hidden=32, epochs=60, batch=6, lr=3e-3)
    model = vae.ParamVAE(spec, cfg)
    model.set_stats(params)
    back = model.denormalise(model.normalise(params))
    assert all(torch.allclose(back[k], params[k], atol=1e-5) for k in nerf.PARAM_NAMES)
    before = vae.param_mse(model, params)
    trained, info = vae.train(params, spec, cfg, progress=False)
    assert info["history"]["mse"][-1] < info["history"]["mse"][0]
    assert vae.param_mse(trained, params) < before


def test_autoregressive_decoding_equals_teacher_forcing_on_its_own_outputs():
    torch.manual_seed(0)
    al = align.Aligner(align.AlignConfig(embed_dim=12, latent_dim=6, d_model=16, heads=2, ff=32)).eval()
    al.set_stats(torch.randn(10, 14, 6) * 3 + 1)           # generate() returns raw units, forward() standardised
    emb = torch.randn(4, 12)
    gen = al.generate(emb)
    with torch.no_grad():
        tf = al(emb, gen)
    assert torch.allclose(tf, al.normalise(gen), atol=1e-5)


def test_token_dropout_only_while_training():
    torch.manual_seed(0)
    cfg = align.AlignConfig(embed_dim=12, latent_dim=6, d_model=16, heads=2, ff=32, token_dropout=0.5)
    al = align.Aligner(cfg)
    emb, lat = torch.randn(8, 12), torch.randn(8, 14, 6)
    al.train()
    assert not torch.allclose(al(emb, lat), al(emb, lat))    # different tokens dropped each call
    al.eval()
    assert torch.allclose(al(emb, lat), al(emb, lat))
    plain = align.Aligner(align.AlignConfig(embed_dim=12, latent_dim=6, d_model=16, heads=2, ff=32, token_dropout=0.0))
    plain.train()
    assert torch.allclose(plain(emb, lat), plain(emb, lat))


def test_alignment_learns_a_mapping():
    torch.manual_seed(0)
    emb = torch.randn(16, 3, 10)
    latents = torch.randn(16, 14, 6)
    cfg = align.AlignConfig(embed_dim=10, latent_dim=6, d_model=32, heads=2, ff=64, epochs=80, batch=8, lr=3e-3,
                            token_dropout=0.0)
    model, info = align.train(emb, latents, cfg, progress=False)
    assert info["history"]["loss"][-1] < 0.5 * info["history"]["loss"][0]
    # with token dropout the decoder must read the embedding: free-running decoding gets closer too
    cfg = align.AlignConfig(embed_dim=10, latent_dim=6, d_model=32, heads=2, ff=64, epochs=150, batch=8, lr=3e-3)
    model, info = align.train(emb, latents, cfg, progress=False)
    untrained = align.Aligner(cfg)
    untrained.set_stats(latents)
    err = lambda m: (m.generate(emb[:, 0]) - latents).pow(2).mean().item()  # noqa: E731
    assert info["history"]["loss"][-1] < 0.8 * info["history"]["loss"][0]
    assert err(model) < 0.8 * err(untrained.eval())


def test_missing_and_foreign_artifacts(tmp_path):
    with pytest.raises(vae.ArtifactError, match="03_vae"):
        vae.load(tmp_path, "small")
    with pytest.raises(vae.ArtifactError, match="04_alignment"):
        align.load(tmp_path, "small")
    spec = nerf.NerfSpec(8, 1)
    vae.save(vae.ParamVAE(spec, vae.VaeConfig(latent_dim=4, hidden=8)), tmp_path, "tiny")
    with pytest.raises(vae.ArtifactError, match="trained for profile 'tiny'"):
        vae.load(tmp_path, "small")
    assert isinstance(vae.load(tmp_path, "tiny"), vae.ParamVAE)
