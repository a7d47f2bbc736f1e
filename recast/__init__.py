"""recast: turn a trained CNN into a smaller or simpler one by network recasting.

The pipeline reads like the package: walk the teacher into blocks
(:func:`walk`), plan the student (:func:`make_plan`), recast block by block,
fine-tune, report (:func:`compression_report`).
"""

import warnings

# fvcore imports torch.jit.script, which torch >= 2.10 flags as deprecated at
# import time; the warning says nothing about recast's own results.
warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)

from recast.errors import PlanError, RecastError, WalkError
from recast.models import build_model, model_names
from recast.plan import Plan, make_plan
from recast.report import compression_report
from recast.walker import Block, BlockChain, walk

__all__ = [
    "Block", "BlockChain", "Plan", "PlanError", "RecastError", "WalkError",
    "build_model", "compression_report", "make_plan", "model_names", "walk",
]
__version__ = "0.1.0"
