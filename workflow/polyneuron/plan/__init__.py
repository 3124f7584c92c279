"""Planning: config checks, resource requests, token budgets and code hashes. Never imports
torch: the Snakefile imports this package on every run, dry runs included."""
