"""Human outputs: case and plan figures (PNG), DVH plots, the HTML report.

Modules import matplotlib lazily and draw with the Agg canvas, so importing this package needs no
display and does not change the global matplotlib backend.
"""
