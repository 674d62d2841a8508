"""Mutation testing: mutants of que's statements and formulas (each a broken port made by
changing one term), run through the conformance suite as outside testees (`make mutate`).
It sits above the suite: it makes contestants (que, changed) and asks the judge."""
