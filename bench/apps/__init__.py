"""Apps the benchmarks serve; bench/README.md says which serves which."""
