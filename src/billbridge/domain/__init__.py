"""The canonical model and the billing rules: pure values and functions, no I/O."""
