"""Ridge least squares for convs: the arithmetic of the closed-form warm starts.

A conv's output at a position is linear in the patch under it (im2col), so its
weights that best reproduce given outputs solve one regularised normal
equation; recast/solve.py decides what each block's convs are fitted to.
Positions come from a fixed-seed generator unless one is given: a fit never
consumes the global RNG a resumed run replays.
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recast.errors import RecastError


def _padded(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """``x`` padded as the conv pads it (any padding and padding mode)."""
    (dh, dw), (kh, kw) = conv.dilation, conv.kernel_size
    if isinstance(conv.padding, str):  # 'same' puts the odd pixel on the far side
        th, tw = (dh * (kh - 1), dw * (kw - 1)) if conv.padding == "same" else (0, 0)
        pads = (tw // 2, tw - tw // 2, th // 2, th - th // 2)
    else:
        pads = (conv.padding[1],) * 2 + (conv.padding[0],) * 2
    mode = "constant" if conv.padding_mode == "zeros" else conv.padding_mode
    return F.pad(x, pads, mode=mode) if any(pads) else x


def apply_conv(conv: nn.Conv2d, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``conv`` with another weight and bias (its stride, padding, dilation)."""
    return F.conv2d(_padded(conv, x), weight, bias, conv.stride, 0, conv.dilation)


def _patches(conv: nn.Conv2d, inputs: Tensor, picks: Tensor, positions: int) -> Tensor:
    """im2col rows (len(picks), C_in*kh*kw) at flat (image, output position) indices."""
    padded, image, place = _padded(conv, inputs), picks // positions, picks % positions
    chunk = max(1, 2 ** 24 // (conv.weight[0].numel() * positions))  # bounds unfold's memory
    rows = []
    for start in range(0, inputs.shape[0], chunk):
        inside = (image >= start) & (image < start + chunk)
        if inside.any():
            cols = F.unfold(padded[start:start + chunk], conv.kernel_size, conv.dilation,
                            0, conv.stride)
            rows.append(cols[image[inside] - start, :, place[inside]])
    return torch.cat(rows)


@torch.no_grad()
def fit_convs(parts: list[tuple[nn.Conv2d, Tensor]], targets: Tensor, ridge: float = 1e-3,
              max_positions: int = 4096, generator: torch.Generator | None = None
              ) -> tuple[list[Tensor], Tensor]:
    """Ridge least-squares weights and one bias with ``sum conv_i(inputs_i; w_i) + bias ~=
    targets`` over the (conv, its input) ``parts``, as a residual block's main path and
    projection shortcut add up.

    The ridge, relative to each part's mean diagonal of the Gram matrix (scale-
    free per path: a shortcut reading small raw inputs is not shrunk more than a
    main path reading normalised ones), spares the bias. ``max_positions``
    random output positions over images and space; where the unknowns come
    near them, the ridge keeps the solve well posed. The convs are only read.
    """
    if not parts:
        raise RecastError("fit_convs needs at least one (conv, inputs) part")
    for conv, inputs in parts:
        if conv.groups != 1:
            raise RecastError(f"fit_convs needs groups=1, got {conv.groups}; keep the warm "
                              f"start")
        if inputs.dim() != 4 or inputs.shape[1] != conv.in_channels or targets.shape != (
                len(inputs), conv.out_channels,
                *apply_conv(conv, inputs[:1], conv.weight, None).shape[2:]):
            raise RecastError(f"fit_convs: inputs {tuple(inputs.shape)} and targets "
                              f"{tuple(targets.shape)} do not fit {conv}; pass the conv's own "
                              f"input and targets shaped like its output")
    positions = targets[0, 0].numel()
    generator = generator or torch.Generator().manual_seed(0)
    picks = torch.randperm(len(targets) * positions, generator=generator)[:max_positions]
    picks = picks.sort().values.to(targets.device)
    x = torch.cat([_patches(conv, inputs, picks, positions).double().cpu()
                   for conv, inputs in parts], 1)
    x = F.pad(x, (0, 1), value=1.0)
    y = targets.flatten(2)[picks // positions, :, picks % positions]
    gram, moment = x.T @ x, x.T @ y.double().cpu()
    sizes = [conv.weight[0].numel() for conv, _ in parts]
    for diagonal in gram.diagonal().split(sizes + [1])[:-1]:  # views: the bias is spared
        diagonal += ridge * diagonal.mean()
    factor, info = torch.linalg.cholesky_ex(gram)
    solution = torch.cholesky_solve(moment, factor) if int(info) == 0 \
        else torch.linalg.pinv(gram, hermitian=True) @ moment  # rank-deficient, no ridge
    weight = parts[0][0].weight
    *blocks, bias = solution.to(weight.device, weight.dtype).split(sizes + [1])
    return [b.T.reshape(conv.weight.shape).contiguous()
            for b, (conv, _) in zip(blocks, parts)], bias[0]


def fit_conv(conv: nn.Conv2d, inputs: Tensor, targets: Tensor, ridge: float = 1e-3,
             max_positions: int = 4096, generator: torch.Generator | None = None
             ) -> tuple[Tensor, Tensor]:
    """Ridge least-squares (weight, bias) with ``conv(inputs; weight) + bias ~= targets``
    (:func:`fit_convs` for one conv)."""
    (weight,), bias = fit_convs([(conv, inputs)], targets, ridge, max_positions, generator)
    return weight, bias


@torch.no_grad()
def principal_filters(conv: nn.Conv2d, inputs: Tensor, targets: Tensor, count: int,
                      ridge: float = 1e-3, max_positions: int = 4096,
                      generator: torch.Generator | None = None) -> Tensor:
    """Up to ``count`` filters shaped like ``conv``'s whose outputs are the leading
    principal components of the best linear fit of ``targets`` from ``conv``'s patches.

    Why: a hidden layer that carries these directions lets the layer after it
    reproduce the best rank-``count`` part of that fit, where random filters
    leave it little to build on. Directions the fit does not vary along (below
    1e-6 of the largest variance) are left out. Each filter's norm is its
    component's spread: callers behind a BN may rescale them freely.
    """
    # skip_init: a probe drawn from the global RNG would change what a resumed run replays
    probe = nn.utils.skip_init(nn.Conv2d, conv.in_channels, targets.shape[1],
                               conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                               bias=False, padding_mode=conv.padding_mode,
                               device=conv.weight.device, dtype=conv.weight.dtype)
    probe.weight.zero_()  # skip_init leaves memory as it was
    weight, _ = fit_conv(probe, inputs, targets, ridge, max_positions, generator)
    fitted = apply_conv(probe, inputs, weight, None).transpose(0, 1).flatten(1).double()
    variances, directions = torch.linalg.eigh(torch.cov(fitted))
    order = variances.argsort(descending=True)
    order = order[variances[order] > 1e-6 * variances.max().clamp_min(1e-30)][:count]
    leading = directions[:, order].to(weight.dtype)
    return (leading.T @ weight.flatten(1)).reshape(-1, *weight.shape[1:])


@torch.no_grad()
def install_linear_fit(conv: nn.Conv2d, bn: nn.Module | None, weight: Tensor, bias: Tensor,
                       inputs: Tensor) -> None:
    """Make ``bn(conv(x)) ~= conv2d(x, weight) + bias`` in eval and in train mode.

    BN gets the statistics of ``conv(inputs)`` and an affine part that undoes
    them (identity plus ``bias``), so batch and running statistics agree and
    training starts where the fit is. Without a BN the bias goes to conv.bias.
    """
    if bn is not None and not getattr(bn, "affine", False):
        raise RecastError(f"cannot install a fit into {type(bn).__name__} without affine "
                          f"parameters; build the target's BN with affine=True")
    conv.weight.copy_(weight)
    if bn is None:
        if conv.bias is not None:
            conv.bias.copy_(bias)
        return
    if conv.bias is not None:
        conv.bias.zero_()
    # the biased variance is what BN divides by in train mode: exact on this batch
    var, mean = torch.var_mean(conv(inputs).transpose(0, 1).flatten(1), dim=1, unbiased=False)
    if bn.running_mean is not None:
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
    bn.weight.copy_((var + bn.eps).sqrt())
    bn.bias.copy_(mean + bias)
