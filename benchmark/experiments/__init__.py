"""Experiments (Ray): resolve a grid once, plan it against the store, run its trials through Ray
Tune, and record every outcome. Modules: resolve, planning, driver (run_grid), worker (one trial
and its status protocol), ray_backend, progress, search and hparam_search (the two phases)."""
