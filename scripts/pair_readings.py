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
        "why": "on teacher D (83.30%, 40 epochs, 6.5 points above scratch's 76.79 ± "
               "0.13; teacher C's runs are archived in cifar10-resnet20-teacher-79.md) "
               "the `fast` preset (closed-form start, warm-up, then `--finetune-loss "
               "auto`: Hinton KD for the first quarter of the fine-tune, then CE, the "
               "teacher's target forward in bfloat16 on this CPU by `--teacher-precision "
               "auto`; `solve-warmup-kd-sgd-lr02-t25-bf16`) ends at 78.31 ± 0.10, "
               "0.15 under kd-mse (78.46 ± 0.23), at 1.14x scratch's wall time in one "
               "invocation at equal load (seed 0). In float32 (the preset before it, "
               "`solve-warmup-kd-sgd-lr02-t25`) it ended at 78.44 ± 0.08 (seed 0 ran "
               "again at 78.46, 78.63 before), above CE throughout (77.69 ± 0.05) on "
               "every seed; bfloat16 costs 0.13 points here (seed 0 back to back 78.34 "
               "against 78.46) and saves little: its block steps take 117-135 s "
               "against 132-155 s, but they are a fifth of the run, and this "
               "teacher's KD batch is only 10% faster in bfloat16 (benchmarks/speed.md, "
               "against 51% on DenseNet-40), so the runs (672-693 s against 688-711 s; "
               "seed 0 back to back 689 against 690 s) move by less than their spread. "
               "The logit-MSE + CE fine-tune after the same start "
               "(`solve-warmup-mse-sgd-lr02`) ends at 79.00 ± 0.08, and handing it "
               "over to CE halfway (`solve-warmup-mse-sgd-lr02-t50`, early-stopped "
               "distillation) at 79.14 ± 0.28, this pair's best: 0.68 over kd-mse, "
               "closing 36% of the gap at 1.16x scratch's wall time in one invocation "
               "(3 seeds each); the KD hand-over at half the fine-tune ends at 78.80 ± "
               "0.16. Hints at every block in the fine-tune cost 0.13-0.15 points (seed "
               "0). The steps leave the partial net at 79, 73, 74, 57, 71, 74, 68, 67 "
               "and 64% (seed 0; the other seeds within 1.2) and the last block's MSE "
               "(0.66) is 5x any other's: each of these nine blocks does more of the "
               "network's work than one conv fits",
        "next": "the MSE hand-over wins most here (+0.64 over the preset) but cannot "
                "be the preset's for basic -> conv: it makes ResNet-56 -> plain "
                "depend on the seed (78.48 and 81.06 against 80.70 and 80.95); a "
                "wider conv (or two) for the last block, whose fit is the worst; a "
                "longer fine-tune share of the budget adds nothing (`-f10`, 78.96 ± "
                "0.16)",
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
               "after the preset's; after the closed form 78.91, and 79.65 once the fit "
               "matched BN statistics and fitted the projection shortcuts; seed 0). On "
               "the first teacher "
               "recast led kd-mse by 1.05 on one seed of kd-mse, which this teacher's "
               "seeds do not repeat. Re-solving each warm-started target's input convs "
               "on the kept channels (`--solve input`, the reconstruction step of "
               "channel pruning) cuts their output error 2.7-8.5x and ends the steps up to "
               "1.5 points higher, yet the fine-tune ends level (80.48 against 80.50, "
               "seed 0). The logit-MSE fine-tune handed over to CE halfway "
               "(`warm-mse-sgd-lr02-t50`), which wins on ResNet-20 -> plain, adds 0.17 "
               "here (80.64 and 80.74, seeds 0 and 1) at 1.27x the preset's wall time. Our reading: at "
               "18 epochs this student's size, not the teacher signal or its start, "
               "bounds every method",
        "next": "the student's shape at equal cost (the late blocks kept wider, as "
                "for VGG), with the alternatives trained on the same new student; "
                "the +1 goal is not within reach of a recipe change on this student",
    },
    "resnet56-conv": {
        "why": "the accuracy goals are reached; the wall goal only with the teacher's "
               "target forward in bfloat16. The `fast` "
               "preset (the closed-form start, a fine-tune whose rate ramps up over its "
               "first epoch, and `--finetune-loss auto`: Hinton KD (T=4) for the "
               "first quarter of the fine-tune, then CE, the teacher's target forward "
               "in bfloat16 on this CPU by `--teacher-precision auto`; "
               "`solve-warmup-kd-sgd-lr02-t25-bf16`) ends at 81.13, 81.34 and 80.99 "
               "on seeds 0-2 (81.15 ± 0.18). In float32 "
               "(`solve-warmup-kd-sgd-lr02-t25`) it ended at 81.20, 81.15 and 81.08 "
               "(81.14 ± 0.06; seeds 0 and 2 ran again, at 81.38 and 81.23 before), "
               "0.32 above the teacher and above the preset before it (CE throughout, "
               "`solve-warmup-ce-sgd-lr02`: 80.91 ± 0.16 over seeds "
               "0-3) on every seed (in bfloat16 on seeds 0 and 1; 0.09 under it on "
               "seed 2). KD keeps the solved start through the first pass "
               "(57% and 52% at its end on seeds 0 and 1, where CE is at 38-53%). "
               "It reads the teacher in a quarter of the fine-tune; with each step's "
               "accuracy on 2000 test images it took 2167 and 2106 s (seeds 0 and 2), "
               "1.24-1.28x scratch's undisturbed runs of seeds 1 and 2 (1688 and 1705 "
               "s, equal load); the table's 1.12x pairs seed 2 with a scratch my tests "
               "slowed by 10.6% (cifar10-runs.md). In bfloat16 (+0.01 over float32 "
               "on the same seeds) the runs take 1791-1923 s: "
               "its block steps take 335-365 s against 407-451 s; seed 2 run again "
               "beside its scratch on an undisturbed machine took 1791 s against "
               "1668 s, 1.07x, the table's ratio (the same seed's float32 run took "
               "2106 s, 1.26x that scratch, in another invocation). "
               "The logit-MSE + CE fine-tune, which "
               "wins on ResNet-20 and DenseNet after the same start, loses here "
               "(78.18 and 80.53 on seeds 0 and 1), and handed over to CE halfway it "
               "depends on the seed (78.48 and 81.06): on seed 0 the MSE phase leaves "
               "the net at 73% and CE then lifts it only to 78.48. The KD hand-over "
               "at half the fine-tune ends at 81.18 and 81.26 (seeds 0 and 1) at "
               "1.30x the CE preset's wall time",
        "next": "`--finetune-loss ce` "
                "runs the CE preset (80.91, 1.09x) for users who put time first",
    },
    "densenet40-basic": {
        "why": "on the 60-epoch teacher (84.21%, 5.7 points above scratch's 78.49 ± "
               "0.57) the `fast` preset (the closed-form start with a principal conv1, "
               "the warm-up, then `--finetune-loss auto`: Hinton KD for the first "
               "quarter of the fine-tune, then CE, the teacher's target forward in "
               "bfloat16 on this CPU by `--teacher-precision auto`; "
               "`solve-principal-warmup-kd-sgd-lr02-t25-bf16`) ends at 79.36 ± 0.26 "
               "(3 seeds), 0.28 under KD (79.63 ± 0.29), closing 15% of the gap. In "
               "float32 (`solve-principal-warmup-kd-sgd-lr02-t25`) it ended at 79.46 ± "
               "0.18 (3 seeds; seed 2 ran again at 79.36, 79.45 before), above its CE "
               "recipe before it on every seed (+0.49), "
               "at 1.27x scratch's wall time in one invocation "
               "at equal load (seed 2; that scratch ran 7.6% slow beside my tests, "
               "and against the same seed's earlier 1366 s it is 1.37x). In bfloat16 "
               "the block steps take "
               "348-378 s instead of 505-677 s (seed 2 back to back in the fifth session: 375 against 532 "
               "s) and the runs 1503-1647 s: 1.12x scratch in one invocation at equal "
               "load (1.14x on seed 0; seed 2 run again beside its scratch on an "
               "undisturbed machine, 1503 against 1352 s, 1.11x), under the goal, "
               "ending at 79.61, 79.10 and 79.36 "
               "(79.36 ± 0.26, 0.11 under float32 on the same seeds; seed 2 run back to "
               "back ended at 79.36 in both precisions). How it got there: the first "
               "preset, the warm start alone, ended under scratch (77.45 "
               "± 0.29, 3 seeds): no warm start fills a basic block from a dense one, "
               "so its steps left the partial net at 40%, 49% and 52%. The closed-form "
               "start first lost too (76.36, seed 0), because it fitted conv2 through "
               "bn1's initial statistics (the random conv1's outputs vary 0.003-0.4, "
               "not 1) and a random projection shortcut: the fit missed in train mode "
               "and its filters grew 3-80x (benchmarks/fit-diagnosis.md). With the target's BN statistics matched "
               "to its inputs and the shortcut fitted with conv2 (cifar10-runs.md, "
               "seventh session), the steps end at 73-75%, 70-71% and 67-68% and the "
               "same recipe reaches 78.62 ± 0.09 (3 seeds), 0.94-1.39 over the old "
               "preset on each seed, so the `fast` preset ran it (`--solve "
               "auto`). It still ends under KD (79.63 ± 0.29, 3 seeds): the CE "
               "fine-tune drops the teacher's signal, and KD keeps it for all 18 "
               "epochs. The same start with the fine-tune on logit MSE + CE "
               "(`solve-warmup-mse-sgd-lr02`) reaches 79.84 ± 0.14 (3 seeds), +0.21 "
               "over KD, at 1.8x the CE recipe's wall time. Giving the fresh basic "
               "target's conv1 the principal directions of what its residual path "
               "must add (`--solve-hidden principal`) lowers the fit's train-mode MSE "
               "at the last two steps by a quarter and a tenth "
               "(benchmarks/fit-diagnosis.md) and lifts the CE recipe on every seed "
               "to 78.97 ± 0.03 (+0.35), so the `fast` preset took it here (it "
               "acts on no other pair: their targets are convs or warm-started); the "
               "last step's fit still leaves 71% of the teacher's variance (2.23 of "
               "3.15), the block before the head. Under the logit-MSE fine-tune the "
               "principal conv1 adds nothing (79.63 against 79.70, seed 0; "
               "`solve-principal-warmup-mse-sgd-lr02`): the teacher's logits make up "
               "the difference in the start. Handing the MSE fine-tune over to CE "
               "halfway after the preset's start (`--finetune-teacher-share 0.5`, "
               "`solve-principal-warmup-mse-sgd-lr02-t50`) ends at 79.87 ± 0.16 (3 "
               "seeds), above the CE recipe on every seed (+0.99, +1.02, +0.68), +0.24 "
               "over KD, above the MSE fine-tune throughout after the random-conv1 "
               "start (79.84 ± 0.14, at 1.83x the CE recipe's wall time). It runs at "
               "1.44x scratch's wall time in one invocation (seed 2, equal load): "
               "this teacher's forward costs 3.4x the student's (145.9 against 43.5 "
               "ms at batch 64), and the recipe reads it in every block step and "
               "half the fine-tune",
        "next": "the preset is one recipe for every transformation: the MSE "
                "hand-over, best here, makes ResNet-56 -> plain depend on the seed, and "
                "the KD hand-over at half the fine-tune (79.67, seed 0) costs more "
                "teacher forwards; in float32 the block steps (their fits and "
                "evaluations included) took 505-677 s of 1848-2004 s (seeds 0-2), "
                "2.0-2.7x the 254 s scratch spends on as many images, which the "
                "bfloat16 forward of the `fast` preset cuts to 348-378 s; "
                "the student's shape, as for the other pairs",
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
