"""The DARTS network description, without torch: genotypes (JSON and the DARTS text), the
macro plan of the evaluation and search networks, every op as hardware layers, and the cell
graph with its layer list.  ``hwmodel`` prices what this package describes; ``nas`` builds
torch modules from the same op specs, so each op is written once."""
