"""Human outputs: the case figure (case.png), plan figures (dose slices, DVHs) and the HTML report."""
