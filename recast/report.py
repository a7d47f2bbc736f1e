"""The compression report: teacher vs planned (or trained) student.

Whole-model and per-block params, mults (conv and matrix multiplies, the
paper's unit) and total MACs (fvcore), their ratios, and measured CPU
latency. Units are MACs, never FLOPs.
"""

import io
from typing import Any

import torch
from torch import nn

from recast.counting import Cost, count_costs
from recast.errors import RecastError
from recast.latency import (
    explain_speedup,
    measure_latency_ms,
    measure_onnx_latency_ms,
    onnx_session,
)
from recast.onnx_io import write_onnx
from recast.plan import Plan


def compression_report(
    plan: Plan,
    student: nn.Module | None = None,
    latency: bool = True,
    latency_batches: tuple[int, ...] = (1, 64),
    onnx: bool = False,
) -> dict[str, Any]:
    """Report for ``plan``; pass the trained ``student`` to measure it instead.
    ``onnx`` also times both nets in ONNX Runtime, when it is installed."""
    chain = plan.chain
    shape = chain.input_shape
    example = torch.randn((1, *shape[1:]))
    teacher_net = chain.as_module()
    student_net = student if student is not None else plan.build_student()
    teacher_total, teacher_parts = count_costs(teacher_net, example, children=True)
    student_total, student_parts = count_costs(student_net, example, children=True)
    report: dict[str, Any] = {
        "model": chain.model_name,
        "input_shape": list(shape),
        "target": plan.target,
        "units": {"mults": "multiplies of conv and matrix-multiply ops (paper's "
                  "Mults)", "macs": "multiply-accumulates counted by fvcore"},
        "teacher": _cost_json(teacher_total),
        "student": _cost_json(student_total),
        "ratio": {
            key: _ratio(getattr(teacher_total, key), getattr(student_total, key))
            for key in ("params", "mults", "macs")
        },
        "blocks": [],
    }
    if plan.budget is not None:
        report["budget"] = dict(plan.budget)
    if plan.rounding is not None:
        report["rounding"] = dict(plan.rounding)
    if latency:
        for name, net in (("teacher", teacher_net), ("student", student_net)):
            report[name]["latency_ms"] = {
                f"batch{b}": round(measure_latency_ms(net, shape, b), 3)
                for b in latency_batches
            }
        report["ratio"]["latency_batch1"] = _ratio(
            report["teacher"]["latency_ms"]["batch1"],
            report["student"]["latency_ms"]["batch1"])
        timed = {name: onnx_latency_ms(net, shape, latency_batches) if onnx else None
                 for name, net in (("teacher", teacher_net), ("student", student_net))}
        if all(timed.values()):  # ONNX Runtime is installed and both nets export
            for name, times in timed.items():
                report[name]["onnx_latency_ms"] = times
            report["ratio"]["onnx_latency_batch1"] = _ratio(
                timed["teacher"]["batch1"], timed["student"]["batch1"])
        why = explain_speedup(report["ratio"]["mults"], report["ratio"]["latency_batch1"],
                              student_net)
        if why:
            report["speedup_note"] = why
    for step in plan.steps:
        key = str(step.block.index)
        before, after = teacher_parts[key], student_parts[key]
        report["blocks"].append({
            "index": step.block.index, "name": step.block.name,
            "kind": step.block.kind, "target": step.target,
            "recast": step.recast, "in_channels": step.block.in_channels,
            "out_channels": step.block.out_channels,
            "in_channels_after": step.in_channels,
            "out_channels_after": step.out_channels, "stride": step.block.stride,
            "params": before.params, "params_after": after.params,
            "mults": before.mults, "mults_after": after.mults,
            "macs": before.macs, "macs_after": after.macs,
            "kept_reason": step.kept_reason, "kept_because": step.kept_because,
            "note": step.note,
        })
    return report


def onnx_latency_ms(net: nn.Module, shape: tuple[int, ...],
                    batches: tuple[int, ...]) -> dict[str, float] | None:
    """ONNX Runtime latency per batch size, or None without onnxruntime (an optional
    extra) or when the net does not export."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return None
    buffer = io.BytesIO()
    try:
        write_onnx(net.eval(), shape, buffer, dynamic_batch=True)
    except RecastError:
        return None
    session = onnx_session(buffer.getvalue())
    return {f"batch{b}": round(measure_onnx_latency_ms(session, shape, b), 3) for b in batches}


def _cost_json(cost: Cost) -> dict[str, Any]:
    return {"params": cost.params, "mults": cost.mults, "macs": cost.macs}


def _ratio(before: float, after: float) -> float:
    return round(before / after, 3) if after else float("inf")


def human(n: float) -> str:
    """14724042 -> '14.72M'."""
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f}{unit}"
    return str(int(n))


def report_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown tables, for terminals and report.md."""
    t, s, r = report["teacher"], report["student"], report["ratio"]
    lines = [
        f"## {report['model']} -> {report['target']} (input {report['input_shape']})",
        "",
        "| | params | mults | MACs (fvcore) | latency b1 (ms) | latency b64 (ms) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, row in (("teacher", t), ("student", s)):
        lat = row.get("latency_ms", {})
        lines.append(
            f"| {name} | {human(row['params'])} | {human(row['mults'])} | "
            f"{human(row['macs'])} | {lat.get('batch1', '-')} | {lat.get('batch64', '-')} |"
        )
    lines.append(
        f"| ratio | {r['params']}x | {r['mults']}x | {r['macs']}x | "
        f"{r.get('latency_batch1', '-')}x | |"
    )
    if "onnx_latency_ms" in t:
        lines.append(
            f"| ONNX Runtime b1/b64 (ms) | teacher {t['onnx_latency_ms']['batch1']}/"
            f"{t['onnx_latency_ms'].get('batch64', '-')} | student "
            f"{s['onnx_latency_ms']['batch1']}/{s['onnx_latency_ms'].get('batch64', '-')} | | "
            f"{r['onnx_latency_batch1']}x | |")
    lines += [
        "",
        "mults = multiplies of conv and matrix-multiply ops (the paper's unit); "
        "MACs = all multiply-accumulates fvcore counts. Latency: median CPU wall "
        "time of one forward pass." + (f" Batch 1: {report['speedup_note']}."
                                       if report.get("speedup_note") else ""),
        "",
        "| # | block | kind | target | channels | stride | params | params after "
        "| mults | mults after |",
        "|---:|---|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for b in report["blocks"]:
        lines.append(
            f"| {b['index']} | {b['name']} | {b['kind']} | "
            f"{b['target'] if b['recast'] else 'kept*' if b.get('kept_reason') else 'kept'} | "
            f"{b['in_channels']}->{b['out_channels']} => "
            f"{b['in_channels_after']}->{b['out_channels_after']} | {b['stride']} | "
            f"{human(b['params'])} | {human(b['params_after'])} | "
            f"{human(b['mults'])} | {human(b['mults_after'])} |"
        )
    kept = [b for b in report["blocks"] if b.get("kept_reason")]
    if kept:
        lines += ["", "Kept, not recast (pass allow_bigger / --allow-bigger to force):", ""]
        lines += [f"- {b['index']} {b['name']}: {b['kept_reason']}" for b in kept]
    shaped = [b for b in report["blocks"] if b.get("note")]
    if shaped:
        lines += ["", "Recast with a note:", ""]
        lines += [f"- {b['index']} {b['name']}: {b['note']}" for b in shaped]
    budget = report.get("budget")
    if budget:
        lines += ["", f"Budget: {budget['measure']} ratio asked {budget['asked']}, got "
                  f"{budget['got']} (uniform width {budget['width']})"
                  + (f"; {budget['note']}." if budget.get("note") else ".")]
    rounding = report.get("rounding")
    if rounding:
        before, after = rounding["student_unrounded"], s
        lines += ["", f"Channels rounded to multiples of {rounding['multiple']}: " + ", ".join(
            f"{k} {human(after[k])} (unrounded {human(before[k])}, "
            f"{(after[k] - before[k]) / before[k]:+.1%})" for k in ("params", "mults")) + "."]
    return "\n".join(lines) + "\n"
