"""Hard limits that keep hostile or mistaken specs from hanging or exhausting the compiler."""

MAX_NODES = 100_000  # IR nodes one spec may expand to (configurable per call)
MAX_NESTING = 64  # bracket depth; expression depth is allowed twice this
MAX_SOURCE_BYTES = 1 << 20
MAX_DIM = 1 << 16  # any one spatial size
MAX_CHANNELS = 1 << 20
MAX_ELEMENTS = 1 << 31  # elements of one activation (per sample) or one weight tensor
MAX_INT = 1 << 62  # integer arithmetic in specs stays below this
MAX_BLOCK_DEPTH = 64  # nested block instantiations
