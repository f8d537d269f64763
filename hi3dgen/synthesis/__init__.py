"""DetailVerse: procedurally synthesized assets with dense, structured sharp detail."""

from hi3dgen.synthesis.families import FAMILIES
from hi3dgen.synthesis.stage import stats, synthesize

__all__ = ["FAMILIES", "stats", "synthesize"]
