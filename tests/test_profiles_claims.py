import json

import pytest

from p2nlib.book import claims
from p2nlib.core import profiles


def test_profile_table_is_data():
    assert list(profiles.PROFILES) == ["tiny", "small", "gpu", "paper"]
    for name, prof in profiles.PROFILES.items():
        assert prof.name == name
        assert set(prof.to_dict()) == set(profiles.FIELD_NAMES)
    tiny, small, paper = (profiles.PROFILES[n] for n in ("tiny", "small", "paper"))
    # sizes grow from tiny to paper; the paper profile has the paper's known numbers
    for field in ("objects_per_category", "train_views", "image_size", "fit_steps", "nerf_width"):
        assert getattr(tiny, field) <= getattr(small, field) <= getattr(paper, field), field
    assert paper.train_views == 100 and paper.fit_steps == 15_000


def test_the_gpu_profile_sits_between_small_and_paper_with_stronger_stand_ins():
    small, gpu, paper = (profiles.PROFILES[n] for n in ("small", "gpu", "paper"))
    for field in ("objects_per_category", "prior_size", "prior_steps", "prior_batch", "ood_seeds", "opt_seeds"):
        assert getattr(small, field) <= getattr(gpu, field) <= getattr(paper, field), field
    assert gpu.objects_per_category > small.objects_per_category and gpu.ood_seeds == 5
    assert gpu.prior_size == 32 and gpu.text_prior_channels == (64, 128, 256)     # the ~11 M prior measured on an H100
    from p2nlib.baselines.optimize import ceiling

    assert ceiling(gpu.sds_epoch_iters, gpu.sds_k, gpu.sds_max_epochs) >= 20      # a 3-5x speed-up well inside it


def test_get_profile_default_and_env(monkeypatch):
    monkeypatch.delenv("P2N_PROFILE", raising=False)
    assert profiles.get_profile().name == "small"
    monkeypatch.setenv("P2N_PROFILE", "tiny")
    assert profiles.get_profile().name == "tiny"
    assert profiles.get_profile("paper").name == "paper"


def test_unknown_profile_names_valid_ones():
    with pytest.raises(ValueError, match="unknown profile 'huge'.*tiny, small, gpu, paper"):
        profiles.get_profile("huge")


def _run(notebook, monkeypatch, records):
    monkeypatch.setenv("P2N_NOTEBOOK", notebook)
    path = claims.start("tiny", "cpu")
    for args, kw in records:
        claims.record(*args, **kw)
    return path


def test_record_merge_render(tmp_path, monkeypatch):
    out = tmp_path / "claims.json"
    r1 = _run("00_a", monkeypatch, [(("a.one", 1.5), dict(section="§1", paper=2.0, holds=False, note="low")),
                                     (("a.two", 3), dict(section="§1"))])
    claims.merge_into(r1, out)
    r2 = _run("01_b", monkeypatch, [(("b.one", float("nan")), dict(section="§2", unit="dB"))])
    data = claims.merge_into(r2, out)
    assert [c["id"] for c in data["claims"]] == ["a.one", "a.two", "b.one"]
    assert data["claims"][2]["value"] is None            # NaN is stored as null, not as invalid JSON
    assert all(c["profile"] == "tiny" and c["device"] == "cpu" and c["torch"] for c in data["claims"])
    # rerunning one notebook replaces only its own claims
    r1b = _run("00_a", monkeypatch, [(("a.one", 2.5), dict(section="§1", paper=2.0, holds=True))])
    data = claims.merge_into(r1b, out)
    assert {c["id"]: c["value"] for c in data["claims"]} == {"a.one": 2.5, "b.one": None}
    assert claims.load(out) == data
    table = claims.render_markdown(data)
    assert table.count("\n") == 2 + len(data["claims"])
    assert "| a.one | §1 | 2 | 2.5 |  | holds |" in table


def test_record_replaces_same_id(monkeypatch):
    path = _run("00_a", monkeypatch, [(("x.y", 1), dict(section="s")), (("x.y", 2), dict(section="s"))])
    assert [c["value"] for c in json.loads(path.read_text())["claims"]] == [2]


def test_record_without_setup_is_clear(monkeypatch):
    monkeypatch.setenv("P2N_NOTEBOOK", "never_started")
    with pytest.raises(RuntimeError, match="setup"):
        claims.record("x.y", 1, section="s")


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["claims"][0].pop("holds"), "'holds' is a required property"),
    (lambda d: d["claims"][0].update(id="Bad Id"), "claims/0/id"),
    (lambda d: d["claims"][0].update(holds="yes"), "claims/0/holds"),
    (lambda d: d["claims"][0].pop("verdict"), "'verdict' is a required property"),
    (lambda d: d["claims"][0].update(verdict="maybe"), "claims/0/verdict"),
    (lambda d: d["claims"][0].update(verdict="undecided", holds=True), "disagrees with their verdict"),
    (lambda d: d["claims"][0].update(through={"text": "perfect"}), "claims/0/through"),
    (lambda d: d.update(schema_version=7), "schema_version"),
    (lambda d: d["claims"].append(dict(d["claims"][0])), "duplicate claim ids"),
])
def test_schema_errors_name_file_and_fix(tmp_path, monkeypatch, mutate, message):
    out = tmp_path / "claims.json"
    claims.merge_into(_run("00_a", monkeypatch, [(("a.one", 1), dict(section="§1"))]), out)
    data = json.loads(out.read_text())
    mutate(data)
    out.write_text(json.dumps(data))
    with pytest.raises(claims.ClaimsFileError, match=message) as err:
        claims.load(out)
    assert str(out) in str(err.value) and "make book" in str(err.value)


def test_not_json_and_missing(tmp_path):
    bad = tmp_path / "claims.json"
    bad.write_text("{not json")
    with pytest.raises(claims.ClaimsFileError, match="not valid JSON"):
        claims.load(bad)
    with pytest.raises(claims.ClaimsFileError, match="does not exist"):
        claims.load(tmp_path / "none.json")


def test_committed_claims_validate():
    from p2nlib.core import paths

    data = claims.load(paths.ROOT / "figures" / "claims.json")
    assert data["claims"], "figures/claims.json holds no claims"
