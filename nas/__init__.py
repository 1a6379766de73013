"""Energy-aware DARTS: genotypes, the evaluation network as layers (for ``hwmodel``) and as
PyTorch modules, the supernet with approximate convolutions, the architect, the energy
penalty, datasets, checkpoints, and the search and training loops."""
