"""Hard limits that keep hostile or mistaken specs from hanging or exhausting the compiler."""

MAX_NODES = 100_000  # IR nodes one spec may expand to (configurable per call)
MAX_NESTING = 64  # bracket depth; expression depth is allowed twice this
MAX_SOURCE_BYTES = 1 << 20
MAX_DIM = 1 << 16  # any one spatial size
MAX_CHANNELS = 1 << 20
MAX_ELEMENTS = 1 << 31  # elements of one activation (per sample) or one weight tensor
MAX_INT = 1 << 62  # integer arithmetic in specs stays below this
MAX_BLOCK_DEPTH = 64  # nested block instantiations

# Elaboration work: the node limit alone does not bound time, because repeats of `identity`,
# zero-count repeats and blocks that expand to nothing add no nodes. Every elaboration step
# (layer expression applied, repeat iteration, block call, value-expression node evaluated)
# costs one unit of work. Real networks spend well under 10 units per node (see
# tests/test_work_bounds.py), so the budget refuses nothing the node limit would accept.
WORK_PER_NODE = 16
# Steps are weighted by their real cost relative to one `[identity]` iteration, so that the budget
# bounds time whichever kind of step a spec piles up.
BLOCK_CALL_WORK = 10  # binding arguments, a name scope, an environment and a provenance frame
SCOPE_WORK = 2  # a repeat variable's environment or a label's name scope
WORK_FLOOR = 100_000  # so that a small --max-nodes still leaves room for constants and expectations


def work_budget(max_nodes: int) -> int:
    """Elaboration steps one spec may take when it may expand to `max_nodes` nodes."""
    return WORK_PER_NODE * max_nodes + WORK_FLOOR
