"""Named reproductions: several runs with one recipe, their analysis, a verdict and a report."""
