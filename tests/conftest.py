import os

import torch

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("PYGLET_HEADLESS", "true")
# learning-threshold tests were sized on 2 threads: the same count on every machine, so that a
# machine with more cores runs the same float reductions (the thresholds keep a margin besides)
torch.set_num_threads(min(2, os.cpu_count() or 1))
