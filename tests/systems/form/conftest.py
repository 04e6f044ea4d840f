import torch

# One thread: the machine is shared, and small models are slower with OpenMP threads fighting for cores.
torch.set_num_threads(1)
