"""Upper bounds on configured values, in one place for every schema (config, datasets,
losses, backends).

Some stop values that would exhaust the machine before anything useful happens; they sit far
above every preset (MNIST 784-350-10: 0.3 M synapses; SHD 140-128-20) but stop typos such as
network.hidden=100000000 (8.5 GB of weights) with one line. Others bound finite values the
model cannot represent (times in tau_s, weights and thresholds in membrane units): past them
every neuron fires at its first input or never, the closed forms' exponentials overflow, and
a run would report 0 % with no reason.
"""

MAX_SEED = 2**31 - 1
MAX_TIME = 1e6  # tau_s: input times, time constants, delays, the bias spike, jitter
MAX_NEURONS = 100_000  # per layer
MAX_SYNAPSES = 20_000_000  # all layers; float64 weights + delays + Adam's two moments: ~1.3 GB
MAX_BATCH = 100_000
MAX_MEMORY_GB = 1e4  # training.max_memory_gb
MAX_EPOCHS = 1_000_000
MAX_REPEATS = 10_000  # backend.eval_repeats
MAX_SPIKES = 1_000  # neuron.max_spikes: the spike buffer per neuron and sample
MAX_LR = 10.0  # Adam moves a parameter by about lr per step
MAX_WEIGHT = 1e4  # weight_mean, weight_std, bump: per input spike, in membrane units
MAX_THRESHOLD = 1e4  # neuron.threshold (membrane units)
WHY_TIME = "longer than any input window by orders of magnitude"
WHY_WEIGHT = "beyond that a neuron fires at its first input spike or never"
