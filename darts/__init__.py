"""The DARTS network description, without torch: genotypes (the model and its rules in
``genotype``, JSON and the DARTS text in ``genotype_io``), the macro plan of the evaluation
and search networks, every op as a torch-free spec and as hardware layers (``op_specs``), the
cell graph with its layer list, and their prices through ``hwmodel.costing`` (``pricing``,
the search's per-op table ``op_energy``).  ``nas`` builds torch modules from the same op
specs, so each op is written once."""
