"""ClusterIP-style services: a virtual IP:port/protocol that netfilter NAT spreads over backends.

spec.py parses and checks what the user typed, plan.py decides (purely) which nat chains and
rules all services together need and reads services back from a save dump, apply.py runs the
decision through the host firewall backends of pyruntime.hostnet.
"""
