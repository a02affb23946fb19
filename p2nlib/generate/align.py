"""Stage 2, semantic alignment (paper §3.2, supplement III).

A ``torch.nn.Transformer`` encoder–decoder maps the CLIP image embedding of one view (the source
sequence, one token) to the 14 latent tokens of the NeRF (the VAE means, the target sequence).
A zero-valued [BOS] token starts the target; training uses teacher forcing with a causal mask,
inference decodes the 14 tokens one by one, each prediction appended to the target sequence.
Each epoch draws one random view per object, so the mapping becomes invariant to the view
(supplement I); ``fixed_view=True`` trains on one view per object for the ablation.

Two choices of ours, not in the paper (whose hyper-parameters were lost): latents are standardised
per token and dimension with training-set statistics stored in the model, and teacher forcing
uses *token dropout*: each teacher token fed to the decoder is zeroed with probability
``token_dropout``. Plain teacher forcing lets the decoder copy object identity from the previous
true token instead of reading the CLIP embedding, and autoregressive decoding then drifts
(exposure bias); ``04_alignment`` measures both.
"""
from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from p2nlib.core import artifacts, paths
from p2nlib.core.profiles import Profile

NUM_TOKENS = 14


@dataclass(frozen=True)
class AlignConfig:
    embed_dim: int             # CLIP embedding size (source)
    latent_dim: int            # VAE latent size (target tokens)
    d_model: int = 128
    heads: int = 4
    encoder_layers: int = 2
    decoder_layers: int = 2
    ff: int = 256
    dropout: float = 0.0
    lr: float = 1e-3
    epochs: int = 300
    batch: int = 32
    token_dropout: float = 0.5   # probability of zeroing each teacher-forced input token while training

    @classmethod
    def from_profile(cls, p: Profile) -> "AlignConfig":
        return cls(embed_dim=p.clip_embed_dim, latent_dim=p.clip_embed_dim, d_model=p.align_d_model,
                   heads=p.align_heads, encoder_layers=p.align_layers, decoder_layers=p.align_layers,
                   ff=2 * p.align_d_model, epochs=p.align_epochs)


class Aligner(nn.Module):
    def __init__(self, cfg: AlignConfig):
        super().__init__()
        self.cfg = cfg
        self.src_in = nn.Linear(cfg.embed_dim, cfg.d_model)
        self.tgt_in = nn.Linear(cfg.latent_dim, cfg.d_model)
        self.pos = nn.Parameter(torch.zeros(NUM_TOKENS + 1, cfg.d_model))
        nn.init.normal_(self.pos, std=0.02)
        self.transformer = nn.Transformer(cfg.d_model, cfg.heads, cfg.encoder_layers, cfg.decoder_layers,
                                          cfg.ff, cfg.dropout, batch_first=True)
        self.out = nn.Linear(cfg.d_model, cfg.latent_dim)
        self.register_buffer("lat_mean", torch.zeros(NUM_TOKENS, cfg.latent_dim))
        self.register_buffer("lat_std", torch.ones(NUM_TOKENS, cfg.latent_dim))
        self.trained: dict = {}     # how it was trained (:func:`train`'s info["trained"]), when loaded from a record

    def set_stats(self, latents: torch.Tensor) -> None:
        """Standardisation statistics (per token and dimension) from the training latents (N, 14, D)."""
        self.lat_mean.copy_(latents.mean(0))
        self.lat_std.copy_(latents.std(0) + 1e-3)

    def normalise(self, latents: torch.Tensor) -> torch.Tensor:
        return (latents - self.lat_mean) / self.lat_std

    def _decode(self, memory: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        L = tgt.shape[1]
        mask = nn.Transformer.generate_square_subsequent_mask(L, device=tgt.device)
        h = self.tgt_in(tgt) + self.pos[:L]
        return self.out(self.transformer.decoder(h, memory, tgt_mask=mask, tgt_is_causal=True))

    def memory(self, emb: torch.Tensor) -> torch.Tensor:
        return self.transformer.encoder(self.src_in(emb).unsqueeze(1))

    def forward(self, emb: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: predict tokens 1..14 from [BOS] + tokens 1..13 (standardised units).
        emb (B, E), latents (B, 14, D) raw; in training mode teacher tokens are dropped at random."""
        prev = self.normalise(latents)[:, :-1]
        if self.training and self.cfg.token_dropout > 0:
            keep = torch.rand(prev.shape[0], prev.shape[1], 1, device=prev.device) >= self.cfg.token_dropout
            prev = prev * keep.to(prev.dtype)
        bos = torch.zeros_like(prev[:, :1])
        return self._decode(self.memory(emb), torch.cat([bos, prev], 1))

    def loss(self, emb: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """Teacher-forced MSE in standardised latent units."""
        return (self(emb, latents) - self.normalise(latents)).pow(2).mean()

    @torch.no_grad()
    def generate(self, emb: torch.Tensor) -> torch.Tensor:
        """Autoregressive decoding of the 14 latent tokens (raw units) from the embedding alone."""
        mem = self.memory(emb)
        tgt = torch.zeros(emb.shape[0], 1, self.cfg.latent_dim, device=emb.device)
        for _ in range(NUM_TOKENS):
            nxt = self._decode(mem, tgt)[:, -1:]
            tgt = torch.cat([tgt, nxt], 1)
        return tgt[:, 1:] * self.lat_std + self.lat_mean


#: epochs between two validation passes of :func:`train` (each decodes the whole validation split autoregressively)
VAL_EVERY = 10


def train(image_emb: torch.Tensor, latents: torch.Tensor, cfg: AlignConfig, device="cpu", seed: int = 0,
          fixed_view: bool = False, progress: bool = True, val: tuple[torch.Tensor, torch.Tensor] | None = None,
          val_every: int = VAL_EVERY):
    """image_emb (N, V, E) per object and view; latents (N, 14, D). Returns model and curves; with ``val``
    (embeddings, latents), the autoregressive validation loss every ``val_every`` epochs and at the last one
    (``history["val_epoch"]``, ``history["val_loss"]``)."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = Aligner(cfg)
    model.set_stats(latents)
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.epochs, eta_min=cfg.lr * 0.05)
    N, V = image_emb.shape[:2]
    inputs = artifacts.tensor_digest(image_emb, latents)
    image_emb, latents = image_emb.to(device), latents.to(device)
    hist = {"epoch": [], "loss": [], "val_epoch": [], "val_loss": []}
    t0, val_seconds = time.perf_counter(), 0.0
    for epoch in tqdm(range(cfg.epochs), desc="alignment" + (" (fixed view)" if fixed_view else ""),
                      disable=not progress, mininterval=2):
        model.train()
        views = torch.zeros(N, dtype=torch.long) if fixed_view else torch.randint(0, V, (N,), generator=gen)
        emb = image_emb[torch.arange(N), views.to(device)]
        perm = torch.randperm(N, generator=gen).to(device)
        total = 0.0
        for s in range(0, N, cfg.batch):
            idx = perm[s:s + cfg.batch]
            loss = model.loss(emb[idx], latents[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx) / N
        sched.step()
        hist["epoch"].append(epoch)
        hist["loss"].append(total)
        if val is not None and (epoch % val_every == 0 or epoch == cfg.epochs - 1):
            v0 = time.perf_counter()
            model.eval()
            with torch.no_grad():
                ve, vl = val[0].to(device), val[1].to(device)
                hist["val_loss"].append((model.normalise(model.generate(ve[:, 0])) - model.normalise(vl))
                                        .pow(2).mean().item())
            hist["val_epoch"].append(epoch)
            val_seconds += time.perf_counter() - v0
    model.eval()
    # ``seconds``: the training alone (the validation pass draws no random numbers, so the weights do not
    # depend on it: on the CPU a model trained with or without it is the same one, bit for bit)
    seconds = time.perf_counter() - t0 - val_seconds
    return model.cpu(), {"history": hist, "seconds": seconds, "val_seconds": val_seconds,
                         "trained": {**_training(inputs, seed, fixed_view), "seconds": seconds}}


def _training(inputs: str, seed: int, fixed_view: bool) -> dict:
    """What determines an aligner's weights besides its config: its training inputs, seed, view mode, this code."""
    return {"inputs": inputs, "seed": seed, "fixed_view": fixed_view, "code": artifacts.code_digest(sys.modules[__name__])}


def same_training(model: Aligner, cfg: AlignConfig, image_emb: torch.Tensor, latents: torch.Tensor, seed: int = 0,
                  fixed_view: bool = False) -> bool:
    """Whether ``model`` (from :func:`load`) is the aligner :func:`train` would make from these arguments: same config,
    training inputs (exact contents), seed, view mode and code, with its training seconds recorded."""
    rec = dict(model.trained)
    return (model.cfg == cfg and rec.pop("seconds", None) is not None
            and rec == _training(artifacts.tensor_digest(image_emb, latents), seed, fixed_view))


REBUILD = "make book ONLY=04"


def provenance(dataset, embeddings, stage1) -> dict[str, str]:
    """What an aligner is trained on: the dataset, the embedding cache and the VAE (their checksums)."""
    return {"dataset": dataset.fingerprint, "embeddings": embeddings.manifest["sha256"],
            "vae": stage1.weights_sha256}


def save(model: Aligner, p: Profile, inputs: dict[str, str], name: str = "align",
         trained: dict | None = None) -> Path:
    """Save an aligner with :func:`provenance` of what it was trained on, atomically. ``trained``: :func:`train`'s
    ``info["trained"]``, kept so that :func:`same_training` can tell a later training that it is this one."""
    folder = paths.stage_dir(p.name, "models")
    artifacts.save_part(folder, name, model.state_dict(), profile=p.name, config=asdict(model.cfg), inputs=inputs,
                        extra={"trained": trained} if trained else None)
    return folder


def load(p: Profile, inputs: dict[str, str], name: str = "align") -> Aligner:
    """Load an aligner; refused (with the command that rebuilds it) when it is missing or was trained on
    other inputs than ``inputs`` (see :func:`provenance`)."""
    state, record = artifacts.load_part(paths.stage_dir(p.name, "models"), name, profile=p.name, inputs=inputs,
                                        what="alignment model (notebooks/04_alignment)", rebuild=REBUILD)
    model = Aligner(AlignConfig(**record["config"]))
    model.load_state_dict(state)
    model.trained = record.get("trained", {})
    return model.eval()
