"""Several replicas (docs/scaling.md): partitions of accounts (partitions.py), leases with fencing tokens on the
database (leases.py), the loop that keeps a replica's share of them (ownership.py) and the one market-data feed of
the cluster (feed_leader.py)."""
