"""Reliability and security proof (issue 10): the full forms of the fault, fuzz, adversarial
chat and load runs behind `appliance soak ...` / `make soak`. The CI suite runs a short form of
each from `tests/`, through the same functions. Nothing here is imported by the web or the
workers, and nothing heavy is imported at module level."""
