"""`vulfix demo`: the whole system on the embedded default, with a simulated fleet."""
