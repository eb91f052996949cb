"The measured evidence: `table.json` files written by h2t-table runs, shipped inside the package as `h2t_nb.measured`."
