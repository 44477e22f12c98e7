"""Applications built on the library: the CPU demo, ablation sweeps, plots and benchmarks.

Nothing in the core (registries, components, models, engine) imports from here.
"""
