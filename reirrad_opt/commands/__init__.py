"""Sub-commands of the ``reirrad-opt`` CLI, one module each (see reirrad_opt.cli)."""
