"""simulators — simulated charge points, an eMSP partner and a grid-load feed for demo, tests and benchmarks."""
