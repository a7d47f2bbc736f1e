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
from recast.datasets import BatchLoader, load_data
from recast.presets import PRESETS, make_config
from recast.settings import RecastConfig
from recast.pipeline import RecastResult, recast
from recast.serialize import load_student

__all__ = [
    "BatchLoader", "Block", "BlockChain", "PRESETS", "Plan", "PlanError", "RecastConfig",
    "RecastError", "RecastResult", "WalkError", "build_model", "compression_report",
    "load_data", "load_student", "make_config", "make_plan", "model_names", "recast", "walk",
]
__version__ = "0.1.0"
