"""Tools for finding out why a benchmark's numbers are what they are; BENCHMARKS.md's tables do not come from them."""
