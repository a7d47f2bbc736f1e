"""What the tables of benchmarks/cifar10.md mean where a goal is missed, and what to
try next: written by hand from the committed runs (benchmarks/cifar10-runs.md
tells their story), shown under each pair's goal table as a reading, never as
a measurement.
"""

# the results file (the bench's --out stem) whose runs these readings were written from:
# other files of the same pairs (labels, losses) hold other runs
WRITTEN_FROM = "cifar10"

READINGS: dict[str, dict[str, str]] = {
    "resnet20-conv": {
        "why": "the 10-layer plain student trains as well from random weights as from "
               "any teacher signal (scratch 76.95 ± 0.13 over 3 seeds; no method that "
               "trains this plain net beats it by more than 0.03 points), and the "
               "teacher is only 2.3 points above it. With the closed-form warm start "
               "the partial net is at 72% after the first step and 65% after the "
               "last; with the shortcut-path warm start (the preset's) at 19-59%",
        "next": "a deeper plain student, where random weights fall short of the "
                "residual teacher: the resnet56-conv pair (its goals are reached)",
    },
    "vgg16-conv": {
        "why": "the student is 6.2x smaller than its teacher, and every method that "
               "trains it lands between 76.29 and 78.50, 4.7-7.0 points under the "
               "teacher: our reading is that the gap is mostly what 148k parameters "
               "hold at 18 epochs. The partial net is at 81% after the first step and "
               "68-74% after the others, and the fine-tune lifts it to 78",
        "next": "per-layer widths that keep the late layers wider (as the paper's "
                "ImageNet schedule does) at the same total size; the KD fine-tune "
                "(warm-kd, 78.50 ± 0.28) where wall time allows",
    },
    "wrn16_4-basic": {
        "why": "on the teacher trained again on 2026-11-26 (83.10%, 0.76 above the "
               "first, whose runs are archived in cifar10-wrn16_4-teacher-82.md), "
               "every method that trains the 44k-parameter student stays 2.5-3.9 "
               "points under it: scratch 79.20 ± 0.30, kd-mse 80.06 ± 0.09, recast "
               "80.39 ± 0.23 (3 seeds each). The six steps leave the partial net at 74-80% "
               "(seed 0: 77.5, 79.6, 76.4, 77.5, 75.6, 74.3), the last block's MSE "
               "(1.87) is 7x any other's, and the CE fine-tune lifts the net 6 points. "
               "More teacher signal does not move it: the fine-tune on kd-mse's own "
               "loss (`loss-mse-ce`, the last reading's next idea) adds 0.07 on seed 0 "
               "at 1.52x the wall time, and at kd-mse's lr of 0.05 (`warm-mse-sgd`) it "
               "throws the warm start away (76.60). The closed-form warm start (-1.34) "
               "and BN recalibration (-0.24) cost accuracy here, and a one-epoch "
               "warm-up of the fine-tune's rate does not help either start (80.26 "
               "after the preset's, 78.91 after the closed form; seed 0). On the first teacher "
               "recast led kd-mse by 1.05 on one seed of kd-mse, which this teacher's "
               "seeds do not repeat. Our reading: at 18 epochs this student's size, "
               "not the teacher signal, bounds every method",
        "next": "the student's shape at equal cost (the late blocks kept wider, as "
                "for VGG), with the alternatives trained on the same new student; "
                "the +1 goal is not within reach of a recipe change on this student",
    },
    "resnet56-conv": {
        "why": "the goals are reached with the `fast` preset. The best recipe measured "
               "is the closed-form start followed by a fine-tune whose rate ramps up "
               "over its first epoch (`solve-warmup-ce-sgd-lr02`: 80.70, 80.95, 81.08 "
               "and 80.90 on seeds 0-3, 80.91 ± 0.16, 0.09 above the teacher, at 1.09x "
               "scratch's wall time in one invocation under unequal loads), above the "
               "preset on each seed (80.43, 80.12, 80.18). The closed-form start alone "
               "ends lower (79.30, "
               "seed 0). The warm-up does not keep the solved start through the first "
               "pass (43% at its end, 50% without it); what it changes is where the "
               "fine-tune ends. On basic -> basic (WRN-16-4) the same recipe costs "
               "1.59 (seed 0), and on dense -> basic 1.35 (seed 0), so the preset "
               "keeps the warm start",
        "next": "why the solved start wins on basic -> conv and not on dense -> basic, "
                "whose solved steps also start higher (the DenseNet reading); until "
                "then `--solve auto` is the user's choice for ResNet -> plain, not the "
                "preset's",
    },
    "densenet40-basic": {
        "why": "on the 60-epoch teacher (84.21%, 5.7 points above scratch's 78.53 ± "
               "0.41) the preset ends under scratch (77.45 ± 0.29, 3 seeds), and "
               "KD and kd-mse reach 79.31 and 79.28 (seed 0 each). The preset's "
               "three steps leave the partial net at 40%, 49% and 52%: no warm start "
               "fills a basic block from a dense one, so each target starts from "
               "random weights. The closed-form start lifts the steps to 69%, 62% and "
               "63% (pre-activation MSE cut 7.9x, 3.2x and 1.5x) yet ends lower: 76.09 "
               "without the warm-up, 76.36 with it (seed 0). So the fit, not the "
               "warm-up, costs here, and a better start after the steps does not carry "
               "through the 14.4-epoch fine-tune as it does on ResNet-56 -> plain. The "
               "last block's MSE (3.8-5.9) is over 200x the others', the block before "
               "the head",
        "next": "a warm start for dense -> basic (the basic block's first conv from "
                "the dense block's convs, not random), and a fine-tune that keeps "
                "the teacher's signal (KD and kd-mse win here, where they did not after "
                "the warm start on other pairs: `warm-kd-sgd-lr02`, `loss-mse-ce`); the "
                "closed-form rule stays out of the preset, which it cost 1.35-1.62 "
                "points here (seed 0)",
    },
    "resnet29-conv": {
        "why": "the quarter-width bottleneck teacher reached 66.27% in 15 epochs, "
               "below what its 8k-parameter plain student reaches from scratch "
               "(69.15%): there is no gap to close, and learning from it costs 5 points",
        "next": "a half-width teacher trained longer (a GPU run, or one resumed over "
                "several sittings on this CPU with `recast train --resume`) before this "
                "pair can say anything about bottleneck -> conv",
    },
}


def reading_lines(name: str) -> list[str]:
    """The pair's reading as Markdown lines, or nothing for a pair without one."""
    reading = READINGS.get(name)
    if reading is None:
        return []
    return ["", f"Reading (written by hand from these runs, not computed): why: "
            f"{reading['why']}. Next: {reading['next']}."]
