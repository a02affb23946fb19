"""Does the parameter space carry semantics? (paper §5.1, Figs. 4–5)

The paper argues that fitting every NeRF from one shared initialisation puts NeRFs of one
category close together in parameter space, while independent random initialisations scatter
them (permutation symmetry of hidden units). We quantify "separate" with two numbers on the
flattened parameter vectors: the silhouette score of the category labels in a PCA space, and the
cross-validated accuracy of a linear probe (logistic regression) — chance is 50% for two categories.
"""
from __future__ import annotations

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import silhouette_score
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from p2nlib.data import nerf


def flat(params: dict[str, torch.Tensor]) -> np.ndarray:
    return nerf.flatten(params).double().numpy()


def pca2(x: np.ndarray) -> np.ndarray:
    return PCA(n_components=2).fit_transform(x - x.mean(0))


def separation(x: np.ndarray, labels, components: int = 10, seed: int = 0) -> dict[str, float]:
    """Silhouette score (PCA space) and 5-fold linear-probe accuracy of ``labels`` on rows of ``x``."""
    labels = np.asarray(labels)
    k = min(components, x.shape[0] - 1, x.shape[1])
    z = PCA(n_components=k, random_state=seed).fit_transform(x - x.mean(0))
    folds = min(5, int(min(np.unique(labels, return_counts=True)[1])))
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.1))
    acc = cross_val_score(probe, x, labels, cv=StratifiedKFold(folds, shuffle=True, random_state=seed)).mean() \
        if folds >= 2 else float("nan")
    return {"silhouette": float(silhouette_score(z, labels)), "probe_accuracy": float(acc), "folds": folds}
