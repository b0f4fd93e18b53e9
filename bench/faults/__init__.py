"""Fault runs: a real cluster broken on purpose, and a count of what its clients lost (not benchmarks).

    python -m bench.faults --help     # the one entry point (__main__.py)

cluster.py    the world that is broken: two nodes, a Redis of its own, PostgreSQL, an org
node.py       the node each process runs: `feeds-server serve` plus a lag probe and `/_fault/stats`
clients.py    recovering stream clients, and the tally of what they received
result.py     a scenario's `Result` and the counts every scenario takes the same way
scenarios.py  the faults on the cluster: node loss, Redis, slow reader, churn, slow query, restarts
notifier.py   the notifier under SMTP faults and worker kills

The arrows point one way: __main__ → scenarios, notifier → result → clients → cluster → bench.harness.
"""
