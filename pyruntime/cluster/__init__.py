"""Multi-node pod networking, host-gw style: a cluster file names every node's address and pod
subnet; `pyruntime network node-up` makes one node route to the others' pods and keep their
traffic unmasqueraded (model.py: the file; plan.py: what a node needs, pure; node.py: doing it).
"""
