"""The math of the feature distillation losses: AT, FSP, cosine, RKD and hints.

Plain functions on tensors, so the block steps (recast/steps.py,
recast/local.py) and the fine-tune (recast/losses.py) share one definition
and a test can check each on a tiny model. A map is (N, C, H, W); a vector
output (N, D) counts as a map of one pixel where a loss needs a map.
"""

from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def attention_map(x: Tensor) -> Tensor:
    """Q = normalise(mean over channels of A^2): where the map is active, at any width.

    Zagoruyko & Komodakis 2017 (p=2, the mean of their code); a vector output's
    attention is over its units.
    """
    energy = x.pow(2).mean(1) if x.dim() > 2 else x.pow(2)
    return F.normalize(energy.flatten(1), dim=1)


def attention_transfer(student: Tensor, teacher: Tensor, weight: float = 1000.0) -> Tensor:
    """weight/2 * mean (Q_S - Q_T)^2 at one position: the AT term (beta 1000 in the paper)."""
    return weight / 2 * (attention_map(student) - attention_map(teacher)).pow(2).mean()


def _as_map(x: Tensor) -> Tensor:
    return x[..., None, None] if x.dim() == 2 else x


def fsp_matrix(first: Tensor, second: Tensor) -> Tensor:
    """G = F1 F2^T / (h w), (N, C1, C2): how a stretch of layers turns its input into
    its output (Yim et al. 2017). Maps of different sizes are average-pooled to the
    smaller one first, as FSP implementations do across a stride."""
    first, second = _as_map(first), _as_map(second)
    size = (min(first.shape[2], second.shape[2]), min(first.shape[3], second.shape[3]))
    if first.shape[2:] != size:
        first = F.adaptive_avg_pool2d(first, size)
    if second.shape[2:] != size:
        second = F.adaptive_avg_pool2d(second, size)
    a, b = first.flatten(2), second.flatten(2)
    return a @ b.transpose(1, 2) / a.shape[2]


def fsp_loss(student_out: Tensor, teacher_out: Tensor, student_in: Tensor,
             teacher_in: Tensor) -> Tensor:
    """mean (G_S - G_T)^2 of the FSP matrices between a step's input and output maps.

    The inputs must hold the same channels (:func:`matching_channels`).
    """
    return F.mse_loss(fsp_matrix(student_in, student_out), fsp_matrix(teacher_in, teacher_out))


def matching_channels(student: Tensor, teacher: Tensor,
                      kept: Tensor | None) -> tuple[Tensor, Tensor]:
    """Both maps over the same channels: the teacher channels the student's hold (a
    warm start's ``kept``), else the first channels of both (no correspondence to
    keep, so the student learns this one)."""
    if student.shape[1] == teacher.shape[1]:
        return student, teacher
    if kept is not None and len(kept) == student.shape[1]:
        return student, teacher.index_select(1, kept.to(teacher.device))
    count = min(student.shape[1], teacher.shape[1])
    return student[:, :count], teacher[:, :count]


def cosine_distance(student: Tensor, teacher: Tensor) -> Tensor:
    """1 - cos(S, T) per image, averaged: the activation's direction, not its scale."""
    return (1 - F.cosine_similarity(student.flatten(1), teacher.flatten(1), dim=1)).mean()


def embedding(x: Tensor) -> Tensor:
    """(N, D): a map globally average-pooled, as a classifier head sees it."""
    return x.flatten(2).mean(2) if x.dim() > 2 else x.flatten(1)


def pairwise_distances(e: Tensor, eps: float = 1e-12) -> Tensor:
    """Euclidean distances between the rows of ``e``, zero on the diagonal."""
    square = e.pow(2).sum(1)
    d = (square[:, None] + square[None, :] - 2 * e @ e.t()).clamp(min=eps).sqrt()
    return d * (1 - torch.eye(len(e), device=e.device, dtype=e.dtype))


def rkd_distance(student: Tensor, teacher: Tensor) -> Tensor:
    """Huber loss between the batch's pairwise distances, each normalised by its mean
    (Park et al. 2019): embeddings of any widths can be compared."""
    if len(student) < 2:
        return student.sum() * 0
    pairs = len(student) * (len(student) - 1)  # off the diagonal: all > 0 (eps)
    s, t = pairwise_distances(student), pairwise_distances(teacher.detach())
    return F.smooth_l1_loss(s / (s.sum() / pairs), t / (t.sum() / pairs))


def _angles(e: Tensor) -> Tensor:
    """cos of the angle at j between i and k, for every triple (i, j, k) of the batch."""
    directions = F.normalize(e[None, :, :] - e[:, None, :], dim=2)
    return (directions @ directions.transpose(1, 2)).flatten()


def rkd_angle(student: Tensor, teacher: Tensor) -> Tensor:
    """Huber loss between the batch's triplet angles (Park et al. 2019)."""
    return F.smooth_l1_loss(_angles(student), _angles(teacher.detach()))


def rkd(student: Tensor, teacher: Tensor, distance_weight: float = 25.0,
        angle_weight: float = 50.0) -> Tensor:
    """RKD-DA on two embeddings: the paper's weights 25 (distance) and 50 (angle)."""
    s, t = embedding(student), embedding(teacher)
    return distance_weight * rkd_distance(s, t) + angle_weight * rkd_angle(s, t)


def block_outputs(blocks: Iterable[nn.Module], x: Tensor) -> list[Tensor]:
    """The output of every block of a chain, run in order; the last is the logits.
    The fine-tune's feature losses and the all-at-once block pass share it."""
    outputs = []
    for block in blocks:
        x = block(x)
        outputs.append(x)
    return outputs


def paired_outputs(student: Sequence[Tensor], teacher: Sequence[Tensor],
                   matches: Callable[[Tensor, Tensor], bool]) -> list[tuple[Tensor, Tensor]]:
    """Block outputs (logits excepted) of student and teacher at the same chain position
    that ``matches`` accepts: where a feature term compares the two chains."""
    return [(s, t) for s, t in zip(student[:-1], teacher[:-1]) if matches(s, t)]


def attention_positions(student: Sequence[Tensor],
                        teacher: Sequence[Tensor]) -> list[tuple[Tensor, Tensor]]:
    """Maps of the same spatial size: where attention transfer compares the chains."""
    return paired_outputs(student, teacher, lambda s, t: s.dim() == 4 and t.dim() == 4
                          and s.shape[2:] == t.shape[2:])


def hint_loss(student: Sequence[Tensor], teacher: Sequence[Tensor]) -> Tensor | None:
    """Mean over the chain positions (logits excepted) where student and teacher output
    the same shape of MSE between the outputs: FitNets' hint at every such block, which
    a transformation (widths kept) has at every position. None where there is none."""
    pairs = paired_outputs(student, teacher, lambda s, t: s.shape == t.shape)
    if not pairs:
        return None
    return sum((F.mse_loss(s, t) for s, t in pairs), student[-1].new_zeros(())) / len(pairs)
