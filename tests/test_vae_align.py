import dataclasses
import shutil

import pytest
import torch

from p2nlib.core import paths
from p2nlib.core.errors import ArtifactError

from p2nlib.core.profiles import PROFILES
from p2nlib.data import nerf, store
from p2nlib.generate import align, vae
from test_store import MINI


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


def test_missing_foreign_and_stale_parts_are_refused(tmp_path):
    """Trained parts record what they were trained on: a missing part, one of another profile, and one
    trained on a dataset that has since been rebuilt are each refused with the command that rebuilds it."""
    P = dataclasses.replace(MINI, name="tiny")
    ds = store.build(P, progress=False)
    with pytest.raises(ArtifactError, match="make book ONLY=03"):
        vae.load(P, ds)
    with pytest.raises(ArtifactError, match="make book ONLY=04"):
        align.load(P, {"dataset": ds.fingerprint})
    model = vae.ParamVAE(ds.spec, vae.VaeConfig(latent_dim=4, hidden=8))
    vae.save(model, P, ds)
    assert vae.load(P, ds).weights_sha256 == model.weights_sha256
    shutil.copytree(paths.stage_dir("tiny", "models"), paths.stage_dir("small", "models"), dirs_exist_ok=True)
    with pytest.raises(ArtifactError, match="trained for profile 'tiny'"):
        vae.load(dataclasses.replace(P, name="small"), ds)
    # rebuild the dataset with other fitting settings: the old VAE is stale
    shutil.rmtree(store.dataset_dir(P))
    ds2 = store.build(dataclasses.replace(P, fit_steps=P.fit_steps + 1), progress=False)
    assert ds2.fingerprint != ds.fingerprint
    with pytest.raises(ArtifactError, match=r"another dataset .*make book ONLY=03"):
        vae.load(P, ds2)
    # and an aligner trained on the old VAE is refused once the VAE changes
    aligner = align.Aligner(align.AlignConfig(embed_dim=4, latent_dim=4, d_model=8, heads=2, ff=8))
    inputs = {"dataset": ds.fingerprint, "embeddings": "e", "vae": model.weights_sha256}
    align.save(aligner, P, inputs)
    align.load(P, inputs)
    with pytest.raises(ArtifactError, match=r"another vae .*make book ONLY=04"):
        align.load(P, {**inputs, "vae": "retrained"})
    # a part saved before an input was recorded is refused for what it is, not as rebuilt inputs
    with pytest.raises(ArtifactError, match=r"older version that did not record its image_embeddings.*ONLY=04"):
        align.load(P, {**inputs, "image_embeddings": "d"})


def test_function_space_loss_is_zero_for_identical_nerfs_and_positive_otherwise():
    spec = nerf.NerfSpec(16, 2)
    a = nerf.init_params(spec, 3, "random", seed=1)
    b = nerf.init_params(spec, 3, "random", seed=2)
    gen = torch.Generator().manual_seed(0)
    assert vae.function_loss(a, a, spec, points=256, generator=gen).item() == 0.0
    assert vae.function_loss(b, a, spec, points=256, generator=gen).item() > 1e-6
    # gradients reach the decoded NeRF only
    b = {k: v.clone().requires_grad_(True) for k, v in b.items()}
    vae.function_loss(b, a, spec, points=64).backward()
    assert b["l0.weight"].grad is not None and b["l0.weight"].grad.abs().sum() > 0


def test_recipe_is_a_config_field_and_the_function_term_trains():
    spec = nerf.NerfSpec(8, 1)
    params = nerf.init_params(spec, 6, "random", seed=0)
    paper = vae.VaeConfig(latent_dim=4, hidden=16, epochs=3, batch=3)
    ours = dataclasses.replace(paper, function_weight=100.0, function_points=64)
    assert paper.recipe == "parameter MSE (paper)" and "function-space (ours)" in ours.recipe
    _, info_paper = vae.train(params, spec, paper, progress=False)
    _, info_ours = vae.train(params, spec, ours, progress=False)
    assert info_paper["history"]["function"] == [0.0] * 3
    assert all(f > 0 for f in info_ours["history"]["function"])
    assert vae.VaeConfig.from_profile(PROFILES["small"]).function_weight == PROFILES["small"].vae_function_weight


def _per_token_reference(objects: int, data_seed: int):
    """The batched model and its 14 VAEs as separate modules, from one seeded initialisation, with
    ``objects`` random NeRFs to train on (the model's statistics set from them)."""
    spec = nerf.NerfSpec(16, 2)
    params = nerf.init_params(spec, objects, "random", seed=data_seed)
    torch.manual_seed(0)
    model = vae.ParamVAE(spec, vae.VaeConfig(latent_dim=8, hidden=32, function_weight=10.0, function_points=32))
    model.set_stats(params)
    return model, torch.nn.ModuleList(model.token_vaes()), params


def test_batched_stage1_equals_fourteen_separate_vaes_outputs_and_gradients():
    model, tokens, params = _per_token_reference(6, 4)
    assert [len(g) for g in model.groups] == [1, 6, 5, 1, 1]       # l0.w | hidden biases | hidden weights | l6.w | l6.b
    # the tokens start exactly as 14 nn.Linear-initialised TokenVAEs created in token order would
    torch.manual_seed(0)
    fresh = [vae.TokenVAE(*t.encoder[0].weight.shape[::-1], 8) for t in tokens]
    for a, b in zip(fresh, tokens):
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    # encode / decode per token
    mu, logvar = model.encode(params)
    ref = [t.encode(x) for t, x in zip(tokens, model.normalise(params))]
    assert torch.allclose(mu, torch.stack([m for m, _ in ref], 1), atol=1e-6)
    assert torch.allclose(logvar, torch.stack([lv for _, lv in ref], 1), atol=1e-6)
    dec = model.decode(mu)
    ref_dec = model.denormalise([t.decoder(m) for t, (m, _) in zip(tokens, ref)])
    assert all(torch.allclose(dec[k], ref_dec[k], atol=1e-5) for k in nerf.PARAM_NAMES)
    # the training loss (same noise from the same seed) and every gradient
    torch.manual_seed(7)
    batched = model.loss(params, torch.Generator().manual_seed(1))
    torch.manual_seed(7)
    separate = vae.per_token_loss(model, list(tokens), params, torch.Generator().manual_seed(1))
    for a, b in zip(batched, separate):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7), (a, b)
    batched[0].backward()
    separate[0].backward()
    for g, block in zip(model.groups, model.blocks):
        for j, i in enumerate(g):
            lin = [m for m in tokens[i].modules() if isinstance(m, torch.nn.Linear)]   # encoder, mu, logvar, decoder
            grp = [*block.encoder, block.mu, block.logvar, *block.decoder]
            assert len(lin) == len(grp)
            for m, gl in zip(lin, grp):
                assert torch.allclose(gl.weight.grad[j].t(), m.weight.grad, rtol=1e-4, atol=1e-7)
                assert torch.allclose(gl.bias.grad[j], m.bias.grad, rtol=1e-4, atol=1e-7)


def test_bf16_products_change_the_loss_and_gradients_by_rounding_only():
    """The VAEs' bfloat16 products (``VaeConfig.bf16``, while training only): the same loss terms and gradient
    directions as float32 up to bf16 rounding; evaluation (``eval()``) stays exactly float32."""
    model, _, params = _per_token_reference(6, 4)
    half = vae.ParamVAE(model.spec, dataclasses.replace(model.cfg, bf16=True))
    half.load_state_dict(model.state_dict())
    terms = []
    for m in (model, half):
        torch.manual_seed(7)
        t = m.loss(params, torch.Generator().manual_seed(1))
        t[0].backward()
        terms.append(t)
        assert all(v.dtype == torch.float32 for v in t)
    for a, b in zip(*terms):
        assert torch.allclose(a, b, rtol=0.05, atol=1e-4), (a, b)
    assert not torch.equal(terms[0][1], terms[1][1])                 # the products did run in bfloat16
    for p32, p16 in zip(model.parameters(), half.parameters()):
        cos = torch.nn.functional.cosine_similarity(p32.grad.flatten(), p16.grad.flatten(), dim=0)
        assert cos > 0.98, cos
    half.eval()
    model.eval()
    assert torch.equal(half.encode(params)[0], model.encode(params)[0])


def test_batched_stage1_trains_like_separate_vaes():
    """A few Adam steps of the batched model and of the 14 separate VAEs end at the same weights."""
    model, tokens, params = _per_token_reference(8, 5)
    opts = [torch.optim.Adam(m.parameters(), lr=1e-3) for m in (model, tokens)]
    gens = [torch.Generator().manual_seed(3) for _ in range(2)]
    for _ in range(5):
        for which, (m, opt, gen) in enumerate(zip((model, tokens), opts, gens)):
            torch.manual_seed(11 + _)
            loss = model.loss(params, gen)[0] if which == 0 else vae.per_token_loss(model, list(tokens), params, gen)[0]
            opt.zero_grad()
            loss.backward()
            opt.step()
    for trained, sep in zip(model.token_vaes(), tokens):
        for a, b in zip(trained.state_dict().values(), sep.state_dict().values()):
            assert torch.allclose(a, b, atol=1e-5)


def test_the_study_chooses_on_validation_never_on_test():
    import pandas as pd

    from p2nlib.chapters import study

    t = pd.DataFrame({"lever": ["loss", "loss", "data size"],
                      "recon val vs GT (dB)": [21.0, 20.0, 30.0],
                      "recon test vs GT (dB)": [20.0, 22.0, 30.0]},
                     index=["paper", "ours", "more data"])
    assert study.choose(t) == "paper"              # best on validation, though worse on test
    with pytest.raises(ValueError, match="no validation split"):
        study.choose(t.assign(**{"recon val vs GT (dB)": float("nan")}))


def test_the_tiny_dataset_has_disjoint_train_validation_and_test_splits(tiny_artifacts):
    _, ds, _ = tiny_artifacts
    tr, va, te = (set(ds.indices(s)) for s in ("train", "val", "test"))
    assert tr and va and te and not (tr & va) and not (tr & te) and not (va & te)
    assert tr | va | te == set(range(len(ds.objects)))


def test_train_subsets_for_evaluation_keep_every_category():
    from p2nlib.chapters import stages

    idx = list(range(192))                      # category-major: 24 scenes of each of 8 categories
    sub = stages.spread(idx, 64)
    assert len(sub) == 64 and {i // 24 for i in sub} == set(range(8))
    assert stages.spread(idx[:10], 64) == idx[:10]


def test_the_study_reuses_chapter_04s_aligner_only_when_it_is_the_same_training(tiny_parts, tmp_path, monkeypatch):
    """Validation decoding draws no random numbers, so 04's aligner (trained with it) has exactly the weights the
    study would train without it; the study takes it only for the same VAE, embeddings, scenes and seed."""
    from p2nlib.core.profiles import get_profile
    from p2nlib.chapters import study

    root, ds, cache = tiny_parts
    shutil.copytree(root, tmp_path / "artifacts", dirs_exist_ok=True)
    monkeypatch.setenv("P2N_ARTIFACTS", str(tmp_path / "artifacts"))
    P = get_profile("tiny")
    stage1 = vae.load(P, ds)
    idx, val = ds.indices("train"), ds.indices("val")
    with torch.no_grad():
        lat, _ = stage1.encode(ds.params)
    cfg = align.AlignConfig.from_profile(P)
    with_val, info = align.train(cache.image[idx], lat[idx], cfg, seed=0, progress=False,
                                 val=(cache.image[val], lat[val]))
    without_val, _ = align.train(cache.image[idx], lat[idx], cfg, seed=0, progress=False)
    for a, b in zip(with_val.state_dict().values(), without_val.state_dict().values()):
        assert torch.equal(a, b)
    assert info["seconds"] > 0 and info["val_seconds"] > 0
    align.save(with_val, P, align.provenance(ds, cache, stage1), trained=info["trained"])

    reused, seconds = study.train_aligner(stage1, P, ds, cache.image, idx, seed=0)
    assert seconds == info["seconds"]
    for a, b in zip(reused.state_dict().values(), with_val.state_dict().values()):
        assert torch.equal(a, b)
    assert not any((tmp_path / "artifacts" / "tiny" / "study").glob("align-*"))   # nothing trained

    study_dir = tmp_path / "artifacts" / "tiny" / "study"
    study.train_aligner(stage1, P, ds, cache.image, idx, seed=1)                    # another seed: trained anew
    study.train_aligner(stage1, P, ds, cache.image, idx[:-1], seed=0)               # other scenes: trained anew
    assert len(list(study_dir.glob("align-*.safetensors"))) == 2
    book = study.book_aligner(P)                                                   # other embeddings: not 04's
    assert align.same_training(book, cfg, cache.image[idx], lat[idx]) and not align.same_training(book, cfg, cache.image[idx] + 1, lat[idx])

    # without 04's aligner the study trains its own from its own latents: the very same weights
    (tmp_path / "artifacts" / "tiny" / "models" / "align.json").unlink()
    own, _ = study.train_aligner(stage1, P, ds, cache.image, idx, seed=0)
    assert len(list(study_dir.glob("align-*.safetensors"))) == 3
    for a, b in zip(own.state_dict().values(), with_val.state_dict().values()):
        assert torch.equal(a, b)
