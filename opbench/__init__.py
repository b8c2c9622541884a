"""opbench: verified, reproducible benchmarks of convolution kernels across compilers, libraries and CUDA."""
