"""The isometry math of FIRE (Han et al., ICLR 2026): Newton-Schulz, the exact polar factor, the authors' scale,
and the deviation from isometry. A leaf module: strategies and their diagnostics both import it."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

METHODS = ("newton_schulz", "exact")


def newton_schulz(W: Tensor, iters: int = 10, eps: float = 1e-8) -> Tensor:
    """Cubic Newton-Schulz polar iteration on a batch (..., m, n), Frobenius-normalised, as in the paper's code."""
    # Low-precision weights would lose the iteration's accuracy; work in at least float32.
    X = W.float() if W.dtype in (torch.float16, torch.bfloat16) else W
    wide = X.shape[-1] > X.shape[-2]
    if wide:
        X = X.mT  # keep the iterate tall so the Gram X^T X is on the small side (5-6x faster on CPU)
    # Frobenius (not spectral) normalisation puts every singular value in (0, 1]; eps guards all-zero slices.
    X = X / (torch.linalg.matrix_norm(X, ord="fro", keepdim=True) + eps)
    for _ in range(iters):
        X = 1.5 * X - 0.5 * X @ (X.mT @ X)  # (a, b) = (1.5, -0.5): classic cubic, not Muon's quintic
    if wide:
        X = X.mT
    return X.to(W.dtype)


# conv divisor k_h*k_w (the authors') | sqrt(k_h*k_w) (RMS-preserving, docs/paper-notes.md §1.4)
SCALES = ("paper", "rms")


def fire_scale(shape: Sequence[int], rule: str = "paper") -> float:
    """sqrt(d_out/d_in) / (k_h*k_w) for a PyTorch weight shape (d_out, d_in[, k_h, k_w]); rule "rms" divides a conv by
    sqrt(k_h*k_w) instead, which keeps the per-unit RMS of the signal (linear layers: the same in both)."""
    if len(shape) == 2:
        d_out, d_in = shape
        kernel = 1
    elif len(shape) == 4:
        d_out, d_in, k_h, k_w = shape
        kernel = k_h * k_w
    else:
        raise ValueError(f"FIRE handles Linear (2-D) or Conv2d (4-D) weights, got shape {tuple(shape)}")
    if rule not in SCALES:
        raise ValueError(f"FIRE scale={rule!r} is not one of {list(SCALES)}")
    # The authors divide by k_h*k_w (not its square root); reproduced as written (docs/paper-notes.md §1.4, §7.2).
    return math.sqrt(d_out / d_in) / (kernel if rule == "paper" else math.sqrt(kernel))


def _slices(weight: Tensor) -> Tensor:
    """Conv weight (C_out, C_in, kh, kw) -> batch of per-position matrices (kh*kw, C_out, C_in); Linear unchanged."""
    if weight.dim() == 4:
        c_out, c_in, k_h, k_w = weight.shape
        # contiguous: batched matmuls on the strided permuted view run about 3x slower on CPU
        return weight.permute(2, 3, 0, 1).reshape(k_h * k_w, c_out, c_in).contiguous()
    return weight


def polar_factor(W: Tensor) -> Tensor:
    """Exact polar factor U V^T of a batch (..., m, n) by SVD: the Procrustes solution FIRE approximates (Eq. 5)."""
    X = W.float() if W.dtype in (torch.float16, torch.bfloat16) else W
    U, _, Vh = torch.linalg.svd(X, full_matrices=False)
    return (U @ Vh).to(W.dtype)


def fire_project(weight: Tensor, iters: int = 10, method: str = "newton_schulz", scale: str = "paper") -> Tensor:
    """FIRE's projection: orthogonalise per matrix (per kernel position for convs, one batched call), then scale.

    method "newton_schulz" is the paper's `iters` cubic iterations; "exact" is the SVD polar factor, same scale.
    scale "paper" is the authors' rule; "rms" the RMS-preserving conv rule (a separately named variant).
    """
    if method not in METHODS:
        raise ValueError(f"FIRE method={method!r} is not one of {list(METHODS)}")
    factor = fire_scale(weight.shape, scale)
    ortho = newton_schulz(_slices(weight), iters=iters) if method == "newton_schulz" else polar_factor(_slices(weight))
    if weight.dim() == 4:
        c_out, c_in, k_h, k_w = weight.shape
        ortho = ortho.reshape(k_h, k_w, c_out, c_in).permute(2, 3, 0, 1)
    return ortho * factor


def deviation_from_isometry(weight: Tensor) -> float:
    """DfI = ||G - I||_F^2 on weight / fire_scale, G the Gram on the smaller side; summed over conv positions.

    The paper defines DfI(W) = ||W^T W - I||_F^2 for W with orthonormal columns. FIRE's output is scaled by
    fire_scale, so W^T W = scale^2 I there; we divide the scale out so a converged FIRE projection reads 0, and take
    the Gram on the smaller side so a wide layer is measured by its rows (the side that can be orthonormal).
    """
    X = _slices(weight.detach().double()) / fire_scale(weight.shape)
    G = X.mT @ X if X.shape[-2] >= X.shape[-1] else X @ X.mT
    eye = torch.eye(G.shape[-1], dtype=G.dtype, device=G.device)
    return float(((G - eye) ** 2).sum())


def raw_deviation_from_isometry(weight: Tensor) -> float:
    """The paper's DfI(W) = ||W^T W - I||_F^2 on the weight itself (no scale divided out), W in the paper's
    (input x neurons) orientation, i.e. ||W W^T - I||_F^2 for a PyTorch (out, in) weight; for a conv, summed over
    its kernel positions. Zero only for orthonormal rows (a FIRE projection whose scale is 1)."""
    X = _slices(weight.detach().double())
    eye = torch.eye(X.shape[-2], dtype=X.dtype, device=X.device)
    return float(((X @ X.mT - eye) ** 2).sum())


def isometry_sv_min(weight: Tensor, rule: str = "paper") -> float:
    """Smallest singular value of weight / fire_scale over all kernel positions: 1.0 for an exact FIRE projection."""
    return float(torch.linalg.svdvals(_slices(weight.detach().double()) / fire_scale(weight.shape, rule)).min())
