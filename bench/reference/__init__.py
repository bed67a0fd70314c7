"""A deliberately simple reference implementation of the product, for comparison (issue 14)."""
